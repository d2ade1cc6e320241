"""The attention maps of one run, recorded for the figures (paper Fig. 6-7) and measurements.

:func:`record_attention` runs a clip through the inference engine - the same path as
:func:`aot_edu.segment` - asking every LSTT layer for its attention weights; an
:class:`AttentionRecord` keeps them with the frames and masks at the model's input size.
:func:`attention_entropy` says how sharp those maps are, against the uniform reference
:func:`uniform_entropy`. Drawing them is :mod:`aot_edu.viz`'s job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aot_edu.model import AOT
from aot_edu.model.identity import one_hot_labels

from .engine import resize_frame, resize_labels
from .session import InferenceSession


@dataclass
class AttentionRecord:
    """A clip segmented frame by frame with every layer's attention weights kept.

    ``frames``/``masks`` are at the model's input size (``16k + 1`` sides), so token ``(i, j)``
    of the ``h x w`` grid sits on pixel ``(16 i, 16 j)``. ``masks[0]`` is the given mask,
    ``masks[t]`` the prediction fed back to the memory; ``ground_truth`` (optional, same
    layout) the true labels of every frame. For propagated frame ``t``
    (``1..T-1``), ``long_term[t - 1][layer]`` is ``[heads, HW, T_mem * HW]`` with the memory
    frames ``long_term_frames[t - 1]`` in token order; ``short_term[t - 1][layer]`` is
    ``[heads, HW, window^2]`` over frame ``t - 1``.
    """

    frames: np.ndarray  # uint8 [T, H, W, 3]
    masks: np.ndarray  # int64 [T, H, W]
    token_size: tuple[int, int]
    num_objects: int
    long_term: list[list[Tensor]]
    short_term: list[list[Tensor]]
    long_term_frames: list[list[int]]
    max_dis: int = 7
    dilation: int = 1
    title: str = ""
    ground_truth: np.ndarray | None = None  # int64 [T, H, W]

    @property
    def num_layers(self) -> int:
        return len(self.long_term[0])

    @property
    def num_heads(self) -> int:
        return self.long_term[0][0].shape[0]

    def token_labels(self, t: int, ground_truth: bool = False) -> Tensor:
        """Soft labels of frame ``t`` on the token grid ``[N+1, h, w]``: the fraction of each
        object in the 17x17 patch around a token - the patch the identity bank reads (Eq. 3).

        ``masks[t]`` (for ``t > 0`` the prediction), or ``ground_truth[t]`` if ``ground_truth``.
        """
        if ground_truth and self.ground_truth is None:
            raise ValueError("this record has no ground truth: pass ground_truth= to record_attention")
        labels = self.ground_truth[t] if ground_truth else self.masks[t]
        one_hot = one_hot_labels(torch.as_tensor(labels)[None], self.num_objects + 1)
        pooled = F.avg_pool2d(one_hot, 17, stride=16, padding=8, count_include_pad=False)[0]
        if tuple(pooled.shape[-2:]) != tuple(self.token_size):
            raise ValueError(f"mask grid {tuple(pooled.shape[-2:])} != token grid {self.token_size}")
        return pooled


def record_attention(model: AOT, frames, first_mask, long_term_gap: int | None = None,
                     title: str = "", ground_truth=None) -> AttentionRecord:
    """Segment a clip with :class:`~aot_edu.inference.session.InferenceSession` - the path
    :func:`aot_edu.segment` takes - and keep the long- and short-term attention weights of every
    layer (``propagate(frame, need_weights=True)``).

    ``frames``: uint8 ``[T, H, W, 3]``; ``first_mask``: labels ``[H, W]`` (objects ``1..N``, at
    most ``M``: one identity group). The record holds the frames and masks at the model's input
    size, resized as the engine resizes them (frames bicubic, labels nearest), so that it lines up
    with the token grid. Memory: per frame and layer ``heads * HW * (T_mem * HW + 225)`` floats -
    use small clips. ``ground_truth``: optional true labels of every frame ``[T, H, W]``, kept
    (not used for segmenting) so that a figure can pick a query token inside an object.
    """
    frames = torch.as_tensor(np.asarray(frames))
    first_mask = torch.as_tensor(np.asarray(first_mask)).long()
    if ground_truth is not None:
        ground_truth = torch.as_tensor(np.asarray(ground_truth)).long()
        if tuple(ground_truth.shape) != tuple(frames.shape[:3]):
            raise ValueError(f"ground_truth must be the labels of every frame {tuple(frames.shape[:3])}, "
                             f"got shape {tuple(ground_truth.shape)}")
    if model.config.short_term_frames != 1:
        raise ValueError(f"record_attention shows one short-term frame (t-1); this model attends to "
                         f"{model.config.short_term_frames} (short_term_frames): record a model with 1")
    num_objects = int(first_mask.max())
    if num_objects < 1 or num_objects > model.max_obj_num:
        raise ValueError(f"record_attention needs 1..{model.max_obj_num} objects labelled 1..N, "
                         f"got labels up to {num_objects}")
    session = InferenceSession(model, long_term_gap)
    long_term, short_term, memory_frames = [], [], []
    predicted = [first_mask]
    current = [0]
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            session.add_reference(frames[0], first_mask)
            engine = session.engines[0]
            for t in range(1, len(frames)):
                result = session.propagate(frames[t], need_weights=True)
                maps = result.attention[0]
                long_term.append([m.long_term[0].float().cpu() for m in maps])
                short_term.append([m.short_term[0].float().cpu() for m in maps])
                memory_frames.append(list(current))
                predicted.append(result.labels.cpu())
                before = engine.long_term_frames
                session.update_memory(result.labels)
                if engine.long_term_frames > before:  # the newest memory frame comes first
                    current = [t, *current]
    finally:
        model.train(was_training)
    size = session.input_size
    frames_in = torch.cat([resize_frame(frame, size) for frame in frames])  # [T, 3, h, w]
    return AttentionRecord(
        frames=frames_in.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy(),
        masks=resize_labels(torch.stack(predicted), size).numpy(),
        token_size=tuple(engine.size_2d), num_objects=num_objects,
        long_term=long_term, short_term=short_term, long_term_frames=memory_frames,
        max_dis=model.config.max_dis, dilation=model.config.dilation, title=title,
        ground_truth=None if ground_truth is None else resize_labels(ground_truth, size).numpy(),
    )


def slot_offsets(max_dis: int, dilation: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column offsets of the short-term window's slots, slot ``s = (dy+R)*W + (dx+R)``."""
    offsets = np.arange(-max_dis, max_dis + 1) * dilation
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    return dy.reshape(-1), dx.reshape(-1)


