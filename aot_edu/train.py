"""Training AOT: the paper's recipe (Sec. 5, appendix A.1.2) and a trainer that loses nothing.

**The recipe.** Every sample is a clip of ``T = 5`` frames: a reference frame whose mask is
given, then four frames the model must segment. The clip runs through the model exactly as a
video does at test time (:class:`~aot_edu.engine.AOTEngine`): the reference frame becomes the
memory, every later frame is matched against it, decoded, and its **predicted** label map
(arg-max; no gradient flows through the arg-max) becomes the short-term memory of the next
frame - and, every ``long_term_gap_train`` frames (AOT-L: 2), a long-term memory too. The
objects get a fresh random identity permutation (Eq. 3) in every sample and step, so that no
identity is tied to an object. The loss of a frame is ``0.5`` bootstrapped cross-entropy (the
hardest ``k %`` pixels, ``k`` annealed from 100 % to 15 %) plus ``0.5`` soft Jaccard; the
optimiser is AdamW with a warm-up and a polynomial decay (power 0.9) to ``2e-5``, ten times
smaller steps for the encoder, an exponential moving average (EMA) of the weights, stochastic
depth (0.1) in the LSTT, frozen BatchNorm statistics and frozen first two encoder stages.

Facts from the official code (yoxu515/aot-benchmark: ``configs/default.py``, ``configs/pre.py``,
``networks/engines/aot_engine.py``, ``networks/layers/loss.py``, ``networks/managers/trainer.py``,
``utils/learning.py``, ``utils/ema.py``) that the paper does not spell out:

- bootstrapped cross-entropy (``TRAIN_TOP_K_PERCENT_PIXELS = 0.15``,
  ``TRAIN_HARD_MINING_RATIO = 0.5``): the kept fraction is ``r * 0.15 + (1 - r)`` with
  ``r = min(1, step / (0.5 * total_steps))`` - all pixels at step 0, 15 % from half-way on;
  per sample, ``int(fraction * H * W)`` pixels with the largest loss, averaged;
- soft Jaccard: per sample, over the classes (background and objects) present in the ground
  truth, ``1 - sum(p g) / (sum(p g) + sum(p (1 - g)) + sum((1 - p) g) + 1e-6)``, averaged;
- an auxiliary loss on the **reference** frame itself (decoded from its own memory), weighted
  ``1 - step / (aux_ratio * total_steps)`` (``TRAIN_AUX_LOSS_RATIO``: 1.0 in main training,
  0.1 in pre-training) and ``0`` after; the loss is ``aux_weight * aux + mean(frame losses)``;
- predictions are fed back only from ``TRAIN_SEQ_TRAINING_START_RATIO * total_steps`` on
  (0.5 in main training; 1.0 = never in pre-training): before that the ground-truth masks are
  the memories (teacher forcing). While predictions are fed back the identity bank is frozen:
  its embedding is detached and its learning rate and weight decay are 0;
- learning rate (``adjust_learning_rate``): linear warm-up from ``min_lr`` over
  ``TRAIN_LR_WARM_UP_RATIO = 5 %`` of the steps, then
  ``min_lr + (lr - min_lr) * (1 - s / (S + 1)) ** 0.9`` (``s, S`` counted after the warm-up);
  the encoder gets ``min_lr + 0.1 * (lr_now - min_lr)``; ``min_lr = 2e-5`` for MobileNetV2
  (1e-5 for ResNet-50); pre-training ``lr = 4e-4``, ``weight_decay = 0.03``, main training
  ``2e-4`` and ``0.07``; no weight decay on biases, normalisation weights (1-D parameters) and
  ``relative_emb_v`` / ``conv_out``; gradients clipped to norm 5;
- EMA (``utils/ema.py``): ``decay = 1 - 1 / (0.1 * total_steps)``, used as
  ``min(decay, (1 + n) / (10 + n))`` at the ``n``-th update; the EMA weights are the ones
  released and the ones the next stage starts from;
- stochastic depth ``TRAIN_LSTT_DROPPATH = 0.1`` on the self-attention and feed-forward
  branches of every LSTT block (not on the long/short-term attention:
  ``TRAIN_LSTT_DROPPATH_LST = False``); ``TRAIN_ENCODER_FREEZE_AT = 2``; batch 16 over 4 GPUs;
  mixed precision (``torch.cuda.amp``) on GPUs; 100,000 steps per stage.

**From scratch** (no ImageNet weights) three things are added, none of them in the paper:
:func:`official_initialisation` (the official model's Xavier/orthogonal initialisation, which
PyTorch's defaults do not reproduce), and, on the first clips, :func:`calibrate_frozen_batchnorm`
and :func:`calibrate_projection` (a data-dependent initialisation of the random encoder: without
it the frozen identity BatchNorm lets the activations fade to zero before the 1/16 stage). One
more start-up option, :func:`locality_prior`, starts the short-term attention local (measured
in ``bench/RESULTS.md``; off in the quick configuration, where it did not help).

**Runs that lose nothing.** :func:`train` takes a TOML configuration (validated into
:class:`TrainConfig` before anything starts), writes a CSV log, curves (PNG) and, every
``checkpoint_every`` steps, a checkpoint holding everything needed to continue exactly: model,
optimiser, gradient scaler, EMA, random states, data position and step. Files are written to a
temporary name and renamed (``os.replace``), so a run killed at any moment (even ``SIGKILL``)
leaves the last complete checkpoint, and running the same command again continues from it.
The data order and every random draw of a step are functions of ``(seed, step)``, so a resumed
run computes the same weights as an uninterrupted one. The same trainer runs on several
processes (``torchrun``; DistributedDataParallel over NCCL on GPUs, gloo on CPUs) with the
batch split over them, and accumulates gradients over micro-batches.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import difflib
import json
import math
import os
import random
import sys
import time
import tomllib
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .analysis import evaluate_model, global_scores, score_videos  # noqa: F401 (re-exported)
from .data.io import FILE_BROWSER_FILES
from .encoders import freeze_stages, use_batch_statistics
from .engine import AOTEngine, normalize
from .identity import one_hot_labels, random_assignment
from .model import AOT, build_model, get_config

IGNORE_LABEL = 255
# Parameters without weight decay besides 1-D ones (official TRAIN_WEIGHT_DECAY_EXEMPTION).
NO_DECAY_KEYS = ("absolute_pos_embed", "relative_position_bias_table", "relative_emb_v", "conv_out")
# Parameters frozen while predictions are fed back (official TRAIN_SEQ_TRAINING_FREEZE_PARAMS).
IDENTITY_BANK_KEYS = ("patch_wise_id_bank",)
CHECKPOINT_FORMAT = "aot-edu-train/1"


# ============================================================================================
# Losses (paper Sec. 5: "bootstrapped cross-entropy and soft Jaccard, equally weighted")
# ============================================================================================


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
    logits: Tensor, labels: Tensor, fraction: float = 1.0, ignore_index: int = IGNORE_LABEL
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
    logits: Tensor, labels: Tensor, ignore_index: int = IGNORE_LABEL, eps: float = 1e-6
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


def aux_loss_weight(step: int, total_steps: int, weight: float = 1.0, ratio: float = 1.0) -> float:
    """Weight of the reference frame's own loss: ``weight`` at step 0, linearly to 0 at
    ``ratio * total_steps`` (official ``TRAIN_AUX_LOSS_WEIGHT`` / ``TRAIN_AUX_LOSS_RATIO``)."""
    aux_steps = ratio * total_steps
    if aux_steps <= 0:
        return 0.0
    return weight * max(aux_steps - step, 0.0) / aux_steps


def batch_iou(pred: Tensor, labels: Tensor, obj_nums: Sequence[int]) -> Tensor:
    """Mean IoU over the objects of each sample (a training-time statistic), ``[B]``.

    ``pred, labels [B, H, W]``; an object absent from both counts as IoU 1.
    """
    out = []
    for b, n in enumerate(obj_nums):
        ious = []
        for obj in range(1, int(n) + 1):
            p, g = pred[b] == obj, labels[b] == obj
            union = (p | g).sum()
            ious.append((p & g).sum() / union if union > 0 else torch.ones((), device=pred.device))
        out.append(torch.stack(ious).float().mean() if ious else torch.ones((), device=pred.device))
    return torch.stack(out)


# ============================================================================================
# Schedule, parameter groups, EMA
# ============================================================================================


def poly_lr(
    step: int, total_steps: int, base_lr: float, min_lr: float, power: float = 0.9,
    warmup_steps: float = 0.0,
) -> float:
    """Learning rate at ``step``: linear warm-up, then polynomial decay to ``min_lr``.

    Warm-up: ``min_lr + (base_lr - min_lr) * step / warmup_steps``. After it, with ``s`` and
    ``S`` the step and the total counted from the end of the warm-up:
    ``min_lr + (base_lr - min_lr) * (1 - s / (S + 1)) ** power`` (official
    ``adjust_learning_rate``; the ``+ 1`` keeps the last step above ``min_lr``).
    """
    if step < warmup_steps:
        return min_lr + (base_lr - min_lr) * step / warmup_steps
    s, total = step - warmup_steps, total_steps - warmup_steps
    return min_lr + (base_lr - min_lr) * max(0.0, 1 - s / (total + 1)) ** power


def encoder_lr(lr: float, min_lr: float, ratio: float = 0.1) -> float:
    """The encoder's learning rate: ``min_lr + ratio * (lr - min_lr)`` (official rule)."""
    return (lr - min_lr) * ratio + min_lr


