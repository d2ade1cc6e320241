"""Segmenting a video: any number of objects, any frame size, frame by frame (paper Fig. 2a).

:class:`InferenceSession` runs one :class:`~.engine.AOTEngine` per group of up to ``M = 10``
objects on the shared image encoding and merges the groups' probabilities (the official soft
aggregation). :func:`segment` is the public entry point: uint8 frames ``[T, H, W, 3]`` and a
first-frame label map ``[H, W]`` in, label maps ``[T, H, W]`` (in the first mask's label values)
and optionally probabilities ``[T, N+1, H, W]`` out; :func:`segment_frames` does the same one
frame at a time, for long videos and streams.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from aot_edu.model import AOT
from aot_edu.model.identity import one_hot_labels
from aot_edu.model.lstt import AttentionMaps

from .engine import (
    MAX_LONG_EDGE,
    AOTEngine,
    check_max_long_term_frames,
    official_input_size,
    prepare_frame,
    resize_labels,
    soft_aggregation,
)


@dataclass
class FrameResult:
    """One propagated frame, at the original frame size."""

    logits: Tensor  # [1, C, H, W]: merged object logits, C >= N + 1
    probs: Tensor  # [1, N+1, H, W]
    labels: Tensor  # [H, W] int64, internal labels 0..N
    attention: list[list[AttentionMaps]] | None = None  # [group][layer]


class InferenceSession:
    """Segment one video frame by frame: any number of objects, any frame size.

    Internal labels are ``0..N`` (0 = background); :func:`segment` maps the user's label values
    to these. Frames are uint8 ``[H, W, 3]`` tensors (or arrays); outputs are at ``H x W``.
    """

    def __init__(
        self, model: AOT, long_term_gap: int | None = None, max_long_term_frames: int | None = None,
        max_long_edge: int = MAX_LONG_EDGE,
    ) -> None:
        self.model = model
        config = model.config
        self.long_term_gap = config.long_term_gap_test if long_term_gap is None else int(long_term_gap)
        if self.long_term_gap < 1:
            raise ValueError(f"long_term_gap must be a positive number of frames, got {long_term_gap}")
        check_max_long_term_frames(max_long_term_frames)
        self.max_long_term_frames = max_long_term_frames
        self.max_long_edge = max_long_edge
        self.group_size = model.max_obj_num
        self.engines: list[AOTEngine] = []
        self.num_objects = 0
        self.frame_size: tuple[int, int] | None = None
        self.input_size: tuple[int, int] | None = None
        self.step = -1
        self._enc: list[Tensor] | None = None
        self._enc_step = -2

    @property
    def device(self) -> torch.device:
        return self.model.encoder_projector.weight.device

    def _encode(self, frame: Tensor) -> list[Tensor]:
        if self._enc is not None and self._enc_step == self.step:
            return self._enc  # the same frame: reuse its encoding
        image = prepare_frame(torch.as_tensor(frame).to(self.device), self.input_size)
        self._enc, self._enc_step = self.model.encode_image(image), self.step
        return self._enc

    def _group_one_hot(self, labels: Tensor, group: int) -> tuple[Tensor, int]:
        """Input-size internal labels ``[1, h, w]`` -> one group's one-hot and object count."""
        first = group * self.group_size
        count = min(self.num_objects - first, self.group_size)
        local = torch.where((labels > first) & (labels <= first + count), labels - first, 0)
        return one_hot_labels(local, self.group_size + 1), count

    def add_reference(self, frame, labels, need_weights: bool = False) -> None:
        """A frame with known masks: the first frame, or a later frame where objects appear.

        ``labels``: internal labels ``[H, W]`` (0..N) at the frame's size. For a later frame
        this follows the official evaluator: the frame (whose prediction the caller has merged
        with the new objects' masks) joins every group's memory as a reference frame.
        """
        frame = torch.as_tensor(frame)
        labels = torch.as_tensor(labels, device=self.device).long()
        if self.frame_size is None:
            self.frame_size = tuple(frame.shape[:2])
            self.input_size = official_input_size(
                *self.frame_size, self.max_long_edge, align_corners=self.model.config.align_corners
            )
            self.step = 0
        enc = self._encode(frame)
        labels_in = resize_labels(labels[None], self.input_size)
        self.num_objects = max(self.num_objects, int(labels.max()))
        groups = max(math.ceil(self.num_objects / self.group_size), 1)
        while len(self.engines) < groups:
            self.engines.append(
                AOTEngine(self.model, self.long_term_gap, self.model.config.short_term_skip,
                          self.max_long_term_frames)
            )
        for g, engine in enumerate(self.engines):
            one_hot, count = self._group_one_hot(labels_in, g)
            engine.add_reference_frame(enc, one_hot, [count], step=self.step, need_weights=need_weights)
            if self.step > 0:
                engine.update_memory(one_hot)  # official: decode, then feed the same mask back

    def propagate(self, frame, need_weights: bool = False) -> FrameResult:
        """Segment the next frame (before its mask is fed back with :meth:`update_memory`)."""
        if not self.engines:
            raise RuntimeError("call add_reference with the first frame and its mask first")
        frame = torch.as_tensor(frame)
        if tuple(frame.shape[:2]) != self.frame_size:
            raise ValueError(
                f"frame {self.step + 1} is {tuple(frame.shape[:2])}, the video is {self.frame_size}; "
                "all frames of a video must have the same size"
            )
        self.step += 1
        enc = self._encode(frame)
        outputs = [engine.propagate(enc, need_weights) for engine in self.engines]
        if len(self.engines) == 1:
            logits = self.engines[0].decode(enc, self.frame_size, channels=self.num_objects + 1)
            probs = torch.softmax(logits, dim=1)
        else:
            logits = self._soft_aggregation(enc)
            probs = torch.softmax(logits, dim=1)[:, : self.num_objects + 1]
        attention = [out.attention for out in outputs] if need_weights else None
        # argmax of the probabilities (official); max(dim).indices is the same first-maximum
        # rule and, over a few channels, several times faster than argmax on CPU
        return FrameResult(logits, probs, probs.max(dim=1).indices[0], attention)

    def _soft_aggregation(self, enc: list[Tensor]) -> Tensor:
        """Merge groups: background = product of the groups' backgrounds (official)."""
        fg, bg = [], []
        for engine in self.engines:
            n = engine.num_objects[0]
            prob = torch.softmax(engine.decode(enc, self.frame_size, channels=n + 1), dim=1)
            bg.append(prob[:, :1])
            fg.append(prob[:, 1:])
        merged = soft_aggregation(torch.cat(bg, dim=1), torch.cat(fg, dim=1))
        # The official merge keeps the last group's unused identities, at probability 1e-5.
        unused = len(self.engines) * self.group_size - self.num_objects
        if unused:
            pad = torch.logit(torch.tensor(1e-5, device=merged.device)).expand(
                1, unused, *merged.shape[-2:]
            )
            merged = torch.cat([merged, pad], dim=1)
        return merged

    def update_memory(self, labels) -> None:
        """Feed the frame's final labels ``[H, W]`` (internal, frame size) back to every group."""
        labels = torch.as_tensor(labels, device=self.device).long()
        labels_in = resize_labels(labels[None], self.input_size)
        for g, engine in enumerate(self.engines):
            engine.update_memory(self._group_one_hot(labels_in, g)[0])


