"""Reading and writing frames and masks in the layouts DAVIS and YouTube-VOS use.

Masks are label maps: ``int`` arrays ``[H, W]`` where 0 is background, 1..N are objects and 255
is DAVIS's "void" (ignored by the metrics). Two PNG conventions exist and both are read here:

- DAVIS 2017 / YouTube-VOS: palette ("P" mode) PNGs whose pixel *index* is the label;
- DAVIS 2016: 8-bit grayscale PNGs with values {0, 255}, one object (255 -> label 1).

Results are written as palette PNGs with the DAVIS palette, the layout the official toolkits read.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@lru_cache(maxsize=1)
def davis_palette() -> np.ndarray:
    """The DAVIS (= PASCAL VOC) colour map, ``uint8 [256, 3]``.

    Label ``i`` gets the colour whose bits interleave the bits of ``i`` (bit 0 -> red, 1 -> green,
    2 -> blue, from the most significant bit down), so 1 is dark red, 2 dark green, 3 olive, ...
    """
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in range(256):
        value, rgb = label, [0, 0, 0]
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((value >> channel) & 1) << shift
            value >>= 3
        palette[label] = rgb
    return palette


def read_mask(path: str | Path) -> np.ndarray:
    """Read a mask PNG as a label map ``uint8 [H, W]``.

    Palette PNGs give their indices; grayscale PNGs with values in {0, 255} (DAVIS 2016) give
    0/1; other grayscale PNGs give their values; RGB PNGs whose colours all belong to the DAVIS
    palette are mapped back to labels.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    with Image.open(path) as image:
        mode = image.mode
        if mode == "P":
            return np.array(image, dtype=np.uint8)
        if mode in ("1", "L", "I", "I;16"):
            labels = np.array(image.convert("L") if mode == "1" else image)
            if labels.dtype != np.uint8:
                if labels.max(initial=0) > 255 or labels.min(initial=0) < 0:
                    raise ValueError(f"{path}: grayscale mask values must lie in 0..255")
                labels = labels.astype(np.uint8)
            # Only 0 and 255 (DAVIS 2016): counting is much faster than np.isin, and the
            # metrics read thousands of these per evaluation.
            foreground = labels == 255
            if np.count_nonzero(labels) == np.count_nonzero(foreground):
                return foreground.view(np.uint8)
            return labels
        if mode in ("RGB", "RGBA"):
            return _rgb_to_labels(np.array(image.convert("RGB")), path)
    raise ValueError(
        f"{path}: unsupported PNG mode {mode!r}; save masks as palette PNGs (label = index) "
        "or 8-bit grayscale PNGs (label = value)"
    )


def _rgb_to_labels(rgb: np.ndarray, path: Path) -> np.ndarray:
    palette = davis_palette().astype(np.int64)
    codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    pixels = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    lookup = {int(code): label for label, code in reversed(list(enumerate(codes)))}
    unique = np.unique(pixels)
    unknown = [int(c) for c in unique if int(c) not in lookup]
    if unknown:
        colours = ", ".join(f"#{c:06x}" for c in unknown[:5])
        raise ValueError(
            f"{path}: RGB mask has colours outside the DAVIS palette ({colours}); save the mask "
            "as a palette or grayscale PNG whose pixel values are the object labels"
        )
    labels = np.zeros(pixels.shape, dtype=np.uint8)
    for code in unique:
        labels[pixels == code] = lookup[int(code)]
    return labels


def write_mask(path: str | Path, labels: np.ndarray) -> None:
    """Write a label map ``[H, W]`` (values 0..255) as a DAVIS-palette PNG."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a mask must be 2-D [H, W], got shape {tuple(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError("mask labels must lie in 0..255 to be stored as a palette PNG")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    image.save(path)


def list_frames(folder: str | Path) -> list[Path]:
    """The image files of a frame folder, sorted by name (DAVIS: 00000.jpg, 00001.jpg, ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder not found: {folder}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def read_frames(paths: Sequence[str | Path] | str | Path) -> np.ndarray:
    """Read RGB frames as ``uint8 [T, H, W, 3]`` from a folder or a list of files."""
    if isinstance(paths, (str, Path)):
        paths = list_frames(paths)
    if not paths:
        raise ValueError("no frames to read")
    frames = []
    for path in paths:
        with Image.open(path) as image:
            frames.append(np.array(image.convert("RGB"), dtype=np.uint8))
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"frames differ in size: {sorted(shapes)}")
    return np.stack(frames)
