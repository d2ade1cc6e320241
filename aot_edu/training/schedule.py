"""The optimiser's schedule (official ``adjust_learning_rate``): warm-up, polynomial decay,
the encoder's smaller steps, parameter groups without weight decay, and the EMA of the weights
that is released (``utils/ema.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

# Parameters without weight decay besides 1-D ones (official TRAIN_WEIGHT_DECAY_EXEMPTION).
NO_DECAY_KEYS = ("absolute_pos_embed", "relative_position_bias_table", "relative_emb_v", "conv_out")
# Parameters frozen while predictions are fed back (official TRAIN_SEQ_TRAINING_FREEZE_PARAMS).
IDENTITY_BANK_KEYS = ("patch_wise_id_bank",)


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