# --- public entry point ---------------------------------------------------------------------

@dataclass
class SegmentationResult:
    """Output of :func:`segment`."""

    masks: np.ndarray | Tensor  # [T, H, W], label values of the first mask (see mask_dtype)
    labels: list[int]  # the object label values, ascending (probs channel 1.. order)
    probs: Tensor | None = None  # float32 [T, N+1, H, W] when asked for
    input_size: tuple[int, int] = (0, 0)  # size the model ran at
    info: dict = field(default_factory=dict)


@dataclass
class SegmentedFrame:
    """One frame from :func:`segment_frames`."""

    index: int  # frame number, 0 = the reference frame
    mask: Tensor  # [H, W] on the CPU, label values of the first mask, dtype mask_dtype(labels)
    probs: Tensor | None  # float32 [N+1, H, W] on the CPU when asked for
    session: InferenceSession  # the memories; input_size, engines (object groups)
    entered: tuple[int, ...] = ()  # label values tracked from this frame on (their first mask)


def mask_dtype(max_label: int) -> torch.dtype:
    """The smallest integer dtype that holds labels ``0..max_label``: ``uint8`` up to 255
    (every DAVIS / YouTube-VOS mask), then ``int16``, ``int32``, ``int64``."""
    for dtype in (torch.uint8, torch.int16, torch.int32):
        if max_label <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


_GRAY_HINT = (
    " They look grayscale: repeat the gray channel, e.g. np.repeat(frames[..., None], 3, "
    "axis=-1) (numpy) or frames[..., None].expand(-1, -1, -1, 3) (torch)."
)


