"""Evaluation datasets: DAVIS 2016/2017 and YouTube-VOS 2018/2019 (valid), as :class:`VideoSequence`.

Semi-supervised VOS gives the method the mask of every object on the frame where the object
first appears and asks for masks of all later frames. The readers here follow the official AOT
evaluation (yoxu515/aot-benchmark, ``dataloaders/eval_datasets.py`` and
``networks/managers/evaluator.py``):

- **DAVIS** (``<root>/JPEGImages/480p/<seq>/*.jpg``, ``<root>/Annotations/480p/<seq>/*.png``,
  ``<root>/ImageSets/<year>/<split>.txt``): every frame of the sequence is processed; only the
  first frame's mask is given (all objects appear there). DAVIS 2017 masks are palette PNGs
  (labels 1..N, 255 = void); for DAVIS 2016 every non-zero pixel is the one object (label 1),
  which also covers the DAVIS 2016 sequences inside a DAVIS 2017 folder.
- **YouTube-VOS** (``valid/JPEGImages/<vid>/*.jpg``, every 5th frame; ``valid/Annotations/<vid>``
  holds a PNG only where an object first appears; ``valid/meta.json`` lists each object's
  frames): the frames processed are the union of the objects' frames in ``meta.json`` (frames
  before the first object are skipped). A frame with a PNG is a *reference frame*: objects in it
  that were not seen before are new, and the official evaluator pastes their mask over its
  prediction and adds the frame to the memory as a new reference frame. With
  ``all_frames=True`` the frames come from ``valid_all_frames/JPEGImages`` (every frame between
  the first and the last listed frame); only the listed (every-5th) frames go into the
  submission.

Object labels are **re-indexed** to ``1..N`` in order of first appearance (ties by the original
value), as the official reader does; :meth:`VideoSequence.save_prediction` maps them back to the
dataset's ids when writing the result PNGs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .io import FRAME_SUFFIXES, VOID_LABEL, read_frames, read_mask, write_mask
from .sources import dataset_folder, download_hint, get_dataset

DAVIS_YEARS = (2016, 2017)
DAVIS_SPLITS = ("train", "val", "test-dev", "test-challenge")
YOUTUBEVOS_YEARS = (2018, 2019)


@dataclass(frozen=True)
class SequenceFrame:
    """One frame of a :class:`VideoSequence`, as yielded when iterating over it.

    ``mask`` is the re-indexed label map ``uint8 [H, W]`` given to the method on a reference
    frame (``None`` elsewhere); ``new_objects`` are the labels that first appear on this frame.
    On a later reference frame (YouTube-VOS) the mask usually holds only the new objects: the
    official evaluator pastes its non-zero pixels over the prediction of that frame, then adds
    the frame to the memory as a reference frame.
    """

    index: int
    name: str
    image: np.ndarray
    mask: np.ndarray | None
    new_objects: tuple[int, ...]


@dataclass
class VideoSequence:
    """A video of an evaluation dataset: frame files, annotation files and its objects.

    Attributes:
        name: sequence name (the folder name).
        frame_paths: one path per frame, in time order. A path may not exist when the copy of
            the dataset lacks the JPEGs of this sequence (see :attr:`has_frames`).
        annotations: frame index -> annotation PNG, for every frame that has one (DAVIS
            train/val: all frames, i.e. the ground truth; YouTube-VOS valid: reference frames).
        reference_frames: frames whose masks are *given* to the method, sorted (DAVIS: ``[0]``).
        object_ids: the dataset's label value of each object; object ``k`` (re-indexed label,
            1-based) is ``object_ids[k - 1]``. Order = first appearance.
        first_frame_of_object: dataset label value -> index of the frame where it first appears.
        single_object: DAVIS 2016 convention: every non-zero pixel is object 1.
        output_frames: frames whose masks go into the result folder / submission (frame 0's
            output is its given mask, as the official evaluator copies it).
        dataset: a short tag such as ``"davis2017-val"``.
    """

    name: str
    frame_paths: list[Path]
    annotations: dict[int, Path]
    reference_frames: list[int]
    object_ids: list[int]
    first_frame_of_object: dict[int, int]
    single_object: bool = False
    output_frames: list[int] = field(default_factory=list)
    dataset: str = ""

    def __post_init__(self) -> None:
        self.frame_paths = [Path(p) for p in self.frame_paths]
        if not self.output_frames:
            self.output_frames = list(range(len(self.frame_paths)))
        lookup = np.zeros(256, dtype=np.uint8)
        lookup[VOID_LABEL] = VOID_LABEL
        for label, value in enumerate(self.object_ids, start=1):
            if not 0 < value < 256:
                raise ValueError(f"{self.name}: object id {value} outside 1..255")
            lookup[value] = label
        self._to_labels = lookup

    # -- frames -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.frame_paths)

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    @property
    def num_objects(self) -> int:
        return len(self.object_ids)

    @property
    def frame_names(self) -> list[str]:
        """File stems of the frames (``"00000"``, ...), also the stems of the output PNGs."""
        return [p.stem for p in self.frame_paths]

    @property
    def has_frames(self) -> bool:
        """Whether every frame's image file exists in this copy of the dataset."""
        return bool(self.frame_paths) and all(p.is_file() for p in self.frame_paths)

    def _check_frames(self, indices: Iterable[int]) -> None:
        missing = [self.frame_paths[i] for i in indices if not self.frame_paths[i].is_file()]
        if missing:
            raise FileNotFoundError(
                f"sequence {self.name!r}: {len(missing)} frame image(s) are missing, e.g. "
                f"{missing[0]}. This copy of the dataset has the annotations of this sequence but "
                "not its frames (the reference DAVIS 2016 copy beside a development checkout has "
                "frames for 5 of its 20 sequences). Check `sequence.has_frames` or use "
                f"`dataset.with_frames()`; for the full dataset, {self.download_hint}"
            )

    @property
    def download_hint(self) -> str:
        """How to get this sequence's dataset (an ``aot-edu download dataset`` command when
        aot-edu downloads it)."""
        # DAVIS 2016 ships inside the DAVIS 2017 trainval download.
        name = ("davis2017" if self.dataset.startswith("davis")
                else self.dataset.split("-")[0] or "davis2017")
        return download_hint(name)

    def frame(self, index: int) -> np.ndarray:
        """The RGB image of frame ``index``, ``uint8 [H, W, 3]``."""
        self._check_frames([index])
        return read_frames([self.frame_paths[index]])[0]

    def frames(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Frames as ``uint8 [T, H, W, 3]`` (all of them by default; mind the memory: a
        100-frame 480p video is 120 MB; iterate over the sequence to go frame by frame)."""
        indices = range(self.num_frames) if indices is None else list(indices)
        self._check_frames(indices)
        return read_frames([self.frame_paths[i] for i in indices])

    # -- masks --------------------------------------------------------------------------------
    def relabel(self, raw: np.ndarray) -> np.ndarray:
        """Map a mask in the dataset's label values to the re-indexed labels ``0..N`` (255 void
        stays 255; values of unknown objects become background)."""
        raw = np.asarray(raw)
        if self.single_object:
            return (raw > 0).astype(np.uint8)
        return self._to_labels[raw.astype(np.uint8)]

    def to_dataset_labels(self, labels: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`relabel` for a prediction ``[H, W]`` with labels ``0..N``."""
        labels = np.asarray(labels)
        if labels.size and (labels.min() < 0 or labels.max() > self.num_objects):
            raise ValueError(
                f"sequence {self.name!r}: prediction labels must lie in 0..{self.num_objects}, "
                f"got {int(labels.min())}..{int(labels.max())}"
            )
        back = np.array([0, *self.object_ids], dtype=np.uint8)
        return back[labels.astype(np.int64)]

    def mask(self, index: int) -> np.ndarray:
        """The re-indexed label map of frame ``index``, ``uint8 [H, W]`` (0 background,
        1..N objects, 255 void). Works for every frame in :attr:`annotations`."""
        if index not in self.annotations:
            have = sorted(self.annotations)
            raise KeyError(
                f"sequence {self.name!r} has no annotation for frame {index} "
                f"({self.frame_names[index] if 0 <= index < self.num_frames else '?'}); "
                f"annotated frames: {have[:10]}{' ...' if len(have) > 10 else ''}"
            )
        return self.relabel(read_mask(self.annotations[index]))

    def masks(self, indices: Sequence[int] | None = None) -> np.ndarray:
        """Label maps ``uint8 [K, H, W]`` of the given frames (default: every annotated frame,
        in time order; for DAVIS train/val that is the ground truth of every frame)."""
        indices = sorted(self.annotations) if indices is None else list(indices)
        return np.stack([self.mask(i) for i in indices])

    def new_objects(self, index: int) -> list[int]:
        """Re-indexed labels of the objects whose first mask is on frame ``index``."""
        return [
            label
            for label, value in enumerate(self.object_ids, start=1)
            if self.first_frame_of_object[value] == index
        ]

    def num_objects_at(self, index: int) -> int:
        """How many objects have appeared up to and including frame ``index``."""
        return sum(first <= index for first in self.first_frame_of_object.values())

    def __iter__(self) -> Iterator[SequenceFrame]:
        """Frame by frame (lazily): image, given mask on reference frames, new objects."""
        self._check_frames(range(self.num_frames))
        references = set(self.reference_frames)
        for index, name in enumerate(self.frame_names):
            mask = self.mask(index) if index in references else None
            yield SequenceFrame(
                index, name, self.frame(index), mask, tuple(self.new_objects(index))
            )

    # -- outputs ------------------------------------------------------------------------------
    def output_name(self, index: int) -> str:
        """File name of frame ``index``'s result PNG (``00000.png``)."""
        return self.frame_names[index] + ".png"

    def output_path(self, result_dir: str | Path, index: int) -> Path:
        """``<result_dir>/<sequence>/<frame>.png``, the layout both official toolkits read."""
        return Path(result_dir) / self.name / self.output_name(index)

    def save_prediction(self, result_dir: str | Path, index: int, labels: np.ndarray) -> Path:
        """Write a re-indexed prediction ``[H, W]`` (labels 0..N) of frame ``index`` as a DAVIS
        palette PNG with the dataset's object ids, at ``output_path``."""
        path = self.output_path(result_dir, index)
        write_mask(path, self.to_dataset_labels(labels))
        return path

    def __repr__(self) -> str:
        return (
            f"VideoSequence({self.name!r}, frames={self.num_frames}, objects={self.num_objects}, "
            f"reference_frames={self.reference_frames}, has_frames={self.has_frames})"
        )


