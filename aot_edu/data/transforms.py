"""Training augmentations (paper section 5 and appendix A.1.2), as plain numpy/PIL functions.

Facts from the official code (yoxu515/aot-benchmark ``dataloaders/video_transforms.py``,
``image_transforms.py``, ``configs/default.py``); the official pipeline for videos is
``RandomScale -> BalancedRandomCrop -> RandomHorizontalFlip -> Resize(use_padding=True)``:

- random scale: a factor ``U(0.7, 1.3)`` times ``480 / short edge`` (``DATA_MIN/MAX_SCALE_FACTOR``,
  ``DATA_SHORT_EDGE_LEN``), bicubic for frames, nearest for masks;
- balanced random crop of ``465 x 465`` (``DATA_RANDOMCROP``; the crop side is the frame side when
  the frame is smaller): up to 5 random positions until the **reference** frame's crop holds an
  object of more than 100 pixels; objects absent from the reference crop become background; more
  than ``M = 10`` objects (``MODEL_MAX_OBJ_NUM``) -> a random subset; labels renumbered ``1..n``;
- horizontal flip of the whole clip with probability 0.5 (``DATA_RANDOMFLIP``);
- padding to ``465 x 465`` at a random offset, frames with the colour (124, 116, 104), masks with 0
  (after a scale below ~0.97 the short side is under 465, so padding is common);
- "dynamic merge" (``DATA_DYNAMIC_MERGE_PROB``: 0.3 for videos, 1.0 in static pre-training):
  a second clip's objects are pasted over the first clip, frame by frame.

Every random choice comes from the ``numpy.random.Generator`` passed in, so a sample is a pure
function of its generator's seed. Frames are ``uint8 [T, H, W, 3]``, masks ``uint8 [T, H, W]``.
"""

from __future__ import annotations

import math

import numpy as np
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from .io import VOID_LABEL

IMAGE_FILL = (124, 116, 104)  # the official padding / affine fill colour (about the ImageNet mean)


def _check_clip(frames: np.ndarray, masks: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks must be [T, H, W] = {frames.shape[:3]}, got {masks.shape}")


def resize_clip(frames: np.ndarray, masks: np.ndarray, size: tuple[int, int]):
    """Resize every frame (bicubic) and mask (nearest) to ``size = (H, W)``."""
    h, w = size
    if frames.shape[1:3] == (h, w):
        return frames, masks
    out_f = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames])
    out_m = np.stack([np.asarray(Image.fromarray(m).resize((w, h), Image.NEAREST)) for m in masks])
    return out_f, out_m


def random_scale(
    frames: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    min_scale: float = 0.7,
    max_scale: float = 1.3,
    short_edge: int = 480,
):
    """Scale the clip so that its short side is ``short_edge * U(min_scale, max_scale)``."""
    _check_clip(frames, masks)
    h, w = frames.shape[1:3]
    factor = rng.uniform(min_scale, max_scale) * short_edge / min(h, w)
    return resize_clip(frames, masks, (max(1, round(h * factor)), max(1, round(w * factor))))


def relabel(masks: np.ndarray, keep: list[int]) -> np.ndarray:
    """Renumber labels: ``keep[k]`` -> ``k + 1``, everything else (void included) -> 0."""
    lookup = np.zeros(256, dtype=np.uint8)
    for new, old in enumerate(keep, start=1):
        lookup[old] = new
    return lookup[masks]


def choose_objects(
    counts: dict[int, int], rng: np.random.Generator, max_objects: int, min_pixels: int
) -> list[int]:
    """Objects with more than ``min_pixels`` pixels (sorted); a random subset of ``max_objects``
    (in random order) when there are more, as the official crop and merge do."""
    kept = sorted(obj for obj, n in counts.items() if obj not in (0, VOID_LABEL) and n > min_pixels)
    if len(kept) > max_objects:
        kept = [kept[i] for i in rng.permutation(len(kept))[:max_objects]]
    return kept


