"""Videos in and out, one frame at a time: decoding a video file, a frame folder, encoding.

- :class:`VideoSource` decodes a video file (``.mp4 .mov .webm .avi .mkv .m4v .gif``, whatever
  FFmpeg reads) with PyAV, one frame at a time, so memory does not grow with the video.
  ``start`` / ``end`` select a part (a frame number or a time), ``every`` keeps every N-th
  frame; iterating over it gives uint8 RGB frames ``[H, W, 3]``, what
  :func:`aot_edu.segment_frames` takes; :meth:`VideoSource.frames` also gives each frame's
  number, time and mask file name.
- :class:`FrameFolder` is the same over a folder of ``.jpg``/``.png`` frames (natural order).
- :func:`open_video` opens either for a path.
- :class:`VideoWriter` encodes RGB frames as they come: ``.mp4 .mov .mkv`` (H.264), ``.webm``
  (VP9) or ``.gif``, at each frame's own time (the source's timing, variable frame rates
  included) or at a fixed rate.

PyAV (``pip install av``) brings its own FFmpeg: nothing to install system-wide. Frame numbers
count decoded frames from the start of the file (0 = the first); times are seconds from the
video's first frame. A phone video's rotation flag is applied (frames come out upright).
Errors are one-line ``ValueError`` messages that name the file, say what is wrong and how to
fix it; :class:`VideoReadError` is the one for a file that breaks off while it is decoded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import io

VIDEO_READ_SUFFIXES = io.VIDEO_SUFFIXES
VIDEO_WRITE_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".gif")
PYAV_HINT = "PyAV reads and writes videos: pip install av (it brings its own FFmpeg)"


def _av():
    try:
        import av
    except ImportError:
        raise ImportError(PYAV_HINT) from None
    return av


class VideoReadError(ValueError):
    """A video that breaks off while it is decoded (damaged or truncated): the frames before
    the break were delivered; :attr:`frames_read` says how many."""

    def __init__(self, message: str, frames_read: int) -> None:
        super().__init__(message)
        self.frames_read = frames_read


# --- where to start and end ----------------------------------------------------------------

@dataclass(frozen=True)
class Position:
    """A place in a video: a frame number or a time in seconds (one of the two)."""

    frame: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        return str(self.frame) if self.frame is not None else f"{self.seconds:g}s"


_TIME = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_position(value: int | float | str | Position | None, option: str = "start") -> Position | None:
    """``start`` / ``end`` as given: an ``int`` or a string of digits is a frame number
    (``120``); a ``float`` or a string ending in ``s`` is seconds (``4.5``, ``"4.5s"``);
    ``"1:02.5"`` and ``"1:00:02"`` are minutes:seconds and hours:minutes:seconds."""
    if value is None or isinstance(value, Position):
        return value
    error = ValueError(f"{option} {value!r}: give a frame number (120), seconds (4.5s) or "
                       "minutes:seconds (1:02.5), not negative")
    if isinstance(value, bool):
        raise error
    if isinstance(value, int | np.integer):
        if value < 0:
            raise error
        return Position(frame=int(value))
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise error
        return Position(seconds=float(value))
    text = str(value).strip().lower()
    if text.isdigit():
        return Position(frame=int(text))
    if text.endswith("s"):
        try:
            seconds = float(text[:-1])
        except ValueError:
            raise error from None
        if not math.isfinite(seconds) or seconds < 0:
            raise error
        return Position(seconds=seconds)
    match = _TIME.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        return Position(seconds=int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds))
    raise error


class _Selection:
    """Which decoded frames to keep: from ``start``, before ``end``, every ``every``-th."""

    EPS = 1e-4  # seconds: frame times are rationals turned into floats

    def __init__(self, start, end, every: int, where: str) -> None:
        self.start = parse_position(start, "start")
        self.end = parse_position(end, "end")
        if isinstance(every, bool) or not isinstance(every, int | np.integer) or every < 1:
            raise ValueError(f"every must be a whole number >= 1 (1 keeps every frame), got {every!r}")
        self.every = int(every)
        self.where = where
        for name, pos in (("start", self.start), ("end", self.end)):
            if pos is not None and pos.seconds is not None and where == "folder":
                raise ValueError(f"{name} {pos}: a folder of frames has no times; give {name} as "
                                 "a frame number (the position in the folder, 0 = the first)")
        same_kind = (self.start is not None and self.end is not None
                     and (self.start.frame is None) == (self.end.frame is None))
        if same_kind and ((self.start.frame or 0) >= (self.end.frame or 0)
                          if self.start.frame is not None
                          else self.start.seconds >= self.end.seconds):
            raise ValueError(f"end {self.end} is not after start {self.start}: nothing to "
                             "segment (end is exclusive: frames start <= n < end)")

    def before_start(self, index: int, time: float | None) -> bool:
        if self.start is None:
            return False
        if self.start.frame is not None:
            return index < self.start.frame
        return time is not None and time < self.start.seconds - self.EPS

    def at_end(self, index: int, time: float | None) -> bool:
        if self.end is None:
            return False
        if self.end.frame is not None:
            return index >= self.end.frame
        return time is not None and time >= self.end.seconds - self.EPS

    def describe(self) -> str:
        parts = [f"start {self.start}" if self.start else "", f"end {self.end}" if self.end else "",
                 f"every {self.every}" if self.every > 1 else ""]
        return ", ".join(p for p in parts if p) or "the whole video"

    def count(self, total: int | None, fps: float | None) -> int | None:
        """Frames kept out of ``total`` decoded frames (an estimate for times)."""
        if total is None:
            return None

        def frame_of(pos: Position | None, default: int) -> int:
            if pos is None:
                return default
            if pos.frame is not None:
                return pos.frame
            return math.ceil(pos.seconds * fps - 1e-6) if fps else default

        first, stop = frame_of(self.start, 0), min(frame_of(self.end, total), total)
        return max(0, math.ceil((stop - first) / self.every))


@dataclass(frozen=True)
class DecodedFrame:
    """One frame of a :class:`VideoSource` or :class:`FrameFolder`."""

    index: int  # frame number in the file or folder, 0 = the first
    time: float | None  # seconds since the video's first frame (None in a frame folder)
    image: np.ndarray  # uint8 RGB [H, W, 3]
    name: str  # file stem of its mask: the frame file's stem, or the number (00042)


# --- video files -----------------------------------------------------------------------------

def _open_error(path: Path, error: Exception) -> ValueError:
    reason = getattr(error, "strerror", None) or str(error)
    if isinstance(error, EOFError):  # FFmpeg's AVERROR_EOF: the file stops too soon
        return ValueError(f"{path}: the file ends before a video can be read from it (End of "
                          "file): it is incomplete (an interrupted download or copy?) or empty; "
                          "copy, download or export it again")
    return ValueError(
        f"{path}: not a readable video ({reason}); give a video file (.mp4, .mov, .webm, .avi, "
        ".mkv); if it is one, it is damaged or incomplete (an .mp4/.mov whose end is missing "
        "cannot be opened): copy, download or export it again")


def _no_frames(path: Path) -> ValueError:
    return ValueError(f"{path}: the file holds no video frames (empty, or cut off after its "
                      "header: copy, download or export it again); give a video with frames")


def _stream_end(container, stream) -> float | None:
    """Seconds from the first frame to the end of the video stream, as the file's header says;
    ``None`` when it does not say (then truncation shows only as a decoding error)."""
    start = stream.start_time * stream.time_base if stream.start_time is not None else 0
    if stream.duration:
        return float(stream.duration * stream.time_base)
    tag = (stream.metadata or {}).get("DURATION")  # Matroska / WebM write it per stream
    if tag:
        match = _TIME.match(tag.strip())
        if match:
            hours, minutes, seconds = match.groups()
            return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    if container.duration and len(container.streams) == 1:  # no audio track to lengthen it
        return container.duration / 1_000_000 - float(start)
    return None


class VideoSource:
    """A video file decoded one frame at a time (PyAV); iterating gives uint8 RGB ``[H, W, 3]``.

    Args:
        path: the video file.
        start, end: the part to read, ``start <= frame < end`` (end exclusive): a frame number
            (``int`` or ``"120"``) or a time (``float`` seconds, ``"4.5s"``, ``"1:02.5"``).
        every: keep every ``every``-th frame from ``start`` (``1``: all).

    Opening reads the header and decodes the first frame, so a file that is not a video, has
    no frames, or whose ``start`` lies past its end is refused at once. Attributes: ``size``
    (H, W, upright), ``fps`` (the average frame rate, ``None`` when the file gives none),
    ``frame_count`` (frames in the file: ``header_frames`` when the header counts them, else
    estimated from its duration, else ``None``),
    ``duration`` (seconds or ``None``), ``rotation`` (degrees counterclockwise applied).
    After a full pass, ``frame_gaps`` holds the shortest and longest time between frames
    (a variable frame rate shows as a spread).
    """

    def __init__(self, path: str | Path, start=None, end=None, every: int = 1) -> None:
        self.path = Path(path)
        self.selection = _Selection(start, end, every, "video")
        if not self.path.exists():
            raise FileNotFoundError(f"video file not found: {self.path}")
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; give a video file, or read a folder of "
                             "frames with FrameFolder (aot-edu segment --frames)")
        if self.path.suffix.lower() in io.FRAME_SUFFIXES:
            raise ValueError(f"{self.path} is an image, not a video; give a video file, or put "
                             "the frames in a folder (aot-edu segment --frames)")
        av = _av()
        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise _open_error(self.path, error) from None
        with container:
            if not container.streams.video:
                raise ValueError(f"{self.path}: the file holds no video stream (audio only?); "
                                 "give a video file")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.fps: float | None = float(rate) if rate else None
            self.header_frames: int | None = stream.frames or None  # exact, when given
            self.frame_count: int | None = self.header_frames
            self.duration = _stream_end(container, stream)
            if self.frame_count is None and self.duration and self.fps:
                self.frame_count = round(self.duration * self.fps)
            first = None
            try:
                first = next(container.decode(stream), None)
            except av.error.FFmpegError as error:
                raise _open_error(self.path, error) from None
            if first is None:
                raise _no_frames(self.path)
            self.rotation = int(getattr(first, "rotation", 0) or 0) % 360  # PyAV >= 14
            self.coded_size = (first.height, first.width)
        h, w = self.coded_size
        self.size: tuple[int, int] = (w, h) if self.rotation in (90, 270) else (h, w)
        self.frame_gaps: tuple[float, float] | None = None
        self._counted: int | None = None
        self._check_start()

    def _check_start(self) -> None:
        start = self.selection.start
        if start is None:
            return
        past = ((start.frame is not None and self.frame_count is not None
                 and start.frame >= self.frame_count)
                or (start.seconds is not None and self.duration is not None
                    and start.seconds >= self.duration))
        if past:
            raise ValueError(f"start {start} is past the end of {self.path} ({self.describe()}); "
                             "give an earlier start")

    def count_frames(self) -> int:
        """Count the frames of the file from its packets (read, not decoded: fast), for files
        whose header does not give the count (WebM, MKV); sets ``frame_count``. A file that
        breaks off counts the packets before the break."""
        if self.header_frames is not None:
            return self.header_frames
        if self._counted is not None:
            return self._counted
        av = _av()
        count = 0
        with av.open(str(self.path)) as container:
            try:
                for packet in container.demux(container.streams.video[0]):
                    count += packet.size > 0  # the last, empty packet only flushes
            except av.error.FFmpegError:
                pass  # decoding will say where the file breaks off
        self._counted = self.frame_count = count
        return count

    def describe(self) -> str:
        """``'250 frames, 10.0 s, 25 fps, 854x480'`` (what the header says)."""
        parts = []
        if self.frame_count is not None:
            parts.append(f"{self.frame_count} frames")
        if self.duration is not None:
            parts.append(f"{self.duration:.1f} s")
        if self.fps:
            parts.append(f"{self.fps:g} fps")
        parts.append(f"{self.size[1]}x{self.size[0]}")
        return ", ".join(parts)

    def expected_frames(self) -> int | None:
        """How many frames the selection keeps, from the header (``None`` if unknown)."""
        return self.selection.count(self.frame_count, self.fps)

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self.frames():
            yield frame.image

    def frames(self) -> Iterator[DecodedFrame]:
        """The selected frames, decoded one at a time.

        Frames before ``start`` and between kept frames are decoded (inter-frame codecs need
        them) but not converted. Raises :class:`VideoReadError` when decoding breaks off, and
        when the file ends well before the length its header gives (a truncated file), after
        the frames that could be read were yielded.
        """
        av = _av()
        selection = self.selection
        index = -1
        kept = 0
        last_time: float | None = None
        gaps: list[float] = [math.inf, 0.0]
        complete = False
        first_time: float | None = None
        container = av.open(str(self.path))
        try:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            decoded = container.decode(stream)
            first_kept = None
            while True:
                try:
                    frame = next(decoded, None)
                except av.error.FFmpegError as error:
                    raise self._broken(index + 1, error) from None
                if frame is None:
                    complete = True
                    break
                index += 1
                time = frame.time
                if time is None and self.fps:
                    time = index / self.fps
                if time is not None:
                    first_time = time if first_time is None else first_time
                    time -= first_time
                if time is not None and last_time is not None:
                    gaps = [min(gaps[0], time - last_time), max(gaps[1], time - last_time)]
                last_time = time
                if selection.at_end(index, time):
                    break
                if selection.before_start(index, time):
                    continue
                if first_kept is None:
                    first_kept = index
                if (index - first_kept) % selection.every:
                    continue
                kept += 1
                yield DecodedFrame(index, time, self._image(frame), f"{index:05d}")
        finally:
            container.close()
        if index > 0 and gaps[1] > 0:
            self.frame_gaps = (gaps[0], gaps[1])
        if complete:
            self._check_complete(index + 1, last_time)
        if kept == 0:
            raise ValueError(f"no frames of {self.path} lie in the selection ({selection.describe()}; "
                             f"the video has {index + 1} frames); give a start before its end")

    def _image(self, frame) -> np.ndarray:
        h, w = self.coded_size
        if (frame.height, frame.width) != (h, w):  # a stream that changes size: keep the first
            frame = frame.reformat(width=w, height=h)
        image = frame.to_ndarray(format="rgb24")
        if self.rotation:
            image = np.ascontiguousarray(np.rot90(image, k=self.rotation // 90))
        return image

    def _broken(self, frames_read: int, error: Exception) -> VideoReadError:
        reason = getattr(error, "strerror", None) or str(error)
        return VideoReadError(
            f"{self.path}: decoding failed after frame {frames_read - 1} ({reason}); the file "
            "looks damaged or truncated: copy, download or export it again", frames_read)

    def _check_complete(self, frames_read: int, last_time: float | None) -> None:
        # Some slack: an edit list (phone videos) may hide a frame or two the header counts.
        header = self.header_frames
        short_count = header is not None and frames_read < header - max(2, header // 100)
        gap = 1 / self.fps if self.fps else 0.04
        short_time = (header is None and last_time is not None and self.duration is not None
                      and last_time + gap < self.duration - max(3 * gap, 0.1))
        if short_count or short_time:
            says = (f"{self.duration:.2f} s" if self.duration is not None
                    else f"{self.frame_count} frames")
            ends = f"{last_time + gap:.2f} s" if last_time is not None else f"{frames_read} frames"
            raise VideoReadError(
                f"{self.path}: the video ends after frame {frames_read - 1} ({ends}) but its "
                f"header says {says}; the file looks truncated (an interrupted download or copy?): "
                "copy, download or export it again", frames_read)


# --- frame folders ---------------------------------------------------------------------------

class FrameFolder:
    """A folder of frames with the interface of :class:`VideoSource` (``start`` / ``end`` are
    positions in the folder's natural order, ``every`` as there; no times, ``fps`` None).

    Frames are listed and their headers checked on opening (one size, readable: see
    :func:`aot_edu.data.io.list_frames`); images are read one at a time. ``exclude``: files
    to skip (e.g. the first-frame mask kept among the frames).
    """

    def __init__(self, folder: str | Path, start=None, end=None, every: int = 1,
                 exclude: Sequence[str | Path] = ()) -> None:
        self.path = Path(folder)
        self.selection = _Selection(start, end, every, "folder")
        self.paths = io.list_frames(self.path, exclude=exclude)
        if not self.paths:
            raise ValueError(f"no .jpg/.png frames in {self.path}")
        self.fps = None
        self.rotation = 0
        self.frame_count = len(self.paths)
        self.duration = None
        self.frame_gaps = None
        first = self.selection.start.frame if self.selection.start else 0
        stop = min(self.selection.end.frame if self.selection.end else len(self.paths), len(self.paths))
        if first >= len(self.paths):
            raise ValueError(f"start {first} is past the end of {self.path} ({len(self.paths)} "
                             "frames); give an earlier start")
        self.indices = list(range(first, stop, self.selection.every))
        self.size = io.frame_sizes_agree([self.paths[i] for i in self.indices])

    def describe(self) -> str:
        return f"{len(self.paths)} frames, {self.size[1]}x{self.size[0]}"

    def expected_frames(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self.frames():
            yield frame.image

    def frames(self) -> Iterator[DecodedFrame]:
        for i in self.indices:
            path = self.paths[i]
            yield DecodedFrame(i, None, io.read_frame(path), path.stem)


def open_video(path: str | Path, start=None, end=None, every: int = 1,
               exclude: Sequence[str | Path] = ()) -> VideoSource | FrameFolder:
    """A :class:`FrameFolder` for a folder, a :class:`VideoSource` for a file."""
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path, start, end, every, exclude)
    return VideoSource(path, start, end, every)


def read_video_frame(path: str | Path, frame: int | float | str = 0) -> np.ndarray:
    """One frame of a video file (a frame number or a time, as ``start``), uint8 RGB
    ``[H, W, 3]``: e.g. to draw the first mask on."""
    return next(iter(VideoSource(path, start=frame)))


# --- writing ---------------------------------------------------------------------------------

def _encoder(suffix: str) -> tuple[str, dict[str, str], Fraction]:
    """Codec, options and time base for an output suffix (the first encoder PyAV has)."""
    av = _av()
    if suffix == ".gif":
        return "gif", {}, Fraction(1, 100)
    if suffix == ".webm":
        choices = [("libvpx-vp9", {"crf": "32", "b": "0", "deadline": "realtime", "cpu-used": "8",
                                   "row-mt": "1"}),
                   ("libvpx", {"crf": "10", "b": "2M", "deadline": "realtime", "cpu-used": "8"})]
        time_base = Fraction(1, 1000)
    else:
        choices = [("libx264", {"crf": "20", "preset": "veryfast"}), ("h264", {}),
                   ("mpeg4", {})]
        time_base = Fraction(1, 90000)
    for name, options in choices:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # not in this FFmpeg build
            continue
        return name, options, time_base
    raise ValueError(f"this PyAV/FFmpeg build has no encoder for {suffix} "
                     f"({', '.join(n for n, _ in choices)}); write .mp4, .webm or .gif instead")


class VideoWriter:
    """Encode uint8 RGB frames ``[H, W, 3]`` into a video file as they come (PyAV).

    ``.mp4 .mov .mkv``: H.264 (yuv420p, plays everywhere; odd sizes get one edge row or
    column repeated); ``.webm``: VP9; ``.gif``: each frame with its own 256-colour palette
    (for short clips: GIFs are large). Each frame is shown at ``time`` (seconds, from
    :meth:`write`; the source's own timing, variable rates included) or, without times, at
    ``fps``. Use as a context manager, or call :meth:`close`: a writer closed after an error
    leaves a playable file of the frames written.
    """

    def __init__(self, path: str | Path, fps: float = 25.0) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_WRITE_SUFFIXES:
            raise ValueError(f"{self.path}: cannot write {suffix or 'a file without suffix'}; "
                             f"give a {', '.join(VIDEO_WRITE_SUFFIXES)} file")
        if not (isinstance(fps, int | float) and math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be a positive number of frames per second, got {fps!r}")
        self.codec, self.options, self.time_base = _encoder(suffix)
        self.fps = float(fps)
        self.frames = 0
        self._container = None
        self._stream = None
        self._size: tuple[int, int] | None = None
        self._first_time: float | None = None
        self._last_pts = -1

    def _open(self, height: int, width: int) -> None:
        av = _av()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), "w")
        stream = self._container.add_stream(self.codec, rate=Fraction(self.fps).limit_denominator(1001))
        even = self.codec != "gif"  # 4:2:0 chroma needs even sides
        stream.width, stream.height = width + (width % 2 if even else 0), height + (height % 2 if even else 0)
        stream.pix_fmt = "pal8" if self.codec == "gif" else "yuv420p"
        stream.codec_context.time_base = self.time_base
        stream.options = self.options
        if self.codec == "mpeg4":
            stream.bit_rate = 8_000_000  # its default (200 kb/s) blurs the outlines
        self._stream = stream
        self._size = (height, width)

    def write(self, image: np.ndarray, time: float | None = None) -> None:
        """Add one frame ``uint8 [H, W, 3]`` (every frame the size of the first), shown at
        ``time`` seconds (``None``: ``frames / fps``)."""
        av = _av()
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"frames to write must be uint8 RGB [H, W, 3], got {image.dtype} "
                             f"{tuple(image.shape)}")
        if self._container is None:
            self._open(*image.shape[:2])
        if image.shape[:2] != self._size:
            raise ValueError(f"frame {self.frames} is {image.shape[1]}x{image.shape[0]} but the "
                             f"video being written is {self._size[1]}x{self._size[0]}")
        stream = self._stream
        if (stream.height, stream.width) != image.shape[:2]:
            image = np.pad(image, ((0, stream.height - image.shape[0]),
                                   (0, stream.width - image.shape[1]), (0, 0)), mode="edge")
        if self.codec == "gif":
            frame = av.VideoFrame.from_ndarray(_palette_image(image), format="pal8")
        else:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        if time is None:
            time = self.frames / self.fps
        if self._first_time is None:
            self._first_time = time
        pts = round((time - self._first_time) / self.time_base)
        frame.pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the input
        frame.time_base = self.time_base
        self._last_pts = frame.pts
        for packet in stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (safe to call twice)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _palette_image(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """RGB ``[H, W, 3]`` -> (indices ``uint8 [H, W]``, ARGB palette ``uint8 [256, 4]``): one
    adaptive palette per frame, so masks' colours stay exact (a fixed 256-colour cube would
    band the picture and shift them)."""
    from PIL import Image

    quantized = Image.fromarray(image).quantize(256, method=Image.Quantize.FASTOCTREE)
    rgb = np.zeros((256, 3), np.uint8)
    colours = np.asarray(quantized.getpalette()[: 256 * 3], np.uint8).reshape(-1, 3)
    rgb[: len(colours)] = colours
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), rgb], axis=1)
    return np.asarray(quantized, dtype=np.uint8), argb
