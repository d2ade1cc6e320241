"""Your own video: a video file (or a folder of frames) in; mask PNGs and an overlay video out.

What ``aot-edu segment`` runs, as one call in Python::

    from aot_edu.video import segment_video

    result = segment_video("clip.mp4", "first.png", model, overlay="clip_aot.mp4")
    result = segment_video("clip.mp4", {0: "first.png", 48: "newcomer.png"}, model,
                           out="masks/", overlay="clip_aot.gif", start="2s", every=2)

The masks are label maps (arrays ``[H, W]`` or PNG files, 0 = background) keyed by **frame
number in the video** (0 = its first frame; a single mask is the first frame segmented). A
later mask's new labels are tracked from that frame on, beside the objects already tracked
(:func:`aot_edu.segment_frames`). Frames are decoded, segmented and written one at a time
(:mod:`aot_edu.data.video`), so memory does not grow with the video - except AOT-L's long-term
memory, which is bounded to :data:`LONG_VIDEO_MEMORY` frames by default when the video is long
enough to grow past it (the official code lets it grow; ``max_long_term_frames=None`` does too).

It runs in two steps, so that everything given is checked before a model is built or
downloaded: :func:`plan_video` opens the video, reads and checks the masks and the outputs
(nothing is overwritten without ``overwrite=True``; the input never), and returns a
:class:`VideoJob`; :meth:`VideoJob.run` segments. :func:`segment_video` does both.

Nothing computed is lost: a video that breaks off (damaged or truncated) or a mask keyed past
its end stops the run with a one-line ``ValueError`` that says how many masks were written; the
masks and the overlay written so far are kept (the overlay is finished, playable).
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import Tensor

from aot_edu import viz
from aot_edu.data import io
from aot_edu.data.video import (
    VIDEO_WRITE_SUFFIXES,
    DecodedFrame,
    FrameFolder,
    VideoReadError,
    VideoSource,
    VideoWriter,
    open_video,
)
from aot_edu.inference.session import segment_frames
from aot_edu.model import AOT
from aot_edu.model.variants import LONG_VIDEO_MEMORY

FOLDER_FPS = 24.0  # overlay rate of a frame folder, which has no times (DAVIS was 24 fps)


@dataclass
class VideoResult:
    """What :meth:`VideoJob.run` did."""

    frames: int  # frames segmented
    entry_frames: dict[int, int]  # object label -> frame number of its first mask
    out: Path | None  # folder of mask PNGs (<frame name>.png)
    overlay: Path | None  # the overlay video
    masks_written: int
    max_long_term_frames: int | None  # the bound the run used (None: unbounded)
    seconds: float  # wall time of the run
    notes: list[str] = field(default_factory=list)  # what the run told (also given to `log`)


def _mask_name(frame: int | None, path: Path | None, prefix: str) -> str:
    if path is not None:
        return f"{prefix}mask {path}"
    return "mask" if frame is None else f"masks[{frame}]"


@dataclass
class VideoJob:
    """A checked video segmentation, ready to :meth:`run` (made by :func:`plan_video`)."""

    source: VideoSource | FrameFolder
    masks: dict[int | None, np.ndarray]  # frame number (None: the first segmented) -> labels
    mask_paths: dict[int | None, Path]  # the masks given as files
    out: Path | None
    overlay: Path | None
    fps: float | None  # overlay rate; None: the video's own timing
    option_prefix: str = ""  # "--" when the names in messages are command-line options
    written: int = 0  # masks written so far (kept after an error or an interruption)
    overlay_frames: int = 0  # frames in the overlay so far
    told_kept: bool = False  # the run's error message said what was kept

    def expected_frames(self) -> int | None:
        """Frames the run will segment (from the file's header; ``None`` if it does not say)."""
        return self.source.expected_frames()

    def _option(self, name: str) -> str:
        return f"{self.option_prefix}{name}"

    def _setting(self, name: str, value: str) -> str:
        """How the user sets an option: ``--fps N`` on the command line, ``fps=N`` in Python."""
        if self.option_prefix:
            return f"{self.option_prefix}{name}{' ' + value if value else ''}"
        return f"{name.replace('-', '_')}={value or 'True'}"

    def _first_frame(self) -> int | None:
        """Frame number of the first frame segmented, when known before decoding."""
        if isinstance(self.source, FrameFolder):
            return self.source.indices[0]
        start = self.source.selection.start
        return 0 if start is None else start.frame  # None for a time: known once decoded

    def check_frame_numbers(self, first: int | None = None) -> dict[int, np.ndarray]:
        """The masks keyed by frame number, the first segmented frame (``first``, known here
        unless ``start`` is a time and nothing was decoded yet) resolved; every key checked
        against the selection and the length the file gives. One-line ``ValueError``s."""
        first = self._first_frame() if first is None else first
        if first is None:
            return {}
        selection = self.source.selection
        if isinstance(self.source, FrameFolder):
            exact = self.source.frame_count
        elif any(k is not None and k > first for k in self.masks):  # a later mask: where's the end?
            exact = self.source.count_frames()
        else:
            exact = self.source.header_frames
        if None in self.masks and first in self.masks:
            raise ValueError(f"two masks for frame {first}, the first frame segmented; give one")
        keyed = {first if k is None else k: m for k, m in self.masks.items()}
        part = selection.describe()
        where = "" if part == "the whole video" else f" ({part})"
        if first not in keyed:
            shown = ", ".join(map(str, sorted(keyed)))
            how = (f"--mask {first}:PATH (or --mask PATH)" if self.option_prefix
                   else f"the key {first} (or give a single mask)")
            raise ValueError(
                f"the masks must include frame {first}, the first frame segmented{where}; got "
                f"frame{'s' if len(keyed) > 1 else ''} {shown}: give the first mask {how}")
        end = selection.end.frame if selection.end is not None else None
        for k in sorted(keyed):
            if k < first:
                raise ValueError(f"the mask for frame {k} comes before the first frame "
                                 f"segmented, {first}{where}; give a start at or before it")
            if end is not None and k >= end:
                raise ValueError(f"the mask for frame {k} lies past the end of the frames "
                                 f"segmented{where}: end {end} is exclusive")
            if exact is not None and k >= exact:
                raise ValueError(f"the mask for frame {k} lies past the end of "
                                 f"{self.source.path}, which has {exact} frames (0..{exact - 1}); "
                                 "key each mask by its frame number, 0 = the first frame")
            if (k - first) % selection.every:
                before = first + (k - first) // selection.every * selection.every
                raise ValueError(
                    f"frame {k} is skipped by every {selection.every} (frames {first}, "
                    f"{first + selection.every}, {first + 2 * selection.every}, ...); give the "
                    f"mask of frame {before} or {before + selection.every}")
        return keyed

    def run(
        self,
        model: AOT,
        *,
        long_term_gap: int | None = None,
        max_long_term_frames: int | str | None = "auto",
        progress: bool = True,
        log: Callable[[str], None] | None = print,
    ) -> VideoResult:
        """Segment the video: write each mask PNG (``out``) and overlay frame (``overlay``)
        as soon as its frame is predicted.

        Args:
            model: an :class:`~aot_edu.model.AOT` (:func:`aot_edu.build_model`).
            long_term_gap: frames between long-term memory updates (the variant's default).
            max_long_term_frames: bound on the long-term memory in frames; ``"auto"`` (default):
                :data:`LONG_VIDEO_MEMORY` when the video is long enough for the memory to grow
                past it (or its length is unknown), else unbounded; ``None``: unbounded.
            progress: a progress bar (frames/s, time left).
            log: receives the run's notes (the memory bound, a variable frame rate), one line
                each; ``None``: keep them in the result only.
        """
        notes: list[str] = []

        def note(text: str) -> None:
            notes.append(text)
            if log is not None:
                log(text)

        bound = self._memory_bound(model, long_term_gap, max_long_term_frames, note)
        self.written = self.overlay_frames = 0
        self.told_kept = False
        started = time.perf_counter()
        expected = self.expected_frames()
        decoded = self.source.frames()
        first = next(decoded)  # the selection's first frame: its number keys the first mask
        keyed = self.check_frame_numbers(first.index)
        every = self.source.selection.every
        masks = {(k - first.index) // every: m for k, m in keyed.items()}

        pending: deque[DecodedFrame] = deque()
        ended = [False]

        def images() -> Iterator[np.ndarray]:
            for frame in _chain(first, decoded):
                pending.append(frame)
                yield frame.image
            ended[0] = True

        writer = None
        if self.overlay is not None:
            rate = self.fps or (self.source.fps / every if self.source.fps else FOLDER_FPS)
            writer = VideoWriter(self.overlay, fps=rate)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=expected, desc="segment", unit="frame", dynamic_ncols=True)
        tracked: list[int] = []
        entry_frames: dict[int, int] = {}
        segmented = 0
        try:
            steps = segment_frames(images(), masks, model, long_term_gap=long_term_gap,
                                   max_long_term_frames=bound)
            for step in steps:
                frame = pending.popleft()
                for label in step.entered:
                    tracked.append(label)
                    entry_frames[label] = frame.index
                mask = step.mask.numpy()
                if self.out is not None:
                    self._write_mask(self.out / f"{frame.name}.png", mask)
                if writer is not None:
                    picture = viz.draw_legend(viz.overlay(frame.image, mask), sorted(tracked))
                    writer.write(picture, None if self.fps else frame.time)
                    self.overlay_frames = writer.frames
                segmented += 1
                if bar is not None:
                    bar.update()
        except VideoReadError as error:
            raise ValueError(f"{error}; {self._kept()}") from None
        except ValueError:
            last = first.index + (segmented - 1) * every
            late = sorted(k for k in keyed if k > last)
            if not (ended[0] and late):  # else: the engine's check of masks past the end
                raise
            part = self.source.selection.describe()
            upto = f"{self.source.path} ends" if part == "the whole video" else \
                f"the frames segmented ({part}) end"
            raise ValueError(
                f"a mask was given for frame {', '.join(map(str, late))} but {upto} at frame "
                f"{last}; {self._kept()}") from None
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        gaps = self.source.frame_gaps
        if writer is not None and self.fps is None and gaps and gaps[1] > 1.5 * gaps[0] + 1e-3:
            note(f"{self.source.path} has a variable frame rate (frames {1000 * gaps[0]:.0f}-"
                 f"{1000 * gaps[1]:.0f} ms apart): the overlay shows each frame at its own time; "
                 f"{self._setting('fps', 'N')} gives it a constant rate")
        return VideoResult(segmented, entry_frames, self.out, self.overlay, self.written, bound,
                           time.perf_counter() - started, notes)

    def _memory_bound(self, model: AOT, long_term_gap, max_long_term_frames, note) -> int | None:
        if max_long_term_frames != "auto":
            return max_long_term_frames
        gap = long_term_gap or model.config.long_term_gap_test
        expected = self.expected_frames()
        grows_to = None if expected is None else (expected - 1) // gap + len(self.masks)
        if grows_to is not None and grows_to <= LONG_VIDEO_MEMORY:
            return None  # the official, unbounded memory stays small
        length = f"{expected} frames" if expected is not None else "a length its header does not give"
        grow = f"; unbounded it would grow to {grows_to}" if grows_to is not None else ""
        note(f"long video ({length}): the long-term memory keeps at most {LONG_VIDEO_MEMORY} "
             f"frames (the masks' frames and the latest{grow}); "
             f"{self._setting('max-long-term-frames', 'N')} changes it, "
             f"{self._setting('max-long-term-frames', 'none' if self.option_prefix else 'None')} "
             "lifts it")
        return LONG_VIDEO_MEMORY

    def _write_mask(self, target: Path, mask: np.ndarray) -> None:
        try:
            io.write_mask(target, mask)
        except OSError as error:  # e.g. the disk filled up, the folder went away
            raise ValueError(f"could not write {target} ({error.strerror or error}); free disk "
                             f"space or make {self._option('out')} {self.out} writable, then "
                             f"run the same command with {self._setting('overwrite', '')}; "
                             f"{self._kept()}") from None
        self.written += 1

    def _kept(self) -> str:
        """'the 37 masks written to out are kept and ...', for an error message."""
        self.told_kept = True
        parts = []
        if self.out is not None:
            parts.append(f"the {self.written} mask{'' if self.written == 1 else 's'} written to "
                         f"{self.out} are kept")
        if self.overlay is not None:
            parts.append(f"{self.overlay} holds the {self.overlay_frames} frame"
                         f"{'' if self.overlay_frames == 1 else 's'} before it")
        return " and ".join(parts)


def _chain(first: DecodedFrame, rest: Iterator[DecodedFrame]) -> Iterator[DecodedFrame]:
    yield first
    yield from rest


def _read_given_mask(value, name: str) -> np.ndarray:
    if isinstance(value, str | Path):
        return io.read_mask(value)
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a label map (numpy array or torch tensor) or a PNG "
                        f"file, got {type(value).__name__}")
    return value