def attention_entropy(record: AttentionRecord, kind: str = "long_term") -> np.ndarray:
    """Mean entropy (nats) of the attention rows, ``[frames, layers]``: lower = sharper.

    ``kind``: ``long_term`` or ``short_term``. Heads are averaged after the entropy.
    """
    if kind not in ("long_term", "short_term"):
        raise ValueError(f"kind must be 'long_term' or 'short_term', got {kind!r}")
    weights = getattr(record, kind)
    out = np.zeros((len(weights), record.num_layers), dtype=np.float32)
    for f, layers in enumerate(weights):
        for layer, a in enumerate(layers):
            out[f, layer] = float(-(a * torch.log(a.clamp_min(1e-12))).sum(-1).mean())
    return out


def uniform_entropy(record: AttentionRecord, kind: str = "long_term") -> np.ndarray:
    """The entropy of uniform attention, ``[frames]``: the reference for
    :func:`attention_entropy`, ``log(number of keys a query can see)`` averaged over queries.

    Long-term: every token of every memory frame. Short-term: the slots of the query's 15x15
    window that lie inside the frame - on a grid smaller than the window, fewer than 225.
    """
    if kind not in ("long_term", "short_term"):
        raise ValueError(f"kind must be 'long_term' or 'short_term', got {kind!r}")
    if kind == "long_term":
        return np.array([math.log(layers[0].shape[-1]) for layers in record.long_term], dtype=np.float32)
    h, w = record.token_size
    dy, dx = slot_offsets(record.max_dis, record.dilation)
    ys, xs = np.arange(h)[:, None, None] + dy, np.arange(w)[None, :, None] + dx
    count = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).sum(-1)  # [h, w] slots inside the frame
    value = float(np.log(count).mean())
    return np.full(len(record.short_term), value, dtype=np.float32)


