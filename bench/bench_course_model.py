"""The shipped course model (aot_edu/assets/course_model.pt), measured again from the file.

The training run itself is made by ``make train-course-model`` (hours on a CPU) and described by
its card (``aot_edu/assets/course_model.json``: configurations, steps, time, machine). This
benchmark loads the shipped fp16 file, measures it on the card's held-out videos with
:func:`aot_edu.course.model.measure` (J&F, copy-first-mask, token-grid oracle, J per frame,
memory ablation, identity bank, attention entropy per layer), checks that it agrees with the
card, and draws ``figures/course_model.png`` (training curves of every stage from the
committed log, J per frame).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aot_edu.course.model import (
    COURSE_EVAL_LOG,
    COURSE_LOG,
    STAGE_LABELS,
    held_out_videos,
    load_course_model,
    measure,
    read_card,
    read_course_log,
)

ROOT = Path(__file__).resolve().parents[1]
FIGURE = ROOT / "figures" / "course_model.png"


def _figure(card: dict, measured: dict, path: Path) -> None:
    rows = read_course_log(COURSE_LOG)
    evals = read_course_log(COURSE_EVAL_LOG)
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_eval, ax_frames = fig.subplots(1, 3)
    offset, window = 0, 50
    for (stage, label), colour in zip(STAGE_LABELS.items(), ("C0", "C1", "C2", "C3"), strict=True):
        losses = np.array([r["loss"] for r in rows if r["stage"] == stage])
        steps = np.arange(1, len(losses) + 1) + offset
        ax_loss.plot(steps, losses, lw=0.5, alpha=0.25, color=colour)
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax_loss.plot(steps[window - 1:], smooth, color=colour, label=label)
        stage_evals = [(offset + r["step"], r["J&F"]) for r in evals if r["stage"] == stage]
        if stage_evals:
            ax_eval.plot(*zip(*stage_evals, strict=True), "o-", color=colour, label=label)
        offset += len(losses)
    copy_first = measured["copy_first_mask"]["J&F"]
    ax_eval.axhline(copy_first, color="grey", ls=":", label="copy first mask")
    ax_eval.axhline(0.85, color="k", ls="--", lw=0.8, label="target 0.85")
    ax_loss.set(xlabel="step (all stages)", ylabel="loss", title="training loss")
    ax_eval.set(xlabel="step (all stages)", ylabel="held-out J&F", ylim=(0, 1),
                title="held-out J&F while training\n(stages 1-3 at 129x129, stage 4 at 193x193)")
    ax_loss.legend(fontsize=8)
    ax_eval.legend(fontsize=8)
    curves = measured["per_frame_j"]
    frames = np.arange(1, len(curves["as_tested"]) + 1)
    for name, style in (("as_tested", "o-"), ("teacher_forced", "s--"), ("copy_first_mask", "x:")):
        ax_frames.plot(frames, curves[name], style, ms=3, label=name.replace("_", " "))
    ax_frames.set(xlabel="frame", ylabel="mean J", ylim=(0, 1), title="J per frame, held-out videos")
    ax_frames.legend(fontsize=8)
    fig.suptitle(f"course model ({card['title']}): {sum(card['steps'].values()):,} steps, "
                 f"{card['train_time_min']:.0f} min on {card['machine']}", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def run(quick: bool = False) -> str:
    start = time.perf_counter()
    torch.set_num_threads(2)
    card = read_card()
    model = load_course_model()
    videos = held_out_videos(card, num_videos=2 if quick else None)
    measured = measure(model, videos, entropy_videos=1 if quick else 4)
    if not quick:
        _figure(card, measured, FIGURE)
    h, v = card["held_out"], card["held_out"]["videos"]
    agree = (abs(measured["model"]["J&F"] - h["model"]["J&F"]) < 2e-3) if not quick else None
    per_video = np.array(measured["model"]["per_video_jf"])
    copy_video = np.array(measured["copy_first_mask"]["per_video_jf"])
    curves = measured["per_frame_j"]
    ablation = measured["memory_ablation"]
    occ = measured["occlusion_videos"]
    bank = measured["identity_bank"]
    entropy = measured["attention_entropy"]
    stage_rows = [
        f"| {name} | `{s['config_file']}` | {s['steps']:,} | {s['train_time_min']:.1f} | "
        f"{s['threads']} | {s['device']} | "
        f"{'-' if not s['final_eval'] else format(s['final_eval']['J&F'], '.3f')} |"
        for name, s in card["stages"].items()
    ]
    lines = [
        "## The course model (`bench_course_model.py`)",
        "",
        f"The shipped course model `aot_edu/assets/{card['weights']}` ({card['title']}, fp16 EMA "
        f"weights, {card['bytes'] / 2**20:.1f} MB, sha256 `{card['sha256'][:16]}...`), trained with "
        f"the project's trainer by `{card['command']}` on {card['machine']} (torch {card['torch']}): "
        "static-image pre-training on rendered synthetic scenes, then video training from its "
        "weights (the paper's two stages; no ImageNet weights), the videos in three steps: "
        "5-frame clips at 129x129; 8-frame clips with predictions fed back from the first step; "
        "the same at 193x193 as AOT-L (AOT-B's network, a frame added to the long-term memory "
        "every 2 frames in training, every 5 at test) with the identity-separation hinge "
        "(`optim.identity_separation`, ours). The held-out J&F of stages 1-3 below was measured "
        "on the held-out scenes rendered at 129x129, stage 4's at 193x193.",
        *[f"Note: {note}" for note in card.get("notes", [])],
        "",
        "| stage | configuration | steps | training min | threads | device | held-out J&F at its end |",
        "|---|---|---:|---:|---:|---|---:|",
        *stage_rows,
        "",
        f"Measured again here from the shipped file on the card's held-out videos"
        f"{' (2 videos: --quick)' if quick else ''}: {len(videos)} synthetic videos of "
        f"{v['num_frames']} frames, {v['size']}x{v['size']}, {v['num_objects'][0]}-"
        f"{v['num_objects'][1]} objects and {v['num_distractors'][0]}-{v['num_distractors'][1]} "
        f"look-alike distractors, motion {v['motion']}, seed {v['seed']} (never trained on). "
        "DAVIS protocol (first and last frames not scored)"
        + ("" if quick else f"; the card's J&F {h['model']['J&F']:.4f} "
           f"{'agrees' if agree else 'DOES NOT agree'} with this run's") + ".",
        "",
        "| predictor | J&F | J | F |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {measured[key]['J&F']:.3f} | {measured[key]['J']:.3f} | {measured[key]['F']:.3f} |"
          for key, label in (("model", "course model"), ("copy_first_mask", "copy the first mask"),
                             ("token_grid_oracle", "oracle: ground truth on the 1/16 token grid"))],
        "",
        f"Per video: the model beats copying the first mask on {int((per_video > copy_video).sum())} "
        f"of {len(per_video)} videos (smallest margin {float((per_video - copy_video).min()):+.3f}; "
        f"worst video J&F {per_video.min():.3f}).",
        "",
        "Mean J at every frame (all objects of all videos; frame 19 included): as tested (each "
        "frame from the model's own previous prediction), teacher-forced (the true previous mask "
        "as short-term memory) and copying the first mask:",
        "",
        "| | " + " | ".join(str(t) for t in range(1, len(curves["as_tested"]) + 1)) + " |",
        "|---|" + "---:|" * len(curves["as_tested"]),
        *[f"| {name.replace('_', ' ')} | " + " | ".join(f"{x:.2f}" for x in curves[name]) + " |"
          for name in ("as_tested", "teacher_forced", "copy_first_mask")],
        "",
        "Which memory it uses: held-out J&F with the output of every LSTT block's long-term "
        "(Eq. 6) or short-term (Eq. 7) attention set to zero on every propagated frame:",
        "",
        "| " + " | ".join(ablation) + " |",
        "|" + "---:|" * len(ablation),
        "| " + " | ".join(f"{x:.3f}" for x in ablation.values()) + " |",
        "",
        f"The same on {occ['num_videos']} occlusion videos (`data.OcclusionVideos`, seed "
        f"{occ['seed']}, {occ['num_frames']} frames at {occ['size']}x{occ['size']}: object 1 "
        "passes behind an occluder and comes back, paper Fig. 7), where only the long-term "
        "memory can find it again:",
        "",
        "| " + " | ".join(measured["memory_ablation_occlusion"]) + " |",
        "|" + "---:|" * len(measured["memory_ablation_occlusion"]),
        "| " + " | ".join(f"{x:.3f}" for x in measured["memory_ablation_occlusion"].values()) + " |",
        "",
        f"Identity bank (Fig. 4): off-diagonal cosine of the {model.max_obj_num} identities mean "
        f"{bank['mean']:+.3f} (equidistant: {bank['equidistant']:+.3f}), max {bank['max']:+.3f}, "
        f"min {bank['min']:+.3f}.",
        "",
        f"Attention entropy per LSTT block (nats, mean over the propagated frames of "
        f"{1 if quick else 4} held-out videos; lower = sharper; Fig. 6-7):",
        "",
        "| attention | " + " | ".join(f"block {i + 1}" for i in range(len(entropy["long_term"]))) + " | uniform |",
        "|---|" + "---:|" * (len(entropy["long_term"]) + 1),
        "| long-term | " + " | ".join(f"{x:.2f}" for x in entropy["long_term"])
        + f" | {entropy['long_term_uniform']:.2f} |",
        "| short-term | " + " | ".join(f"{x:.2f}" for x in entropy["short_term"])
        + f" | {entropy['short_term_uniform']:.2f} |",
        "",
        *([] if quick else ["![course model](../figures/course_model.png)", ""]),
        f"({time.perf_counter() - start:.0f} s on this machine.)",
    ]
    return "\n".join(lines)
