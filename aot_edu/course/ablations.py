"""The paper's ablations (Table 3) and its learned identity banks (Fig. 4), at small scale.

Every row of Table 3 is one configuration change of ``configs/ablations.toml`` (:data:`RUNS`):
the shipped course model loaded into the row's architecture (``model.init_adapt``), fine-tuned
for the same number of steps on the course's synthetic clips, and scored with the DAVIS
metrics on the same held-out videos, for each of :data:`SEEDS`. The M rows (Table 3a) start
every bank fresh, M = 10 included, so that they compare banks learned under the same budget.

``make ablations`` (``python -m aot_edu.course.ablations run``) trains what is missing; each
run resumes from its checkpoint in ``runs/ablations/<run>_s<seed>/`` and adds its results to
the committed files in ``aot_edu/assets/ablations/`` as soon as it finishes, so an interrupted
session loses at most one unfinished run's last minutes:

- ``results.csv`` - one line per finished run and seed: J&F, J, F, training time, machine;
- ``banks.npz`` - the cosine similarity matrix ``[M, M]`` of every run's learned identities
  (Fig. 4: notebook 07's identity-bank widget shows them);
- ``curves.csv`` - every run's training loss, every :data:`CURVE_EVERY` steps;
- ``strategies.csv`` - identification against post-ensemble (accuracy and time per number of
  objects) with the reference run's model.

Notebook 07 reads them, puts the paper's numbers beside them (:data:`ROWS`), and re-runs one
row live.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aot_edu import paths
from aot_edu.data import SyntheticVideos
from aot_edu.evaluation import analysis
from aot_edu.model import AOTConfig
from aot_edu.training import TrainConfig, TrainResult, load_config, read_log, train
from aot_edu.training.config import model_config_of

from .model import ASSETS

ABLATION_CONFIG = "configs/ablations.toml"
RESULTS_DIR = ASSETS / "ablations"
RESULTS = RESULTS_DIR / "results.csv"
BANKS = RESULTS_DIR / "banks.npz"
CURVES = RESULTS_DIR / "curves.csv"
STRATEGIES = RESULTS_DIR / "strategies.csv"
SEEDS = (0, 1)
CURVE_EVERY = 5
RESULT_FIELDS = ("run", "seed", "steps", "J&F", "J", "F", "train_min", "threads", "device", "machine", "date")

_FRESH_BANK = {"model.reinit": "identity_bank,decoder_head"}

# Each run: the changes to configs/ablations.toml. "base" is AOT's own setting (the shipped
# course model's architecture: AOT-L, M = 10, a 15x15 window over frame t-1, three blocks, sine
# and relative position embeddings).
RUNS: dict[str, dict[str, object]] = {  # in the order they run: the reference, then the rows
    "base": {},                            # with the paper's largest effects first
    "no_short": {"model.short_term_frames": 0},
    "l1": {"model.lstt_blocks": 1},
    "m10": {**_FRESH_BANK},
    "m30": {**_FRESH_BANK, "model.identities": 30},
    "w7": {"model.window": 7},
    "n2": {"model.short_term_frames": 2},
    "no_rel": {"model.relative_embedding": False},
    "no_sine": {"model.sine_embedding": False},
    "l2": {"model.lstt_blocks": 2},
    "w11": {"model.window": 11},
    "m15": {**_FRESH_BANK, "model.identities": 15},
    "m20": {**_FRESH_BANK, "model.identities": 20},
    "m5": {**_FRESH_BANK, "model.identities": 5},
    "m3": {**_FRESH_BANK, "model.identities": 3, "data.num_objects": [1, 3]},
}


@dataclass(frozen=True)
class Row:
    """One row of the paper's Table 3 and the run that re-measures it here."""

    table: str  # "3a" .. "3e", the paper's sub-table
    setting: str  # as the row reads, e.g. "M = 15"
    run: str  # key of RUNS
    paper: float | None  # the paper's J&F (YouTube-VOS 2018 val, AOT-S); None: not in the paper
    reference: bool = False  # the row the others of its sub-table compare with


TABLES = {"3a": "identity number M", "3b": "short-term window", "3c": "short-term frames n",
          "3d": "LSTT blocks L", "3e": "position embeddings"}

