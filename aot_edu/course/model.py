"""The shipped course model: AOT's three-block network trained on synthetic videos, its model
card and its log.

The course's demonstrations need a model that tracks, at once and on a CPU, so the course
ships one (``aot_edu/assets/``):

- ``course_model.pt`` - the EMA weights in float16 (a bare state dict with the official keys:
  ``aot_edu.build_model(COURSE_VARIANT, weights=COURSE_WEIGHTS)`` loads it strictly);
- ``course_model.json`` - its model card: variant, frame size, every stage's configuration,
  seed, steps, training time and machine, the command that reproduces it, the file's sha256,
  and the held-out measurements (J&F against copying the first mask and the token-grid oracle,
  J per frame, the memory ablation, the identity bank, attention entropy per layer);
- ``course_model_log.csv`` - every stage's training log (one row per step) and
  ``course_model_eval.csv`` their held-out evaluations, for notebook 05's curves.

It is made in four stages by ``make train-course-model``: ``configs/course_pre.toml`` (the
paper's static-image pre-training: synthetic still images turned into clips),
``configs/course.toml`` (video training on 5-frame clips), ``configs/course_long.toml`` (8-frame
clips with the model's own predictions fed back from the first step, against drift) and
``configs/course_fine.toml`` (193x193 frames, AOT-L's long-term memory updates, identities kept
apart); it ends by calling :func:`ship` (``python -m aot_edu.course.card --ship``). The first
three stages train the network as AOT-B, the last as AOT-L: the paper's AOT-B and AOT-L are one
network (same layers, same state dict) and differ only in how often a frame joins the
long-term memory, so the shipped model is an AOT-L.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import torch

from aot_edu import paths
from aot_edu.data import OcclusionVideos, SyntheticVideos
from aot_edu.evaluation import analysis
from aot_edu.model import AOT, build_model, get_config
from aot_edu.model.weights import load_state_dict_file
from aot_edu.training import load_config, read_log

ASSETS = Path(__file__).resolve().parents[1] / "assets"  # aot_edu/assets: shipped as package data
COURSE_VARIANT = "aotl"
COURSE_WEIGHTS = ASSETS / "course_model.pt"
COURSE_CARD = ASSETS / "course_model.json"
COURSE_LOG = ASSETS / "course_model_log.csv"
COURSE_EVAL_LOG = ASSETS / "course_model_eval.csv"
# the training stages, in order: the paper's static-image pre-training, then videos (short clips,
# long clips fed back from the start, then larger frames with AOT-L's memory); each starts from
# the previous one's EMA weights
STAGES = {"pre": "configs/course_pre.toml", "main": "configs/course.toml",
          "long": "configs/course_long.toml", "fine": "configs/course_fine.toml"}
STAGE_LABELS = {"pre": "stage 1: static images", "main": "stage 2: 5-frame clips",
                "long": "stage 3: 8-frame clips, fed back", "fine": "stage 4: 193x193, AOT-L memory"}
REPRODUCE = "make train-course-model"
MAX_BYTES = 20 * 1024 * 1024
OCCLUSION_VIDEOS = 12  # occlusion videos of the memory ablation
LOG_COLUMNS = ("stage", "step", "loss", "loss_ref", "loss_frames", "iou", "lr", "feedback", "time")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_card(path: str | Path = COURSE_CARD) -> dict:
    """The model card (a dict; see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"the course model's card {path} is missing; restore it with `git checkout -- {path}` "
            f"or make it again with `{REPRODUCE}`"
        )
    return json.loads(path.read_text())


def load_course_model(device: torch.device | str = "cpu", weights: str | Path = COURSE_WEIGHTS) -> AOT:
    """The shipped course model in eval mode (float32 on ``device``)."""
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(
            f"the course model's weights {weights} are missing; restore them with `git checkout "
            f"-- {weights}` or train them again with `{REPRODUCE}` (hours on a CPU)"
        )
    return build_model(COURSE_VARIANT, weights=weights, device=device)


def held_out_videos(card: dict | None = None, num_videos: int | None = None) -> SyntheticVideos:
    """The card's held-out synthetic videos (their own seed, never trained on); the first
    ``num_videos`` of them if given."""
    e = (card or read_card())["held_out"]["videos"]
    return SyntheticVideos(num_videos or e["num_videos"], e["num_frames"], e["size"],
                           tuple(e["num_objects"]), tuple(e["num_distractors"]), seed=e["seed"],
                           motion=e["motion"], noise=e["noise"], scale=e["scale"])


def occlusion_videos(held_out: dict) -> OcclusionVideos:
    """The card's occlusion videos (``held_out["occlusion_videos"]``): an object passes behind
    an occluder and comes back (paper Fig. 7), for the memory ablation where it matters most."""
    o = held_out["occlusion_videos"]
    return OcclusionVideos(o["num_videos"], o["num_frames"], o["size"], seed=o["seed"])