def plan_video(
    video: str | Path | VideoSource | FrameFolder,
    masks,
    *,
    out: str | Path | None = None,
    overlay: str | Path | None = None,
    start=None,
    end=None,
    every: int = 1,
    fps: float | None = None,
    overwrite: bool = False,
    option_prefix: str = "",
) -> VideoJob:
    """Open ``video``, read ``masks`` and check everything :meth:`VideoJob.run` will need.

    Args:
        video: a video file, a folder of frames, or an opened :class:`VideoSource` /
            :class:`FrameFolder` (then ``start`` / ``end`` / ``every`` are its own).
        masks: a label map ``[H, W]`` (array, tensor or PNG path) for the first frame
            segmented, or ``{frame number: label map}`` (frame numbers in the video, 0 = its
            first frame; for a folder, positions in its natural order); the first frame
            segmented must have one. Labels: 0 = background, any positive values (0..255 in
            PNG files and when writing ``out``).
        out: folder for the mask PNGs (``<frame name>.png``: the frame file's stem, or the
            frame number as ``00042``); not the frames' folder or a mask's folder.
        overlay: video file of the frames with the masks painted (DAVIS colours, outlines,
            a legend of object ids): ``.mp4 .mov .mkv .webm .gif``.
        start, end, every: the part to segment: ``start <= frame < end``, each a frame number
            or a time (``"4.5s"``, ``"1:02"``, a ``float`` in seconds); every ``every``-th frame.
        fps: the overlay's frame rate; ``None``: the video's own timing (a frame folder: 24).
        overwrite: replace masks / an overlay left by an earlier run (the inputs never).
        option_prefix: ``"--"`` to name the arguments as command-line options in messages.

    Raises a one-line ``ValueError`` (``FileNotFoundError`` for a missing file) naming what is
    wrong and the fix. Creates nothing.
    """
    if out is None and overlay is None:
        raise ValueError(f"nothing to write: give {option_prefix}out (a folder for the mask "
                         f"PNGs) and/or {option_prefix}overlay (a video file)")
    given = dict(masks) if isinstance(masks, Mapping) else {None: masks}
    for k in given:
        if k is not None and (isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0):
            raise ValueError(f"masks are keyed by frame number, a whole number >= 0; got {k!r}")
    paths = {k: Path(v) for k, v in given.items() if isinstance(v, str | Path)}
    if isinstance(video, VideoSource | FrameFolder):
        source = video
    else:
        source = open_video(video, start, end, every, exclude=list(paths.values()))
    labels = {k: _read_given_mask(v, _mask_name(k, paths.get(k), option_prefix))
              for k, v in given.items()}
    height, width = source.size
    for k, mask in labels.items():
        name = _mask_name(k, paths.get(k), option_prefix)
        if mask.ndim != 2:
            raise ValueError(f"{name} must be a label map [H, W], got shape {mask.shape}")
        if mask.shape != (height, width):
            if isinstance(source, FrameFolder):
                frame = f"the first frame {source.paths[source.indices[0]].name} is"
            else:
                frame = f"the video {source.path.name} is"
            raise ValueError(
                f"{name} is {mask.shape[1]}x{mask.shape[0]} (WxH) but {frame} {width}x{height}; "
                "give each mask at the frame size (resize it with nearest-neighbour)")
        if not mask.any():
            raise ValueError(f"{name} is empty (all background); label at least one object with "
                             "a value > 0")
        if out is not None and (mask.min() < 0 or mask.max() > 255):
            raise ValueError(f"{name} holds labels outside 0..255, which PNG masks cannot hold; "
                             "renumber the objects 1, 2, 3, ... or write no mask PNGs (only an "
                             "overlay)")
    job = VideoJob(source, labels, paths, None if out is None else Path(out),
                   None if overlay is None else Path(overlay), fps, option_prefix)
    if fps is not None and not (isinstance(fps, int | float) and fps > 0):
        raise ValueError(f"{option_prefix}fps must be a positive number, got {fps!r}")
    job.check_frame_numbers()
    _check_outputs(job, overwrite)
    return job