def _size_error(what: str, size, first_size) -> ValueError:
    return ValueError(f"{what} is {size[1]}x{size[0]} (WxH) but frame 0 is {first_size[1]}x"
                      f"{first_size[0]}; all frames of a video must have the same size "
                      "(resize or remove the odd one)")


def _stack_frames(frames: list | tuple) -> np.ndarray:
    """A list of frames ``[H, W, 3]`` as one array, with the project's words for an empty list
    and for frames of different sizes (numpy's are 'need at least one array to stack' and
    'all input arrays must have the same shape')."""
    if not frames:
        raise ValueError("frames is an empty list: give at least the first frame (uint8 RGB "
                         "[H, W, 3])")
    arrays = [f.detach().cpu().numpy() if isinstance(f, Tensor) else np.asarray(f) for f in frames]
    for t, array in enumerate(arrays[1:], start=1):
        if array.shape != arrays[0].shape:
            if array.ndim >= 2 and arrays[0].ndim >= 2 and array.shape[2:] == arrays[0].shape[2:]:
                raise _size_error(f"frames[{t}]", array.shape[:2], arrays[0].shape[:2])
            raise ValueError(f"frames[{t}] has shape {array.shape} but frames[0] has "
                             f"{arrays[0].shape}; every frame must be uint8 RGB [H, W, 3] of "
                             "one size")
    return np.stack(arrays)


def _as_frames(frames) -> Tensor:
    if isinstance(frames, (list, tuple)):
        frames = _stack_frames(frames)
    if not isinstance(frames, (np.ndarray, Tensor)):
        raise TypeError(f"frames must be a numpy array or torch tensor, got {type(frames).__name__}")
    if isinstance(frames, np.ndarray):
        frames = np.ascontiguousarray(frames)  # views such as frames[..., ::-1] (BGR -> RGB)
    frames_t = torch.as_tensor(frames)
    if frames_t.dim() == 3 and frames_t.shape[-1] == 3:
        frames_t = frames_t[None]
    if frames_t.dim() != 4 or frames_t.shape[-1] != 3:
        hint = ""
        if frames_t.dim() == 4 and frames_t.shape[1] == 3:
            hint = " They look channel-first: use frames.permute(0, 2, 3, 1) (torch) or frames.transpose(0, 2, 3, 1) (numpy)."
        elif frames_t.dim() == 4 and frames_t.shape[-1] == 4:
            hint = " They look RGBA: drop the alpha channel with frames[..., :3]."
        elif frames_t.dim() == 4 and frames_t.shape[-1] == 1:
            hint = (" They look grayscale: repeat the gray channel, e.g. np.repeat(frames, 3, "
                    "axis=-1) (numpy) or frames.expand(-1, -1, -1, 3) (torch).")
        elif frames_t.dim() in (2, 3):
            hint = _GRAY_HINT
        raise ValueError(
            f"frames must be RGB with shape [T, H, W, 3], got {tuple(frames_t.shape)}.{hint}"
        )
    if frames_t.dtype != torch.uint8:
        if frames_t.is_floating_point() and frames_t.numel() and float(frames_t.max()) <= 1.0:
            fix = "they look like 0..1 floats: use (frames * 255).round() converted to uint8"
        else:
            fix = "convert them to uint8 in 0..255 (e.g. np.clip(frames, 0, 255).astype(np.uint8))"
        raise ValueError(f"frames must be uint8 RGB in 0..255, got dtype {frames_t.dtype}; {fix}")
    if frames_t.shape[0] == 0 or frames_t.shape[1] == 0 or frames_t.shape[2] == 0:
        raise ValueError(f"frames must not be empty, got shape {tuple(frames_t.shape)}")
    return frames_t


