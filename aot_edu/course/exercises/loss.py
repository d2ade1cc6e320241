"""Notebook 05: the training loss - bootstrapped cross-entropy and 0.5 BCE + 0.5 soft Jaccard
(paper Sec. 5).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from aot_edu.training.losses import bootstrapped_cross_entropy, soft_jaccard_loss, vos_loss

from .checking import (
    _call,
    _diagnose,
    _explain_ignore,
    _gradients_flow,
    _same_shape,
    _tensor,
    _with_grad,
)
from .framework import _exercise

# --- 05 training -----------------------------------------------------------------------------

def _loss_inputs(seed: int):
    """Logits ``[2, 4, 6, 7]`` and labels with objects 0..2 (class 3 absent) and ignored pixels."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 6, 7, generator=generator) * 2
    labels = torch.randint(0, 3, (2, 6, 7), generator=generator)
    labels[0, 0, :3] = 255  # pixels to ignore (the official IGNORE_LABEL)
    return logits, labels


@_exercise(
    "bootstrapped_cross_entropy", "bootstrapped cross-entropy", "Sec. 5 loss", "05_training",
    "bootstrapped_cross_entropy(logits: Tensor, labels: Tensor, fraction: float) -> Tensor",
    hints=(
        "Per pixel: -log of the true class's softmax probability, F.cross_entropy(logits, "
        "labels, reduction='none') -> [B, H, W].",
        "Labels 255 mark pixels to ignore: pass ignore_index=255 (they count as loss 0).",
        "Per sample, keep the K = int(fraction * H * W) largest pixel losses "
        "(.flatten(1).topk(K, dim=1)) and average them: one loss per sample, [B].",
    ))
def _check_bootstrapped(fn: Callable) -> None:
    key = "bootstrapped_cross_entropy"
    logits, labels = _loss_inputs(seed=91)
    fraction = 0.3  # 0.3 * 42 = 12.6: K = 12
    called = "bootstrapped_cross_entropy(logits, labels, 0.3) with logits [2, 4, 6, 7], labels [2, 6, 7]"
    got = _tensor(key, _call(key, fn, logits, labels, fraction, called=called,
                             explain=_explain_ignore), "the loss")
    expected = bootstrapped_cross_entropy(logits, labels, fraction)
    _same_shape(key, got, expected, ("B: one loss per sample",), "the loss",
                lambda g, e: "A single number: keep the hardest pixels of each sample and return "
                             "one loss per sample." if g == () else None)
    pixel = F.cross_entropy(logits, labels, ignore_index=255, reduction="none").flatten(1)

    def top(k: int, largest: bool = True) -> Tensor:
        return pixel.topk(k, dim=1, largest=largest).values.mean(1)

    _diagnose(key, got, expected, [
        ("every pixel is averaged: keep only the K = int(fraction * H * W) largest pixel losses "
         "of each sample - the hard pixels.", lambda: pixel.mean(1)),
        ("these are the easiest pixels: keep the K largest losses, not the smallest.",
         lambda: top(12, largest=False)),
        ("K is one too many: K = int(fraction * H * W), rounded down.", lambda: top(13)),
        ("K is one too few: K = int(fraction * H * W) = 12 here.", lambda: top(11)),
        ("the ignored pixels (label 255) must count as loss 0 (ignore_index=255), not be left "
         "out of the top-K.",
         lambda: torch.stack([pixel[b][labels.flatten(1)[b] != 255].topk(12).values.mean()
                              for b in range(2)])),
    ])
    inputs = _with_grad(logits)
    got = _call(key, fn, inputs[0], labels, fraction, called=called)
    ref = _with_grad(logits)
    _gradients_flow(key, got, bootstrapped_cross_entropy(ref[0], labels, fraction),
                    [("logits", inputs[0])], ref)


