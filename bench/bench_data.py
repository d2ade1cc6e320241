"""Data pipeline speed: synthetic videos, training clips, evaluation frame reading (CPU)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from aot_edu.data import DAVIS, DAVISTrain, SyntheticVideos, write_davis_layout


def _median_ms(fn, repeats: int) -> float:
    fn(0)  # warm-up
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def run(quick: bool = False) -> str:
    repeats = 20 if quick else 200
    rows = []
    for objects, distractors in [((1, 3), (0, 2)), (3, 2), (10, 2)]:
        videos = SyntheticVideos(repeats + 1, 5, 129, objects, distractors, seed=0)
        ms = _median_ms(lambda i, v=videos: v[i], repeats)
        rows.append(
            f"| synthetic sample, 5 x 129x129, objects {objects}, distractors {distractors} | {ms:.1f} |"
        )
    big = SyntheticVideos(2, 5, (480, 854), (2, 4), (1, 2), seed=0)
    rows.append(
        f"| synthetic sample, 5 x 480x854, objects (2, 4) | {_median_ms(lambda i: big[i % 2], 3 if quick else 10):.1f} |"
    )

    with tempfile.TemporaryDirectory() as tmp:
        # A DAVIS-like folder at 480p built from synthetic videos (JPEG frames + palette PNGs).
        frames = 12 if quick else 40
        source = SyntheticVideos(2, frames, (480, 854), (2, 5), (1, 2), seed=1)
        root = write_davis_layout(source, Path(tmp) / "DAVIS", split="train")
        train = DAVISTrain(root, seed=0)
        ms = _median_ms(lambda i: train[i % len(train)], 5 if quick else 30)
        rows.append(
            f"| DAVISTrain clip (5 frames, 480p -> scale, 465 crop, merge 0.3) | {ms:.1f} |"
        )
        sequence = DAVIS(root, split="train")[0]
        ms = _median_ms(lambda i: sequence.frame(i % len(sequence)), 10 if quick else 40)
        rows.append(f"| evaluation: read one 854x480 JPEG frame | {ms:.1f} |")
        ms = _median_ms(lambda i: sequence.mask(i % len(sequence)), 10 if quick else 40)
        rows.append(f"| evaluation: read + re-index one 854x480 mask | {ms:.1f} |")
    return "\n".join(
        [
            "## Data pipeline (`bench_data.py`)",
            "",
            "Median milliseconds per item, one process (no DataLoader workers).",
            "",
            "| item | ms |",
            "|---|---|",
            *rows,
        ]
    )


if __name__ == "__main__":
    print(run(quick=True))