def param_groups(
    model: nn.Module, weight_decay: float, no_decay_keys: Sequence[str] = NO_DECAY_KEYS,
    identity_bank_keys: Sequence[str] = IDENTITY_BANK_KEYS,
) -> list[dict]:
    """AdamW parameter groups: encoder or not x weight decay or not x identity bank or not.

    Only trainable parameters (``requires_grad``) are included. No weight decay on 1-D
    parameters (biases, LayerNorm/GroupNorm weights) and on ``no_decay_keys``. Each group
    carries ``name``, ``encoder`` (gets the encoder learning rate), ``identity_bank`` (frozen
    while predictions are fed back) and ``base_weight_decay``; see :func:`set_learning_rates`.
    """
    groups: dict[tuple[bool, bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = param.ndim > 1 and not any(key in name for key in no_decay_keys)
        key = (name.startswith("encoder."), decay, any(k in name for k in identity_bank_keys))
        groups.setdefault(key, []).append(param)
    out = []
    for (is_encoder, decay, is_bank), params in sorted(groups.items()):
        wd = weight_decay if decay else 0.0
        out.append({
            "params": params, "weight_decay": wd, "base_weight_decay": wd,
            "name": f"{'encoder' if is_encoder else 'other'}/{'decay' if decay else 'no_decay'}"
                    f"{'/identity_bank' if is_bank else ''}",
            "encoder": is_encoder, "identity_bank": is_bank,
        })
    return out


def set_learning_rates(
    optimizer: torch.optim.Optimizer, lr: float, min_lr: float, encoder_ratio: float = 0.1,
    freeze_identity_bank: bool = False,
) -> None:
    """Apply ``lr`` to the groups of :func:`param_groups` (encoder: :func:`encoder_lr`;
    identity bank: learning rate and weight decay 0 while it is frozen)."""
    for group in optimizer.param_groups:
        if group.get("identity_bank") and freeze_identity_bank:
            group["lr"], group["weight_decay"] = 0.0, 0.0
            continue
        group["lr"] = encoder_lr(lr, min_lr, encoder_ratio) if group.get("encoder") else lr
        group["weight_decay"] = group.get("base_weight_decay", group["weight_decay"])


def ema_decay(total_steps: int, ema_ratio: float = 0.1) -> float:
    """``1 - 1 / (ema_ratio * total_steps)`` (official): an averaging window of about 10 % of
    the run (0.9999 for 100,000 steps)."""
    return max(0.0, 1.0 - 1.0 / max(ema_ratio * total_steps, 1e-12))


@torch.no_grad()
def official_initialisation(model: AOT) -> None:
    """The official model's initialisation of everything but the encoder (its
    ``_init_weight``s): Xavier-uniform for every weight of more than one dimension in the LSTT
    blocks, the decoder and the encoder projection, and an orthogonal identity bank with gain
    ``1 / 17**2`` (its ``[C, (M+1) * 17 * 17]`` matrix has orthogonal rows of norm ``1/289``).
    Only training from scratch sees it (checkpoints overwrite it); PyTorch's default
    initialisation of the same layers gives smaller weights (Kaiming-uniform, a = sqrt 5).
    """
    nn.init.xavier_uniform_(model.encoder_projector.weight)
    for module in (*model.LSTT.layers, model.decoder):
        for param in module.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
    bank = model.patch_wise_id_bank.weight
    flat = torch.empty(bank.shape[0], bank[0].numel())
    nn.init.orthogonal_(flat, gain=model.config.id_bank_kernel ** -2)
    bank.copy_(flat.view_as(bank))


@torch.no_grad()
def calibrate_frozen_batchnorm(encoder: nn.Module, images: Tensor) -> int:
    """Give a randomly initialised encoder the BatchNorm statistics of its own activations.

    AOT's encoder keeps BatchNorm frozen (statistics and affine weights are buffers). With
    ImageNet weights those statistics come with the weights; from scratch they would be the
    identity, and the activations of a deep random network then shrink towards zero layer
    after layer (MobileNetV2 at 97 x 97: std 0.2 after the stem, 0.001 at 1/8, 0 at 1/16), so
    the later stages barely pass a signal or a gradient. This sets every frozen BatchNorm's
    ``running_mean``/``running_var`` to the mean and variance of its input on ``images``
    (ImageNet-normalised ``[N, 3, H, W]``), in network order within one forward pass, so that
    every layer starts at unit scale - BatchNorm's own statistics, computed once and kept
    frozen. Returns the number of layers set. Not part of the official recipe (which always
    starts from ImageNet weights); used when ``model.pretrained_encoder`` is false.
    """
    from .encoders import FrozenBatchNorm2d

    def set_statistics(module: FrozenBatchNorm2d, inputs: tuple[Tensor]) -> None:
        x = inputs[0].float()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3), unbiased=False))

    layers = [m for m in encoder.modules() if isinstance(m, FrozenBatchNorm2d)]
    handles = [m.register_forward_pre_hook(set_statistics) for m in layers]
    try:
        encoder(images)
    finally:
        for handle in handles:
            handle.remove()
    return len(layers)


@torch.no_grad()
def calibrate_projection(model: AOT, images: Tensor) -> None:
    """Standardise the encoder projection on ``images``: zero mean, unit variance per channel.

    The last MobileNetV2 stage ends in ReLU6, so a random encoder's 1/16 features share a large
    positive component. Projected, every token then looks alike to the attention (``Q K^T`` is
    dominated by the shared part) and the long-term attention of an untrained model spreads
    almost uniformly over the memory, so no identity gets through. Removing the mean (and
    scaling to unit variance) of every projected channel, as a data-dependent initialisation
    does, lets tokens of one object attend to each other from the first step (AOT-T at 97 x 97
    on synthetic clips: self-attention weight 0.26 -> 0.66). Not part of the official recipe.
    """
    projector = model.encoder_projector
    features = model.encoder(images)[-1]
    projected = projector(features)
    mean, std = projected.mean(dim=(0, 2, 3)), projected.std(dim=(0, 2, 3)).clamp(min=1e-6)
    projector.weight.div_(std[:, None, None, None])
    projector.bias.sub_(mean).div_(std)


@torch.no_grad()
def locality_prior(model: AOT, strength: float) -> None:
    """Start the short-term attention looking at the same place in the previous frame.

    Sets the bias of every block's ``relative_emb_k`` (the relative-position logit of each of the
    ``(2 max_dis + 1)^2`` window slots) to ``-strength * (dy^2 + dx^2)``: with ``strength = 2``
    an untrained block already puts ~60 % of its weight on the token at the query's own position
    and most of the rest on its 4 neighbours, so from the first step the previous frame's
    identities flow to where the objects still are (they move by a fraction of a token per
    frame). Official training starts with PyTorch's small random biases and learns this prior
    over 100,000 steps. Not part of the official recipe; ``strength = 0`` leaves the biases
    alone. Measured on the CPU quick configuration (one run each): it helped an early version
    (held-out J&F 0.29 -> 0.36) and hurt the final one (0.53 -> 0.44).
    """
    if strength <= 0:
        return
    for block in model.LSTT.layers:
        attention = block.short_term_attn
        radius = attention.max_dis
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        distance2 = (offsets[:, None] ** 2 + offsets[None, :] ** 2).flatten()  # slot (dy, dx)
        bias = attention.relative_emb_k.bias
        bias.copy_((-strength * distance2).repeat(attention.heads).to(bias))


ENCODER_KEYS = ("encoder.", "encoder_projector.")


