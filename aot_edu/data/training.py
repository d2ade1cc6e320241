"""Training samples: static-image pre-training clips and DAVIS / YouTube-VOS video clips.

AOT is trained in two stages (paper section 5, appendix A.1.2): pre-training on static images
turned into short videos by augmentation, then main training on YouTube-VOS 2019 train and
DAVIS 2017 train. Every sample is a clip of ``T = 5`` frames (``DATA_SEQ_LEN``) - a reference
frame whose mask is given, then four later frames - in one format shared by all datasets
(synthetic ones included)::

    {"frames": uint8 tensor [T, 3, H, W],   # RGB 0..255; ImageNet normalisation is the model's job
     "masks": int64 tensor [T, H, W],       # labels 0 (background) .. n
     "num_objects": int,                        # n <= M = 10
     "name": str}

Facts from the official code (yoxu515/aot-benchmark ``dataloaders/train_datasets.py``,
``configs/default.py``, ``configs/pre*.py``, ``networks/managers/trainer.py``):

- **Video clips** (``VOSTrain``): the frame list is reversed with probability 0.5
  (``DATA_RANDOM_REVERSE_SEQ``); the reference frame is a random annotated frame with more than
  200 foreground pixels (up to 20 tries); the next ``T - 1`` frames follow it at random gaps
  ``U{1..max_gap}`` each (``DATA_RANDOM_GAP_DAVIS = 12`` at 24 fps, ``DATA_RANDOM_GAP_YTB = 3``
  on YouTube-VOS's every-5th-frame annotations), reflected at the end of the video; the whole
  choice is redrawn (up to 5 times) until every object of the later frames is in the reference
  frame. DAVIS is repeated 5 times per epoch (``DATA_DAVIS_REPEAT``). With probability 0.3
  (``DATA_DYNAMIC_MERGE_PROB``), or when the clip has no object left, a clip of another video
  is pasted over it. The "previous frame" of the official sample is simply the first frame after
  the reference (``TRAIN_ENABLE_PREV_FRAME = False``).
- **Static clips** (``StaticTrain``; COCO, ECSSD, MSRA10K, PASCAL-S, PASCAL VOC in the paper):
  one image, flipped with probability 0.5; frames after the first are flipped again with
  probability 0.3, colour-jittered (0.1, 0.1, 0.1, 0.03) and affinely warped (rotation 20 deg,
  translation 10 %, scale 0.9-1.1, shear 10 deg); every frame then gets its own random resized
  crop (80-100 % of the area) to ``465 x 465``. Pre-training merges two images in every sample
  (``DATA_DYNAMIC_MERGE_PROB = 1.0`` in ``configs/pre.py``).

Each sample is a pure function of ``(seed, epoch, index)`` (a ``numpy.random.Generator`` made
from them); with ``seed=None`` every call draws fresh randomness.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from . import transforms
from .datasets import DAVIS, find_youtubevos_split, read_youtubevos_meta
from .io import read_frames, read_mask

MAX_OBJECTS = 10  # M: identities in the official identity bank
SEQ_LEN = 5
CROP_SIZE = (465, 465)


def make_sample(frames: np.ndarray, masks: np.ndarray, num_objects: int, name: str) -> dict:
    """The training sample dict from ``uint8 [T, H, W, 3]`` frames and ``[T, H, W]`` labels."""
    frames = np.asarray(frames)
    masks = np.asarray(masks)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks must be [T, H, W] = {frames.shape[:3]}, got {masks.shape}")
    if masks.size and int(masks.max()) > num_objects:
        raise ValueError(f"{name}: mask label {int(masks.max())} exceeds num_objects = {num_objects}")
    return {
        "frames": torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))),
        "masks": torch.from_numpy(masks.astype(np.int64)),
        "num_objects": int(num_objects),
        "name": str(name),
    }


def collate(samples: Sequence[dict]) -> dict:
    """Batch samples of equal size: ``frames`` ``uint8 [B, T, 3, H, W]``, ``masks`` ``int64
    [B, T, H, W]``, ``num_objects`` ``int64 [B]``, ``name`` list of ``B`` strings."""
    if not samples:
        raise ValueError("collate needs at least one sample")
    shapes = {tuple(s["frames"].shape) for s in samples}
    if len(shapes) != 1:
        raise ValueError(
            f"samples differ in size {sorted(shapes)}; batch clips of one size (the training "
            "datasets crop and pad to crop_size; give all datasets the same size)"
        )
    return {
        "frames": torch.stack([s["frames"] for s in samples]),
        "masks": torch.stack([s["masks"] for s in samples]),
        "num_objects": torch.tensor([s["num_objects"] for s in samples], dtype=torch.int64),
        "name": [s["name"] for s in samples],
    }


class _SeededClips(Dataset):
    """Per-sample generators from ``(seed, epoch, index)``.

    With a seed, the same index gives the same clip until :meth:`set_epoch` changes the epoch:
    call it at the start of every epoch (before iterating the ``DataLoader``; with
    ``persistent_workers=True`` the workers keep the epoch they were started with).
    """

    seed: int | None
    epoch: int = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw different clips in every epoch (call before iterating a ``DataLoader``)."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([self.seed, self.epoch, index])

    def _check_index(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return index % len(self)


# -- static images ----------------------------------------------------------------------------


def find_static_pairs(root: str | Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs of a static-image folder, matched by file stem.

    Layouts: ``<root>/images/*.jpg|png`` + ``<root>/masks/*.png`` (this project's), or the
    official ``<root>/JPEGImages/<set>/*`` + ``<root>/Annotations/<set>/*.png``. Masks are label
    maps: palette PNGs (index = object) or grayscale PNGs (0/255 -> one object).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"static-image folder not found: {root}")
    if (root / "images").is_dir():
        groups = [(root / "images", root / "masks")]
    elif (root / "JPEGImages").is_dir():
        groups = [
            (d, root / "Annotations" / d.name)
            for d in sorted((root / "JPEGImages").iterdir())
            if d.is_dir()
        ]
    else:
        raise FileNotFoundError(
            f"{root} has neither images/ (+ masks/) nor JPEGImages/ (+ Annotations/); put the "
            "images in images/<stem>.jpg and their label maps in masks/<stem>.png"
        )
    pairs = []
    for image_dir, mask_dir in groups:
        images = sorted(
            p for p in image_dir.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
        )
        masks = {p.stem: p for p in mask_dir.glob("*.png")} if mask_dir.is_dir() else {}
        missing = [p.name for p in images if p.stem not in masks]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} image(s) in {image_dir} have no mask {mask_dir}/<stem>.png, e.g. "
                f"{', '.join(missing[:5])}"
            )
        pairs += [(p, masks[p.stem]) for p in images]
    if not pairs:
        raise FileNotFoundError(
            f"no images found under {root} (looked in {[str(g[0]) for g in groups]})"
        )
    return pairs


class StaticClips(_SeededClips):
    """Clips made from single images with instance masks (official ``StaticTrain``'s recipe).

    Subclasses give the images: ``__len__``, :meth:`load` (image and label map of ``index``)
    and :meth:`name`. See :class:`StaticTrain` (images in a folder) and
    :class:`aot_edu.data.synthetic.SyntheticImages` (rendered synthetic scenes).

    Args:
        size: output ``(H, W)``; 465 x 465 in the paper.
        seq_len: frames per clip (5).
        max_objects: at most this many objects per clip (``M = 10``).
        merge_prob: probability of pasting a second image's clip over the first (1.0 in the
            official pre-training stage).
        seed: base seed; ``None`` for fresh randomness on every call.
    """

    def __init__(
        self,
        size: tuple[int, int] = CROP_SIZE,
        seq_len: int = SEQ_LEN,
        max_objects: int = MAX_OBJECTS,
        merge_prob: float = 1.0,
        seed: int | None = 0,
    ) -> None:
        if seq_len < 2:
            raise ValueError("seq_len must be at least 2 (a reference frame and one more)")
        self.size, self.seq_len = tuple(size), seq_len
        self.max_objects, self.merge_prob, self.seed = max_objects, merge_prob, seed

    def load(self, index: int) -> tuple[Image.Image, Image.Image]:
        """RGB image and label map (mode ``L``) of image ``index``."""
        raise NotImplementedError

    def name(self, index: int) -> str:
        raise NotImplementedError

    def clip(self, index: int, rng: np.random.Generator):
        """``(frames [T, H, W, 3], masks [T, H, W], num_objects)`` made from image ``index``."""
        image, mask = self.load(index)
        image, mask = transforms.horizontal_flip_pair(image, mask, rng, 0.5)
        frames, masks = [], []
        for i in range(self.seq_len):
            im, mk = image, mask
            if i > 0:
                im, mk = transforms.horizontal_flip_pair(im, mk, rng, 0.3)
                im = transforms.color_jitter(im, rng)
                im, mk = transforms.random_affine(im, mk, rng)
            im, mk = transforms.random_resized_crop(im, mk, rng, self.size)
            frames.append(np.asarray(im))
            masks.append(np.asarray(mk))
        frames, masks = np.stack(frames), np.stack(masks)
        # Objects are those of the first frame (any size), as the official ToOnehot picks them.
        keep = transforms.choose_objects(transforms.pixel_counts(masks[0]), rng, self.max_objects, 0)
        return frames, transforms.relabel(masks, keep), len(keep)

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        rng = self.rng(index)
        frames, masks, num_objects = self.clip(index, rng)
        name = self.name(index)
        if len(self) > 1 and (num_objects == 0 or rng.random() < self.merge_prob):
            other = (index + 1 + int(rng.integers(len(self) - 1))) % len(self)
            frames, masks, num_objects = transforms.merge_clips(
                (frames, masks), self.clip(other, rng)[:2], rng, self.max_objects
            )
            name = f"{name}+{self.name(other)}"
        return make_sample(frames, masks, num_objects, name)


class StaticTrain(StaticClips):
    """Pre-training clips from a folder of images with instance masks (official ``StaticTrain``).

    Args:
        root: folder with ``images/`` and ``masks/`` (see :func:`find_static_pairs`).
        size, seq_len, max_objects, merge_prob, seed: see :class:`StaticClips`.
    """

    def __init__(
        self,
        root: str | Path,
        size: tuple[int, int] = CROP_SIZE,
        seq_len: int = SEQ_LEN,
        max_objects: int = MAX_OBJECTS,
        merge_prob: float = 1.0,
        seed: int | None = 0,
    ) -> None:
        super().__init__(size, seq_len, max_objects, merge_prob, seed)
        self.pairs = find_static_pairs(root)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[Image.Image, Image.Image]:
        image_path, mask_path = self.pairs[index]
        with Image.open(image_path) as im:
            image = im.convert("RGB")
        labels = read_mask(mask_path)
        if labels.shape != (image.height, image.width):
            raise ValueError(
                f"mask {mask_path} is {labels.shape[1]}x{labels.shape[0]} but image {image_path} "
                f"is {image.width}x{image.height}; a mask must have its image's size"
            )
        return image, Image.fromarray(labels)

    def name(self, index: int) -> str:
        return self.pairs[index][0].stem


# -- videos -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainVideo:
    """A training video: frames and their masks (same order, same length)."""

    name: str
    frame_paths: tuple[Path, ...]
    mask_paths: tuple[Path, ...]


def reflect_index(index: int, length: int) -> int:
    """Fold an index past either end back into ``0..length-1`` (official ``check_index``)."""
    if length <= 1:
        return 0
    period = 2 * (length - 1)
    index %= period
    return index if index < length else period - index


class VOSTrain(_SeededClips):
    """Clips of annotated videos (official ``VOSTrain`` + the training transforms).

    Args:
        videos: the videos (``TrainVideo``).
        seq_len: frames per clip (5).
        max_gap: largest gap between consecutive frames of a clip, in annotated frames.
        repeat: how many times each video appears per epoch.
        reverse: reverse the frame order with probability 0.5.
        merge_prob: probability of pasting another video's clip over this one.
        crop_size: output ``(H, W)``, 465 x 465.
        short_edge, scale_range: frames are scaled so the short side is
            ``short_edge * U(scale_range)`` (480 and 0.7..1.3).
        flip_prob: probability of a horizontal flip of the clip.
        max_objects: at most this many objects per clip (``M = 10``).
        min_ref_pixels: foreground pixels a reference frame must have (200).
        seed: base seed; ``None`` for fresh randomness on every call.
    """

    def __init__(
        self,
        videos: Sequence[TrainVideo],
        seq_len: int = SEQ_LEN,
        max_gap: int = 3,
        repeat: int = 1,
        reverse: bool = True,
        merge_prob: float = 0.3,
        crop_size: tuple[int, int] = CROP_SIZE,
        short_edge: int = 480,
        scale_range: tuple[float, float] = (0.7, 1.3),
        flip_prob: float = 0.5,
        max_objects: int = MAX_OBJECTS,
        min_ref_pixels: int = 200,
        seed: int | None = 0,
    ) -> None:
        if not videos:
            raise ValueError("no training videos")
        if seq_len < 2 or max_gap < 1 or repeat < 1:
            raise ValueError("need seq_len >= 2, max_gap >= 1 and repeat >= 1")
        self.videos = list(videos)
        self.seq_len, self.max_gap, self.repeat, self.reverse = seq_len, max_gap, repeat, reverse
        self.merge_prob, self.crop_size, self.short_edge = merge_prob, tuple(crop_size), short_edge
        self.scale_range, self.flip_prob, self.max_objects = scale_range, flip_prob, max_objects
        self.min_ref_pixels, self.seed = min_ref_pixels, seed

    def __len__(self) -> int:
        return len(self.videos) * self.repeat

    def choose_frames(self, video: TrainVideo, rng: np.random.Generator) -> list[int]:
        """Indices into ``video``'s frames: the reference frame, then ``seq_len - 1`` frames at
        gaps ``U{1..max_gap}`` (reflected at the ends; the list may be reversed first)."""
        n = len(video.frame_paths)
        order = list(range(n))[::-1] if self.reverse and rng.integers(2) else list(range(n))
        cache: dict[int, np.ndarray] = {}

        def labels(position: int) -> np.ndarray:
            if position not in cache:
                cache[position] = read_mask(video.mask_paths[order[position]])
            return cache[position]

        for _ in range(5):
            gaps = rng.integers(1, self.max_gap + 1, size=self.seq_len - 1)
            for _ in range(20):
                ref = int(rng.integers(n))
                if np.count_nonzero(labels(ref)) > self.min_ref_pixels:
                    break
            later = [reflect_index(ref + int(g), n) for g in np.cumsum(gaps)]
            ref_objects = set(np.unique(labels(ref)).tolist())
            if all(set(np.unique(labels(p)).tolist()) <= ref_objects | {0} for p in later):
                break
        return [order[p] for p in [ref, *later]]

    def load(self, video: TrainVideo, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        frames = read_frames([video.frame_paths[i] for i in indices])
        masks = []
        for i in indices:
            mask = read_mask(video.mask_paths[i])
            if mask.shape != frames.shape[1:3]:
                raise ValueError(
                    f"mask {video.mask_paths[i]} is {mask.shape[1]}x{mask.shape[0]} but its frame "
                    f"{video.frame_paths[i]} is {frames.shape[2]}x{frames.shape[1]}"
                )
            masks.append(mask)
        return frames, np.stack(masks)

    def clip(self, video_index: int, rng: np.random.Generator):
        """``(frames, masks, num_objects)`` of one augmented clip of video ``video_index``."""
        video = self.videos[video_index]
        frames, masks = self.load(video, self.choose_frames(video, rng))
        frames, masks = transforms.random_scale(frames, masks, rng, *self.scale_range, self.short_edge)
        frames, masks, num_objects = transforms.balanced_random_crop(
            frames, masks, rng, self.crop_size, max_objects=self.max_objects
        )
        frames, masks = transforms.random_horizontal_flip(frames, masks, rng, self.flip_prob)
        frames, masks = transforms.pad_to_size(frames, masks, rng, self.crop_size)
        return frames, masks, num_objects

    def __getitem__(self, index: int) -> dict:
        index = self._check_index(index)
        rng = self.rng(index)
        video_index = index % len(self.videos)
        frames, masks, num_objects = self.clip(video_index, rng)
        name = self.videos[video_index].name
        if len(self.videos) > 1 and (num_objects == 0 or rng.random() < self.merge_prob):
            other = (video_index + 1 + int(rng.integers(len(self.videos) - 1))) % len(self.videos)
            frames, masks, num_objects = transforms.merge_clips(
                (frames, masks), self.clip(other, rng)[:2], rng, self.max_objects
            )
            name = f"{name}+{self.videos[other].name}"
        return make_sample(frames, masks, num_objects, name)


class DAVISTrain(VOSTrain):
    """DAVIS 2017 ``train`` clips: gaps up to 12 frames, each video 5 times per epoch.

    ``root`` is the DAVIS folder (``JPEGImages/480p``, ``Annotations/480p``,
    ``ImageSets/2017/train.txt``); other arguments as :class:`VOSTrain`.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        resolution: str = "480p",
        max_gap: int = 12,
        repeat: int = 5,
        **kwargs,
    ) -> None:
        davis = DAVIS(root, year=2017, split=split, resolution=resolution)
        videos = []
        for sequence in davis:
            if not sequence.has_frames:
                raise FileNotFoundError(
                    f"DAVIS {split} sequence {sequence.name!r} has no frame images under "
                    f"{davis.image_root / sequence.name}"
                )
            missing = [i for i in range(len(sequence)) if i not in sequence.annotations]
            if missing:
                raise FileNotFoundError(
                    f"DAVIS {split} sequence {sequence.name!r}: frames {missing[:5]} have no mask "
                    f"in {davis.label_root / sequence.name}; training needs every frame's mask"
                )
            videos.append(
                TrainVideo(
                    sequence.name,
                    tuple(sequence.frame_paths),
                    tuple(sequence.annotations[i] for i in range(len(sequence))),
                )
            )
        super().__init__(videos, max_gap=max_gap, repeat=repeat, **kwargs)


