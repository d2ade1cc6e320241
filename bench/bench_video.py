"""Your own video (issue 17): speed of the video path and its memory on a long video.

- Speed, AOT-T at 480x854 (the model runs at 481x849), 3 objects, on a synthetic clip: seconds
  per frame of ``aot_edu.video.segment_video`` reading a folder of JPEG frames and writing mask
  PNGs (the frames-folder path of ``aot-edu segment --frames``), reading an H.264 mp4 instead,
  and adding an overlay video (mp4, webm, gif); then what each step costs on its own (decode,
  read a JPEG, write a mask PNG, draw the overlay, encode it).
- Memory: a 2,000-frame synthetic mp4 at 240x426, segmented in a fresh process with the
  command's defaults (AOT-L: long-term memory bounded to ``LONG_VIDEO_MEMORY`` frames because
  the video is long; AOT-T: its memory never grows); resident set size (VmRSS) as the run goes
  and its peak (VmHWM). Flat = frames are decoded, segmented and written one at a time.

Weights are random (speed and memory do not depend on them). ``python bench/bench_video.py
rss VIDEO VARIANT`` is the child process of the memory measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aot_edu import build_model, viz  # noqa: E402
from aot_edu.data import VideoSource, VideoWriter, io  # noqa: E402
from aot_edu.data.synthetic import render_video  # noqa: E402
from aot_edu.video import LONG_VIDEO_MEMORY, plan_video, segment_video  # noqa: E402

QUIET = {"progress": False, "log": None}


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def moving_shapes(t: int, size: tuple[int, int], seed: int = 0):
    """Frame ``t`` of an endless synthetic video: a fixed textured background and three
    textured ellipses on smooth paths; uint8 ``[H, W, 3]`` and labels ``[H, W]``."""
    h, w = size
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 200, (h // 8 + 1, w // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)
    frame = background[:h, :w].astype(np.uint8)
    labels = np.zeros((h, w), np.uint8)
    ys, xs = np.mgrid[0:h, 0:w]
    for k, colour in enumerate([(220, 60, 60), (60, 200, 80), (70, 90, 230)], start=1):
        cy = h * (0.5 + 0.3 * np.sin(0.02 * t * k + k))
        cx = w * (0.5 + 0.35 * np.cos(0.015 * t * (k + 1) + 2 * k))
        inside = ((ys - cy) / (0.12 * h)) ** 2 + ((xs - cx) / (0.1 * w)) ** 2 <= 1
        stripes = ((xs + ys + 3 * t) // 6 % 2)[inside][:, None]
        frame[inside] = np.clip(np.array(colour) - 40 * stripes, 0, 255)
        labels[inside] = k
    return frame, labels


def write_long_video(path: Path, frames: int, size: tuple[int, int]) -> np.ndarray:
    """Encode ``frames`` frames of :func:`moving_shapes` one at a time; the first mask."""
    with VideoWriter(path, fps=25) as writer:
        for t in range(frames):
            frame, labels = moving_shapes(t, size)
            writer.write(frame)
            if t == 0:
                first = labels
    return first


def rss_child(video: str, variant: str) -> None:
    """Segment ``video`` in this (fresh) process; print RSS at checkpoints as JSON."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_model(variant)
    first = moving_shapes(0, VideoSource(video).size)[1]
    out = tempfile.mkdtemp()
    job = plan_video(video, first, out=out, overlay=Path(out) / "overlay.mp4")
    frames_of = job.source.frames
    marks: dict[int, float] = {}

    def counted():
        for i, frame in enumerate(frames_of(), start=1):
            yield frame
            if i == 1 or i % 250 == 0:
                marks[i] = _status_mb("VmRSS")

    job.source.frames = counted
    marks[0] = _status_mb("VmRSS")  # torch, the model and PyAV loaded, before the first frame
    start = time.perf_counter()
    result = job.run(model, progress=False, log=None)
    print(json.dumps({"marks": marks, "peak": _status_mb("VmHWM"), "frames": result.frames,
                      "seconds": time.perf_counter() - start,
                      "bound": result.max_long_term_frames}))


def _timed_run(source, first, model, **kwargs) -> float:
    start = time.perf_counter()
    result = segment_video(source, first, model, overwrite=True, **kwargs, **QUIET)
    return (time.perf_counter() - start) / result.frames


def _per_frame_ms(fn, items) -> float:
    start = time.perf_counter()
    for item in items:
        fn(item)
    return 1000 * (time.perf_counter() - start) / len(items)