def course_losses(path: str | Path = COURSE_LOG) -> dict[str, list[float]]:
    """The shipped run's training loss per step, per stage: ``{stage: [...]}`` in the order
    of ``STAGES``."""
    out: dict[str, list[float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["stage"], []).append(float(row["loss"]))
    return out


def read_course_log(path: str | Path = COURSE_LOG) -> list[dict]:
    """Rows of the shipped training log (numbers as floats, ``stage`` as text)."""
    with open(path, newline="") as f:
        return [{k: (v if k == "stage" else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]


# --- making the shipped files --------------------------------------------------------------------

def export_fp16(ema_path: str | Path, out: str | Path) -> str:
    """Write the EMA weights of a run as a float16 state dict (integer buffers unchanged);
    returns the file's sha256. Refuses a file over 20 MB."""
    state = load_state_dict_file(ema_path)
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    out = Path(out)
    with paths.atomic_write(out, "wb") as handle:
        torch.save(half, handle)
        size = handle.tell()
        if size > MAX_BYTES:  # raised inside the block: the file is not kept
            raise ValueError(f"{out.name} would be {size / 2**20:.1f} MB, over the 20 MB limit")
    return sha256(out)


def _merge_logs(run_dirs: dict[str, Path], out: Path, eval_out: Path) -> None:
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(LOG_COLUMNS)
        for stage, run_dir in run_dirs.items():
            for row in read_log(run_dir / "log.csv"):
                writer.writerow([stage, int(row["step"]), *(f"{float(row[c]):.5g}" for c in LOG_COLUMNS[2:])])
    with open(eval_out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("stage", "step", "J&F", "J", "F"))
        for stage, run_dir in run_dirs.items():
            path = run_dir / "eval.csv"
            if path.is_file():
                for row in read_log(path):
                    writer.writerow([stage, int(row["step"]), *(f"{float(row[c]):.4f}" for c in ("J&F", "J", "F"))])


def measure(model: AOT, videos, entropy_videos: int = 4) -> dict:
    """Everything the card reports about ``model`` on ``videos`` (see :mod:`aot_edu.evaluation.analysis`)."""
    predictors = {"model": analysis.model_predictor(model),
                  "copy_first_mask": analysis.copy_first_mask,
                  "token_grid_oracle": analysis.token_grid_oracle}
    out: dict = {}
    for name, predict in predictors.items():
        scores = analysis.score_videos(videos, predict, progress=True)
        out[name] = {**analysis.global_scores(scores),
                     "per_video_jf": [round(x, 6) for x in analysis.video_scores(scores)]}
    out["per_frame_j"] = {
        "as_tested": [round(float(x), 4) for x in analysis.per_frame_j(videos, predictors["model"])],
        "teacher_forced": [round(float(x), 4) for x in analysis.per_frame_j(
            videos, analysis.teacher_forced_predictor(model))],
        "copy_first_mask": [round(float(x), 4) for x in analysis.per_frame_j(
            videos, analysis.copy_first_mask)],
    }
    out["memory_ablation"] = analysis.memory_ablation(model, videos)
    # the same on videos built for it: an object hidden behind an occluder, then back (Fig. 7)
    out["occlusion_videos"] = {"num_videos": OCCLUSION_VIDEOS, "num_frames": videos.num_frames,
                               "size": videos.size[0], "seed": videos.seed}
    out["memory_ablation_occlusion"] = analysis.memory_ablation(model, occlusion_videos(out))
    out["identity_bank"] = analysis.identity_bank_stats(model)
    out["attention_entropy"] = analysis.attention_entropy_per_layer(model, videos, entropy_videos)
    return out


def ship(run_dirs: dict[str, str | Path] | None = None, root: str | Path | None = None,
         machine: str = "", command: str = REPRODUCE, assets: str | Path = ASSETS,
         notes: Sequence[str] = ()) -> dict:
    """Export the last stage's EMA weights to ``assets`` (fp16), copy every stage's logs,
    measure the shipped file on the held-out videos and write the card. Returns it.

    ``root``: the checkout whose ``configs/`` and run folders are read (default: the working
    directory); ``run_dirs``: ``{stage: folder}`` instead of the configs' ``run.output_dir``;
    ``notes``: lines the card should carry (how the run deviated from ``command``, if it did).
    """
    root = Path(root) if root else Path.cwd()
    assets = Path(assets)
    weights, card_path = assets / COURSE_WEIGHTS.name, assets / COURSE_CARD.name
    dirs = {stage: Path(d) for stage, d in (run_dirs or {}).items()}
    configs = {}
    for stage, config_path in STAGES.items():
        config = load_config(root / config_path, check_paths=False)
        dirs.setdefault(stage, root / config.run.output_dir)
        summary = dirs[stage] / "summary.json"
        if not summary.is_file():
            raise FileNotFoundError(f"stage {stage!r} has not finished: {summary} is missing; "
                                    f"run `{command}` first")
        configs[stage] = (config_path, json.loads((dirs[stage] / "config.json").read_text()),
                          json.loads(summary.read_text()))
    last = list(STAGES)[-1]
    digest = export_fp16(dirs[last] / "model_ema.pt", weights)
    _merge_logs(dirs, assets / COURSE_LOG.name, assets / COURSE_EVAL_LOG.name)
    model = load_course_model(weights=weights)  # the shipped fp16 file, as users get it
    final_config = configs[last][1]
    e = final_config["eval"]
    videos_spec = {"num_videos": e["num_videos"], "num_frames": e["num_frames"],
                   "size": e["size"] or final_config["data"]["size"],
                   "num_objects": e["num_objects"], "num_distractors": e["num_distractors"],
                   "seed": e["seed"], "motion": e["motion"], "noise": e["noise"], "scale": e["scale"]}
    card = {"held_out": {"videos": videos_spec}}
    card["held_out"].update(measure(model, held_out_videos(card)))
    stages = {}
    for stage, (path, config, summary) in configs.items():
        stages[stage] = {"config_file": path, "config": config, "steps": summary["step"],
                         "train_time_min": round(summary["train_time"] / 60, 1),
                         "threads": summary.get("threads"), "device": summary.get("device"),
                         "final_eval": summary.get("metrics")}
    card = {
        "name": "aot-edu course model",
        "variant": COURSE_VARIANT,
        "title": get_config(COURSE_VARIANT).title,
        "size": final_config["data"]["size"],
        "seed": final_config["seed"],
        "weights": weights.name,
        "sha256": digest,
        "bytes": weights.stat().st_size,
        "dtype": "float16 (EMA weights)",
        "command": command,
        "machine": machine or f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
        "torch": torch.__version__,
        "train_time_min": round(sum(s["train_time_min"] for s in stages.values()), 1),
        "steps": {k: s["steps"] for k, s in stages.items()},
        "stages": stages,
        "notes": list(notes),
        **card,
    }
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    return card


def summary_lines(card: dict) -> list[str]:
    """A few lines saying what the card measured."""
    h = card["held_out"]
    v = h["videos"]
    frames = h["per_frame_j"]["as_tested"]
    ab = h["memory_ablation"]
    occ = h.get("memory_ablation_occlusion")
    bank = h["identity_bank"]
    return [
        f"{card['title']} course model ({card['weights']}, sha256 {card['sha256'][:12]}...)",
        f"held-out: {v['num_videos']} videos of {v['num_frames']} frames, {v['size']}x{v['size']}, "
        f"{v['num_objects'][0]}-{v['num_objects'][1]} objects, "
        f"{v['num_distractors'][0]}-{v['num_distractors'][1]} look-alikes",
        f"J&F {h['model']['J&F']:.3f}  (copy first mask {h['copy_first_mask']['J&F']:.3f}, "
        f"token-grid oracle {h['token_grid_oracle']['J&F']:.3f})",
        f"J at frame 1 {frames[0]:.3f}, last frame {frames[-1]:.3f}",
        f"long-term attention removed {ab['long-term attention removed']:.3f}, "
        f"short-term removed {ab['short-term attention removed']:.3f}",
        *([f"occlusion videos: J&F {occ['nothing removed']:.3f}, long-term attention removed "
           f"{occ['long-term attention removed']:.3f}, short-term removed "
           f"{occ['short-term attention removed']:.3f}"] if occ else []),
        f"identity bank: off-diagonal cosine mean {bank['mean']:.3f} (equidistant "
        f"{bank['equidistant']:.3f}), max {bank['max']:.3f}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aot_edu.course.card",
                                     description="Ship or describe the course model.")
    parser.add_argument("--ship", action="store_true",
                        help="export the finished runs of " + ", ".join(STAGES.values())
                             + " into aot_edu/assets and write the card")
    parser.add_argument("--machine", default="", help="what trained it (for the card)")
    args = parser.parse_args(argv)
    if args.ship:
        card = ship(machine=args.machine)
    else:
        card = read_card()
    print("\n".join(summary_lines(card)))
    return 0


__all__ = ["COURSE_CARD", "COURSE_LOG", "STAGES", "STAGE_LABELS", "COURSE_VARIANT", "COURSE_WEIGHTS", "course_losses",
           "export_fp16", "held_out_videos", "load_course_model", "measure", "read_card",
           "read_course_log", "ship", "summary_lines"]
