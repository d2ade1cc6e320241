"""Starting weights for a run: the official initialisation, and what training from scratch
adds (none of it in the paper): the frozen BatchNorm and projection calibrated on the first
clips, a local start for the short-term attention, an encoder taken from another checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import Tensor, nn

from aot_edu.model import AOT
from aot_edu.model.encoders import FrozenBatchNorm2d
from aot_edu.model.weights import load_state_dict_file
from aot_edu.model.zoo import CheckpointError

# the parts of AOT a configuration can name (model.reinit, model.train_only): its submodules
PARTS = {"encoder": ("encoder", "encoder_projector"), "lstt": ("LSTT",), "decoder": ("decoder",),
         "identity_bank": ("patch_wise_id_bank",)}
# those with an official initialisation; "decoder_head" is the decoder's last layer alone (its
# M + 1 identity logits: with a fresh identity bank, what it had learned no longer applies)
REINIT_PARTS = ("lstt", "decoder", "decoder_head", "identity_bank")


def parse_parts(text: str, allowed: tuple[str, ...] = tuple(PARTS)) -> tuple[str, ...]:
    """``"lstt, decoder"`` -> ``("lstt", "decoder")``; ``ValueError`` naming an unknown part."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in parts if p not in allowed]
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(map(repr, unknown))}; choose from "
                         f"{', '.join(allowed)} (comma-separated)")
    return parts


@torch.no_grad()
def official_initialization(model: AOT, parts: tuple[str, ...] = ("encoder", *REINIT_PARTS)) -> None:
    """The official model's initialisation of everything but the encoder (its
    ``_init_weight``s): Xavier-uniform for every weight of more than one dimension in the LSTT
    blocks, the decoder and the encoder projection, and an orthogonal identity bank with gain
    ``1 / 17**2`` (its ``[C, (M+1) * 17 * 17]`` matrix has orthogonal rows of norm ``1/289``).
    Only training from scratch sees it (checkpoints overwrite it); PyTorch's default
    initialisation of the same layers gives smaller weights (Kaiming-uniform, a = sqrt 5).
    ``parts`` (:data:`PARTS`) limits it, e.g. to re-initialise the decoder of trained weights
    (``"encoder"`` means the projection only: the encoder's own weights are never touched).
    """
    if "encoder" in parts:
        nn.init.xavier_uniform_(model.encoder_projector.weight)
    modules = {"lstt": list(model.LSTT.layers), "decoder": [model.decoder],
               "decoder_head": [model.decoder.conv_out]}
    for part in ("lstt", "decoder", "decoder_head"):
        if part in parts:
            for module in modules[part]:
                for param in module.parameters():
                    if param.dim() > 1:
                        nn.init.xavier_uniform_(param)
    if "identity_bank" in parts:
        bank = model.patch_wise_id_bank.weight
        flat = torch.empty(bank.shape[0], bank[0].numel())
        nn.init.orthogonal_(flat, gain=model.config.id_bank_kernel ** -2)
        bank.copy_(flat.view_as(bank))


@torch.no_grad()
def reinitialize(model: AOT, parts: tuple[str, ...]) -> None:
    """Give ``parts`` (of :data:`REINIT_PARTS`) the weights of a newly built model: PyTorch's
    default initialisation of every layer (biases and normalisation included), then
    :func:`official_initialization` - e.g. a fresh decoder on trained weights."""
    modules = {"lstt": model.LSTT.layers, "decoder": model.decoder,
               "decoder_head": model.decoder.conv_out, "identity_bank": model.patch_wise_id_bank}
    for part in parts:
        for module in modules[part].modules():
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
    official_initialization(model, parts)


def train_only(model: AOT, parts: tuple[str, ...]) -> int:
    """Freeze every parameter outside ``parts`` (:data:`PARTS`); returns how many still learn."""
    learning = {name for part in parts for name in PARTS[part]}
    for name, child in model.named_children():
        if name not in learning:
            child.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
        if attention is None or not attention.relative:
            continue
        radius = attention.max_dis
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        distance2 = (offsets[:, None] ** 2 + offsets[None, :] ** 2).flatten()  # slot (dy, dx)
        bias = attention.relative_emb_k.bias
        bias.copy_((-strength * distance2).repeat(attention.heads).to(bias))


