"""The training loss (paper Sec. 5): 0.5 bootstrapped cross-entropy + 0.5 soft Jaccard.

Shapes: logits ``[B, M+1, H, W]`` (background, then the M identities), labels ``[B, H, W]``
(0 = background, 1..N objects, ``VOID_LABEL`` ignored). The official values
(``TRAIN_TOP_K_PERCENT_PIXELS``, ``TRAIN_HARD_MINING_RATIO``, ``TRAIN_AUX_LOSS_RATIO``) are
explained in :mod:`aot_edu.training`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from aot_edu.data.io import VOID_LABEL


def hard_mining_fraction(
    step: int, total_steps: int, top_k_percent: float = 0.15, hard_mining_ratio: float = 0.5
) -> float:
    """Fraction of pixels the bootstrapped cross-entropy keeps at ``step``.

    Anneals linearly from 1 (every pixel) at step 0 to ``top_k_percent`` at
    ``hard_mining_ratio * total_steps`` and stays there (official ``CrossEntropyLoss``):
    ``r * top_k + (1 - r)`` with ``r = min(1, step / (hard_mining_ratio * total_steps))``.
    """
    if not 0.0 < top_k_percent <= 1.0:
        raise ValueError(f"top_k_percent must be in (0, 1], got {top_k_percent}")
    mining_steps = hard_mining_ratio * total_steps
    r = 1.0 if mining_steps <= 0 else min(1.0, step / mining_steps)
    return r * top_k_percent + (1.0 - r)


def hardest_pixels(pixel_losses: Tensor, fraction: float) -> tuple[Tensor, Tensor]:
    """The ``int(fraction * H * W)`` largest per-pixel losses of every sample.

    ``pixel_losses [B, H, W]`` -> ``(values [B, k], mask [B, H, W] bool)``: the kept losses and
    where they are (the "hard pixels" the bootstrapped cross-entropy trains on).
    """
    flat = pixel_losses.flatten(1)
    k = max(1, int(fraction * flat.shape[1]))
    if k >= flat.shape[1]:
        return flat, torch.ones_like(pixel_losses, dtype=torch.bool)
    values, index = flat.topk(k, dim=1)
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, index, True)
    return values, mask.view_as(pixel_losses)


def bootstrapped_cross_entropy(
    logits: Tensor, labels: Tensor, fraction: float = 1.0, ignore_index: int = VOID_LABEL
) -> Tensor:
    """Cross-entropy over the hardest pixels only ("bootstrapped"), per sample.

    ``logits [B, C, H, W]`` (unused identities at ``-1e10``, as :meth:`AOTEngine.decode` gives
    them: they get probability 0), ``labels [B, H, W]`` in ``0..C-1`` (``ignore_index`` pixels
    count with loss 0, as in the official code). Returns ``[B]``: the mean of the
    ``int(fraction * H * W)`` largest pixel losses of each sample.
    """
    pixel = F.cross_entropy(logits.float(), labels.long(), ignore_index=ignore_index, reduction="none")
    values, _ = hardest_pixels(pixel, fraction)
    return values.mean(dim=1)


def soft_jaccard_loss(
    logits: Tensor, labels: Tensor, ignore_index: int = VOID_LABEL, eps: float = 1e-6
) -> Tensor:
    """Soft Jaccard (IoU) loss per sample, averaged over the classes present in ``labels``.

    With softmax probabilities ``p_c`` and ground truth ``g_c`` of class ``c`` (background
    included), over the valid pixels: ``1 - sum(p g) / (sum(p g) + sum(p (1-g)) + sum((1-p) g)
    + eps)`` (the Tversky loss with alpha = beta = 1 of the official code). Classes absent from
    the ground truth are skipped. ``logits [B, C, H, W]``, ``labels [B, H, W]`` -> ``[B]``.
    """
    probs = torch.softmax(logits.float(), dim=1)
    valid = (labels != ignore_index)[:, None].float()
    classes = torch.arange(probs.shape[1], device=labels.device)
    truth = (labels[:, None] == classes[None, :, None, None]).float() * valid
    probs = probs * valid
    intersection = (probs * truth).sum((2, 3))
    false_pos = (probs * (1 - truth)).sum((2, 3))
    false_neg = ((1 - probs) * truth).sum((2, 3))
    per_class = 1 - intersection / (intersection + false_pos + false_neg + eps)
    present = (truth.sum((2, 3)) > 0).float()
    return (per_class * present).sum(1) / present.sum(1).clamp(min=1)


def vos_loss(
    logits: Tensor, labels: Tensor, fraction: float = 1.0, ce_weight: float = 0.5,
    jaccard_weight: float = 0.5,
) -> Tensor:
    """The per-frame loss of AOT: ``0.5 * bootstrapped CE + 0.5 * soft Jaccard``, ``[B]``."""
    return ce_weight * bootstrapped_cross_entropy(logits, labels, fraction) + (
        jaccard_weight * soft_jaccard_loss(logits, labels)
    )


def identity_separation_loss(vectors: Tensor, margin: float = 0.3) -> Tensor:
    """Push apart identities whose cosine similarity exceeds ``margin`` (our addition, not the
    paper's: see ``optim.identity_separation``).

    ``vectors [M+1, C]`` (background first, :meth:`IdentityBank.identity_vectors`) -> scalar:
    the mean over ordered pairs of distinct object identities of ``relu(cos - margin)``. Zero
    once no pair is closer than ``margin``, so a bank already spread out is left to the task
    loss; the paper's Fig. 4 banks stay near the equidistant ``-1/(M-1)`` without it, ours
    (trained on a few objects per clip) kept near-duplicate pairs.
    """
    v = F.normalize(vectors[1:].float(), dim=1)
    cos = v @ v.t()
    off = ~torch.eye(len(v), dtype=torch.bool, device=v.device)
    return torch.relu(cos[off] - margin).mean()


def aux_loss_weight(step: int, total_steps: int, weight: float = 1.0, ratio: float = 1.0) -> float:
    """Weight of the reference frame's own loss: ``weight`` at step 0, linearly to 0 at
    ``ratio * total_steps`` (official ``TRAIN_AUX_LOSS_WEIGHT`` / ``TRAIN_AUX_LOSS_RATIO``)."""
    aux_steps = ratio * total_steps
    if aux_steps <= 0:
        return 0.0
    return weight * max(aux_steps - step, 0.0) / aux_steps


def batch_iou(pred: Tensor, labels: Tensor, num_objects: Sequence[int]) -> Tensor:
    """Mean IoU over the objects of each sample (a training-time statistic), ``[B]``.

    ``pred, labels [B, H, W]``; an object absent from both counts as IoU 1.
    """
    out = []
    for b, n in enumerate(num_objects):
        ious = []
        for obj in range(1, int(n) + 1):
            p, g = pred[b] == obj, labels[b] == obj
            union = (p | g).sum()
            ious.append((p & g).sum() / union if union > 0 else torch.ones((), device=pred.device))
        out.append(torch.stack(ious).float().mean() if ious else torch.ones((), device=pred.device))
    return torch.stack(out)