# The paper's values: Table 3 of the submitted version (AOT-S trained on YouTube-VOS without the
# static-image pre-training, scored on YouTube-VOS 2018 val; its window is written as the radius
# lambda = 7, 5, 3, i.e. windows of 15, 11 and 7). The paper's own reference for 3d is L = 2
# (AOT-S); ours is L = 3 (the course model).
ROWS: tuple[Row, ...] = (
    Row("3a", "M = 10", "m10", 80.3, reference=True),
    Row("3a", "M = 3 (fewer than the 3-5 objects)", "m3", None),
    Row("3a", "M = 5", "m5", None),
    Row("3a", "M = 15", "m15", 79.0),
    Row("3a", "M = 20", "m20", 78.3),
    Row("3a", "M = 30", "m30", 77.2),
    Row("3b", "15 x 15", "base", 80.3, reference=True),
    Row("3b", "11 x 11", "w11", 78.8),
    Row("3b", "7 x 7", "w7", 78.3),
    Row("3b", "none (no short-term attention)", "no_short", 74.3),
    Row("3c", "n = 1", "base", 80.3, reference=True),
    Row("3c", "n = 2", "n2", 80.0),
    Row("3d", "L = 3", "base", 80.9, reference=True),
    Row("3d", "L = 2", "l2", 80.3),
    Row("3d", "L = 1", "l1", 77.9),
    Row("3e", "sine + relative", "base", 80.3, reference=True),
    Row("3e", "no sine (self-attention without positions)", "no_sine", 80.1),
    Row("3e", "no relative (short-term without relative terms)", "no_rel", 79.7),
)
BANK_RUNS = ("m10", "m15", "m20", "m30")  # the paper's Fig. 4 shows M = 10, 15, 20, 30


def run_config(run: str, seed: int, root: str | Path = "runs/ablations", steps: int | None = None,
               base: str | Path | Mapping | None = None) -> TrainConfig:
    """The configuration of one run: ``base`` (default: the checkout's
    ``configs/ablations.toml``) with :data:`RUNS` ``[run]``'s changes, ``seed`` (its clips,
    fresh weights and stochastic depth) and its own folder ``root/<run>_s<seed>``. A relative
    ``model.init_weights`` is read from the checkout (the shipped course model), wherever this
    runs from."""
    if run not in RUNS:
        raise ValueError(f"unknown ablation run {run!r}; choose from {', '.join(RUNS)}")
    base = paths.repo_root() / ABLATION_CONFIG if base is None else base
    data = load_config(base, check_paths=False).to_dict()
    init = data["model"]["init_weights"]
    if init and not Path(init).is_absolute():
        data["model"]["init_weights"] = (paths.repo_root() / init).as_posix()
    changes: dict[str, object] = {"name": f"ablation_{run}_s{seed}", "seed": seed,
                                  "run.output_dir": (Path(root) / f"{run}_s{seed}").as_posix(),
                                  **RUNS[run]}
    if steps is not None:
        changes["optim.steps"] = steps
    return load_config(data, changes)


def architecture(run: str) -> AOTConfig:
    """The AOT a run trains (its :class:`~aot_edu.model.AOTConfig`)."""
    return model_config_of(run_config(run, 0))