def _check_outputs(job: VideoJob, overwrite: bool) -> None:
    """Refuse outputs that would overwrite the inputs, or earlier results without overwrite,
    or that cannot be written. Creates nothing."""
    opt = job._option
    source = job.source.path.resolve()
    mask_folders = {p.resolve().parent: p for p in job.mask_paths.values()}
    inputs = {p.resolve() for p in job.mask_paths.values()} | {source}
    if job.out is not None:
        out = job.out
        if out.resolve() == source:
            if isinstance(job.source, FrameFolder):
                raise ValueError(f"{opt('out')} {out} is the frames folder: the masks would "
                                 f"overwrite or mix with the frames; give a separate folder, "
                                 f"e.g. {opt('out')} {out}_masks")
            raise ValueError(f"{opt('out')} {out} is the input video; give a folder for the "
                             f"masks, e.g. {opt('out')} {out.with_suffix('')}_masks")
        if out.resolve() in mask_folders:
            raise ValueError(f"{opt('out')} {out} is the folder of {opt('mask')} "
                             f"{mask_folders[out.resolve()]}: the masks could overwrite it (and "
                             "the annotations beside it); give a separate folder")
        if out.exists() and not out.is_dir():
            raise ValueError(f"{opt('out')} {out} is a file; give a folder for the masks")
        io.check_writable_folder(out, opt("out"))
        if isinstance(job.source, FrameFolder):
            targets = [out / f"{job.source.paths[i].stem}.png" for i in job.source.indices]
            existing = [t.name for t in targets if t.exists()]
        else:  # frame numbers as names: any earlier video's masks would mix with these
            existing = sorted(p.name for p in out.glob("*.png") if p.stem.isdigit()) \
                if out.is_dir() else []
        if existing and not overwrite:
            shown = ", ".join(existing[:3]) + (", ..." if len(existing) > 3 else "")
            raise ValueError(f"{opt('out')} {out} already holds {len(existing)} of the masks "
                             f"this run would write ({shown}); pass {job._setting('overwrite', '')} to "
                             "replace them, or give another folder")
    if job.overlay is not None:
        overlay = job.overlay
        if overlay.suffix.lower() not in VIDEO_WRITE_SUFFIXES:
            raise ValueError(f"{opt('overlay')} {overlay}: write a "
                             f"{', '.join(VIDEO_WRITE_SUFFIXES)} file (.gif for short clips)")
        if overlay.resolve() in inputs:
            raise ValueError(f"{opt('overlay')} {overlay} is an input of this run; give another "
                             "file for the overlay (the input is never overwritten)")
        if overlay.is_dir():
            raise ValueError(f"{opt('overlay')} {overlay} is a folder; give a video file name")
        if overlay.exists() and not overwrite:
            raise ValueError(f"{opt('overlay')} {overlay} already exists; pass "
                             f"{job._setting('overwrite', '')} to replace it, or give another file")
        io.check_writable_folder(overlay.parent, opt("overlay"))


