"""Image encoders: torchvision's MobileNetV2 and ResNet-50 at output stride 16 (paper Sec. 4).

Both return four feature maps, at 1/4, 1/8, 1/16 and again 1/16 of the input: the first three
feed the decoder's skip connections, the last one (projected to 256 channels by the model) is
what the LSTT matches. Every BatchNorm is a :class:`FrozenBatchNorm2d`, as in the official
models (and in AOT's training recipe): its statistics come with the ImageNet weights and are never
updated. Only an encoder trained from random weights needs batch statistics while it trains
(:func:`use_batch_statistics`).

ImageNet weights come through torchvision's weights API when ``pretrained=True`` and the machine
is online; offline, the encoder stays randomly initialised and a warning says so. Official AOT
checkpoints carry their own encoder weights, so inference never needs the ImageNet ones.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm with fixed statistics and affine parameters, all stored as buffers.

    ``y = (x - running_mean) / sqrt(running_var + eps) * weight + bias``. Buffers, not parameters,
    so they are neither trained nor counted in the parameter count (as in the official model).
    Training from random weights can switch on batch statistics (:func:`use_batch_statistics`).
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.batch_statistics = False  # see use_batch_statistics; not part of the state dict
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # torchvision's ImageNet weights carry a counter that frozen statistics do not need.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        # Frozen: the fused inference kernel, as the official model runs it. With batch
        # statistics, in training mode: normalise by the batch, keep a running average (0.1).
        batch = self.batch_statistics and self.training
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, batch, 0.1, self.eps
        )

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"


def _load_imagenet(module: nn.Module, weights) -> bool:
    try:
        state = weights.get_state_dict(progress=True)
    except Exception as error:  # offline, proxy, corrupt cache: train from scratch instead
        warnings.warn(
            f"could not fetch ImageNet weights {weights} ({error}); the encoder stays randomly "
            "initialised. Official AOT checkpoints do not need them.",
            stacklevel=3,
        )
        return False
    missing, _ = module.load_state_dict(state, strict=False)
    if missing:
        raise RuntimeError(f"ImageNet weights do not fit the encoder; missing {missing[:5]}")
    return True


class MobileNetV2Encoder(nn.Module):
    """torchvision's MobileNetV2 (width 1.0) with output stride 16.

    The last stride-2 stage (block 14, the first 160-channel block) keeps stride 1 and the
    depth-wise convolutions after it (blocks 15-17) use dilation 2, so the 1/16 resolution is
    kept with the receptive field of the classification network. Keys: ``features.0 .. 18``.
    Returns maps of 24 (1/4), 32 (1/8), 96 (1/16) and 1280 (1/16) channels.
    """

    dims = (24, 32, 96, 1280)

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        net = torchvision.models.mobilenet_v2(weights=None, norm_layer=FrozenBatchNorm2d)
        self.features = net.features  # the classifier is not used and not in the checkpoints
        self.features[14].conv[1][0].stride = (1, 1)
        for block in (15, 16, 17):
            depthwise = self.features[block].conv[1][0]
            depthwise.dilation, depthwise.padding = (2, 2), (2, 2)
        if pretrained:
            _load_imagenet(self, torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1)

    def forward(self, x: Tensor) -> list[Tensor]:
        f = self.features
        s4 = f[0:4](x)
        s8 = f[4:7](s4)
        s16 = f[7:14](s8)
        return [s4, s8, s16, f[14:19](s16)]


class ResNet50Encoder(nn.Module):
    """torchvision's ResNet-50 without its last stage (``layer4``) and classifier.

    Output stride 16 comes from dropping ``layer4``. Keys: ``conv1``, ``bn1``, ``layer1..3``.
    Returns maps of 256 (1/4), 512 (1/8), 1024 (1/16) and the same 1024 (1/16) channels.
    """

    dims = (256, 512, 1024, 1024)

    def __init__(self, pretrained: bool = False) -> None:
        super().__init__()
        net = torchvision.models.resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3 = net.layer1, net.layer2, net.layer3
        if pretrained:
            _load_imagenet(self, torchvision.models.ResNet50_Weights.IMAGENET1K_V1)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        s4 = self.layer1(x)
        s8 = self.layer2(s4)
        s16 = self.layer3(s8)
        return [s4, s8, s16, s16]


ENCODERS = {"mobilenetv2": MobileNetV2Encoder, "resnet50": ResNet50Encoder}


def build_encoder(name: str, pretrained: bool = False) -> nn.Module:
    """Encoder by name (``mobilenetv2`` or ``resnet50``)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {sorted(ENCODERS)}")
    return ENCODERS[name](pretrained=pretrained)


def use_batch_statistics(encoder: nn.Module, enabled: bool = True) -> int:
    """Let the encoder's BatchNorm layers normalise by batch statistics in training mode.

    For an encoder trained from random weights only (no ImageNet weights): with frozen
    statistics, every update of the convolutions shifts the scale of the activations after it
    and nothing restores it, so a deep random encoder trained at a useful rate drifts out of
    range. With batch statistics each layer stays normalised while the weights change (plain
    BatchNorm); the running averages are what evaluation (eval mode) uses, and they live in the
    same buffers, so checkpoints keep the official keys. Affine weights stay fixed buffers.
    Returns the number of layers changed.
    """
    layers = [m for m in encoder.modules() if isinstance(m, FrozenBatchNorm2d)]
    for layer in layers:
        layer.batch_statistics = enabled
    return len(layers)


def freeze_stages(encoder: nn.Module, freeze_at: int = 2) -> None:
    """Stop gradients in the encoder's first stages (AOT trains with ``freeze_at = 2``).

    As in the official models: ``freeze_at >= 1`` freezes the stem (MobileNetV2's first conv,
    ResNet's conv1/bn1), ``freeze_at >= 2`` also the 1/4-resolution stage (MobileNetV2's
    ``features[0:4]``, ResNet's ``layer1``).
    """
    if isinstance(encoder, MobileNetV2Encoder):
        stages = [encoder.features[0], encoder.features[0:4]]
    elif isinstance(encoder, ResNet50Encoder):
        stages = [nn.ModuleList([encoder.conv1, encoder.bn1]), encoder.layer1]
    else:
        raise TypeError(f"unsupported encoder {type(encoder).__name__}")
    for stage in stages[:freeze_at]:
        for p in stage.parameters():
            p.requires_grad_(False)
