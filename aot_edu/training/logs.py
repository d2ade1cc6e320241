"""A run's logs (``log.csv`` one row per step, ``eval.csv``) and its curves."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from aot_edu import paths

LOG_FIELDS = ("step", "loss", "loss_ref", "loss_frames", "iou", "lr", "encoder_lr", "top_k",
              "aux_weight", "feedback", "grad_norm", "time")
EVAL_FIELDS = ("step", "J&F", "J", "F", "videos", "objects")


def truncate_csv(path: Path, fields: Sequence[str], last_step: int) -> None:
    """Keep the header and the rows up to ``last_step`` (a killed run may have logged more)."""
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= last_step]
    _write_csv(path, fields, rows)


def _write_csv(path: Path, fields: Sequence[str], rows: Sequence[Mapping]) -> None:
    with paths.atomic_write(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)


def append_csv(path: Path, fields: Sequence[str], row: Mapping) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_log(path: str | Path) -> list[dict]:
    """Rows of a run's ``log.csv`` or ``eval.csv`` with numbers as floats."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(handle)]


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < 3 or window <= 1:
        return values
    window = min(window, len(values))
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_history(run_dir: str | Path, title: str = ""):
    """Training curves of a run: loss (raw and smoothed), training IoU, learning rate and the
    held-out J&F. Returns a matplotlib ``Figure`` (no pyplot state)."""
    run_dir = Path(run_dir)
    log, evals = read_log(run_dir / "log.csv"), read_log(run_dir / "eval.csv")
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    ax_loss, ax_iou, ax_lr = fig.subplots(1, 3)
    if log:
        steps = np.array([r["step"] for r in log])
        loss = np.array([r["loss"] for r in log])
        window = max(1, len(loss) // 25)
        ax_loss.plot(steps, loss, color="0.75", lw=0.8, label="loss (per step)")
        ax_loss.plot(steps, _smooth(loss, window), color="C0", label=f"mean of {window}")
        ax_iou.plot(steps, _smooth(np.array([r["iou"] for r in log]), window), color="C1",
                    label="training IoU (frames 1-4)")
        ax_lr.plot(steps, [r["lr"] for r in log], label="LSTT, decoder, ID bank")
        ax_lr.plot(steps, [r["encoder_lr"] for r in log], label="encoder")
    if evals:
        ax_iou.plot([r["step"] for r in evals], [r["J&F"] for r in evals], "o-", color="C2",
                    label="held-out J&F (EMA)")
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_iou.set(xlabel="step", ylim=(0, 1), title="segmentation quality")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="schedule")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in (ax_loss, ax_iou, ax_lr):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
