"""Reading and writing frames and masks in the layouts DAVIS and YouTube-VOS use.

Masks are label maps: ``int`` arrays ``[H, W]`` where 0 is background, 1..N are objects and 255
is DAVIS's "void" (ignored by the metrics). Two PNG conventions exist and both are read here:

- DAVIS 2017 / YouTube-VOS: palette ("P" mode) PNGs whose pixel *index* is the label;
- DAVIS 2016: 8-bit grayscale PNGs with values {0, 255}, one object (255 -> label 1).

Results are written as palette PNGs with the DAVIS palette, the layout the official toolkits read.

Masks must be lossless label maps: JPEG masks and anti-aliased masks (smooth edges from
bilinear resizing or drawing tools) are refused, because every intermediate grey value would
become an object of its own. Frames and masks carry their EXIF orientation (phone photos).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from aot_edu import paths

# The label of pixels that belong to no object and count for nothing: DAVIS's "void" (object
# borders), the official trainer's ignore index, the padding of augmented training clips. The one
# definition; everything that reads or writes labels uses it.
VOID_LABEL = 255
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
LOSSY_MASK_SUFFIXES = (".jpg", ".jpeg")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".gif")
MASK_MODES = ("P", "1", "L", "I", "I;16")  # PNG modes that hold labels, not pictures
_EXIF_ORIENTATION = 0x0112
# Made by file browsers, not users: a folder holding only these counts as empty.
FILE_BROWSER_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def _upright(image: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (phones store photos sideways)."""
    if image.getexif().get(_EXIF_ORIENTATION, 1) in (0, 1):
        return image  # the common case: no copy
    return ImageOps.exif_transpose(image)


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
    palette are mapped back to labels. An EXIF orientation is applied.

    Raises ``ValueError`` for JPEG masks (lossy: the labels are no longer exact) and for masks
    that look anti-aliased (grayscale and RGB masks; see :func:`check_not_antialiased`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    if path.suffix.lower() in LOSSY_MASK_SUFFIXES:
        raise ValueError(
            f"{path}: a JPEG mask is lossy (compression blurs the object edges into new label "
            "values); save the mask as a PNG (palette, label = index, or 8-bit grayscale, "
            "label = value)"
        )
    try:
        image = Image.open(path)
    except UnidentifiedImageError as error:
        raise ValueError(f"{path}: not a readable image ({error}); give a PNG mask") from None
    except OSError as error:
        raise _damaged_mask(path, error) from None
    with image:
        try:
            image = _upright(image)
            labels = _decode_mask(image, path)
        except OSError as error:  # a truncated PNG: PIL's message does not name the file
            raise _damaged_mask(path, error) from None
        # Palette indices are chosen by annotation tools, never blended: only grayscale and
        # RGB masks are checked, which also keeps DAVIS / YouTube-VOS reading fast.
        return labels if image.mode == "P" else check_not_antialiased(labels, path)


def _damaged_mask(path: Path, error: OSError) -> ValueError:
    return ValueError(f"{path}: the mask could not be read ({error}); save it again as a PNG")


def _decode_mask(image: Image.Image, path: Path) -> np.ndarray:
    mode = image.mode
    if mode == "P":
        return np.array(image, dtype=np.uint8)
    if mode in ("1", "L", "I", "I;16"):
        labels = np.array(image.convert("L") if mode == "1" else image)
        if labels.dtype != np.uint8:
            if labels.min(initial=0) < 0:
                raise ValueError(f"{path}: the mask holds negative values; labels are 0 "
                                 "(background) and 1, 2, 3, ... (objects)")
            if labels.max(initial=0) > 255:
                raise ValueError(LABEL_LIMIT_ERROR.format(path=path, top=labels.max()))
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


# PNG masks (read and written) hold labels 0..255: a palette has 256 entries. The Python API
# (aot_edu.segment) takes any integer labels; README "Labels above 255" says the same.
LABEL_LIMIT_ERROR = (
    "{path}: the mask holds label values up to {top}, but PNG masks (read by `aot-edu segment` "
    "and written as palette PNGs) hold labels 0..255. Renumber the objects 1, 2, 3, ... and "
    "save an 8-bit PNG, or call the Python API, aot_edu.segment(frames, first_mask, model), "
    "which takes any integer labels"
)


# A label value whose pixels all touch another label (no interior pixel) is a thin edge band;
# anti-aliasing and JPEG ringing make dozens of them, real objects rarely more than one or two.
ANTIALIAS_MIN_EDGE_LABELS = 3


def check_not_antialiased(labels: np.ndarray, path: str | Path = "mask") -> np.ndarray:
    """Refuse a label map ``[H, W]`` (uint8) that looks anti-aliased or lossy; return it.

    Object labels (not 0, not 255 = void) whose pixels all lie on a boundary with another value
    are counted; at least ``ANTIALIAS_MIN_EDGE_LABELS`` of them, making up over a third of the
    labels, is the signature of smooth edges (a bilinear resize of a 0/255 mask has up to 254
    such values). Legitimate masks (DAVIS palettes with a dozen objects, labels 0/3/7/200)
    pass. Costs a few passes over the image (about 3 ms at 480p), only with 3+ object labels.
    """
    counts = np.bincount(labels.ravel(), minlength=256)
    counts[0] = counts[255] = 0
    present = np.flatnonzero(counts)
    if len(present) < ANTIALIAS_MIN_EDGE_LABELS:
        return labels
    # interior = equal to its 4 neighbours (edges of the image count as interior)
    padded = np.pad(labels, 1, mode="edge")
    interior = ((padded[1:-1, 1:-1] == padded[:-2, 1:-1]) & (padded[1:-1, 1:-1] == padded[2:, 1:-1])
                & (padded[1:-1, 1:-1] == padded[1:-1, :-2]) & (padded[1:-1, 1:-1] == padded[1:-1, 2:]))
    inside = np.bincount(labels[interior], minlength=256)
    edge_only = [int(v) for v in present if inside[v] == 0]
    if len(edge_only) >= ANTIALIAS_MIN_EDGE_LABELS and 3 * len(edge_only) > len(present):
        shown = ", ".join(map(str, edge_only[:6])) + (", ..." if len(edge_only) > 6 else "")
        raise ValueError(
            f"{path}: the mask looks anti-aliased or lossy: {len(edge_only)} of its "
            f"{len(present)} label values ({shown}) occur only along object edges, and each "
            "would become an object. Threshold it (e.g. np.where(mask >= 128, 1, 0) for a "
            "0/255 mask) or resize it with nearest-neighbour, and save it as a palette or "
            "grayscale PNG whose values are the object labels"
        )
    return labels


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
    """Write a label map ``[H, W]`` (values 0..255) as a DAVIS-palette PNG (atomically)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a mask must be 2-D [H, W], got shape {tuple(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError("mask labels must lie in 0..255 to be stored as a palette PNG")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(davis_palette().reshape(-1).tolist())
    # an interruption never leaves a truncated PNG under the name
    with paths.atomic_write(path, "wb") as handle:
        image.save(handle, format="PNG")


def check_writable_folder(folder: str | Path, option: str = "output folder") -> None:
    """Refuse, before any work, an output folder that cannot be created or written to.

    Nothing is created: the folder (or its nearest existing parent) must be a folder the user
    may write in. ``option`` names where the path came from in the message (e.g. ``--out``).
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {folder}: {existing} is a file, so no folder can be made "
                         "there; give a path whose parents are folders")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write in" if existing == folder else f"create {folder} in"
        raise ValueError(f"{option} {folder}: no permission to {what} {existing}; give a folder "
                         "you can write to (or change its permissions)")


