"""Frame-by-frame inference, as the official AOT evaluation runs it (paper Sec. 3, Fig. 2).

The model is stateless; this module keeps the memories:

- the **reference frame** (frame 0, mask given) runs through the LSTT attending to itself with
  its identity embedding; every block stores its key and identity-carrying value as the first
  long-term memory and as the short-term memory;
- every **later frame** is encoded, matched against the long-term memory (all memory frames)
  and the short-term memory (frame t-1, 15x15 window), decoded to identity logits, and its
  predicted mask is fed back: it becomes the new short-term memory, and every
  ``long_term_gap`` frames (AOT-L: 5 at test time) it is also appended to the long-term memory.

One :class:`AOTEngine` handles up to ``M = 10`` objects; :mod:`.session` splits more objects
into groups of 10, one engine each, and merges them with :func:`soft_aggregation`. This module
also holds the input pipeline every path shares: the official input size, resizing and
normalisation.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from aot_edu.model import AOT
from aot_edu.model.identity import assign_identities, decode_identities
from aot_edu.model.lstt import LSTTOutput, seq_to_map

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_LONG_EDGE = 1040  # official test-time limit (800 * 1.3)
UNUSED_LOGIT = -1e10  # logit of identities no object uses (float32; -1e4 in half precision)


def mask_unused_identities(logits: Tensor, num_objects: Sequence[int]) -> Tensor:
    """Logits ``[B, M+1, h, w]`` with the identities beyond sample ``b``'s ``num_objects[b]``
    objects set to ``UNUSED_LOGIT``, so that no pixel can take an identity no object has."""
    fill = UNUSED_LOGIT if logits.dtype == torch.float32 else -1e4
    unused = torch.arange(logits.shape[1], device=logits.device)[None, :] > torch.tensor(
        list(num_objects), device=logits.device
    )[:, None]
    return logits.masked_fill(unused[:, :, None, None], fill)


# --- input pipeline ------------------------------------------------------------------------

def official_input_size(
    height: int, width: int, max_long_edge: int = MAX_LONG_EDGE, stride: int = 16,
    align_corners: bool = True,
) -> tuple[int, int]:
    """The size the official evaluator resizes a frame to.

    Frames whose long edge exceeds ``max_long_edge`` are scaled down to it; then each side
    becomes ``16k + 1`` (the nearest such value, ties to even) so that every encoder stage has
    an exact size and ``align_corners=True`` resizing lines up. E.g. 480x854 -> 481x849,
    1080x1920 -> 577x1041, 145x257 -> 145x257.
    """
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    long_edge = max(height, width)
    if long_edge > max_long_edge:
        scale = max_long_edge / long_edge
        height, width = int(height * scale), int(width * scale)
    sides = []
    for side in (height, width):
        if align_corners:
            if (side - 1) % stride != 0:
                side = int(np.round((side - 1) / stride)) * stride + 1
        elif side % stride != 0:
            side = int(np.round(side / stride)) * stride
        sides.append(max(side, stride + 1 if align_corners else stride))
    return sides[0], sides[1]


def normalize(images: Tensor) -> Tensor:
    """uint8 (or 0..255 float) RGB ``[..., 3, H, W]`` -> ImageNet-normalised float32.

    ``(x / 255 - mean) / std`` in float32 in this order, as the official evaluator computes it.
    """
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32, device=images.device)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32, device=images.device)[:, None, None]
    return (images.float() / 255.0 - mean) / std


def resize_frame(frame: Tensor, input_size: tuple[int, int]) -> Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[1, 3, h, w]`` (still 0..255) at the model's input size:
    bicubic, as the official evaluator resizes."""
    # [H, W, 3] is already channels-last, the layout the model's convolutions want
    image = frame.permute(2, 0, 1)[None].float().contiguous(memory_format=torch.channels_last)
    if tuple(image.shape[-2:]) != tuple(input_size):
        image = F.interpolate(image, size=input_size, mode="bicubic", align_corners=False)
    return image


def prepare_frame(frame: Tensor, input_size: tuple[int, int]) -> Tensor:
    """uint8 ``[H, W, 3]`` -> normalised ``[1, 3, h, w]`` at the model's input size.

    Resizing (:func:`resize_frame`) comes before normalisation (official order).
    """
    return normalize(resize_frame(frame, input_size))


def resize_labels(labels: Tensor, size: tuple[int, int]) -> Tensor:
    """Label map ``[B, H, W]`` -> ``[B, h, w]`` with PyTorch ``nearest`` (official choice)."""
    if tuple(labels.shape[-2:]) == tuple(size):
        return labels
    return F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0].long()


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously), so that a timer read
    afterwards measures the work itself; nothing to wait for on a CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_max_long_term_frames(max_long_term_frames: int | None) -> None:
    """``None`` (unbounded) or a whole number >= 1 (1: the reference frame only)."""
    if max_long_term_frames is None:
        return
    if isinstance(max_long_term_frames, bool) or not isinstance(max_long_term_frames, numbers.Integral) \
            or max_long_term_frames < 1:
        raise ValueError(
            f"max_long_term_frames must be a whole number >= 1 (1 keeps only the reference "
            f"frame, which is never dropped) or None (unbounded), got {max_long_term_frames!r}"
        )


