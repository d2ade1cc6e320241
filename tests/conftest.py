"""Shared fixtures. Reference material in ``../shared`` is optional: tests that need it skip."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aot_edu import build_model
from aot_edu.inference.attention_maps import record_attention
from aot_edu.paths import find_shared

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, torch.get_num_threads()))


def require_shared(*parts: str) -> Path:
    """Path inside ``../shared`` (or ``$AOT_EDU_SHARED``), skipping the test when it is absent."""
    shared = find_shared(ROOT)
    if shared is None:
        pytest.skip(
            "reference folder ../shared is absent (a user's clone has none); set AOT_EDU_SHARED "
            "to a folder with golden/, reference/ and datasets/ to run this test"
        )
    path = shared.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent from the reference folder")
    return path


@pytest.fixture
def shared_dir() -> Path:
    return require_shared()


@pytest.fixture(scope="module")
def random_aott() -> torch.nn.Module:
    """A randomly initialised AOT-T (seed 0), one per test module."""
    torch.manual_seed(0)
    return build_model("aott")


def random_frames(t: int = 4, h: int = 65, w: int = 97, seed: int = 0) -> np.ndarray:
    """uint8 noise frames ``[T, H, W, 3]``: enough to exercise shapes and code paths."""
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def official_layout(name: str) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """``({key: shape}, footer numbers)`` of ``../shared/reference/official_state_dicts/<name>.tsv``."""
    path = require_shared("reference", "official_state_dicts", f"{name}.tsv")
    layout, footer = {}, {}
    for line in path.read_text().splitlines():
        if line.startswith("# ") and "\t" in line and not line.startswith("# key"):
            label, value = line[2:].split("\t")
            footer[label] = int(value)
        elif line and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            layout[key] = tuple(int(s) for s in shape.split("x")) if shape else ()
    return layout, footer


def load_golden(name: str) -> dict:
    return torch.load(require_shared("golden", f"{name}.pt"), weights_only=True)


def moving_squares(t: int = 12, h: int = 64, w: int = 96, appear: int | None = None):
    """A synthetic video that codecs keep recognisable: a grey gradient with a red square moving
    right (label 1), a blue one moving down (label 2) and, from frame ``appear`` on, a green one
    (label 3). Returns uint8 ``frames [T, H, W, 3]`` and the truth ``labels [T, H, W]``."""
    ys, xs = np.mgrid[0:h, 0:w]
    background = (60 + 80 * xs / w + 40 * ys / h).astype(np.uint8)
    frames = np.repeat(background[None, :, :, None], 3, axis=3).repeat(t, axis=0)
    labels = np.zeros((t, h, w), np.uint8)
    side = max(8, h // 4)
    for i in range(t):
        x = 4 + i * (w - side - 8) // max(t - 1, 1)
        y = 4 + i * (h - side - 8) // max(t - 1, 1)
        squares = [(1, (h // 8, x), (220, 40, 40)), (2, (y, w - side - 6), (40, 60, 220))]
        if appear is not None and i >= appear:
            squares.append((3, (h - side - 4, w // 3), (40, 200, 60)))
        for label, (top, left), colour in squares:
            frames[i, top:top + side, left:left + side] = colour
            labels[i, top:top + side, left:left + side] = label
    return frames, labels


def encode_video(path, frames, fps: float = 25, codec: str | None = None,
                 times: Sequence[float] | None = None, faststart: bool = False):
    """Encode ``frames [T, H, W, 3]`` with PyAV directly (not with the package's writer):
    H.264 for .mp4/.mov/.mkv, VP9 for .webm, GIF; ``times`` in seconds for a variable rate."""
    av = pytest.importorskip("av")
    from fractions import Fraction

    path = Path(path)
    codec = codec or {".webm": "libvpx-vp9", ".gif": "gif"}.get(path.suffix, "libx264")
    options = {"movflags": "+faststart"} if faststart else {}
    time_base = Fraction(1, 1000)
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "pal8" if codec == "gif" else "yuv420p"
        stream.codec_context.time_base = time_base
        if codec == "libx264":
            stream.options = {"crf": "10"}
        for i, image in enumerate(frames):
            if codec == "gif":  # an adaptive palette per frame (a fixed one bands the picture)
                quantized = Image.fromarray(image).quantize(256)
                palette = np.zeros((256, 4), np.uint8)
                colours = np.asarray(quantized.getpalette()[:768], np.uint8).reshape(-1, 3)
                palette[:, 0], palette[: len(colours), 1:] = 255, colours
                frame = av.VideoFrame.from_ndarray((np.asarray(quantized), palette), format="pal8")
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = round((times[i] if times is not None else i / fps) / time_base)
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --- a short clip and its attention maps (tests of inference/attention_maps.py and viz.py) ------

@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (4, 65, 97, 3), dtype=np.uint8)
    mask = np.zeros((65, 97), dtype=np.int64)
    mask[10:40, 10:40], mask[30:60, 50:90] = 1, 2
    return frames, mask


@pytest.fixture(scope="module")
def record(clip):
    torch.manual_seed(0)
    return record_attention(build_model("aots"), *clip, title="random AOT-S")