def pixel_counts(mask: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(mask, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def balanced_random_crop(
    frames: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = (465, 465),
    max_steps: int = 5,
    max_objects: int = 10,
    min_object_pixels: int = 100,
):
    """Crop one window from every frame, retrying up to ``max_steps`` positions until the
    reference frame (index 0) keeps an object of more than ``min_object_pixels`` pixels.

    Returns ``(frames, masks, num_objects)``; masks are renumbered ``0..num_objects`` after the objects
    of the reference crop (at most ``max_objects``, a random subset when there are more).
    """
    _check_clip(frames, masks)
    h, w = frames.shape[1:3]
    ch, cw = min(size[0], h), min(size[1], w)
    keep: list[int] = []
    for _ in range(max_steps):
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        keep = choose_objects(
            pixel_counts(masks[0, top : top + ch, left : left + cw]),
            rng,
            max_objects,
            min_object_pixels,
        )
        if keep:
            break
    frames = frames[:, top : top + ch, left : left + cw]
    masks = relabel(masks[:, top : top + ch, left : left + cw], keep)
    return np.ascontiguousarray(frames), masks, len(keep)


def random_horizontal_flip(
    frames: np.ndarray, masks: np.ndarray, rng: np.random.Generator, p: float = 0.5
):
    """Mirror the whole clip (frames and masks together) with probability ``p``."""
    if rng.random() < p:
        return np.ascontiguousarray(frames[:, :, ::-1]), np.ascontiguousarray(masks[:, :, ::-1])
    return frames, masks


def pad_to_size(
    frames: np.ndarray,
    masks: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int] = (465, 465),
    fill: tuple[int, int, int] = IMAGE_FILL,
):
    """Pad a smaller clip to ``size`` at a random offset (frames with ``fill``, masks with 0)."""
    _check_clip(frames, masks)
    t, h, w = masks.shape
    if (h, w) == tuple(size):
        return frames, masks
    if h > size[0] or w > size[1]:
        raise ValueError(f"cannot pad a {h}x{w} clip to the smaller size {size[0]}x{size[1]}")
    top = int(rng.integers(0, size[0] - h + 1))
    left = int(rng.integers(0, size[1] - w + 1))
    out_f = np.empty((t, *size, 3), dtype=np.uint8)
    out_f[:] = np.asarray(fill, dtype=np.uint8)
    out_f[:, top : top + h, left : left + w] = frames
    out_m = np.zeros((t, *size), dtype=np.uint8)
    out_m[:, top : top + h, left : left + w] = masks
    return out_f, out_m


def merge_clips(
    first: tuple[np.ndarray, np.ndarray],
    second: tuple[np.ndarray, np.ndarray],
    rng: np.random.Generator,
    max_objects: int = 10,
    min_object_pixels: int = 100,
):
    """Official "dynamic merge": paste the objects of ``second`` over ``first`` in every frame.

    Both clips have the same shape and labels ``0..n``. Objects of the second clip follow those
    of the first; objects with at most ``min_object_pixels`` pixels in the merged reference frame
    are dropped (to background), and a random subset is kept when more than ``max_objects``
    remain. Returns ``(frames, masks, num_objects)``.
    """
    (f1, m1), (f2, m2) = first, second
    _check_clip(f1, m1)
    _check_clip(f2, m2)
    if f1.shape != f2.shape:
        raise ValueError(f"clips to merge differ in shape: {f1.shape} vs {f2.shape}")
    n1 = int(m1.max(initial=0))
    if n1 + int(m2.max(initial=0)) > 254:
        raise ValueError("too many objects to merge into uint8 labels")
    foreground = m2 > 0
    frames = np.where(foreground[..., None], f2, f1)
    masks = np.where(foreground, m2 + n1, m1).astype(np.uint8)
    keep = choose_objects(pixel_counts(masks[0]), rng, max_objects, min_object_pixels)
    return frames, relabel(masks, keep), len(keep)


# -- static images (official StaticTrain) -----------------------------------------------------


def random_affine(
    image: Image.Image,
    mask: Image.Image,
    rng: np.random.Generator,
    degrees: float = 20.0,
    translate: tuple[float, float] = (0.1, 0.1),
    scale: tuple[float, float] = (0.9, 1.1),
    shear: float = 10.0,
    fill: tuple[int, int, int] = IMAGE_FILL,
):
    """Rotation ``U(-20, 20)`` degrees, translation up to 10 % of each side, scale
    ``U(0.9, 1.1)``, x-shear ``U(-10, 10)`` degrees about the centre (official ``StaticTrain``).
    Frames bicubic (the official code asks for bicubic, but its wrapper drops the argument and
    resamples with nearest), masks nearest with 0 outside."""
    w, h = image.size
    angle = float(rng.uniform(-degrees, degrees))
    shift = [
        int(round(rng.uniform(-translate[0] * w, translate[0] * w))),
        int(round(rng.uniform(-translate[1] * h, translate[1] * h))),
    ]
    factor = float(rng.uniform(*scale))
    shear_xy = [float(rng.uniform(-shear, shear)), 0.0]
    image = TF.affine(image, angle, shift, factor, shear_xy, InterpolationMode.BICUBIC, list(fill))
    mask = TF.affine(mask, angle, shift, factor, shear_xy, InterpolationMode.NEAREST, 0)
    return image, mask


def random_resized_crop(
    image: Image.Image,
    mask: Image.Image,
    rng: np.random.Generator,
    size: tuple[int, int] = (465, 465),
    scale: tuple[float, float] = (0.8, 1.0),
    ratio: tuple[float, float] | None = None,
):
    """Crop a random window of ``U(0.8, 1)`` of the area and aspect ratio within 3/4..4/3 of the
    output's, resized to ``size = (H, W)`` (torchvision's ``RandomResizedCrop`` rule, 10 tries,
    then a centre crop)."""
    out_h, out_w = size
    if ratio is None:
        base = out_w / out_h
        ratio = (base * 3 / 4, base * 4 / 3)
    width, height = image.size
    area = width * height
    box = None
    for _ in range(10):
        target = rng.uniform(*scale) * area
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            box = (left, top, left + w, top + h)
            break
    if box is None:
        in_ratio = width / height
        if in_ratio < min(ratio):
            w, h = width, int(round(width / min(ratio)))
        elif in_ratio > max(ratio):
            w, h = int(round(height * max(ratio))), height
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
        box = (left, top, left + w, top + h)
    image = image.resize((out_w, out_h), Image.BICUBIC, box=box)
    mask = mask.resize((out_w, out_h), Image.NEAREST, box=box)
    return image, mask


def color_jitter(
    image: Image.Image,
    rng: np.random.Generator,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.1,
    hue: float = 0.03,
) -> Image.Image:
    """Brightness, contrast, saturation factors ``U(1 - x, 1 + x)`` and a hue shift
    ``U(-hue, hue)``, in random order (torchvision ``ColorJitter(0.1, 0.1, 0.1, 0.03)``)."""
    ops = [
        lambda im: TF.adjust_brightness(im, float(rng.uniform(1 - brightness, 1 + brightness))),
        lambda im: TF.adjust_contrast(im, float(rng.uniform(1 - contrast, 1 + contrast))),
        lambda im: TF.adjust_saturation(im, float(rng.uniform(1 - saturation, 1 + saturation))),
        lambda im: TF.adjust_hue(im, float(rng.uniform(-hue, hue))),
    ]
    for k in rng.permutation(len(ops)):
        image = ops[k](image)
    return image


def horizontal_flip_pair(image: Image.Image, mask: Image.Image, rng: np.random.Generator, p: float):
    """Mirror an image and its mask together with probability ``p``."""
    if rng.random() < p:
        return image.transpose(Image.FLIP_LEFT_RIGHT), mask.transpose(Image.FLIP_LEFT_RIGHT)
    return image, mask