def load_encoder_weights(model: AOT, weights: str | Path) -> int:
    """Load the encoder and its projection to the LSTT width (``encoder.*``,
    ``encoder_projector.*``) from a checkpoint of any variant with the same encoder (AOT-T/S/B
    share MobileNetV2): training the rest on top of an already trained encoder. Strict for those
    keys (missing or mis-shaped ones raise :class:`aot_edu.checkpoints.CheckpointError`);
    returns the number of tensors loaded."""
    from .checkpoints import CheckpointError, load_state_dict_file

    state = load_state_dict_file(weights)
    own = {k: v for k, v in model.state_dict().items() if k.startswith(ENCODER_KEYS)}
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or wrong:
        raise CheckpointError(
            f"{weights} has no {model.config.title} encoder: {len(missing)} encoder keys missing "
            f"(e.g. {missing[:2]}), {len(wrong)} of another shape (e.g. {wrong[:2]}); use weights "
            "of a variant with the same encoder"
        )
    model.load_state_dict({k: state[k] for k in own}, strict=False)
    return len(own)


class ModelEMA:
    """Exponential moving average of a model's weights (official ``ExponentialMovingAverage``).

    After the ``n``-th optimiser step, ``shadow <- shadow - (1 - d) * (shadow - weights)`` with
    ``d = min(decay, (1 + n) / (10 + n))``: early on ``d`` is small, so the average follows the
    fast-changing weights instead of remembering the random initialisation. Only trainable
    parameters are averaged; frozen parameters and buffers are copied.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"EMA decay must be in [0, 1], got {decay}")
        self.decay = float(decay)
        self.num_updates = 0
        self.trained = {name for name, p in model.named_parameters() if p.requires_grad}
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        """The decay the next :meth:`update` uses."""
        n = self.num_updates + 1
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        self.num_updates += 1
        for name, value in model.state_dict().items():
            shadow = self.shadow[name]
            if name in self.trained:
                shadow.sub_((1.0 - d) * (shadow - value.to(shadow.dtype)))
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: Mapping) -> None:
        missing = set(self.shadow) ^ set(state["shadow"])
        if missing:
            raise ValueError(f"EMA state does not fit the model: keys differ {sorted(missing)[:5]}")
        self.decay, self.num_updates = float(state["decay"]), int(state["num_updates"])
        for name, value in state["shadow"].items():
            self.shadow[name].copy_(value)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into ``model`` (same architecture)."""
        model.load_state_dict(self.shadow, strict=True)


# ============================================================================================
# One clip through the model (official AOTEngine.forward in training mode)
# ============================================================================================


@dataclass
class SequenceOutput:
    """What :func:`sequence_loss` returns."""

    loss: Tensor  # scalar: aux_weight * reference loss + mean of the later frames' losses
    frame_losses: Tensor  # [T] detached, batch means; frame 0 = the reference (aux) loss
    predictions: Tensor  # [B, T, H, W] arg-max label maps (frame 0: the reference's own)


@contextlib.contextmanager
def detached_identity_bank(model: AOT, enabled: bool = True) -> Iterator[None]:
    """While active, the identity embedding (Eq. 3) carries no gradient into the identity bank
    (official ``freeze_id`` while predictions are fed back)."""
    if not enabled:
        yield
        return
    handle = model.patch_wise_id_bank.register_forward_hook(lambda m, i, out: out.detach())
    try:
        yield
    finally:
        handle.remove()


def sequence_loss(
    model: AOT,
    frames: Tensor,
    masks: Tensor,
    obj_nums: Sequence[int],
    assignment: Tensor | None = None,
    *,
    fraction: float = 1.0,
    aux_weight: float = 0.0,
    use_prev_pred: bool = True,
    long_term_gap: int | None = None,
) -> SequenceOutput:
    """Run a batch of clips through AOT as at test time and compute the training loss.

    Args:
        model: the AOT network (in train mode for stochastic depth).
        frames: uint8 ``[B, T, 3, H, W]``; masks: labels ``[B, T, H, W]`` (0 = background,
            ``1..obj_nums[b]``); frame 0 is the reference frame.
        obj_nums: objects per sample (``<= M``).
        assignment: ``[B, M+1]`` identity of every object (Eq. 3); ``None`` = identity.
        fraction: pixels kept by the bootstrapped cross-entropy (:func:`hard_mining_fraction`).
        aux_weight: weight of the reference frame's loss (:func:`aux_loss_weight`).
        use_prev_pred: feed each frame's prediction back as memory (else its ground truth)
            and detach the identity embedding (official sequential-training phase).
        long_term_gap: long-term memory every this many frames (``model.config
            .long_term_gap_train`` if ``None``).

    All frames are encoded in one batch; the LSTT and decoder then run frame by frame.
    """
    if frames.dim() != 5 or masks.dim() != 4 or frames.shape[:2] != masks.shape[:2]:
        raise ValueError(
            f"frames must be [B, T, 3, H, W] and masks [B, T, H, W], got {tuple(frames.shape)} "
            f"and {tuple(masks.shape)}"
        )
    batch, length = frames.shape[:2]
    size = tuple(frames.shape[-2:])
    identities = model.max_obj_num + 1
    gap = model.config.long_term_gap_train if long_term_gap is None else long_term_gap
    masks = masks.long()
    images = frames.flatten(0, 1).contiguous(memory_format=torch.channels_last)  # the model's layout
    enc_all = model.encode_image(normalize(images))
    enc = [[e.unflatten(0, (batch, length))[:, t] for e in enc_all] for t in range(length)]

    with detached_identity_bank(model, use_prev_pred):
        engine = AOTEngine(model, long_term_gap=gap)
        engine.add_reference_frame(
            enc[0], one_hot_labels(masks[:, 0], identities), obj_nums, assignment=assignment
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and aux_weight > 0):
            logits = engine.decode(enc[0], size)
            aux = vos_loss(logits, masks[:, 0], fraction).mean()
        predictions = [logits.max(dim=1).indices]  # = argmax (first maximum), faster on CPU
        losses = []
        for t in range(1, length):
            engine.propagate(enc[t])
            logits = engine.decode(enc[t], size)
            losses.append(vos_loss(logits, masks[:, t], fraction).mean())
            predictions.append(logits.max(dim=1).indices)
            if t < length - 1:
                memory = predictions[-1] if use_prev_pred else masks[:, t]
                engine.update_memory(one_hot_labels(memory, identities))
    frame_loss = torch.stack(losses).mean()
    loss = aux_weight * aux + frame_loss if aux_weight > 0 else frame_loss
    return SequenceOutput(
        loss=loss,
        frame_losses=torch.stack([aux.detach()] + [x.detach() for x in losses]),
        predictions=torch.stack(predictions, dim=1),
    )


class TrainingForward(nn.Module):
    """:func:`sequence_loss` as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, model: AOT) -> None:
        super().__init__()
        self.model = model

    def forward(self, frames, masks, obj_nums, assignment, **kwargs):
        out = sequence_loss(self.model, frames, masks, obj_nums, assignment, **kwargs)
        return out.loss, out.frame_losses, out.predictions


@dataclass
class StepPlan:
    """The schedule's values at one step (see :func:`plan_step`)."""

    step: int
    lr: float
    encoder_lr: float
    fraction: float
    aux_weight: float
    use_prev_pred: bool


def plan_step(step: int, config: TrainConfig) -> StepPlan:
    """Learning rates, hard-pixel fraction, aux weight and feedback mode at ``step``."""
    o = config.optim
    total = o.steps
    lr = poly_lr(step, total, o.lr, o.min_lr, o.power, o.warmup_ratio * total)
    return StepPlan(
        step=step,
        lr=lr,
        encoder_lr=encoder_lr(lr, o.min_lr, o.encoder_lr_ratio),
        fraction=hard_mining_fraction(step, total, o.top_k_percent, o.hard_mining_ratio),
        aux_weight=aux_loss_weight(step, total, o.aux_loss_weight, o.aux_loss_ratio),
        use_prev_pred=step >= int(o.seq_training_start_ratio * total),
    )