def read_results(path: str | Path = RESULTS) -> list[dict]:
    """The committed results, one dict per run and seed (numbers as floats)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key in ("seed", "steps", "threads"):
            row[key] = int(row[key])
        for key in ("J&F", "J", "F", "train_min"):
            row[key] = float(row[key])
    return rows


def read_banks(path: str | Path = BANKS) -> dict[str, np.ndarray]:
    """``{"<run>_s<seed>": cosine similarity [M, M]}`` of the learned identity banks."""
    path = Path(path)
    if not path.is_file():
        return {}
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def summary(results: Sequence[Mapping] | None = None) -> dict[str, dict]:
    """Per run: mean J&F over its seeds, the spread (max - min) and the seeds done."""
    results = read_results() if results is None else results
    out: dict[str, dict] = {}
    for run in RUNS:
        values = [r["J&F"] for r in results if r["run"] == run]
        if values:
            out[run] = {"J&F": float(np.mean(values)), "spread": float(np.ptp(values)),
                        "seeds": sorted(r["seed"] for r in results if r["run"] == run),
                        "values": values}
    return out


def table_rows(results: Sequence[Mapping] | None = None) -> list[dict]:
    """Table 3 as the notebook prints it: every :data:`ROWS` row with the paper's J&F and its
    difference to the sub-table's reference, ours (mean over seeds) with its difference and
    whether that difference is larger than the two runs' spread (``None`` until run, and while
    either run has a single seed)."""
    runs = summary(results)
    refs = {row.table: row for row in ROWS if row.reference}
    out = []
    for row in ROWS:
        ours, ref = runs.get(row.run), runs.get(refs[row.table].run)
        paper_ref = refs[row.table].paper
        entry = {"table": row.table, "setting": row.setting, "run": row.run, "reference": row.reference,
                 "paper": row.paper,
                 "paper_delta": None if row.paper is None or paper_ref is None else row.paper - paper_ref,
                 "ours": None if ours is None else ours["J&F"],
                 "spread": None if ours is None else ours["spread"],
                 "seeds": [] if ours is None else ours["seeds"], "delta": None, "beyond_spread": None}
        if ours and ref and not row.reference:
            entry["delta"] = ours["J&F"] - ref["J&F"]
            if len(ours["seeds"]) > 1 and len(ref["seeds"]) > 1:  # one seed has no spread yet
                entry["beyond_spread"] = abs(entry["delta"]) > max(ours["spread"], ref["spread"])
        out.append(entry)
    return out


def bank_distance(similarity: np.ndarray) -> dict[str, float]:
    """How far a bank's identities are from a perfectly equidistant bank (Fig. 4): the mean
    and max of the off-diagonal cosines against ``-1/(M-1)``, and their root-mean-square gap."""
    sim = np.asarray(similarity, dtype=np.float64)
    m = sim.shape[0]
    off = sim[~np.eye(m, dtype=bool)]
    equidistant = -1.0 / (m - 1)
    return {"M": m, "equidistant": equidistant, "mean": float(off.mean()), "max": float(off.max()),
            "rms_gap": float(np.sqrt(np.mean((off - equidistant) ** 2)))}


# --- making the runs --------------------------------------------------------------------------------

def _machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores".replace("  ", " ")


def _append_csv(path: Path, fields: Sequence[str], rows: Iterable[Mapping],
                key: Sequence[str] = ("run", "seed")) -> None:
    """Add rows (replacing earlier rows with the same ``key`` values), written atomically."""
    rows = list(rows)
    keys = {tuple(str(r[k]) for k in key) for r in rows}
    old = []
    if path.is_file():
        with path.open(newline="") as f:
            old = [r for r in csv.DictReader(f) if tuple(r[k] for k in key) not in keys]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in [*old, *rows]:
        writer.writerow({k: row[k] for k in fields})
    paths.atomic_write_text(path, buffer.getvalue())


def record_run(result, run: str, seed: int, out_dir: Path = RESULTS_DIR) -> dict:
    """Write one finished run into ``out_dir``: its scores, its bank's cosines, its loss curve."""
    out_dir.mkdir(parents=True, exist_ok=True)
    m = result.metrics
    row = {"run": run, "seed": seed, "steps": result.step, "J&F": f"{m['J&F']:.4f}",
           "J": f"{m['J']:.4f}", "F": f"{m['F']:.4f}", "train_min": f"{result.train_time / 60:.2f}",
           "threads": torch.get_num_threads(),
           "device": "cuda" if torch.cuda.is_available() and result.config.run.device != "cpu" else "cpu",
           "machine": _machine(), "date": time.strftime("%Y-%m-%d")}
    _append_csv(out_dir / RESULTS.name, RESULT_FIELDS, [row])
    model = result.load_model()
    similarity = analysis.cosine_similarity_matrix(model.patch_wise_id_bank.identity_vectors()[1:]).numpy()
    banks = read_banks(out_dir / BANKS.name)
    banks[f"{run}_s{seed}"] = similarity.astype(np.float32)
    tmp = out_dir / (BANKS.name + ".tmp.npz")
    np.savez_compressed(tmp, **banks)
    os.replace(tmp, out_dir / BANKS.name)
    curve = [{"run": run, "seed": seed, "step": r["step"], "loss": f"{float(r['loss']):.5f}"}
             for r in read_log(result.log) if int(r["step"]) % CURVE_EVERY == 0]
    _append_csv(out_dir / CURVES.name, ("run", "seed", "step", "loss"), curve)
    return row


