"""The paper's Table 3 at small scale: the committed results of ``make ablations``, as a table.

The runs themselves are made by ``make ablations`` (``aot_edu/course/ablations.py``: about five
minutes each on a 2-core CPU, resumable, two seeds per row); each finished run is recorded in
``aot_edu/assets/ablations/``. This section reads those files (it trains nothing): every row
with the paper's J&F, ours per seed, the mean, the spread between seeds, the change against the
sub-table's reference and whether it exceeds the spread; the learned banks against -1/(M-1)
(Fig. 4); identification against post-ensemble.
"""

from __future__ import annotations

import csv

import numpy as np

from aot_edu.course import ablations as A


def _fmt(value, spec: str = "{:.3f}") -> str:
    return "-" if value is None else spec.format(value)


def run(quick: bool = False) -> str:
    results = A.read_results()
    per_run: dict[str, dict[int, float]] = {}
    times: dict[str, list[float]] = {}
    for r in results:
        per_run.setdefault(r["run"], {})[r["seed"]] = r["J&F"]
        times.setdefault(r["run"], []).append(r["train_min"])
    machines = sorted({f"{r['machine']} ({r['device']}, {r['threads']} threads)" for r in results})
    lines = ["## ablations: the paper's Table 3 at small scale (`make ablations`, notebook 07)", ""]
    lines.append(
        f"Each run: `configs/ablations.toml` with one change (`aot_edu/course/ablations.py: RUNS`), "
        f"from the shipped course model, {A.run_config('base', 0).optim.steps} steps, scored on "
        f"{A.run_config('base', 0).eval.num_videos} held-out synthetic videos of 20 frames "
        f"(3-5 objects, 1-2 look-alike distractors, seed 1000). Seeds {', '.join(map(str, A.SEEDS))}; "
        f"{len(results)} of {len(A.RUNS) * len(A.SEEDS)} runs recorded. Machine: "
        f"{'; '.join(machines) or 'none yet'}. The paper's values: AOT-S on YouTube-VOS 2018 val "
        "(trained from ImageNet weights, no static-image pre-training); compare changes, not values. "
        "A change is *beyond spread* when it exceeds the spread (max - min over seeds) of both rows.")
    lines += ["", "| table | setting | paper J&F | paper change | ours per seed | ours mean | spread | "
              "ours change | beyond spread | train min per run |",
              "|---|---|---:|---:|---|---:|---:|---:|:---:|---:|"]
    for r in A.table_rows(results):
        seeds = per_run.get(r["run"], {})
        per_seed = ", ".join(f"{seeds[s]:.3f}" for s in sorted(seeds)) or "not run"
        beyond = "" if r["beyond_spread"] is None else ("yes" if r["beyond_spread"] else "no")
        if r["delta"] is not None and r["beyond_spread"] is None:
            beyond = "one seed"
        minutes = times.get(r["run"])
        lines.append(
            f"| {r['table']} | {r['setting']}{' (reference)' if r['reference'] else ''} | "
            f"{_fmt(r['paper'], '{:.1f}')} | {_fmt(r['paper_delta'], '{:+.1f}')} | {per_seed} | "
            f"{_fmt(r['ours'])} | {_fmt(r['spread'])} | {_fmt(r['delta'], '{:+.3f}')} | {beyond} | "
            f"{_fmt(None if not minutes else float(np.median(minutes)), '{:.1f}')} |")
    banks = A.read_banks()
    if banks:
        lines += ["", "Identity banks (Fig. 4), off-diagonal cosines against the equidistant -1/(M-1):", "",
                  "| run | M | mean | max | equidistant | RMS gap |", "|---|---:|---:|---:|---:|---:|"]
        for key in sorted(banks, key=lambda k: (banks[k].shape[0], k)):
            d = A.bank_distance(banks[key])
            lines.append(f"| {key} | {d['M']} | {d['mean']:+.3f} | {d['max']:+.3f} | "
                         f"{d['equidistant']:+.3f} | {d['rms_gap']:.3f} |")
    if A.STRATEGIES.is_file():
        with A.STRATEGIES.open() as f:
            rows = list(csv.DictReader(f))
        lines += ["", "Identification against post-ensemble, the `base` run's model, look-alike objects:", "",
                  "| objects | strategy | J&F | ms per frame |", "|---:|---|---:|---:|"]
        lines += [f"| {r['objects']} | {r['strategy']} | {float(r['J&F']):.3f} | {float(r['ms_per_frame']):.0f} |"
                  for r in rows]
    return "\n".join(lines) + "\n"