def _as_first_mask(first_mask, frame_size: tuple[int, int], name: str = "first_mask") -> Tensor:
    """One given mask as int64 labels ``[H, W]``; ``name`` says which in messages
    (``first_mask``, or ``masks[48]`` for a later frame's)."""
    if not isinstance(first_mask, (np.ndarray, Tensor)):
        raise TypeError(f"{name} must be a numpy array or torch tensor, got {type(first_mask).__name__}")
    if isinstance(first_mask, np.ndarray):
        first_mask = np.ascontiguousarray(first_mask)
    mask = torch.as_tensor(first_mask)
    if mask.dim() == 3 and mask.shape[-1] in (3, 4) and not mask.dtype == torch.bool:
        raise ValueError(
            f"{name} must be a label map [H, W] of integers, got shape {tuple(mask.shape)}; an "
            "RGB mask image must be turned into labels first (aot_edu.data.read_mask does this for "
            "DAVIS-palette colours)"
        )
    if mask.dim() == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.dim() != 2:
        raise ValueError(f"{name} must be a 2-D label map [H, W], got shape {tuple(mask.shape)}")
    if mask.dtype == torch.bool:
        mask = mask.long()
    elif mask.is_floating_point():
        if not torch.equal(mask, mask.round()):
            raise ValueError(
                f"{name} must hold integer labels (0 = background, 1.. = objects), got "
                "non-integer floats; threshold soft masks first, e.g. (mask > 0.5)"
            )
        mask = mask.long()
    else:
        mask = mask.long()
    if tuple(mask.shape) != tuple(frame_size):
        raise ValueError(
            f"{name} is {tuple(mask.shape)} but the frames are {tuple(frame_size)} (H, W); "
            "resize the mask to the frame size with nearest-neighbour interpolation"
        )
    if mask.numel() and int(mask.min()) < 0:
        raise ValueError(f"{name} labels must be >= 0 (0 = background)")
    if not bool((mask > 0).any()):
        raise ValueError(
            f"{name} is empty (all background): label at least one object with a value > 0"
        )
    return mask


def _given_masks(first_mask) -> dict[int, object]:
    """``first_mask`` as ``{frame index: mask}``: one mask is frame 0's; a mapping must hold
    frame 0 and whole frame numbers >= 0 (checked here, sizes and labels at frame 0)."""
    if not isinstance(first_mask, Mapping):
        return {0: first_mask}
    frames = list(first_mask)
    for t in frames:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"masks are keyed by frame index, a whole number >= 0; got key {t!r}")
    if 0 not in first_mask:
        shown = ", ".join(map(str, sorted(frames)[:5])) or "none"
        raise ValueError(f"the masks must include frame 0, where tracking starts (got frames "
                         f"{shown}); give {{0: first_mask, ...}}")
    return {int(t): first_mask[t] for t in sorted(frames)}


@dataclass
class _Labels:
    """The user's label values of every given mask and the engine's internal labels.

    Internal labels number the objects in the order they enter: frame 0's labels in ascending
    value order are ``1..n0``, then each later mask's new labels (ascending) take the next
    numbers, so the session's objects (and object groups) only ever grow at the end.
    """

    values: Tensor  # [N+1]: the user's value of internal label i (values[0] = 0), output dtype
    sorted_values: Tensor  # [N+1] int64: 0 and every label value, ascending
    order: Tensor  # [N+1] int64: internal label of sorted_values[k] (probability channel order)
    entries: dict[int, int]  # internal label -> frame index of its first mask

    @classmethod
    def from_masks(cls, masks: dict[int, Tensor]) -> _Labels:
        first_frame: dict[int, int] = {}  # user value -> frame index, in the order of entry
        for t, mask in masks.items():
            for value in torch.unique(mask).tolist():
                if value > 0 and value not in first_frame:
                    first_frame[value] = t
        entering = [0, *first_frame]  # internal label -> user value
        internal = {v: i for i, v in enumerate(entering)}
        sorted_values = sorted(entering)
        return cls(
            values=torch.tensor(entering, dtype=torch.int64).to(mask_dtype(max(entering))),
            sorted_values=torch.tensor(sorted_values, dtype=torch.int64),
            order=torch.tensor([internal[v] for v in sorted_values], dtype=torch.int64),
            entries={i: first_frame[v] for v, i in internal.items() if v > 0},
        )

    def internal(self, mask: Tensor) -> Tensor:
        """User labels ``[H, W]`` (values of the given masks) -> internal labels ``[H, W]``.

        A binary search in the sorted values: label values as large as 10**9 cost nothing extra.
        """
        ranks = torch.searchsorted(self.sorted_values.to(mask.device), mask)
        return self.order.to(mask.device)[ranks]

    @property
    def num_objects(self) -> int:
        return len(self.values) - 1

    def entering(self, t: int) -> tuple[int, ...]:
        """The label values whose first mask is on frame ``t``, ascending."""
        return tuple(sorted(int(self.values[i]) for i, start in self.entries.items() if start == t))