class YouTubeVOSTrain(VOSTrain):
    """YouTube-VOS ``train`` clips: gaps up to 3 annotated frames (= 15 video frames).

    ``root`` holds ``train/`` (or ``<year>/train/``) with ``JPEGImages``, ``Annotations`` and
    ``meta.json``. As in the official reader, a video's frames are the union of the frames of
    its objects that span at least 2 frames, and videos with fewer than 2 frames are skipped.
    """

    def __init__(
        self, root: str | Path, year: int = 2019, max_gap: int = 3, repeat: int = 1, **kwargs
    ) -> None:
        split_root = find_youtubevos_split(root, "train", year)
        meta = read_youtubevos_meta(split_root / "meta.json")
        videos = []
        for name, objects in meta.items():
            stems = sorted({f for frames in objects.values() if len(frames) >= 2 for f in frames})
            if len(stems) < 2:
                continue
            videos.append(
                TrainVideo(
                    name,
                    tuple(split_root / "JPEGImages" / name / f"{s}.jpg" for s in stems),
                    tuple(split_root / "Annotations" / name / f"{s}.png" for s in stems),
                )
            )
        if not videos:
            raise ValueError(
                f"{split_root / 'meta.json'} lists no video with at least 2 annotated frames"
            )
        super().__init__(videos, max_gap=max_gap, repeat=repeat, **kwargs)
