"""One training step: a clip of T = 5 frames through the model as a video runs at test time
(official ``AOTEngine.forward`` in training mode), its loss, and the optimiser step.

Shapes: frames ``[B, T, 3, H, W]``, labels ``[B, T, H, W]``; the reference frame's mask is the
first memory, each later frame's prediction (or, before feedback starts, its ground truth)
becomes the next short-term memory (Eq. 7) and every ``long_term_gap_train`` frames a long-term
one (Eq. 6).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from aot_edu.inference.engine import AOTEngine, normalize
from aot_edu.model import AOT
from aot_edu.model.identity import one_hot_labels

from .config import TrainConfig
from .losses import (
    aux_loss_weight,
    batch_iou,
    hard_mining_fraction,
    identity_separation_loss,
    vos_loss,
)
from .schedule import encoder_lr, poly_lr, set_learning_rates


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
    num_objects: Sequence[int],
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
            ``1..num_objects[b]``); frame 0 is the reference frame.
        num_objects: objects per sample (``<= M``).
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
            enc[0], one_hot_labels(masks[:, 0], identities), num_objects, assignment=assignment
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

    def forward(self, frames, masks, num_objects, assignment, **kwargs):
        out = sequence_loss(self.model, frames, masks, num_objects, assignment, **kwargs)
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
    identity_separation: float = 0.0,
    identity_margin: float = 0.3,
) -> dict:
    """One optimiser step over ``len(micro_batches)`` accumulated micro-batches.

    ``forward`` is a :class:`TrainingForward` (or DDP around one: gradients are synchronised
    once, on the last micro-batch). Each micro-batch's loss is divided by their number, so the
    step equals one over the whole batch. Gradients are unscaled (mixed precision), clipped to
    ``clip_grad_norm`` and applied. ``seeds``: ``torch.manual_seed`` before each micro-batch
    (its stochastic depth). ``identity_separation > 0`` adds that times
    :func:`identity_separation_loss` of the identity bank once per step. Returns detached
    statistics.
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
        num_objects = [int(n) for n in batch["num_objects"]]
        if seeds is not None:
            torch.manual_seed(seeds[i])
        with sync:
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss, frame_losses, preds = forward(
                    frames, masks, num_objects, assignment.to(device), fraction=plan.fraction,
                    aux_weight=plan.aux_weight, use_prev_pred=plan.use_prev_pred,
                    long_term_gap=long_term_gap,
                )
            scaler.scale(loss / count).backward()
        loss_sum += float(loss.detach())
        frame_sum = frame_losses if frame_sum is None else frame_sum + frame_losses
        later = preds[:, 1:].flatten(0, 1)
        truth = masks[:, 1:].flatten(0, 1)
        iou_sum += float(batch_iou(later, truth, [n for n in num_objects for _ in range(preds.shape[1] - 1)]).mean())
    separation = 0.0
    if identity_separation > 0:
        term = identity_separation_loss(model.patch_wise_id_bank.identity_vectors(), identity_margin)
        scaler.scale(identity_separation * term).backward()
        separation = float(term.detach())
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
        "separation": separation,
    }