class _SequenceCollection(Sequence):
    """Shared list behaviour: ``len``, integer or name indexing, iteration."""

    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, key: int | str) -> VideoSequence:  # type: ignore[override]
        if isinstance(key, str):
            if key not in self.names:
                raise KeyError(
                    f"no sequence {key!r} in {self}; known: {', '.join(self.names[:8])} ..."
                )
            return self.sequence(key)
        return self.sequence(self.names[key])

    def __iter__(self) -> Iterator[VideoSequence]:
        for name in self.names:
            yield self.sequence(name)

    def sequence(self, name: str) -> VideoSequence:  # pragma: no cover - abstract
        raise NotImplementedError

    def with_frames(self) -> list[VideoSequence]:
        """The sequences whose frame images are all present."""
        return [s for s in self if s.has_frames]


def _list_pngs(folder: Path) -> list[Path]:
    return (
        sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png") if folder.is_dir() else []
    )


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def _require_dir(path: Path, what: str, dataset: str) -> None:
    if not path.is_dir():
        raise FileNotFoundError(
            f"{what} not found: expected the folder {path}; {download_hint(dataset)}"
        )


class DAVIS(_SequenceCollection):
    """DAVIS 2016 or 2017 (semi-supervised), one split, as :class:`VideoSequence` objects.

    Args:
        root: the DAVIS folder holding ``JPEGImages/``, ``Annotations/`` and ``ImageSets/``.
        year: 2016 (one object per sequence: every non-zero pixel) or 2017 (palette labels).
        split: ``train``, ``val``, ``test-dev`` or ``test-challenge`` (``test`` = ``test-dev``).
        resolution: ``480p`` (the benchmark) or ``Full-Resolution``.
    """

    def __init__(
        self,
        root: str | Path,
        year: int = 2017,
        split: str = "val",
        resolution: str = "480p",
    ) -> None:
        year = int(year)
        if year not in DAVIS_YEARS:
            raise ValueError(f"DAVIS year must be one of {DAVIS_YEARS}, got {year}")
        split = "test-dev" if split == "test" else split
        if split not in DAVIS_SPLITS:
            raise ValueError(f"DAVIS split must be one of {DAVIS_SPLITS}, got {split!r}")
        self.root, self.year, self.split, self.resolution = Path(root), year, split, resolution
        tag = f"davis{year}"
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"DAVIS root folder not found: {self.root}; {download_hint('davis2017')}"
            )
        self.image_root = self.root / "JPEGImages" / resolution
        self.label_root = self.root / "Annotations" / resolution
        _require_dir(self.label_root, f"DAVIS {resolution} annotations", "davis2017")
        list_file = self.root / "ImageSets" / str(year) / f"{split}.txt"
        if not list_file.is_file():
            raise FileNotFoundError(
                f"DAVIS sequence list not found: expected {list_file} (one sequence name a line; "
                "the DAVIS 2017 trainval download has ImageSets/2016 and ImageSets/2017); "
                f"{download_hint('davis2017')}"
            )
        names = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        if not names:
            raise ValueError(f"{list_file} lists no sequences")
        self.names = list(dict.fromkeys(names))
        self.tag = f"{tag}-{split}"

    def sequence(self, name: str) -> VideoSequence:
        images = _list_images(self.image_root / name)
        labels = _list_pngs(self.label_root / name)
        if not images and not labels:
            raise FileNotFoundError(
                f"DAVIS sequence {name!r}: neither {self.image_root / name} nor "
                f"{self.label_root / name} exists; {download_hint('davis2017')}"
            )
        if images:
            frame_paths = images
        else:  # annotations only (e.g. ../shared DAVIS2016): frames named after the masks
            frame_paths = [self.image_root / name / f"{p.stem}.jpg" for p in labels]
        index_of = {p.stem: i for i, p in enumerate(frame_paths)}
        annotations = {index_of[p.stem]: p for p in labels if p.stem in index_of}
        if 0 not in annotations:
            raise FileNotFoundError(
                f"DAVIS sequence {name!r}: the first frame's mask "
                f"{self.label_root / name / (frame_paths[0].stem + '.png')} is missing; the "
                "semi-supervised task needs it"
            )
        single = self.year == 2016
        if single:
            object_ids = [1]
        else:
            present = np.unique(read_mask(annotations[0]))
            object_ids = [int(v) for v in present if v not in (0, VOID_LABEL)]
        return VideoSequence(
            name=name,
            frame_paths=frame_paths,
            annotations=annotations,
            reference_frames=[0],
            object_ids=object_ids,
            first_frame_of_object={v: 0 for v in object_ids},
            single_object=single,
            dataset=self.tag,
        )

    def __repr__(self) -> str:
        return f"DAVIS({str(self.root)!r}, year={self.year}, split={self.split!r}, sequences={len(self)})"