def train_step(
    forward: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    micro_batches: Sequence[Mapping],
    assignments: Sequence[Tensor],
    plan: StepPlan,
    *,
    min_lr: float,
    encoder_ratio: float = 0.1,
    clip_grad_norm: float = 5.0,
    long_term_gap: int | None = None,
    amp: bool = False,
    seeds: Sequence[int] | None = None,
) -> dict:
    """One optimiser step over ``len(micro_batches)`` accumulated micro-batches.

    ``forward`` is a :class:`TrainingForward` (or DDP around one: gradients are synchronised
    once, on the last micro-batch). Each micro-batch's loss is divided by their number, so the
    step equals one over the whole batch. Gradients are unscaled (mixed precision), clipped to
    ``clip_grad_norm`` and applied. ``seeds``: ``torch.manual_seed`` before each micro-batch
    (its stochastic depth). Returns detached statistics.
    """
    model = forward.module.model if hasattr(forward, "module") else forward.model
    device = next(model.parameters()).device
    set_learning_rates(optimizer, plan.lr, min_lr, encoder_ratio, plan.use_prev_pred)
    optimizer.zero_grad(set_to_none=True)
    count = len(micro_batches)
    loss_sum, frame_sum, iou_sum = 0.0, None, 0.0
    for i, (batch, assignment) in enumerate(zip(micro_batches, assignments, strict=True)):
        last = i == count - 1
        sync = contextlib.nullcontext() if last or not hasattr(forward, "no_sync") else forward.no_sync()
        frames = batch["frames"].to(device, non_blocking=True)
        masks = batch["masks"].to(device, non_blocking=True)
        obj_nums = [int(n) for n in batch["obj_num"]]
        if seeds is not None:
            torch.manual_seed(seeds[i])
        with sync:
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss, frame_losses, preds = forward(
                    frames, masks, obj_nums, assignment.to(device), fraction=plan.fraction,
                    aux_weight=plan.aux_weight, use_prev_pred=plan.use_prev_pred,
                    long_term_gap=long_term_gap,
                )
            scaler.scale(loss / count).backward()
        loss_sum += float(loss.detach())
        frame_sum = frame_losses if frame_sum is None else frame_sum + frame_losses
        later = preds[:, 1:].flatten(0, 1)
        truth = masks[:, 1:].flatten(0, 1)
        iou_sum += float(batch_iou(later, truth, [n for n in obj_nums for _ in range(preds.shape[1] - 1)]).mean())
    scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return {
        "loss": loss_sum / count,
        "frame_losses": (frame_sum / count).float().cpu().tolist(),
        "iou": iou_sum / count,
        "grad_norm": float(grad_norm),
    }


# ============================================================================================
# Configuration (TOML -> dataclasses, validated before anything starts)
# ============================================================================================


class ConfigError(ValueError):
    """A training configuration that cannot run (its run folder included: a damaged checkpoint,
    a folder of other files); the message says what to change."""


@dataclass(frozen=True)
class ModelSection:
    """``[model]``: which AOT and how it is initialised and regularised."""

    variant: str = "aott"  # aott | aots | aotb | aotl | r50_aotl
    pretrained_encoder: bool = False  # ImageNet encoder weights (torchvision download)
    calibrate: bool = True  # random encoder: BN statistics and projection from the first clips
    init_weights: str = ""  # start from these weights (e.g. a pre-training stage's EMA)
    init_encoder: str = ""  # start the encoder (and its projection) from these weights (any variant)
    droppath: float = 0.1  # stochastic depth in the LSTT (official TRAIN_LSTT_DROPPATH)
    locality_prior: float = 0.0  # short-term attention starts local (0 = official init)
    long_term_gap_train: int = 0  # 0 = the variant's (AOT-L: 2, AOT-T/S/B: never)
    freeze_at: int = 2  # frozen encoder stages (stem, 1/4 stage)
    train_encoder: bool = True  # false: the whole encoder stays as initialised
    batch_statistics: bool = False  # encoder BatchNorm uses batch statistics (random encoder)


@dataclass(frozen=True)
class DataSection:
    """``[data]``: the training clips."""

    dataset: str = "synthetic"  # synthetic | synthetic_images | davis2017 | youtubevos | static
    root: str = ""  # dataset folder; "" = the course data folder (AOT_EDU_DATA)
    size: int = 465  # crop side (16k + 1)
    seq_len: int = 5  # reference + 4
    num_workers: int = 0
    # synthetic videos (aot_edu.data.SyntheticVideos)
    num_videos: int = 100_000
    num_objects: tuple[int, int] = (1, 3)
    num_distractors: tuple[int, int] = (0, 2)
    motion: float = 1.0
    noise: float = 3.0
    scale: float = 1.0  # object sizes (synthetic data)
    # real videos and images (aot_edu.data.DAVISTrain / YouTubeVOSTrain / StaticTrain)
    max_gap: int = 0  # 0 = official (DAVIS 12, YouTube-VOS 3; synthetic: consecutive frames)
    repeat: int = 0  # 0 = official (DAVIS 5, YouTube-VOS 1)
    merge_prob: float = -1.0  # < 0 = official (videos 0.3, static images 1.0)


@dataclass(frozen=True)
class OptimSection:
    """``[optim]``: the recipe's numbers (defaults: official main training, PRE_YTB_DAV)."""

    steps: int = 100_000
    batch_size: int = 16  # global batch, split over processes and accumulation steps
    accumulation_steps: int = 1
    lr: float = 2e-4
    min_lr: float = 2e-5
    weight_decay: float = 0.07
    encoder_lr_ratio: float = 0.1
    warmup_ratio: float = 0.05
    power: float = 0.9
    clip_grad_norm: float = 5.0
    top_k_percent: float = 0.15
    hard_mining_ratio: float = 0.5
    aux_loss_weight: float = 1.0
    aux_loss_ratio: float = 1.0
    seq_training_start_ratio: float = 0.5
    ema_ratio: float = 0.1
    amp: bool = True  # mixed precision on CUDA (always float32 on CPU)


@dataclass(frozen=True)
class EvalSection:
    """``[eval]``: held-out synthetic videos scored with DAVIS J&F during and after training."""

    every: int = 0  # evaluate every this many steps (0: only at the end)
    num_videos: int = 0  # 0 = no evaluation
    num_frames: int = 12
    num_objects: tuple[int, int] = (3, 4)
    num_distractors: tuple[int, int] = (0, 2)
    seed: int = 1000  # the training videos use data seed `seed`; keep these apart
    size: int = 0  # 0 = data.size
    motion: float = 1.0
    noise: float = 3.0
    scale: float = 1.0  # object sizes (synthetic data)


@dataclass(frozen=True)
class RunSection:
    """``[run]``: where and how the run goes; never changes the numbers it computes."""

    output_dir: str = "runs/default"
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # CPU threads per process (0: torch's default, split over processes)
    checkpoint_every: int = 500
    resume: bool = True
    progress: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run; ``load_config`` builds it from TOML and checks every value."""

    name: str = "run"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    eval: EvalSection = field(default_factory=EvalSection)
    run: RunSection = field(default_factory=RunSection)

    def replace(self, **changes) -> TrainConfig:
        """A copy with changes; sections take dicts: ``cfg.replace(optim={"steps": 10})``."""
        kwargs = {}
        for key, value in changes.items():
            current = getattr(self, key)
            if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
                value = dataclasses.replace(current, **value)
            kwargs[key] = value
        return validate_config(dataclasses.replace(self, **kwargs))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SECTIONS = {"model": ModelSection, "data": DataSection, "optim": OptimSection,
            "eval": EvalSection, "run": RunSection}
DATASET_NAMES = ("synthetic", "synthetic_images", "davis2017", "youtubevos", "static")
SYNTHETIC_DATASETS = ("synthetic", "synthetic_images")


def _check_type(where: str, value, hint) -> object:
    """``value`` converted to ``hint`` (int, float, bool, str, tuple[int, int]) or an error."""
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value, value]
        if (not isinstance(value, (list, tuple)) or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
            raise ConfigError(f"{where} must be an integer or a [min, max] pair, got {value!r}")
        if not 0 <= value[0] <= value[1]:
            raise ConfigError(f"{where} must satisfy 0 <= min <= max, got {value!r}")
        return (int(value[0]), int(value[1]))
    raise TypeError(f"unsupported config type {hint}")  # pragma: no cover


def _unknown_key(where: str, key: str, known: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown key {where}{key!r}{hint}; valid keys: {', '.join(known)}")


def _build_section(cls, table: Mapping, where: str):
    if not isinstance(table, Mapping):
        raise ConfigError(f"[{where}] must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in table.items():
        if key not in names:
            raise _unknown_key(f"in [{where}]: ", key, names)
        values[key] = _check_type(f"{where}.{key}", value, hints[key])
    return cls(**values)


def config_from_dict(data: Mapping, check_paths: bool = True) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from a dict shaped like the TOML file
    (``check_paths``: see :func:`validate_config`)."""
    top = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {}
    for key, value in data.items():
        if key not in top:
            raise _unknown_key("", key, sorted(top))
        if key in SECTIONS:
            values[key] = _build_section(SECTIONS[key], value, key)
        else:
            hint = typing.get_type_hints(TrainConfig)[key]
            values[key] = _check_type(key, value, hint)
    return validate_config(TrainConfig(**values), check_paths)