def segment_video(
    video: str | Path | VideoSource | FrameFolder,
    masks,
    model: AOT,
    *,
    out: str | Path | None = None,
    overlay: str | Path | None = None,
    start=None,
    end=None,
    every: int = 1,
    fps: float | None = None,
    overwrite: bool = False,
    long_term_gap: int | None = None,
    max_long_term_frames: int | str | None = "auto",
    progress: bool = True,
    log: Callable[[str], None] | None = print,
) -> VideoResult:
    """Segment a video file or frame folder from its masks; write mask PNGs and/or an overlay.

    :func:`plan_video` (arguments ``video`` to ``overwrite``) then :meth:`VideoJob.run`
    (``model`` and the rest). E.g. ``segment_video("clip.mp4", {0: "first.png", 48:
    "new.png"}, model, overlay="clip_aot.mp4")``. Returns a :class:`VideoResult`.
    """
    job = plan_video(video, masks, out=out, overlay=overlay, start=start, end=end, every=every,
                     fps=fps, overwrite=overwrite)
    return job.run(model, long_term_gap=long_term_gap, max_long_term_frames=max_long_term_frames,
                   progress=progress, log=log)


def log_to_stderr(text: str) -> None:
    """A ``log`` for :meth:`VideoJob.run` that keeps stdout for results (the command line)."""
    print(f"aot-edu: {text}", file=sys.stderr)


__all__ = ["LONG_VIDEO_MEMORY", "VideoJob", "VideoResult", "plan_video", "segment_video"]