def segment_frames(
    frames: Iterable,
    first_mask,
    model: AOT,
    *,
    long_term_gap: int | None = None,
    return_probs: bool = False,
    max_long_term_frames: int | None = None,
) -> Iterator[SegmentedFrame]:
    """Segment a stream of frames, yielding each frame's mask as soon as it is predicted.

    The streaming form of :func:`segment`: ``frames`` is any iterable of uint8 RGB ``[H, W, 3]``
    arrays or tensors (e.g. read one by one from disk, or an
    :class:`aot_edu.data.VideoSource` decoding a video file), so memory does not grow with the
    video's length (only the long-term memory does; ``max_long_term_frames`` bounds it).
    Frame 0 is yielded first, its mask being the given one. Arguments as :func:`segment`,
    including ``first_mask`` as ``{frame index: mask}`` for objects that appear later.

    The model is in eval mode while the generator runs and is restored when it finishes or is
    closed; each step runs under ``torch.inference_mode``, the caller's code between frames
    does not. A mask keyed past the last frame raises ``ValueError`` after the last frame was
    yielded (nothing computed is lost).
    """
    if not isinstance(model, AOT):
        raise TypeError(
            f"model must be an aot_edu AOT model (aot_edu.build_model(...)), got {type(model).__name__}"
        )
    given = _given_masks(first_mask)
    session = InferenceSession(model, long_term_gap, max_long_term_frames)
    iterator = iter(frames)
    was_training = model.training
    model.eval()
    try:
        first = next(iterator, None)
        if first is None:
            raise ValueError("frames must not be empty: give at least the first frame")
        frame = _as_frames(first)[0]
        size = tuple(frame.shape[:2])
        # every mask is checked on frame 0, before any work: a bad later mask fails now
        masks = {t: _as_first_mask(m, size, "first_mask" if t == 0 else f"masks[{t}]")
                 for t, m in given.items()}
        labels_of = _Labels.from_masks(masks)
        n = labels_of.num_objects
        reorder = not torch.equal(labels_of.order, torch.arange(n + 1))

        def output_probs(probs: Tensor) -> Tensor:
            """Internal ``[n_t+1, H, W]`` -> ``[N+1, H, W]``, ascending label order; objects
            that have not entered yet get probability 0."""
            if probs.shape[0] < n + 1:
                probs = torch.cat([probs, probs.new_zeros(n + 1 - probs.shape[0], *probs.shape[1:])])
            return probs[labels_of.order] if reorder else probs

        with torch.inference_mode():
            internal = labels_of.internal(masks[0])
            session.add_reference(frame, internal)
            probs = output_probs(one_hot_labels(internal[None], n + 1)[0]) if return_probs else None
        yield SegmentedFrame(0, masks[0].to(labels_of.values.dtype), probs, session,
                             labels_of.entering(0))
        last = 0
        for t, raw in enumerate(iterator, start=1):
            last = t
            frame = _as_frames(raw)
            if frame.shape[0] != 1:
                raise ValueError(f"frame {t}: give one frame [H, W, 3] at a time, got {tuple(frame.shape)}")
            if frame.shape[1:3] != size:
                raise _size_error(f"frame {t}", tuple(frame.shape[1:3]), size)
            with torch.inference_mode():
                result = session.propagate(frame[0])
                if t in masks:
                    labels = _merge_given(result.labels, labels_of.internal(masks[t].to(session.device)))
                    session.add_reference(frame[0], labels)  # also the short-term memory
                    labels = labels.cpu()
                    probs = (output_probs(one_hot_labels(labels[None], n + 1)[0])
                             if return_probs else None)
                else:
                    session.update_memory(result.labels)
                    labels = result.labels.cpu()
                    probs = output_probs(result.probs[0].float().cpu()) if return_probs else None
            yield SegmentedFrame(t, labels_of.values[labels], probs, session,
                                 labels_of.entering(t) if t in masks else ())
        late = [t for t in masks if t > last]
        if late:
            shown = ", ".join(map(str, late[:5]))
            raise ValueError(f"masks were given for frame{'s' if len(late) > 1 else ''} {shown} "
                             f"but the video ends at frame {last} ({last + 1} frames); key each "
                             "mask by its frame's index, 0 = the first frame segmented")
    finally:
        model.train(was_training)


def _merge_given(predicted: Tensor, given: Tensor) -> Tensor:
    """A later frame's labels: the prediction with a given mask laid over it (internal labels
    ``[H, W]``).

    As the official evaluator does for objects that appear on a later YouTube-VOS frame, the
    mask's object pixels replace the prediction there. An object already tracked that the mask
    also labels is re-anchored: its predicted pixels elsewhere are cleared, so the mask is its
    whole extent on this frame (the official code keeps both; its later masks only ever hold
    new objects, for which the two agree).
    """
    present = torch.unique(given)
    present = present[present > 0]
    cleared = torch.where(torch.isin(predicted, present), 0, predicted)
    return torch.where(given > 0, given, cleared)