ENCODER_KEYS = ("encoder.", "encoder_projector.")
_WINDOW_KEYS = ("short_term_attn.relative_emb_v", "short_term_attn.relative_emb_k.weight",
                "short_term_attn.relative_emb_k.bias")


def _crop_window(source: Tensor, target_shape: torch.Size, key: str, heads: int) -> Tensor | None:
    """The centre ``Wt x Wt`` of a ``Ws x Ws`` short-term window's relative terms, or ``None``."""
    if key.endswith("relative_emb_v"):  # [heads, d, W^2]
        ws, wt = math.isqrt(source.shape[-1]), math.isqrt(target_shape[-1])
        if ws < wt or (ws - wt) % 2:
            return None
        r = (ws - wt) // 2
        grid = source.reshape(*source.shape[:-1], ws, ws)[..., r:r + wt, r:r + wt]
        return grid.reshape(target_shape)
    # relative_emb_k: [heads * W^2, ...] (weight) or [heads * W^2] (bias), head-major
    ws, wt = math.isqrt(source.shape[0] // heads), math.isqrt(target_shape[0] // heads)
    if ws < wt or (ws - wt) % 2:
        return None
    r = (ws - wt) // 2
    grid = source.reshape(heads, ws, ws, *source.shape[1:])[:, r:r + wt, r:r + wt]
    return grid.reshape(target_shape)


@torch.no_grad()
def load_adapted_weights(model: AOT, weights: str | Path) -> dict[str, list[str]]:
    """Load trained weights into a model of another architecture (the paper's ablations,
    Table 3: fewer blocks, a smaller window, another M, no relative terms...).

    Each of ``model``'s tensors is, from ``weights``: copied when the shape is the same; for the
    short-term window's relative terms (``relative_emb_k``/``relative_emb_v``) of a smaller
    window, the centre of the larger one (the same offsets keep the same terms); otherwise, when
    no dimension is larger than the source's, its leading part (the first blocks' inputs of the
    decoder, the first identities); otherwise left as initialised. Returns the keys by what
    happened: ``copied``, ``cropped``, ``sliced``, ``fresh``, and ``unused`` (source keys the
    model has no place for, e.g. a removed block's).
    """
    state = load_state_dict_file(weights)
    report: dict[str, list[str]] = {"copied": [], "cropped": [], "sliced": [], "fresh": [], "unused": []}
    own = model.state_dict()
    heads = model.config.att_heads
    for key, target in own.items():
        source = state.get(key)
        if source is None:
            report["fresh"].append(key)
            continue
        if source.shape == target.shape:
            target.copy_(source)
            report["copied"].append(key)
            continue
        if key.endswith(_WINDOW_KEYS):
            cropped = _crop_window(source, target.shape, key, heads)
            if cropped is not None:
                target.copy_(cropped)
                report["cropped"].append(key)
                continue
        if source.dim() == target.dim() and all(t <= s for t, s in zip(target.shape, source.shape, strict=True)):
            target.copy_(source[tuple(slice(0, t) for t in target.shape)])
            report["sliced"].append(key)
        else:
            report["fresh"].append(key)
    report["unused"] = [k for k in state if k not in own]
    return report


def load_encoder_weights(model: AOT, weights: str | Path) -> int:
    """Load the encoder and its projection to the LSTT width (``encoder.*``,
    ``encoder_projector.*``) from a checkpoint of any variant with the same encoder (AOT-T/S/B
    share MobileNetV2): training the rest on top of an already trained encoder. Strict for those
    keys (missing or mis-shaped ones raise :class:`aot_edu.model.zoo.CheckpointError`);
    returns the number of tensors loaded."""
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