@_exercise(
    "aot_loss", "the training loss: 0.5 bootstrapped CE + 0.5 soft Jaccard", "Sec. 5 loss",
    "05_training",
    "aot_loss(logits: Tensor, labels: Tensor, fraction: float) -> Tensor",
    hints=(
        "Soft Jaccard per class c: p = softmax(logits, dim=1)[:, c], g = (labels == c); "
        "1 - sum(p g) / (sum(p g) + sum(p (1 - g)) + sum((1 - p) g) + 1e-6), sums over H, W.",
        "Pixels labelled 255 are ignored: multiply p and g by the valid mask (labels != 255).",
        "Average over the classes present in the sample's ground truth only (an absent class "
        "would add a constant 1) - per sample, [B].",
        "aot_loss = 0.5 * bootstrapped_cross_entropy(logits, labels, fraction) + 0.5 * jaccard.",
    ))
def _check_aot_loss(fn: Callable) -> None:
    key = "aot_loss"
    logits, labels = _loss_inputs(seed=95)
    fraction = 0.3
    called = "aot_loss(logits, labels, 0.3) with logits [2, 4, 6, 7], labels [2, 6, 7]"
    got = _tensor(key, _call(key, fn, logits, labels, fraction, called=called,
                             explain=_explain_ignore), "the loss")
    expected = vos_loss(logits, labels, fraction)
    _same_shape(key, got, expected, ("B: one loss per sample",), "the loss",
                lambda g, e: "A single number: return one loss per sample." if g == () else None)
    ce, jaccard = bootstrapped_cross_entropy(logits, labels, fraction), soft_jaccard_loss(logits, labels)
    valid = (labels != 255)[:, None].float()
    truth = F.one_hot(labels.clamp(max=3), 4).permute(0, 3, 1, 2).float() * valid
    probs = torch.softmax(logits, dim=1)

    def jaccard_of(p: Tensor, g: Tensor, present_only: bool = True, per_sample: bool = True) -> Tensor:
        dims = (2, 3) if per_sample else (0, 2, 3)
        inter, fp, fn_ = (p * g).sum(dims), (p * (1 - g)).sum(dims), ((1 - p) * g).sum(dims)
        per_class = 1 - inter / (inter + fp + fn_ + 1e-6)
        present = (g.sum(dims) > 0).float() if present_only else torch.ones_like(per_class)
        value = (per_class * present).sum(-1) / present.sum(-1)
        return value if per_sample else value.expand(2)

    _diagnose(key, got, expected, [
        ("the weights: the loss is 0.5 * CE + 0.5 * Jaccard.", lambda: ce + jaccard),
        ("the soft Jaccard part is missing: 0.5 * CE + 0.5 * (1 - soft IoU).", lambda: 0.5 * ce),
        ("the cross-entropy part is missing: 0.5 * bootstrapped CE + 0.5 * Jaccard.",
         lambda: 0.5 * jaccard),
        ("that is 0.5 * (soft IoU), not 0.5 * (1 - soft IoU): the loss must fall as the overlap "
         "grows.", lambda: 0.5 * ce + 0.5 * (1 - jaccard)),
        ("the Jaccard uses the logits: use probabilities, softmax(logits, dim=1).",
         lambda: 0.5 * ce + 0.5 * jaccard_of(logits * valid, truth)),
        ("the Jaccard averages over every class, absent ones too (each adds a constant 1): "
         "average over the classes present in the sample's ground truth.",
         lambda: 0.5 * ce + 0.5 * jaccard_of(probs * valid, truth, present_only=False)),
        ("the ignored pixels (label 255) count in the Jaccard: multiply the probabilities by "
         "the valid mask (labels != 255).",
         lambda: 0.5 * ce + 0.5 * jaccard_of(probs, truth)),
        ("the Jaccard sums over the whole batch: compute it per sample (sums over H and W).",
         lambda: 0.5 * ce + 0.5 * jaccard_of(probs * valid, truth, per_sample=False)),
    ])
    inputs = _with_grad(logits)
    got = _call(key, fn, inputs[0], labels, fraction, called=called)
    ref = _with_grad(logits)
    _gradients_flow(key, got, vos_loss(ref[0], labels, fraction), [("logits", inputs[0])], ref)