# --- one group of up to M objects ------------------------------------------------------------

class AOTEngine:
    """Memories and frame steps for one group of up to ``M`` objects, batch ``B``.

    Used at test time (batch 1, identity assignment) and during training (batch of clips,
    random identity assignment per sample, gradients flowing through the memories).

    Args:
        model: the AOT network.
        long_term_gap: add a propagated frame to the long-term memory every this many frames
            (``9999``: never, the AOT-T/S/B default).
        short_term_skip: the short-term memory is frame ``t - skip`` (1 in AOT).
        max_long_term_frames: optional bound on the long-term memory (the official code lets it
            grow without limit, which costs memory on long videos). When full, the oldest
            non-reference frame is dropped. Reference frames (frame 0, and frames where new
            objects appear) are never dropped, so ``1`` keeps the reference frame only; the
            memory holds ``max(max_long_term_frames, reference frames)`` frames. ``None`` =
            unbounded (official).
    """

    def __init__(
        self, model: AOT, long_term_gap: int, short_term_skip: int = 1,
        max_long_term_frames: int | None = None,
    ) -> None:
        if long_term_gap < 1:
            raise ValueError(f"long_term_gap must be >= 1, got {long_term_gap}")
        check_max_long_term_frames(max_long_term_frames)
        self.model = model
        self.long_term_gap = long_term_gap
        self.short_term_skip = short_term_skip
        self.short_term_frames = model.config.short_term_frames
        if self.short_term_frames > 1 and short_term_skip != 1:
            raise ValueError("several short-term frames (short_term_frames > 1) need short_term_skip = 1")
        self.max_long_term_frames = max_long_term_frames
        self.num_identities = model.max_obj_num + 1
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self.last_memory_step = -1
        self.num_objects: list[int] = []
        self.assignment: Tensor | None = None
        self.long_term: list[tuple[Tensor, Tensor]] | None = None
        self.reference_frames = 0  # long-term entries that are never dropped (at the end)
        self.short_term_queue: list[list[tuple[Tensor, Tensor]]] = []
        self.current: LSTTOutput | None = None
        self.size_2d: tuple[int, int] | None = None

    @property
    def short_term(self) -> list[tuple[Tensor, Tensor]]:
        """Per block, the short-term memory ``(K, V)``: frame ``t - skip`` as maps
        ``[B, C, h, w]``; with ``n = short_term_frames > 1`` (paper Table 3c), the latest ``n``
        frames (fewer at the start), newest first, ``[B, n, C, h, w]``."""
        if self.short_term_frames <= 1:
            return self.short_term_queue[0]
        frames = self.short_term_queue[::-1]
        return [(torch.stack([f[i][0] for f in frames], 1), torch.stack([f[i][1] for f in frames], 1))
                for i in range(len(frames[0]))]

    @property
    def long_term_frames(self) -> int:
        """Number of frames in the long-term memory."""
        if self.long_term is None or self.size_2d is None:
            return 0
        return self.long_term[0][0].shape[0] // (self.size_2d[0] * self.size_2d[1])

    def identity_embedding(self, object_one_hot: Tensor) -> Tensor:
        """Eq. 3: object masks ``[B, M+1, H, W]`` -> ``ID`` tokens ``[HW, B, C]``."""
        if self.assignment is None:
            used = max(self.num_objects) + 1  # higher identities are all-zero: skip them
            return self.model.identity_embedding(object_one_hot, used)
        return self.model.identity_embedding(assign_identities(object_one_hot, self.assignment))

    def add_reference_frame(
        self,
        enc: list[Tensor],
        object_one_hot: Tensor,
        num_objects: Sequence[int],
        step: int | None = None,
        assignment: Tensor | None = None,
        need_weights: bool = False,
    ) -> LSTTOutput:
        """A frame with known masks: it attends to itself and becomes memory.

        Args:
            enc: the frame's encoding (:meth:`AOT.encode_image`).
            object_one_hot: ``[B, M+1, H, W]`` object masks (channel 0 background), input size.
            num_objects: number of objects per sample.
            step: frame index (0 for the first frame; a later index when new objects appear).
            assignment: ``[B, M+1]`` identity of every object (Eq. 3); identity if ``None``.
        """
        if self.long_term is None:
            self.assignment = assignment  # None: object j uses identity j (test time)
        self.num_objects = [int(n) for n in num_objects]
        if step is not None:
            self.step = step
        self.size_2d = tuple(enc[-1].shape[-2:])
        id_emb = self.identity_embedding(object_one_hot)
        out = self.model.propagate(enc, id_emb=id_emb, need_weights=need_weights)
        memories = [self._fused(m.key, m.value, id_emb, i) for i, m in enumerate(out.memories)]
        if self.long_term is None:
            self.long_term = memories
        else:  # a later reference frame joins at the end, with the other references
            self.long_term = [
                (torch.cat([k, nk]), torch.cat([v, nv])) for (k, v), (nk, nv) in zip(self.long_term, memories, strict=True)
            ]
        self.reference_frames += 1
        self.last_memory_step = self.step
        self.short_term_queue = [[(seq_to_map(k, self.size_2d), seq_to_map(v, self.size_2d)) for k, v in memories]]
        self.current = out
        return out

    def _fused(self, key: Tensor, value: Tensor, id_emb: Tensor, layer: int) -> tuple[Tensor, Tensor]:
        return key, self.model.LSTT.layers[layer].memory_value(value, id_emb)

    def propagate(self, enc: list[Tensor], need_weights: bool = False) -> LSTTOutput:
        """Match and propagate the next frame against the memories (no mask needed)."""
        if self.long_term is None:
            raise RuntimeError("add a reference frame before propagating")
        self.step += 1
        self.current = self.model.propagate(
            enc, long_term_memories=self.long_term, short_term_memories=self.short_term,
            need_weights=need_weights,
        )
        return self.current

    def decode(self, enc: list[Tensor], output_size: tuple[int, int] | None = None,
               channels: int | None = None) -> Tensor:
        """Object logits of the current frame ``[B, M+1, h, w]`` (Eq. 5 before the softmax).

        Identities no object uses get ``-1e10``. ``output_size``: bilinear resize
        (``align_corners`` as the model) of the 1/4-resolution logits. ``channels``: keep only
        the first channels before resizing (the rest would be ``-1e10`` anyway).
        """
        assert self.current is not None
        logits = self.model.decode(enc, self.current)
        if self.assignment is not None:
            logits = decode_identities(logits, self.assignment)
        logits = mask_unused_identities(logits, self.num_objects)
        if channels is not None:
            logits = logits[:, :channels]
        if output_size is not None and tuple(output_size) != tuple(logits.shape[-2:]):
            logits = F.interpolate(
                logits, size=output_size, mode="bilinear",
                align_corners=self.model.config.align_corners,
            )
        return logits

    def update_memory(self, object_one_hot: Tensor) -> None:
        """Feed the current frame's mask ``[B, M+1, H, W]`` (input size) back into the memory.

        It becomes the short-term memory; every ``long_term_gap`` frames it also joins the
        long-term memory (newest first, references last).
        """
        assert self.current is not None and self.size_2d is not None
        id_emb = self.identity_embedding(object_one_hot)
        memories = [self._fused(m.key, m.value, id_emb, i) for i, m in enumerate(self.current.memories)]
        self.short_term_queue.append(
            [(seq_to_map(k, self.size_2d), seq_to_map(v, self.size_2d)) for k, v in memories]
        )
        self.short_term_queue = self.short_term_queue[-max(self.short_term_skip, self.short_term_frames):]
        if self.step - self.last_memory_step >= self.long_term_gap:
            self._append_long_term(memories)
            self.last_memory_step = self.step

    def _append_long_term(self, memories: list[tuple[Tensor, Tensor]]) -> None:
        assert self.long_term is not None and self.size_2d is not None
        hw = self.size_2d[0] * self.size_2d[1]
        cap = self.max_long_term_frames
        if cap is not None and cap <= self.reference_frames:
            return  # references fill the bound and are never dropped: nothing propagated joins
        updated = []
        for (k, v), (nk, nv) in zip(self.long_term, memories, strict=True):
            if cap is not None and k.shape[0] // hw >= cap:
                # drop the oldest propagated frames; the references at the end stay
                keep_new = (cap - 1 - self.reference_frames) * hw
                ref = self.reference_frames * hw
                k = torch.cat([k[:keep_new], k[k.shape[0] - ref:]])
                v = torch.cat([v[:keep_new], v[v.shape[0] - ref:]])
            updated.append((torch.cat([nk, k]), torch.cat([nv, v])))
        self.long_term = updated


# --- any number of objects ----------------------------------------------------------------

def soft_aggregation(background: Tensor, foreground: Tensor) -> Tensor:
    """Merge probabilities computed separately into one set of logits (official merge).

    ``background [B, K, H, W]``: the background probability of each of ``K`` separate runs
    (object groups, or single objects in a post-ensemble, Eq. 1); ``foreground [B, N, H, W]``:
    the objects' probabilities. The merged background is the product of the backgrounds; the
    merged probabilities are clamped to ``[1e-5, 1 - 1e-5]`` and turned into logits
    ``[B, 1 + N, H, W]``, whose softmax is the result.
    """
    merged = torch.cat([torch.prod(background, dim=1, keepdim=True), foreground], dim=1)
    return torch.logit(merged.clamp(1e-5, 1 - 1e-5))
