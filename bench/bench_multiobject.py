"""Multi-object efficiency: identification against post-ensemble (paper Fig. 1c, Eq. 1).

The same AOT-T network segments 1..10 objects at 480p in three ways
(:mod:`aot_edu.inference.post_ensemble`):

- ``identification``: AOT - all objects in one identity embedding, one pass per frame;
- ``post_ensemble_parallel``: Eq. 1 - each object its own 1-object problem (LSTT, decoder,
  memories), the ``N`` problems run as one batch ("separately yet in parallel", as CFBI-style
  methods do), probabilities merged by soft aggregation;
- ``post_ensemble_sequential``: the same, one object after another.

Both post-ensembles encode the frame once and share it (the encoder does not see the masks);
Eq. 1 taken literally would add ``N - 1`` encoder passes per frame.

Time: propagate + memory update per frame (the official evaluator's timed span), the strategies
taking turns frame by frame, medians over the measured frames. Memory: on CPU the peak resident
set size of a fresh process segmenting the clip, above what the process held before it started
(model and frames loaded); on GPU the peak allocated during a frame above what was allocated
before it. Both also report the memories held between frames (keys and values of every engine).

Writes ``figures/multi_object_efficiency.png`` (full runs only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aot_edu import build_model  # noqa: E402
from aot_edu.inference.post_ensemble import STRATEGIES, efficiency_curve  # noqa: E402

FIGURE = ROOT / "figures" / "multi_object_efficiency.png"
LABELS = {
    "identification": "identification (AOT)",
    "post_ensemble_parallel": "post-ensemble, objects in parallel",
    "post_ensemble_sequential": "post-ensemble, objects in sequence",
}


def make_clip(frames: int, size: tuple[int, int], objects: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """uint8 frames ``[T, H, W, 3]`` and first-frame labels with objects ``1..objects``.

    A synthetic video (textured shapes); the cost of a frame does not depend on what it shows.
    If a shape ended up hidden, the labels are re-made as vertical strips of the foreground.
    """
    from aot_edu.data import render_video

    video, labels = render_video(np.random.default_rng([2021, 1]), frames, size, objects, 0)
    first = labels[0].astype(np.int64)
    if first.max() < objects:
        ys, xs = np.nonzero(labels[0] > 0)
        cuts = np.quantile(xs, np.linspace(0, 1, objects + 1)[1:-1])
        column = 1 + np.searchsorted(cuts, np.arange(size[1]), side="left")
        first = np.where(labels[0] > 0, column[None, :], 0)
    return video, first


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_rss() -> int:
    """Reset the peak resident set size to the current one (Linux ``clear_refs`` 5) and return
    the current RSS in KiB; elsewhere return the peak so far (then only growth above it shows)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_kib("VmRSS")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_kib() -> int:
    try:
        return _status_kib("VmHWM")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def peak_rss_mb(strategy: str, objects: int, frames: int, size: tuple[int, int]) -> float:
    """Peak RSS growth (MiB) of a fresh process running ``strategy`` with ``objects`` objects."""
    code = f"""
import json, resource, sys, torch
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'bench')!r})
torch.set_num_threads({torch.get_num_threads()})
import bench_multiobject as b
torch.manual_seed(0)
model = b.build_model('aott')
video, first = b.make_clip({frames}, {tuple(size)!r})
base = b.reset_peak_rss()
b.efficiency_curve(model, video, first, [{objects}], [{strategy!r}], warmup=0)
print(json.dumps((b.peak_rss_kib() - base) / 1024))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def load_note(before: float, after: float, threads: int, device: torch.device) -> str:
    """Say how busy the machine was: timings taken beside other work are not to be quoted."""
    cores = os.cpu_count() or 1
    busy = max(before, after)
    # the run's own threads count in the load average: more than the cores (plus a margin)
    # means other work competed for them
    if device.type == "cpu" and busy > max(cores, threads) + 0.5:
        return (f"**The machine was busy with other work during this run (1-minute load average "
                f"{before:.1f} at the start, {after:.1f} at the end, {cores} cores): absolute "
                "times are noisy and need a quiet machine to be quoted; compare within a row.**")
    return (f"1-minute load average {before:.1f} at the start, {after:.1f} at the end "
            f"({cores} cores).")


def plot(rows, memory: dict, device: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(dict.fromkeys(r.strategy for r in rows))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 3.8))
    for strategy in strategies:
        mine = [r for r in rows if r.strategy == strategy]
        counts = [r.objects for r in mine]
        ax_t.plot(counts, [r.ms_per_frame / 1000 for r in mine], "o-", label=LABELS[strategy])
        ax_m.plot(counts, [memory[strategy, n] for n in counts], "o-", label=LABELS[strategy])
    ax_t.set(xlabel="objects", ylabel="seconds per frame", title=f"time per frame ({device})")
    ax_m.set(xlabel="objects", ylabel="MiB", title="peak memory while segmenting a frame")
    for ax in (ax_t, ax_m):
        ax.set_xticks(sorted({r.objects for r in rows}))
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    ax_t.legend(fontsize=8)
    fig.suptitle("AOT-T at 480p: identification vs post-ensemble (paper Fig. 1c)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(quick: bool) -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    load_before = os.getloadavg()[0]
    size = (129, 225) if quick else (480, 854)
    counts = [1, 2, 4] if quick else list(range(1, 11))
    strategies = list(STRATEGIES)
    warmup, measured = 1, (2 if quick else 3)
    video, first = make_clip(1 + warmup + measured, size)
    torch.manual_seed(0)
    model = build_model("aott", device=device)
    rows = efficiency_curve(model, video, first, counts, strategies, warmup=warmup, progress=True)
    by = {(r.strategy, r.objects): r for r in rows}
    if device.type == "cpu":
        memory = {(s, n): peak_rss_mb(s, n, 2, size) for n in counts for s in strategies}
        memory_note = ("peak resident memory of a fresh process while it segments a frame "
                       "(reference frame + 1 frame), above its resident memory just before "
                       "(model and frames loaded)")
    else:
        memory = {(s, n): by[s, n].peak_mb + by[s, n].memory_mb for n in counts for s in strategies}
        memory_note = ("peak allocated during a frame above the allocation before it, plus the "
                       "memories held")
    where = (f"GPU {torch.cuda.get_device_name(0)}" if device.type == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    short = {"identification": "AOT", "post_ensemble_parallel": "PE parallel",
             "post_ensemble_sequential": "PE sequential"}
    lines = [
        "## Multi-object efficiency (`bench_multiobject.py`, paper Fig. 1c)",
        "",
        f"AOT-T (random weights: the cost does not depend on them), {size[0]}x{size[1]} frames, "
        f"{where}. AOT = identification (all objects in one pass); PE = post-ensemble (Eq. 1: "
        "each object a 1-object problem, merged by soft aggregation), its objects run as one "
        "batch (parallel) or one after another (sequential); both share the frame's encoding. "
        f"Time: propagate + memory update per frame, median over {measured} frames after "
        f"{warmup} warm-up frame, the strategies taking turns on every frame. Memory: "
        f"{memory_note}. Held: the memories (keys and values) kept between frames.",
        "",
        load_note(load_before, os.getloadavg()[0], torch.get_num_threads(), device),
        "",
        "| objects | " + " | ".join(f"{short[s]} s/frame" for s in strategies)
        + " | " + " | ".join(f"{short[s]} MiB" for s in strategies)
        + " | held MiB (AOT / PE) |",
        "|---:|" + "---:|" * (2 * len(strategies) + 1),
    ]
    for n in counts:
        times = [f"{by[s, n].ms_per_frame / 1000:.2f}" for s in strategies]
        mems = [f"{memory[s, n]:.0f}" for s in strategies]
        held = f"{by['identification', n].memory_mb:.1f} / {by['post_ensemble_sequential', n].memory_mb:.1f}"
        lines.append(f"| {n} | " + " | ".join(times + mems) + f" | {held} |")

    def ratio(strategy: str, key) -> float:
        return key(by[strategy, counts[-1]]) / key(by[strategy, counts[0]])

    def ms(r):
        return r.ms_per_frame

    ident_times = [by["identification", n].ms_per_frame / 1000 for n in counts]
    lines += [
        "",
        f"From {counts[0]} to {counts[-1]} objects the time per frame changes by "
        + ", ".join(f"{ratio(s, ms):.1f}x ({short[s]})" for s in strategies)
        + f"; AOT's times range over {min(ident_times):.2f}-{max(ident_times):.2f} s. Peak memory "
        + ", ".join(f"{memory[s, counts[-1]] / max(memory[s, counts[0]], 1e-9):.1f}x ({short[s]})"
                    for s in strategies) + ".",
    ]
    if not quick:
        plot(rows, memory, where, FIGURE)
        lines += ["", f"Figure: `{FIGURE.relative_to(ROOT)}`."]
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(2)
    print(run(quick="--quick" in sys.argv))