def _parse_override(text: str) -> tuple[list[str], object]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. optim.steps=100")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # a bare word: a string
    return key.strip().split("."), value


def load_config(
    source: str | Path | Mapping | TrainConfig, overrides: Sequence[str] | Mapping = (),
    check_paths: bool = True,
) -> TrainConfig:
    """Read a TOML file (or a dict) into a validated :class:`TrainConfig`.

    ``overrides``: ``["optim.steps=100", "run.output_dir='runs/x'"]`` (values in TOML syntax;
    bare words are strings) or a dict ``{"optim.steps": 100}``, applied before validation.
    Raises :class:`ConfigError` naming the key and the fix: unknown keys (with the closest
    valid one), wrong types, unknown variants or datasets, impossible sizes, missing folders.
    ``check_paths=False`` reads a configuration without checking that its files and folders
    exist (to describe a run, e.g. the course model's second stage, whose initial weights are
    made by the first); :func:`train` always checks them.
    """
    if isinstance(source, TrainConfig):
        data = source.to_dict()
    elif isinstance(source, Mapping):
        data = json.loads(json.dumps(dict(source)))  # deep copy
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path} is not valid TOML: {error}") from error
    pairs = overrides.items() if isinstance(overrides, Mapping) else map(_parse_override, overrides)
    for key, value in pairs:
        parts = key.split(".") if isinstance(key, str) else list(key)
        table = data
        for part in parts[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"override {'.'.join(parts)}: {part} is not a section")
        table[parts[-1]] = value
    return config_from_dict(data, check_paths)


def _positive(where: str, value, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


# A synthetic video's label map is uint8 with 255 = void: at most 254 objects.
MAX_SYNTHETIC_OBJECTS = 254


def validate_config(config: TrainConfig, check_paths: bool = True) -> TrainConfig:
    """Check values that types cannot: names, ranges, sizes, folders (files and folders only
    with ``check_paths``). Returns ``config``."""
    m, d, o, e, r = config.model, config.data, config.optim, config.eval, config.run
    try:
        model_config = get_config(m.variant)
    except ValueError as error:
        raise ConfigError(f"model.variant: {error}") from None
    if not 0.0 <= m.droppath < 1.0:
        raise ConfigError(f"model.droppath must be in [0, 1), got {m.droppath}")
    if m.locality_prior < 0:
        raise ConfigError(f"model.locality_prior must be >= 0 (0 = the official initialisation), "
                          f"got {m.locality_prior}")
    _positive("model.long_term_gap_train", m.long_term_gap_train, allow_zero=True)
    if m.freeze_at not in (0, 1, 2):
        raise ConfigError(f"model.freeze_at must be 0, 1 or 2, got {m.freeze_at}")
    if m.batch_statistics and not m.train_encoder:
        raise ConfigError("model.batch_statistics = true needs model.train_encoder = true (it keeps "
                          "a trained encoder's layers normalised); set one of them accordingly")
    if m.init_weights and m.init_encoder:
        raise ConfigError("model.init_weights and model.init_encoder are exclusive (init_weights "
                          "already sets the encoder); keep one of them")
    if check_paths and m.init_encoder and not Path(m.init_encoder).is_file():
        raise ConfigError(
            f"model.init_encoder: file {m.init_encoder} not found (relative paths start from the "
            "folder you run in); e.g. the course model: aot_edu/assets/course_aotb.pt"
        )
    if check_paths and m.init_weights and not Path(m.init_weights).is_file():
        raise ConfigError(
            f"model.init_weights: file {m.init_weights} not found (relative paths start from the "
            f"folder you run in); official weights: `aot-edu download checkpoint {m.variant} "
            "--stage PRE --dir checkpoints`"
        )
    if d.dataset not in DATASET_NAMES:
        close = difflib.get_close_matches(d.dataset, DATASET_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"data.dataset {d.dataset!r} is unknown{hint}; choose one of "
                          f"{', '.join(DATASET_NAMES)}")
    stride = 16
    for where, size in (("data.size", d.size), ("eval.size", e.size or d.size)):
        if size < stride + 1 or (model_config.align_corners and (size - 1) % stride):
            near = max(1, round((size - 1) / stride)) * stride + 1
            raise ConfigError(f"{where} must be 16k + 1 (e.g. {near}) so the stride-16 grid "
                              f"lines up, got {size}")
    if d.seq_len < 2:
        raise ConfigError(f"data.seq_len must be >= 2 (reference + 1), got {d.seq_len}")
    _positive("data.num_workers", d.num_workers, allow_zero=True)
    _positive("data.num_videos", d.num_videos)
    if d.num_objects[1] > model_config.max_obj_num:
        raise ConfigError(f"data.num_objects max is {d.num_objects[1]} but one AOT handles at "
                          f"most M = {model_config.max_obj_num} objects per clip")
    # Held-out videos may hold more than M objects: inference splits them into object groups
    # (aot_edu.engine), as the official evaluator does; training clips cannot.
    for where, (low, high) in (("data.num_objects", d.num_objects),
                               ("eval.num_objects", e.num_objects)):
        if low < 1:
            raise ConfigError(f"{where} min must be >= 1 (a clip needs an object to segment), "
                              f"got [{low}, {high}]")
        if high > MAX_SYNTHETIC_OBJECTS:
            raise ConfigError(f"{where} max must be <= {MAX_SYNTHETIC_OBJECTS} (labels are 8-bit, "
                              f"255 = void), got [{low}, {high}]")
    # synthetic videos (both sections): motion 0 = static shapes, noise 0 = clean frames
    for section, sec in (("data", d), ("eval", e)):
        _positive(f"{section}.motion", sec.motion, allow_zero=True)
        _positive(f"{section}.noise", sec.noise, allow_zero=True)
        _positive(f"{section}.scale", sec.scale)
    _positive("seed", config.seed, allow_zero=True)
    _positive("eval.seed", e.seed, allow_zero=True)
    _positive("data.max_gap", d.max_gap, allow_zero=True)
    _positive("data.repeat", d.repeat, allow_zero=True)
    if not d.merge_prob <= 1.0:
        raise ConfigError(f"data.merge_prob must be <= 1 (a probability; < 0 = the official "
                          f"value), got {d.merge_prob}")
    if check_paths and d.dataset not in SYNTHETIC_DATASETS:
        data_root(config)  # raises when the folder is missing
    for where, value in (("optim.steps", o.steps), ("optim.batch_size", o.batch_size),
                         ("optim.accumulation_steps", o.accumulation_steps), ("optim.lr", o.lr),
                         ("optim.clip_grad_norm", o.clip_grad_norm), ("optim.power", o.power)):
        _positive(where, value)
    for where, value in (("optim.min_lr", o.min_lr), ("optim.weight_decay", o.weight_decay),
                         ("optim.aux_loss_weight", o.aux_loss_weight),
                         ("optim.aux_loss_ratio", o.aux_loss_ratio),
                         ("optim.hard_mining_ratio", o.hard_mining_ratio),
                         ("optim.ema_ratio", o.ema_ratio)):
        _positive(where, value, allow_zero=True)
    if o.min_lr > o.lr:
        raise ConfigError(f"optim.min_lr ({o.min_lr}) must not exceed optim.lr ({o.lr})")
    for where, value in (("optim.encoder_lr_ratio", o.encoder_lr_ratio),
                         ("optim.warmup_ratio", o.warmup_ratio),
                         ("optim.seq_training_start_ratio", o.seq_training_start_ratio)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where} must be in [0, 1], got {value}")
    if not 0.0 < o.top_k_percent <= 1.0:
        raise ConfigError(f"optim.top_k_percent must be in (0, 1], got {o.top_k_percent}")
    if o.batch_size % o.accumulation_steps:
        raise ConfigError(f"optim.batch_size ({o.batch_size}) must be divisible by "
                          f"optim.accumulation_steps ({o.accumulation_steps})")
    for where, value in (("eval.every", e.every), ("eval.num_videos", e.num_videos)):
        _positive(where, value, allow_zero=True)
    if e.num_frames < 2:
        raise ConfigError(f"eval.num_frames must be >= 2, got {e.num_frames}")
    if r.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"run.device must be 'auto', 'cpu' or 'cuda', got {r.device!r}")
    if r.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device = 'cuda' but CUDA is not available; use 'auto' or 'cpu'")
    _positive("run.checkpoint_every", r.checkpoint_every)
    _positive("run.threads", r.threads, allow_zero=True)
    if not r.output_dir:
        raise ConfigError("run.output_dir must name a folder for the run's files")
    return config