def natural_key(name: str) -> tuple:
    """Sort key that compares digit runs as numbers: frame2 < frame10 (plain sorting puts
    frame10 before frame2)."""
    parts = re.split(r"(\d+)", name)
    return (tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name)


def list_frames(folder: str | Path, exclude: Sequence[str | Path] = ()) -> list[Path]:
    """The image files of a frame folder in natural order (frame2 before frame10).

    Hidden files (``.DS_Store``, macOS ``._00000.jpg``) and the files in ``exclude`` (e.g. the
    first-frame mask kept beside the frames) are skipped. Raises ``ValueError`` when two files
    share a name stem (``00001.jpg`` and ``00001.png`` would write the same mask) and when the
    folder holds label maps (palette / grayscale PNGs) beside picture frames, or only palette
    PNGs (a folder of masks); a folder of only grayscale PNGs is read as a grayscale video.
    """
    folder = Path(folder)
    if folder.is_file():
        if folder.suffix.lower() in VIDEO_SUFFIXES:
            raise ValueError(
                f"{folder} is a video file; segment reads a folder of frames. Extract them "
                f"first, e.g.: mkdir frames && ffmpeg -i {folder} -qscale:v 2 frames/%05d.jpg"
            )
        raise ValueError(f"{folder} is a file; give the folder that holds the frames")
    if not folder.is_dir():
        raise FileNotFoundError(f"frame folder not found: {folder}")
    skip = {Path(p).resolve() for p in exclude}
    paths = sorted(
        (p for p in folder.iterdir()
         if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")
         and p.resolve() not in skip),
        key=lambda p: natural_key(p.name),
    )
    by_stem: dict[str, list[str]] = {}
    for p in paths:
        by_stem.setdefault(p.stem, []).append(p.name)
    clashes = [names for names in by_stem.values() if len(names) > 1]
    if clashes:
        shown = "; ".join(" and ".join(names) for names in clashes[:3])
        raise ValueError(
            f"{folder}: frames with the same name stem ({shown}) would write the same mask "
            "file; remove or rename one of each"
        )
    _check_frame_modes(folder, paths)
    return paths