def read_youtubevos_meta(path: str | Path) -> dict[str, dict[int, list[str]]]:
    """Parse a YouTube-VOS ``meta.json``: video -> {object id -> its frame names (sorted)}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"YouTube-VOS meta.json not found: {path}; {download_hint('youtubevos2019')}"
        )
    try:
        videos = json.loads(path.read_text())["videos"]
        return {
            vid: {int(obj): sorted(info["frames"]) for obj, info in entry["objects"].items()}
            for vid, entry in videos.items()
        }
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(
            f"{path} is not a YouTube-VOS meta.json (expected "
            '{"videos": {vid: {"objects": {"<id>": {"frames": [...]}}}}}): ' + repr(error)
        ) from error


def find_youtubevos_split(root: str | Path, split: str, year: int | None = None) -> Path:
    """The folder of a YouTube-VOS split: ``<root>/<split>`` or ``<root>/<year>/<split>``
    (the official code's ``datasets/YTB/<year>/<split>`` layout)."""
    root = Path(root)
    candidates = [root / split] + ([root / str(year) / split] if year is not None else [])
    for candidate in candidates:
        if (candidate / "JPEGImages").is_dir():
            return candidate
    raise FileNotFoundError(
        f"YouTube-VOS {split!r} split not found: expected {candidates[0]}/JPEGImages"
        + (f" or {candidates[1]}/JPEGImages" if len(candidates) > 1 else "")
        + f"; {download_hint(f'youtubevos{year or 2019}')}"
    )


class YouTubeVOS(_SequenceCollection):
    """YouTube-VOS 2018/2019 ``valid`` as :class:`VideoSequence` objects (see the module doc).

    Args:
        root: folder holding ``valid/`` (and ``valid_all_frames/``), or ``<root>/<year>/valid``.
        year: 2018 or 2019 (only used to find ``<root>/<year>`` and in messages).
        split: ``valid`` (``val`` is accepted) or ``test``.
        all_frames: read every frame from ``<split>_all_frames/JPEGImages``.
    """

    def __init__(
        self,
        root: str | Path,
        year: int = 2019,
        split: str = "valid",
        all_frames: bool = False,
    ) -> None:
        year = int(year)
        if year not in YOUTUBEVOS_YEARS:
            raise ValueError(f"YouTube-VOS year must be one of {YOUTUBEVOS_YEARS}, got {year}")
        split = "valid" if split == "val" else split
        self.root, self.year, self.split, self.all_frames = Path(root), year, split, all_frames
        self.split_root = find_youtubevos_split(root, split, year)
        self.label_root = self.split_root / "Annotations"
        _require_dir(self.label_root, "YouTube-VOS annotations", f"youtubevos{year}")
        self.meta = read_youtubevos_meta(self.split_root / "meta.json")
        if all_frames:
            self.image_root = self.split_root.with_name(split + "_all_frames") / "JPEGImages"
            _require_dir(self.image_root, "YouTube-VOS all-frames images", f"youtubevos{year}")
        else:
            self.image_root = self.split_root / "JPEGImages"
        self.names = list(self.meta)
        if not self.names:
            raise ValueError(f"{self.split_root / 'meta.json'} lists no videos")
        self.tag = f"youtubevos{year}-{split}" + ("-all" if all_frames else "")

    def sequence(self, name: str) -> VideoSequence:
        objects = self.meta[name]
        if not objects:
            raise ValueError(f"YouTube-VOS video {name!r} lists no objects in meta.json")
        listed = sorted({frame for frames in objects.values() for frame in frames})
        if self.all_frames:
            dense = [p.stem for p in _list_images(self.image_root / name)]
            kept = [s for s in dense if listed[0] <= s <= listed[-1]]
            stems = kept or listed
        else:
            stems = listed
        index_of = {s: i for i, s in enumerate(stems)}
        first = {}
        for obj, frames in objects.items():
            if not frames:
                continue
            if frames[0] not in index_of:
                raise ValueError(
                    f"YouTube-VOS video {name!r}: object {obj} starts on frame {frames[0]}, which "
                    f"is not among the frames of {self.image_root / name}"
                )
            first[obj] = index_of[frames[0]]
        object_ids = sorted(first, key=lambda obj: (first[obj], obj))
        reference_frames = sorted(set(first.values()))
        annotations = {i: self.label_root / name / f"{stems[i]}.png" for i in reference_frames}
        missing = [p for p in annotations.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"YouTube-VOS video {name!r}: first-appearance mask {missing[0]} is missing"
            )
        listed_set = set(listed)
        return VideoSequence(
            name=name,
            frame_paths=[self.image_root / name / f"{s}.jpg" for s in stems],
            annotations=annotations,
            reference_frames=reference_frames,
            object_ids=object_ids,
            first_frame_of_object=first,
            output_frames=[i for i, s in enumerate(stems) if s in listed_set],
            dataset=self.tag,
        )

    def __repr__(self) -> str:
        return (
            f"YouTubeVOS({str(self.root)!r}, year={self.year}, split={self.split!r}, "
            f"all_frames={self.all_frames}, videos={len(self)})"
        )


def _as_video(item, position: int) -> tuple[str, np.ndarray, np.ndarray]:
    """(name, frames uint8 [T, H, W, 3], labels [T, H, W]) from a sample dict or a tuple."""
    if isinstance(item, dict):
        name, frames, masks = (
            item.get("name", f"video{position:04d}"),
            item["frames"],
            item["masks"],
        )
    else:
        name, frames, masks = item
    frames = frames.numpy() if hasattr(frames, "numpy") else np.asarray(frames)
    masks = masks.numpy() if hasattr(masks, "numpy") else np.asarray(masks)
    if frames.ndim == 4 and frames.shape[1] == 3 and frames.shape[-1] != 3:
        frames = frames.transpose(0, 2, 3, 1)  # [T, 3, H, W] training layout -> [T, H, W, 3]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"video {name!r}: frames must be uint8 [T, H, W, 3] or [T, 3, H, W], got "
            f"{frames.dtype} {tuple(frames.shape)}"
        )
    if masks.shape != frames.shape[:3]:
        raise ValueError(
            f"video {name!r}: masks must be [T, H, W] = {tuple(frames.shape[:3])}, got {tuple(masks.shape)}"
        )
    return str(name), frames, masks