def data_root(config: TrainConfig) -> Path:
    """The dataset folder of a real-data config (``data.root`` or the course data folder)."""
    d = config.data
    if d.root:
        root = Path(d.root).expanduser()
    else:
        from .course import get_settings
        from .download import get_dataset

        base = get_settings().data_dir
        folder = {"davis2017": get_dataset("davis2017").directory,
                  "youtubevos": get_dataset("youtubevos2019").directory,
                  "static": "Static"}[d.dataset]
        root = base / folder
    if not root.is_dir():
        how = {"davis2017": "run `aot-edu download dataset davis2017 --part trainval`",
               "youtubevos": "run `aot-edu download dataset youtubevos2019 --part train`",
               "static": "put images in <root>/images and masks in <root>/masks"}[d.dataset]
        raise ConfigError(f"data.root: the {d.dataset} folder {root} does not exist; {how}, or "
                          "set data.root to the folder that holds it")
    return root


# ============================================================================================
# Data: the clip stream is a function of (seed, step), so a resumed run sees the same clips
# ============================================================================================


def build_dataset(config: TrainConfig) -> torch.utils.data.Dataset:
    """The training dataset of ``config.data`` (samples in :mod:`aot_edu.data.training` format)."""
    from . import data as D

    d, seed = config.data, config.seed
    if d.dataset == "synthetic":
        return D.SyntheticVideos(d.num_videos, d.seq_len, d.size, d.num_objects,
                                 d.num_distractors, seed=seed, motion=d.motion, noise=d.noise,
                                 scale=d.scale, max_gap=max(1, d.max_gap))
    if d.dataset == "synthetic_images":  # static-image pre-training on rendered scenes
        return D.SyntheticImages(d.num_videos, d.size, d.seq_len, d.num_objects,
                                 d.num_distractors, seed=seed, noise=d.noise, scale=d.scale,
                                 merge_prob=1.0 if d.merge_prob < 0 else d.merge_prob)
    root = data_root(config)
    crop = (d.size, d.size)
    if d.dataset == "static":
        return D.StaticTrain(root, size=crop, seq_len=d.seq_len,
                             merge_prob=1.0 if d.merge_prob < 0 else d.merge_prob, seed=seed)
    common = dict(seq_len=d.seq_len, crop_size=crop, seed=seed,
                  merge_prob=0.3 if d.merge_prob < 0 else d.merge_prob)
    if d.dataset == "davis2017":
        return D.DAVISTrain(root, max_gap=d.max_gap or 12, repeat=d.repeat or 5, **common)
    return D.YouTubeVOSTrain(root, max_gap=d.max_gap or 3, repeat=d.repeat or 1, **common)


class ClipStream(torch.utils.data.Sampler):
    """Which clips every process reads at every step: a deterministic stream of positions.

    The global stream visits the dataset in a fresh permutation per epoch
    (``numpy.random.default_rng([seed, epoch])``). Step ``s`` takes positions
    ``s * batch_size ..`` of it; micro-batch ``i`` of process ``r`` takes the slice
    ``(i * world + r) * micro_batch ..``. Each yielded batch is a list of ``(epoch, index)``.
    Starting at ``start_step`` gives exactly the clips an uninterrupted run sees from there.
    """

    def __init__(self, num_samples: int, batch_size: int, accumulation_steps: int, rank: int,
                 world_size: int, seed: int, start_step: int, total_steps: int) -> None:
        if batch_size % (accumulation_steps * world_size):
            raise ConfigError(
                f"optim.batch_size ({batch_size}) must be divisible by processes x accumulation "
                f"steps ({world_size} x {accumulation_steps}); change batch_size or "
                "accumulation_steps"
            )
        self.num_samples, self.batch_size, self.accumulation = num_samples, batch_size, accumulation_steps
        self.micro_batch = batch_size // (accumulation_steps * world_size)
        self.rank, self.world, self.seed = rank, world_size, seed
        self.start_step, self.total_steps = start_step, total_steps
        self._perm_epoch, self._perm = -1, None

    def item(self, position: int) -> tuple[int, int]:
        epoch, offset = divmod(position, self.num_samples)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
            self._perm_epoch = epoch
        return epoch, int(self._perm[offset])

    def batch(self, step: int, micro: int) -> list[tuple[int, int]]:
        first = step * self.batch_size + (micro * self.world + self.rank) * self.micro_batch
        return [self.item(p) for p in range(first, first + self.micro_batch)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.total_steps):
            for micro in range(self.accumulation):
                yield self.batch(step, micro)

    def __len__(self) -> int:
        return (self.total_steps - self.start_step) * self.accumulation


class _EpochItems(torch.utils.data.Dataset):
    """Reads ``(epoch, index)`` items: datasets with ``set_epoch`` draw that epoch's clip."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        epoch, index = item
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        return self.dataset[index]


def make_loader(dataset, stream: ClipStream, num_workers: int = 0, pin_memory: bool = False):
    """A ``DataLoader`` over ``stream`` (its own generator: the global RNG is not touched)."""
    from .data import collate

    return torch.utils.data.DataLoader(
        _EpochItems(dataset), batch_sampler=stream, num_workers=num_workers,
        collate_fn=collate, pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(stream.seed),
    )


def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


def step_assignment(config: TrainConfig, step: int, slot: int, batch: int) -> Tensor:
    """Eq. 3's random identities of one micro-batch: a function of ``(seed, step, slot)``.

    ``slot = micro * world_size + rank`` numbers the micro-batches of a step over all processes
    (the order of :class:`ClipStream`), so 2 processes x 1 micro-batch draw what 1 process x 2
    accumulated micro-batches draws.
    """
    generator = torch.Generator().manual_seed(_seed_of(config.seed, step, slot, 1))
    return random_assignment(batch, get_config(config.model.variant).max_obj_num + 1, generator)


# ============================================================================================
# Checkpoints: atomic writes, everything needed to continue
# ============================================================================================


def atomic_save(obj, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, flushed, then ``os.replace``:
    the target is always either the old or the new complete file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def rng_state() -> dict:
    """Python, NumPy and torch (CPU, CUDA) random states, in types ``weights_only`` loads."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(words), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


_KEEP_RUN = ("Restore the file from a copy to resume; or, to start over and keep this folder as "
             "it is, set run.output_dir to a new folder (e.g. --set run.output_dir=runs/new)")


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint (``weights_only=True``) and check its format.

    Raises :class:`ConfigError` (the ``aot-edu`` command prints it as a one-line error) when the
    file is damaged or is not a training checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file: say which and what to do
        reason = str(error).strip().rstrip(".")
        raise ConfigError(
            f"cannot read the training checkpoint {path} ({reason}). Checkpoints are written "
            f"atomically, so the file was damaged after it was written. {_KEEP_RUN}."
        ) from error
    if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not an aot-edu training checkpoint ({CHECKPOINT_FORMAT}). "
                          f"{_KEEP_RUN}.")
    return state


