"""Speed of the DAVIS J&F evaluation: ``aot_edu.evaluation.metrics.score_results_folder`` against the literal way.

Data: the DAVIS 2016 validation annotations in ``../shared`` (20 sequences, 1336 evaluated
frames at 854x480) with first-frame-copy results (frame 0's mask for every frame) written as
palette PNGs to a temporary folder. The literal way is the official toolkit's algorithm on
whole frames (``tests/davis_oracle.py``: boundary maps of the whole frame, dilation of the
whole frame by every offset of the disk, in numpy) with the same PNG reading. Both must give
the same numbers; the section says so or fails.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import davis_oracle as oracle  # noqa: E402

from aot_edu.data import read_mask, write_mask  # noqa: E402
from aot_edu.evaluation import metrics  # noqa: E402
from aot_edu.paths import find_shared  # noqa: E402

QUICK_SEQUENCES = ["blackswan", "car-shadow", "dog"]


def median_time(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall-clock and CPU seconds (all threads of this process) of ``repeats`` calls."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def scheduling_note() -> str:
    """This process's CPU priority, to read the timings of a shared machine by."""
    note = f"process nice {os.nice(0)}"
    try:  # Linux autogroups: the nice value of this session's group weighs against other sessions
        note += ", autogroup nice " + Path("/proc/self/autogroup").read_text().split()[-1]
    except (OSError, IndexError):
        pass
    return note


def literal_pass(gt_root: Path, results: Path, names: list[str]) -> dict[str, float]:
    """The toolkit's evaluation, literally: whole-frame dilation, then its averaging."""
    j_stats, f_stats = [], []
    for name in names:
        gt_files = sorted((gt_root / name).glob("*.png"))
        # The first frame gives the objects; the last frame is not scored (nor read).
        gts = [read_mask(gt_files[0])] + [read_mask(p) for p in gt_files[1:-1]] + [None]
        preds = [None] + [read_mask(results / name / p.name) for p in gt_files[1:-1]] + [None]
        j, f = oracle.sequence_scores(gts, preds)
        j_stats += [oracle.db_statistics(row) for row in j]
        f_stats += [oracle.db_statistics(row) for row in f]
    j_mean, f_mean = np.mean(j_stats, axis=0), np.mean(f_stats, axis=0)
    return {"J&F-Mean": (j_mean[0] + f_mean[0]) / 2, "J-Mean": j_mean[0], "F-Mean": f_mean[0]}


def run(quick: bool) -> str:
    shared = find_shared(ROOT)
    gt_root = None if shared is None else shared / "datasets" / "DAVIS2016" / "Annotations" / "480p"
    title = "## metrics: DAVIS J&F evaluation (`aot_edu.evaluation.metrics.score_results_folder`)\n"
    if gt_root is None or not gt_root.is_dir():
        return title + "\nSkipped: needs `../shared/datasets/DAVIS2016` (absent here).\n"
    names = sorted(p.name for p in gt_root.iterdir() if p.is_dir())
    if quick:
        names = [name for name in names if name in QUICK_SEQUENCES]
    repeats, literal_repeats = (1, 1) if quick else (5, 3)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp)
        first_files, gt_files, result_files = [], [], []
        for name in names:
            files = sorted((gt_root / name).glob("*.png"))
            first = read_mask(files[0])
            first_files.append(files[0])
            for path in files[1:-1]:  # the last frame is not scored
                write_mask(results / name / path.name, first)
                gt_files.append(path)
                result_files.append(results / name / path.name)
        n_frames = len(gt_files)

        def ours(threads: int):
            return metrics.score_results_folder(gt_root, results, names, read_threads=threads)

        all_files = first_files + gt_files + result_files
        pairs = [(read_mask(g), read_mask(r)) for g, r in zip(gt_files, result_files, strict=True)]
        timed = {
            "ours": median_time(lambda: ours(2), repeats),
            "single": median_time(lambda: ours(0), repeats),
            "read": median_time(lambda: [read_mask(p) for p in all_files], repeats),
            "score": median_time(
                lambda: [metrics.frame_scores(g, p, 1) for g, p in pairs], repeats
            ),
            "literal": median_time(lambda: literal_pass(gt_root, results, names), literal_repeats),
        }
    load_after = os.getloadavg()[0]

    evaluation, literal = timed["ours"][2], timed["literal"][2]
    diff = max(abs(evaluation[key] - literal[key]) for key in literal)
    if diff > 1e-9 or timed["single"][2].global_metrics != evaluation.global_metrics:
        raise AssertionError(f"fast and literal J&F differ by {diff}")
    rows = [
        ("ours", "`score_results_folder` (default: PNGs decoded in 2 threads while it scores)", repeats),
        ("single", "`score_results_folder(read_threads=0)`: all in one thread", repeats),
        ("read", f"... of which reading: `read_mask` of the {len(all_files)} PNGs", repeats),
        ("score", f"... of which scoring: `frame_scores` of the {n_frames} frames", repeats),
        (
            "literal",
            "literal: whole-frame dilation (numpy), same reading, one thread",
            literal_repeats,
        ),
    ]
    ratio = timed["literal"][0] / timed["ours"][0]
    lines = [
        title,
        f"DAVIS 2016 val, {len(names)} sequences, {n_frames} evaluated frames at 854x480, "
        "first-frame-copy results written as palette PNGs. "
        + ("**Quick mode (3 sequences, 1 repeat): not numbers to quote.** " if quick else "")
        + f"Both ways give J&F {100 * evaluation['J&F-Mean']:.2f} "
        f"(J {100 * evaluation['J-Mean']:.2f}, F {100 * evaluation['F-Mean']:.2f}); "
        f"largest difference {diff:.1e}.\n",
        "| pass | wall s (median) | CPU s (median) | repeats |",
        "|---|---:|---:|---:|",
        *[f"| {what} | {timed[key][0]:.2f} | {timed[key][1]:.2f} | {n} |" for key, what, n in rows],
        "",
        f"Literal / `score_results_folder`: **{ratio:.1f}x** wall clock "
        f"({timed['literal'][0] / timed['single'][0]:.1f}x with one thread). CPU s counts all "
        "threads of the process. Load average (1 min) "
        f"{load_before:.1f} before, {load_after:.1f} after, on {os.cpu_count()} cores "
        f"({scheduling_note()}): other jobs share this machine, so wall times vary between runs.",
    ]
    return "\n".join(lines) + "\n"