def speed(quick: bool) -> list[str]:
    frames_n = 8 if quick else 40
    video, labels = render_video(np.random.default_rng(0), num_frames=frames_n, size=(480, 854),
                                 num_objects=3)
    torch.manual_seed(0)
    model = build_model("aott")
    rows, steps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = tmp / "frames"
        folder.mkdir()
        for t, frame in enumerate(video):
            Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)
        with VideoWriter(tmp / "clip.mp4", fps=25) as writer:  # H.264, crf 20
            for frame in video:
                writer.write(frame)
        first = labels[0]
        _timed_run(folder, first, model, out=tmp / "warm")  # warm-up
        base = _timed_run(folder, first, model, out=tmp / "m0")
        rows.append(f"| frames folder (JPEG) -> mask PNGs (`--frames`) | {base:.3f} | 1.00 |")
        for label, kwargs in [
            ("mp4 -> mask PNGs (`--video`)", {"out": tmp / "m1"}),
            ("mp4 -> mask PNGs + overlay .mp4", {"out": tmp / "m2", "overlay": tmp / "o.mp4"}),
            ("mp4 -> overlay .webm only", {"overlay": tmp / "o.webm"}),
            ("mp4 -> overlay .gif only", {"overlay": tmp / "o.gif"}),
        ]:
            s = _timed_run(tmp / "clip.mp4", first, model, **kwargs)
            rows.append(f"| {label} | {s:.3f} | {s / base:.2f} |")

        decoded = list(VideoSource(tmp / "clip.mp4"))
        masks = [labels[t] for t in range(frames_n)]
        paths = sorted(folder.iterdir())
        steps.append(f"| decode one mp4 frame (PyAV, to RGB) | {_decode_ms(tmp / 'clip.mp4'):.1f} |")
        steps.append(f"| read one JPEG frame | {_per_frame_ms(io.read_frame, paths):.1f} |")
        steps.append(f"| write one mask PNG | "
                     f"{_per_frame_ms(lambda m: io.write_mask(tmp / 'x.png', m), masks):.1f} |")
        pictures = []
        steps.append(f"| draw the overlay (blend, outline, legend) | "
                     f"{_per_frame_ms(lambda t: pictures.append(viz.draw_legend(viz.overlay(decoded[t], masks[t]), [1, 2, 3])), range(frames_n)):.1f} |")
        for suffix in (".mp4", ".webm", ".gif"):
            writer = VideoWriter(tmp / f"enc{suffix}", fps=25)
            ms = _per_frame_ms(writer.write, pictures)
            start = time.perf_counter()
            writer.close()  # the encoder's buffered frames count too
            ms += 1000 * (time.perf_counter() - start) / len(pictures)
            steps.append(f"| encode one overlay frame, {suffix} | {ms:.1f} |")
    return [
        "### Speed: AOT-T, 480x854, 3 objects",
        "",
        f"Synthetic clip of {frames_n} frames (`render_video`); seconds per frame of the whole "
        "`segment_video` call (decode or read, segment, write), after a warm-up run.",
        "",
        "| path | s / frame | vs frames folder |",
        "|---|---|---|",
        *rows,
        "",
        "What the steps around the model cost alone (ms per frame):",
        "",
        "| step | ms / frame |",
        "|---|---|",
        *steps,
    ]


def _decode_ms(path: Path) -> float:
    start = time.perf_counter()
    n = sum(1 for _ in VideoSource(path))
    return 1000 * (time.perf_counter() - start) / n


def memory(quick: bool) -> list[str]:
    frames_n = 200 if quick else 2000
    size = (240, 426)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "long.mp4"
        write_long_video(video, frames_n, size)
        for variant in ("aott", "aotl"):
            child = subprocess.run([sys.executable, __file__, "rss", str(video), variant],
                                   capture_output=True, text=True, check=True,
                                   env={**os.environ, "OMP_NUM_THREADS": "2"})
            data = json.loads(child.stdout.strip().splitlines()[-1])
            marks = data["marks"]
            shown = ", ".join(f"{int(k)}: {v:.0f}" for k, v in marks.items() if int(k))
            after = [v for k, v in marks.items() if int(k) >= 250] or list(marks.values())
            bound = data["bound"] or "none"
            rows.append(f"| {variant} | {bound} | {marks['0']:.0f} | {shown} | "
                        f"{max(after) - min(after):.0f} | {data['peak']:.0f} | "
                        f"{data['seconds'] / data['frames']:.3f} |")
    return [
        f"### Memory: a {frames_n:,}-frame video, 240x426",
        "",
        f"Synthetic mp4 ({frames_n:,} frames, 3 moving textured objects), segmented in a fresh "
        "process as `aot-edu segment --video ... --out ... --overlay ...` does by default "
        f"(AOT-L's long-term memory bounded to {LONG_VIDEO_MEMORY} frames because the video is "
        "long; AOT-T adds no frames to it). Resident set (MB) before the first frame (torch, "
        "the model and PyAV loaded), after the given number of frames, its spread from frame "
        "250 on, and the process's peak.",
        "",
        "| variant | long-term bound | RSS MB before | RSS MB at frame | spread from 250 MB | "
        "peak MB | s / frame |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]


def run(quick: bool = False) -> str:
    return "\n".join(["## Your own video (`bench_video.py`)", "",
                      "CPU, 2 threads; weights random (speed and memory do not depend on them).",
                      "", *speed(quick), "", *memory(quick)])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "rss":
        rss_child(sys.argv[2], sys.argv[3])
    else:
        print(run(quick="--quick" in sys.argv))