def _check_run_dir(run_dir: Path) -> None:
    """Refuse a ``run.output_dir`` that holds other files than a run's: training writes
    ``log.csv``, ``model_ema.pt``, ... there and would overwrite files of those names."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run.output_dir {run_dir} is a file; set run.output_dir to a folder")
    if not run_dir.is_dir() or any((run_dir / n).is_file() for n in ("checkpoint.pt",
                                                                      "config.json")):
        return  # new, or a run (maybe stopped before its first checkpoint) to continue
    # ignore file browsers' files and our own atomic-write temporaries (another process's)
    entries = sorted(p.name for p in run_dir.iterdir()
                     if p.name not in FILE_BROWSER_FILES
                     and not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if entries:
        raise ConfigError(
            f"run.output_dir {run_dir} is not empty ({len(entries)} entries, e.g. "
            f"{', '.join(entries[:3])}) and holds no aot-edu run (no checkpoint.pt or "
            "config.json); training there would overwrite files such as log.csv and "
            "model_ema.pt. Set run.output_dir to a new or empty folder (e.g. --set "
            "run.output_dir=runs/new), or move those files away first."
        )


# ============================================================================================
# Processes: one, or several under torchrun
# ============================================================================================


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    started_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(use_cuda: bool) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``): NCCL on GPUs, gloo on CPUs."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    started = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local)
        dist.init_process_group("nccl" if use_cuda else "gloo")
        started = True
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, started)


def _barrier(info: DistInfo) -> None:
    if info.enabled:
        torch.distributed.barrier()


# ============================================================================================
# Logs and curves
# ============================================================================================


LOG_FIELDS = ("step", "loss", "loss_ref", "loss_frames", "iou", "lr", "encoder_lr", "top_k",
              "aux_weight", "feedback", "grad_norm", "time")
EVAL_FIELDS = ("step", "J&F", "J", "F", "videos", "objects")


def _truncate_csv(path: Path, fields: Sequence[str], last_step: int) -> None:
    """Keep the header and the rows up to ``last_step`` (a killed run may have logged more)."""
    if not path.is_file():
        return
    with open(path, newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if int(r["step"]) <= last_step]
    _write_csv(path, fields, rows)


def _write_csv(path: Path, fields: Sequence[str], rows: Sequence[Mapping]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _append_csv(path: Path, fields: Sequence[str], row: Mapping) -> None:
    new = not path.is_file()
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(fields))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_log(path: str | Path) -> list[dict]:
    """Rows of a run's ``log.csv`` or ``eval.csv`` with numbers as floats."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(handle)]


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < 3 or window <= 1:
        return values
    window = min(window, len(values))
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_history(run_dir: str | Path, title: str = ""):
    """Training curves of a run: loss (raw and smoothed), training IoU, learning rate and the
    held-out J&F. Returns a matplotlib ``Figure`` (no pyplot state)."""
    from matplotlib.figure import Figure

    run_dir = Path(run_dir)
    log, evals = read_log(run_dir / "log.csv"), read_log(run_dir / "eval.csv")
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    ax_loss, ax_iou, ax_lr = fig.subplots(1, 3)
    if log:
        steps = np.array([r["step"] for r in log])
        loss = np.array([r["loss"] for r in log])
        window = max(1, len(loss) // 25)
        ax_loss.plot(steps, loss, color="0.75", lw=0.8, label="loss (per step)")
        ax_loss.plot(steps, _smooth(loss, window), color="C0", label=f"mean of {window}")
        ax_iou.plot(steps, _smooth(np.array([r["iou"] for r in log]), window), color="C1",
                    label="training IoU (frames 1-4)")
        ax_lr.plot(steps, [r["lr"] for r in log], label="LSTT, decoder, ID bank")
        ax_lr.plot(steps, [r["encoder_lr"] for r in log], label="encoder")
    if evals:
        ax_iou.plot([r["step"] for r in evals], [r["J&F"] for r in evals], "o-", color="C2",
                    label="held-out J&F (EMA)")
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_iou.set(xlabel="step", ylim=(0, 1), title="segmentation quality")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="schedule")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in (ax_loss, ax_iou, ax_lr):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


# ============================================================================================
# Evaluation on held-out synthetic videos (DAVIS protocol)
# ============================================================================================


def eval_videos(config: TrainConfig):
    """The held-out synthetic videos of ``config.eval`` (their own seed: never trained on)."""
    from .data import SyntheticVideos

    e, d = config.eval, config.data
    return SyntheticVideos(e.num_videos, e.num_frames, e.size or d.size, e.num_objects,
                           e.num_distractors, seed=e.seed, motion=e.motion, noise=e.noise,
                           scale=e.scale)


# ============================================================================================
# The trainer
# ============================================================================================


@dataclass
class TrainResult:
    """What :func:`train` returns (also rebuilt from a finished run's folder)."""

    config: TrainConfig
    run_dir: Path
    step: int
    train_time: float  # seconds spent training (all sessions; evaluation excluded)
    metrics: dict  # held-out evaluation of the EMA weights at the end ({} when disabled)
    resumed_from: int | None = None

    @property
    def checkpoint(self) -> Path:
        """Full training state; also loads with ``build_model(variant, weights=...)`` (raw
        weights under ``state_dict``)."""
        return self.run_dir / "checkpoint.pt"

    @property
    def weights(self) -> Path:
        """The EMA weights, the ones to use (``build_model(variant, weights=result.weights)``)."""
        return self.run_dir / "model_ema.pt"

    @property
    def log(self) -> Path:
        return self.run_dir / "log.csv"

    @property
    def curves(self) -> Path:
        return self.run_dir / "curves.png"

    def history(self) -> list[dict]:
        return read_log(self.log)

    def load_model(self, ema: bool = True, device: torch.device | str = "cpu") -> AOT:
        """The trained model in eval mode (EMA weights unless ``ema=False``)."""
        return build_model(self.config.model.variant,
                           weights=self.weights if ema else self.checkpoint, device=device)


def _comparable(config_dict: Mapping) -> dict:
    """The settings that change a run's numbers, with today's defaults for keys an older
    version of the package did not write (a new option's default keeps the old behaviour)."""
    out = json.loads(json.dumps(dict(config_dict)))
    for key, default in json.loads(json.dumps(TrainConfig().to_dict())).items():
        if isinstance(default, dict) and isinstance(out.get(key), dict):
            out[key] = {**default, **out[key]}
        else:
            out.setdefault(key, default)
    out.pop("run", None)
    out.pop("eval", None)
    return out