def segment(
    frames,
    first_mask,
    model: AOT,
    *,
    long_term_gap: int | None = None,
    return_probs: bool = False,
    max_long_term_frames: int | None = None,
    progress: bool = False,
) -> SegmentationResult:
    """Segment every object of ``first_mask`` through ``frames`` (semi-supervised VOS).

    Args:
        frames: uint8 RGB ``[T, H, W, 3]``, numpy or torch (any size; the model runs at the
            official input size and outputs are resized back to ``H x W``). Grayscale
            ``[T, H, W]`` is refused with a hint (it could be a stack of masks): repeat the
            channel to RGB first.
        first_mask: integer labels ``[H, W]`` for frame 0, 0 = background; any label values
            (e.g. ``{0, 3, 7}`` or ``10**9``) and any number of objects. Objects that appear
            later: ``{0: mask_0, 48: mask_48, ...}`` (frame index -> labels ``[H, W]``, frame 0
            required). A later mask's new labels are tracked from that frame on, beside the
            objects already tracked, as the official evaluator adds YouTube-VOS objects: the
            frame is propagated, the mask laid over the prediction, and the result joins the
            memory as a reference frame. A label already tracked that a later mask also holds
            is re-anchored to it on that frame.
        model: an :class:`~aot_edu.model.AOT` from :func:`aot_edu.build_model`.
        long_term_gap: frames between long-term memory updates; ``None`` = the variant's
            test-time default (AOT-L: 5, AOT-T/S/B: never).
        return_probs: also return per-pixel probabilities.
        max_long_term_frames: optional bound on the long-term memory, in frames, the reference
            frame included (``1``: the reference only; ``None``: unbounded, as the official
            implementation).
        progress: show a progress bar.

    Returns a :class:`SegmentationResult` with ``masks`` (``[T, H, W]``, numpy if the frames
    were numpy, frame 0 = ``first_mask``, values from ``first_mask``, dtype the smallest that
    holds them: ``uint8`` when every label is <= 255, else int16 / int32 / int64, see
    :func:`mask_dtype`) and, when asked, ``probs`` (float32 ``[T, N+1, H, W]``: background,
    then objects in ascending label order; frame 0 is the one-hot of ``first_mask``, a frame
    with a later mask the one-hot of its labels, and an object has probability 0 before its
    first mask). ``labels`` lists the objects of all masks; ``info["entry_frames"]`` says on
    which frame each entered. For videos too long to hold in memory use :func:`segment_frames`
    (and :func:`aot_edu.video.segment_video` for video files).
    """
    if not isinstance(model, AOT):
        raise TypeError(
            f"model must be an aot_edu AOT model (aot_edu.build_model(...)), got {type(model).__name__}"
        )
    as_numpy = not isinstance(frames, Tensor)
    frames_t = _as_frames(frames)
    t_total, height, width, _ = frames_t.shape
    late = [t for t in _given_masks(first_mask) if t >= t_total]
    if late:  # before any work, as the frames are all here
        raise ValueError(f"masks were given for frame{'s' if len(late) > 1 else ''} "
                         f"{', '.join(map(str, late[:5]))} but the video has {t_total} frames "
                         f"(0..{t_total - 1}); key each mask by its frame's index")
    steps = segment_frames(frames_t, first_mask, model, long_term_gap=long_term_gap,
                           return_probs=return_probs, max_long_term_frames=max_long_term_frames)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="segment", unit="frame", total=t_total)
    masks = probs = session = None
    entry_frames: dict[int, int] = {}
    for step in steps:
        entry_frames.update(dict.fromkeys(step.entered, step.index))
        if masks is None:
            masks = torch.empty(t_total, height, width, dtype=step.mask.dtype)
            if return_probs:
                probs = torch.empty(t_total, *step.probs.shape, dtype=torch.float32)
        masks[step.index] = step.mask
        if probs is not None:
            probs[step.index] = step.probs
        session = step.session
    return SegmentationResult(
        masks=masks.numpy() if as_numpy else masks,
        labels=sorted(entry_frames),
        probs=probs,
        input_size=session.input_size or (height, width),
        info={"long_term_gap": session.long_term_gap, "groups": len(session.engines),
              "entry_frames": entry_frames},
    )