def _check_frame_modes(folder: Path, paths: Sequence[Path]) -> None:
    label_maps, palette = [], 0
    for p in paths:
        if p.suffix.lower() != ".png":
            continue
        try:
            with Image.open(p) as image:  # reads the header only
                mode = image.mode
        except (UnidentifiedImageError, OSError):
            continue  # read_frames names unreadable files
        if mode in MASK_MODES:
            label_maps.append(p.name)
            palette += mode == "P"
    if not label_maps:
        return
    shown = ", ".join(label_maps[:5]) + (", ..." if len(label_maps) > 5 else "")
    if len(label_maps) < len(paths):
        raise ValueError(
            f"{folder}: {shown} {'is a label map' if len(label_maps) == 1 else 'are label maps'} "
            "(palette or grayscale PNG), not a picture like the other frames; move masks out of "
            "the frame folder (the first-frame mask goes to --mask / first_mask)"
        )
    if palette == len(paths):
        raise ValueError(
            f"{folder}: every PNG is a palette image ({shown}): this looks like a folder of "
            "masks (e.g. an earlier output), not of frames; give the folder of video frames"
        )


def _unreadable_frame(path: str | Path) -> ValueError:
    return ValueError(f"{path}: not a readable image; remove it from the frame folder (or "
                      "re-export it as .jpg/.png)")


def _damaged_frame(path: str | Path, error: OSError) -> ValueError:
    # e.g. a truncated JPEG or PNG: PIL's message ("image file is truncated") names no file
    return ValueError(f"{path}: could not be read ({error}); re-export or remove it")


def read_frame(path: str | Path) -> np.ndarray:
    """Read one frame as RGB ``uint8 [H, W, 3]`` (EXIF orientation applied)."""
    try:
        with Image.open(path) as image:
            return np.array(_upright(image).convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        raise _unreadable_frame(path) from None
    except OSError as error:
        raise _damaged_frame(path, error) from None


def frame_sizes_agree(paths: Sequence[str | Path]) -> tuple[int, int]:
    """Check from the file headers (no decoding) that every frame opens and has the first
    frame's size (EXIF orientation applied); return that size ``(H, W)``.

    Lets a long run fail at the start, not at frame 900. Raises ``ValueError`` naming the
    first unreadable or odd-sized file.
    """
    first_size = None
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
                if image.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8):
                    width, height = height, width  # stored sideways
        except UnidentifiedImageError:
            raise _unreadable_frame(path) from None
        except OSError as error:  # reading the EXIF of a truncated file
            raise _damaged_frame(path, error) from None
        if first_size is None:
            first_size = (height, width)
        elif (height, width) != first_size:
            raise ValueError(frame_size_error(path, (height, width), paths[0], first_size))
    if first_size is None:
        raise ValueError("no frames to read")
    return first_size


def read_frames(paths: Sequence[str | Path] | str | Path) -> np.ndarray:
    """Read RGB frames as ``uint8 [T, H, W, 3]`` from a folder or a list of files."""
    if isinstance(paths, (str, Path)):
        paths = list_frames(paths)
    if not paths:
        raise ValueError("no frames to read")
    frames = []
    for path in paths:
        frame = read_frame(path)
        if frames and frame.shape != frames[0].shape:
            raise ValueError(frame_size_error(path, frame.shape[:2], paths[0], frames[0].shape[:2]))
        frames.append(frame)
    return np.stack(frames)


def frame_size_error(path, size, first, first_size) -> str:
    """The message for a frame whose size differs from the video's."""
    return (f"{path} is {size[1]}x{size[0]} (WxH) but {Path(first).name}, the first frame, is "
            f"{first_size[1]}x{first_size[0]}; all frames of a video must have the same size "
            "(resize or remove the odd one)")