def retire_outdated_run(run_dir: str | Path, config: TrainConfig) -> Path | None:
    """Keep a run made with another configuration out of the way of ``config``'s run.

    If ``run_dir`` holds a run whose configuration differs (:func:`run_differences`), it is
    renamed ``<run_dir>-outdated-<time>`` - nothing is deleted - and the new name returned, with
    a message saying what changed; otherwise nothing happens and ``None`` is returned. For runs
    that a configuration file owns (the course model, a notebook's run), so that editing the
    file or pulling a new version trains afresh instead of stopping with an error.
    """
    run_dir = Path(run_dir)
    changed = run_differences(run_dir, config)
    if not changed:
        return None
    kept = run_dir.with_name(f"{run_dir.name}-outdated-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(kept)
    print(f"{run_dir} was trained with another configuration ({'; '.join(changed)}); it is now "
          f"{kept}, and a new run starts")
    return kept


def _differences(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs


def run_differences(run_dir: str | Path, config: TrainConfig) -> list[str]:
    """How the run in ``run_dir`` was configured differently from ``config`` (settings that
    change the numbers only; ``[run]`` and ``[eval]`` may differ). ``[]`` when the folder holds
    no checkpoint or the same configuration - the cases :func:`train` continues."""
    checkpoint = Path(run_dir) / "checkpoint.pt"
    if not checkpoint.is_file():
        return []
    return _config_changes(load_checkpoint(checkpoint)["config"], config)


def _config_changes(stored: Mapping, config: TrainConfig) -> list[str]:
    """``old -> new`` for every setting that changes the numbers, stored run vs ``config``."""
    return _differences(_comparable(stored), _comparable(config.to_dict()))


def _model_config(config: TrainConfig):
    base = get_config(config.model.variant)
    gap = config.model.long_term_gap_train or base.long_term_gap_train
    return base.replace(droppath=config.model.droppath, long_term_gap_train=gap)


def train(
    config: str | Path | Mapping | TrainConfig, overrides: Sequence[str] | Mapping = (),
    *, progress: bool | None = None,
) -> TrainResult:
    """Train AOT as ``config`` says; resume from the run folder's checkpoint if there is one.

    Args:
        config: a TOML file, a dict shaped like one, or a :class:`TrainConfig`.
        overrides: changes applied before validation (see :func:`load_config`).
        progress: show a progress bar (default: ``run.progress``).

    Under ``torchrun`` every process calls this; the batch is split over them (DDP). Files in
    ``run.output_dir``: ``checkpoint.pt`` (everything to continue), ``model_ema.pt`` (EMA
    weights), ``log.csv`` (one row per step), ``eval.csv``, ``curves.png``, ``config.json``,
    ``summary.json`` (when finished). A finished run returns its summary without training.
    """
    cfg = load_config(config, overrides)
    use_cuda = cfg.run.device == "cuda" or (cfg.run.device == "auto" and torch.cuda.is_available())
    info = init_distributed(use_cuda)
    threads = torch.get_num_threads()
    try:
        return _train(cfg, info, use_cuda, cfg.run.progress if progress is None else progress)
    finally:
        torch.set_num_threads(threads)  # run.threads applies to the run only
        if info.started_here:
            torch.distributed.destroy_process_group()


def _train(cfg: TrainConfig, info: DistInfo, use_cuda: bool, progress: bool) -> TrainResult:
    o, e = cfg.optim, cfg.eval
    run_dir = Path(cfg.run.output_dir)
    ckpt_path, ema_path = run_dir / "checkpoint.pt", run_dir / "model_ema.pt"
    log_path, eval_path = run_dir / "log.csv", run_dir / "eval.csv"
    device = torch.device(f"cuda:{info.local_rank}" if use_cuda else "cpu")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    elif info.enabled and not use_cuda:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))

    _check_run_dir(run_dir)
    state = None
    if ckpt_path.is_file():
        if not cfg.run.resume:
            raise ConfigError(
                f"{run_dir} already holds a run (checkpoint.pt) and run.resume = false; choose "
                "another run.output_dir, or delete that folder to start over"
            )
        state = load_checkpoint(ckpt_path)
        diffs = _config_changes(state["config"], cfg)
        if diffs:
            raise ConfigError(
                f"{run_dir} holds a run with another configuration ({'; '.join(diffs)}); "
                "resume it with its own settings, or set run.output_dir to a new folder"
            )
    start = int(state["step"]) if state else 0
    summary_path = run_dir / "summary.json"
    if start >= o.steps and summary_path.is_file():  # finished: nothing to build or train
        summary = json.loads(summary_path.read_text())
        return TrainResult(cfg, run_dir, start, summary["train_time"], summary["metrics"], start)

    model_config = _model_config(cfg)
    torch.manual_seed(_seed_of(cfg.seed, 0))  # the initial weights
    model = AOT(model_config, pretrained_encoder=cfg.model.pretrained_encoder and state is None)
    official_initialisation(model)
    if cfg.model.init_weights and state is None:
        from .checkpoints import load_weights

        load_weights(model, cfg.model.init_weights)
    elif state is None:
        if cfg.model.init_encoder:
            load_encoder_weights(model, cfg.model.init_encoder)
        locality_prior(model, cfg.model.locality_prior)
    dataset = build_dataset(cfg)
    if (cfg.model.calibrate and state is None and not cfg.model.init_weights
            and not cfg.model.init_encoder and not cfg.model.pretrained_encoder):
        clips = [dataset[i]["frames"] for i in range(min(len(dataset), 8))]
        images = normalize(torch.cat(clips)).contiguous(memory_format=torch.channels_last)
        calibrate_frozen_batchnorm(model.encoder, images)
        calibrate_projection(model, images)
    freeze_stages(model.encoder, cfg.model.freeze_at)
    if cfg.model.batch_statistics:
        use_batch_statistics(model.encoder)
    if not cfg.model.train_encoder:
        model.encoder.requires_grad_(False)
    model.LSTT.mask_token.requires_grad_(False)  # in the official state dict, unused by AOT
    model.to(device).train()
    forward: nn.Module = TrainingForward(model)
    if info.enabled:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[info.local_rank] if use_cuda else None,
            find_unused_parameters=True,
        )
    optimizer = torch.optim.AdamW(param_groups(model, o.weight_decay), lr=o.lr,
                                  weight_decay=o.weight_decay)
    amp = o.amp and use_cuda
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    ema = ModelEMA(model, ema_decay(o.steps, o.ema_ratio))
    elapsed = 0.0
    if state:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        ema.load_state_dict(state["ema"])
        elapsed = float(state["elapsed"])
        rngs = state["rng"]
        if info.rank < len(rngs):
            set_rng_state(rngs[info.rank])

    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        _truncate_csv(log_path, LOG_FIELDS, start)
        _truncate_csv(eval_path, EVAL_FIELDS, start)

    long_term_gap = model_config.long_term_gap_train
    videos = eval_videos(cfg) if e.num_videos else None
    eval_model = AOT(model_config).to(device).eval() if (videos is not None and info.main) else None

    def evaluate(step: int) -> dict:
        ema.copy_to(eval_model)
        scores = evaluate_model(eval_model, videos, progress=progress)
        _append_csv(eval_path, EVAL_FIELDS, {"step": step, **scores})
        return scores

    def save(step: int, now: float) -> None:
        rngs = [rng_state()]
        if info.enabled:
            rngs = [None] * info.world_size
            torch.distributed.all_gather_object(rngs, rng_state())
        if info.main:
            position = step * o.batch_size
            atomic_save({
                "format": CHECKPOINT_FORMAT, "variant": model_config.name,
                "state_dict": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "elapsed": now, "rng": rngs, "config": cfg.to_dict(),
                "data_position": {"samples": position, "epoch": position // len(dataset)},
            }, ckpt_path)
            atomic_save({"state_dict": ema.shadow, "step": step, "variant": model_config.name},
                        ema_path)
        _barrier(info)

    stream = ClipStream(len(dataset), o.batch_size, o.accumulation_steps, info.rank,
                        info.world_size, cfg.seed, start, o.steps)
    batches = iter(make_loader(dataset, stream, cfg.data.num_workers, pin_memory=use_cuda))
    from tqdm.auto import tqdm

    bar = tqdm(total=o.steps, initial=start, desc=cfg.name, unit="step",
               disable=not (progress and info.main), dynamic_ncols=True)
    session_start = time.perf_counter()
    eval_time = 0.0
    for step in range(start, o.steps):
        plan = plan_step(step, cfg)
        micro = [next(batches) for _ in range(o.accumulation_steps)]
        slots = [i * info.world_size + info.rank for i in range(o.accumulation_steps)]
        assignments = [step_assignment(cfg, step, slot, len(mb["obj_num"]))
                       for slot, mb in zip(slots, micro, strict=True)]
        stats = train_step(forward, optimizer, scaler, micro, assignments, plan,
                           min_lr=o.min_lr, encoder_ratio=o.encoder_lr_ratio,
                           clip_grad_norm=o.clip_grad_norm, long_term_gap=long_term_gap, amp=amp,
                           seeds=[_seed_of(cfg.seed, step, slot, 2) for slot in slots])
        ema.update(model)
        if info.enabled:  # log the mean over processes
            values = torch.tensor([stats["loss"], stats["iou"], *stats["frame_losses"]],
                                  dtype=torch.float64, device=device)
            torch.distributed.all_reduce(values)
            values = (values / info.world_size).tolist()
            stats["loss"], stats["iou"], stats["frame_losses"] = values[0], values[1], values[2:]
        done = step + 1
        now = elapsed + time.perf_counter() - session_start - eval_time
        if info.main:
            _append_csv(log_path, LOG_FIELDS, {
                "step": done, "loss": f"{stats['loss']:.6f}",
                "loss_ref": f"{stats['frame_losses'][0]:.6f}",
                "loss_frames": f"{float(np.mean(stats['frame_losses'][1:])):.6f}",
                "iou": f"{stats['iou']:.6f}", "lr": f"{plan.lr:.6e}",
                "encoder_lr": f"{plan.encoder_lr:.6e}", "top_k": f"{plan.fraction:.4f}",
                "aux_weight": f"{plan.aux_weight:.4f}", "feedback": int(plan.use_prev_pred),
                "grad_norm": f"{stats['grad_norm']:.4f}", "time": f"{now:.2f}",
            })
        bar.update(1)
        bar.set_postfix(loss=f"{stats['loss']:.3f}", iou=f"{stats['iou']:.2f}", refresh=False)
        if done % cfg.run.checkpoint_every == 0 or done == o.steps:
            save(done, now)
        if videos is not None and e.every and done % e.every == 0 and done < o.steps:
            tick = time.perf_counter()
            if info.main:
                scores = evaluate(done)
                bar.write(f"step {done}: held-out J&F {scores['J&F']:.3f}")
            _barrier(info)
            eval_time += time.perf_counter() - tick
    bar.close()
    train_time = elapsed + time.perf_counter() - session_start - eval_time

    from .evaluate import model_fingerprint

    mine = model_fingerprint(model)
    prints = [mine]
    if info.enabled:
        prints = [None] * info.world_size
        torch.distributed.all_gather_object(prints, mine)
    if len(set(prints)) != 1:
        raise RuntimeError(f"the processes ended with different weights ({prints}); DDP lost sync")
    metrics: dict = {}
    if info.main:
        if state is not None and start >= o.steps:
            ema.load_state_dict(state["ema"])
        if videos is not None:
            metrics = evaluate(o.steps)
        plot_history(run_dir, title=f"{cfg.name} ({model_config.title})").savefig(
            run_dir / "curves.png", dpi=110)
        _atomic_write_text(summary_path, json.dumps(
            {"name": cfg.name, "step": o.steps, "train_time": train_time, "metrics": metrics,
             "world_size": info.world_size, "threads": torch.get_num_threads(),
             "device": str(device), "fingerprints": prints},
            indent=2))
    _barrier(info)
    return TrainResult(cfg, run_dir, o.steps, train_time, metrics, start if state else None)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m aot_edu.train CONFIG [key=value ...]`` (the same as ``aot-edu train``)."""
    from .cli import main as cli_main

    return cli_main(["train", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    raise SystemExit(main())