def run_ablations(runs: Sequence[str] = tuple(RUNS), seeds: Sequence[int] = SEEDS,
                  root: str | Path = "runs/ablations", steps: int | None = None,
                  out_dir: Path = RESULTS_DIR, base: str | Path | Mapping | None = None,
                  progress: bool = True) -> list[dict]:
    """Train and record every run not yet in ``out_dir``'s results (each resumes from its own
    checkpoint): every run with the first seed, then with the next; returns the rows recorded
    now."""
    done = {(r["run"], r["seed"]) for r in read_results(out_dir / RESULTS.name)}
    recorded = []
    for seed in seeds:
        for run in runs:
            if (run, seed) in done:
                continue
            config = run_config(run, seed, root, steps, base)
            print(f"ablation {run} seed {seed}: {config.run.output_dir}", file=sys.stderr, flush=True)
            result = train(config, progress=progress)
            recorded.append(record_run(result, run, seed, out_dir))
    return recorded


def run_strategies(model, size: int = 129, counts: Sequence[int] = (1, 2, 3, 4, 5),
                   num_videos: int = 6, out_dir: Path = RESULTS_DIR) -> list[dict]:
    """Identification against post-ensemble (paper Fig. 3, the last row of notebook 07's table):
    accuracy and time per frame for each number of look-alike objects, written to
    ``strategies.csv``."""
    rows = []
    for n in counts:
        videos = SyntheticVideos(num_videos, 20, size, n, 0, seed=700 + n, motion=0.5, scale=1.2,
                                 look_alike_objects=True)
        scores = analysis.compare_strategies(model, videos)
        for strategy, s in scores.items():
            rows.append({"objects": n, "strategy": strategy, "J&F": f"{s['J&F']:.4f}",
                         "ms_per_frame": f"{s['ms_per_frame']:.1f}", "videos": num_videos,
                         "size": size, "threads": torch.get_num_threads(), "machine": _machine()})
    out_dir.mkdir(parents=True, exist_ok=True)
    _append_csv(out_dir / STRATEGIES.name, list(rows[0]), rows, key=("objects", "strategy"))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aot_edu.course.ablations",
        description="Re-run the paper's Table 3 at small scale (resumable; results in "
                    f"{RESULTS_DIR}).")
    parser.add_argument("command", choices=("run", "status", "strategies"))
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated runs (default: all)")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    parser.add_argument("--root", default="runs/ablations", help="run folders (checkpoints)")
    args = parser.parse_args(argv)
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--seeds takes comma-separated integers, got {args.seeds!r}")
    if args.command == "status":
        done = summary()
        for run in runs:
            s = done.get(run)
            print(f"{run:10s} " + (f"J&F {s['J&F']:.3f} (spread {s['spread']:.3f}, seeds {s['seeds']})"
                                   if s else "not run"))
        return 0
    if args.command == "strategies":
        config = run_config("base", seeds[0], args.root)
        result = TrainResult(config, Path(config.run.output_dir), config.optim.steps, 0.0, {})
        if not result.weights.is_file():
            parser.error(f"run 'base' seed {seeds[0]} is not trained yet ({result.weights}); "
                         "run `make ablations` first")
        for row in run_strategies(result.load_model(), size=config.data.size):
            print(row)
        return 0
    run_ablations(runs, seeds, args.root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["ABLATION_CONFIG", "BANKS", "BANK_RUNS", "CURVES", "RESULTS", "ROWS", "RUNS", "Row", "architecture",
           "SEEDS", "STRATEGIES", "TABLES", "bank_distance", "read_banks", "read_results",
           "record_run", "run_ablations", "run_config", "run_strategies", "summary", "table_rows"]