def attention_views(record: AttentionRecord, frame: int, layer: int, query: tuple[int, int],
                    head: int | None = None) -> dict[str, np.ndarray]:
    """What one query token sees, and what each attention carries (paper Fig. 6-7).

    Args:
        frame: a propagated frame ``1..T-1``; layer: LSTT block ``0..L-1``;
        query: token ``(row, col)`` on the ``h x w`` grid; head: one head, or ``None`` for the
            mean over heads.

    Returns ``float32`` arrays:

    - ``long``: ``[T_mem, h, w]`` the query's long-term attention over each memory frame;
    - ``short``: ``[h, w]`` its short-term attention over frame ``t - 1`` (zero outside the
      15x15 window);
    - ``long_carried`` / ``short_carried``: ``[N+1, h, w]`` for every token of frame ``t``, the
      objects' labels propagated by that attention alone, ``A @ Y_memory`` (rows sum to 1).
    """
    if not 1 <= frame < len(record.frames):
        raise ValueError(f"frame must be a propagated frame 1..{len(record.frames) - 1}, got {frame}")
    if not 0 <= layer < record.num_layers:
        raise ValueError(f"layer must be 0..{record.num_layers - 1}, got {layer}")
    h, w = record.token_size
    qy, qx = query
    if not (0 <= qy < h and 0 <= qx < w):
        raise ValueError(f"query token must lie in the {h}x{w} grid, got {query}")
    if head is not None and not 0 <= head < record.num_heads:
        raise ValueError(f"head must be 0..{record.num_heads - 1} or None (mean), got {head}")

    def pick(weights: Tensor) -> Tensor:  # [heads, HW, K] -> [HW, K]
        return weights.mean(0) if head is None else weights[head]

    q = qy * w + qx
    long_w = pick(record.long_term[frame - 1][layer])  # [HW, T_mem * HW]
    short_w = pick(record.short_term[frame - 1][layer])  # [HW, window^2]
    memory = record.long_term_frames[frame - 1]
    y_memory = torch.cat([record.token_labels(f).flatten(1) for f in memory], dim=1)  # [N+1, T_mem*HW]
    long_carried = (long_w @ y_memory.t()).t().reshape(-1, h, w)

    # Short-term: unfold frame t-1's token labels into the same 15x15 slots as the weights.
    window = 2 * record.max_dis + 1
    y_prev = record.token_labels(frame - 1)[None]  # [1, N+1, h, w]
    slots = F.unfold(y_prev, window, dilation=record.dilation,
                     padding=record.max_dis * record.dilation)  # [1, (N+1)*window^2, HW]
    slots = slots.reshape(y_prev.shape[1], window * window, h * w)
    short_carried = torch.einsum("qs,ksq->kq", short_w, slots).reshape(-1, h, w)

    short_map = np.zeros((h, w), dtype=np.float32)
    dy, dx = slot_offsets(record.max_dis, record.dilation)
    ys, xs = qy + dy, qx + dx
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    short_map[ys[inside], xs[inside]] = short_w[q].numpy()[inside]
    return {
        "long": long_w[q].reshape(len(memory), h, w).numpy(),
        "short": short_map,
        "long_carried": long_carried.numpy(),
        "short_carried": short_carried.numpy(),
    }