def write_davis_layout(
    videos: Iterable,
    root: str | Path,
    split: str = "val",
    year: int = 2017,
    resolution: str = "480p",
    quality: int = 95,
) -> Path:
    """Write videos in the DAVIS layout so that :class:`DAVIS` (and the official toolkits) read
    them: ``JPEGImages/<res>/<name>/00000.jpg``, ``Annotations/<res>/<name>/00000.png``
    (palette PNGs, every frame) and ``ImageSets/<year>/<split>.txt``.

    ``videos`` yields training-format samples (dicts with ``frames`` ``[T, 3, H, W]`` or
    ``[T, H, W, 3]`` uint8, ``masks`` ``[T, H, W]`` and ``name``; e.g. a
    :class:`~aot_edu.data.synthetic.SyntheticVideos`) or ``(name, frames, masks)`` tuples.
    Returns ``root``.
    """
    root = Path(root)
    names = []
    for position, item in enumerate(videos):
        name, frames, masks = _as_video(item, position)
        if name in names:
            raise ValueError(f"two videos are named {name!r}; names must be unique")
        for t in range(frames.shape[0]):
            image_path = root / "JPEGImages" / resolution / name / f"{t:05d}.jpg"
            image_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(frames[t]).save(image_path, quality=quality)
            write_mask(root / "Annotations" / resolution / name / f"{t:05d}.png", masks[t])
        names.append(name)
    if not names:
        raise ValueError("no videos to write")
    list_file = root / "ImageSets" / str(year) / f"{split}.txt"
    list_file.parent.mkdir(parents=True, exist_ok=True)
    list_file.write_text("".join(f"{n}\n" for n in names))
    return root


def open_dataset(
    dataset: str, split: str | None = None, root: str | Path | None = None,
    all_frames: bool = False,
) -> DAVIS | YouTubeVOS:
    """The reader of a registered dataset's split (:mod:`.sources`): ``davis2017`` /
    ``davis2016`` (default split ``val``), ``youtubevos2019`` / ``youtubevos2018`` (``valid``),
    from ``root`` or where ``aot-edu download dataset`` puts it."""
    source = get_dataset(dataset)
    split = split or source.eval_split
    root = Path(root) if root is not None else dataset_folder(source.name)
    if source.family == "davis":
        if all_frames:
            raise ValueError("all_frames applies to YouTube-VOS only (DAVIS is annotated densely)")
        return DAVIS(root, year=source.year, split=split)
    return YouTubeVOS(root, year=source.year, split=split, all_frames=all_frames)
