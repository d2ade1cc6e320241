"""AOT: encoder + identity bank + LSTT + FPN decoder, and its variants (paper Sec. 4, Table 3d).

| variant    | encoder     | LSTT layers | test long-term gap | parameters |
|------------|-------------|-------------|--------------------|------------|
| AOT-T      | MobileNetV2 | 1           | never (9999)       | 5.7M       |
| AOT-S      | MobileNetV2 | 2           | never              | 7.0M       |
| AOT-B      | MobileNetV2 | 3           | never              | 8.3M       |
| AOT-L      | MobileNetV2 | 3           | 5 (training: 2)    | 8.3M       |
| R50-AOT-L  | ResNet-50   | 3           | 5 (training: 2)    | 14.9M      |

All: 256 channels, 8 heads, feed-forward 1024, M = 10 identities, 15x15 short-term window.
AOT-B and AOT-L share the architecture; L also adds a frame to the long-term memory every
``delta`` frames. :func:`aot_edu.model.build_model` returns a module whose ``state_dict()`` has exactly the
keys and shapes of the official checkpoints (:mod:`.weights` loads them).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .decoder import FPNDecoder
from .encoders import build_encoder
from .identity import IdentityBank
from .lstt import LSTT, LSTTOutput, map_to_seq, seq_to_map, sine_position_embedding
from .variants import VARIANTS, AOTConfig, get_config  # noqa: F401 (VARIANTS: the variants of this model)


class AOT(nn.Module):
    """The AOT network. Submodule names are the official state-dict prefixes.

    The model is stateless across frames; :mod:`aot_edu.inference.engine` keeps the memories and runs it
    frame by frame (the official split between model and engine).
    """

    def __init__(self, config: AOTConfig, pretrained_encoder: bool = False) -> None:
        super().__init__()
        self.config = config
        c = config
        self.encoder = build_encoder(c.encoder, pretrained=pretrained_encoder)
        self.encoder_projector = nn.Conv2d(c.encoder_dims[-1], c.dim, kernel_size=1)
        self.LSTT = LSTT(
            c.lstt_layers, c.dim, c.self_heads, c.att_heads, c.ffn_dim, c.max_dis, c.dilation,
            c.droppath, c.short_term_frames, c.relative_embedding,
        )
        self.decoder = FPNDecoder(
            c.dim * (c.lstt_layers + 1), c.encoder_dims[:3], c.max_obj_num + 1,
            hidden_dim=c.dim, align_corners=c.align_corners,
        )
        self.patch_wise_id_bank = IdentityBank(
            c.max_obj_num, c.dim, c.id_bank_kernel, c.id_bank_stride, c.id_bank_padding
        )
        # Convolutions run fastest on CPU (oneDNN) and GPU (cuDNN) with channels-last weights and
        # inputs; keys, shapes and values are unchanged, only the memory layout.
        self.to(memory_format=torch.channels_last)

    @property
    def max_obj_num(self) -> int:
        return self.config.max_obj_num

    def encode_image(self, image: Tensor) -> list[Tensor]:
        """Normalised images ``[B, 3, H, W]`` -> ``[s4, s8, s16, e16]``, ``e16`` projected to C."""
        s4, s8, s16, last = self.encoder(image)
        return [s4, s8, s16, self.encoder_projector(last)]

    def position_embedding(self, size_2d: tuple[int, int], batch: int) -> Tensor:
        """Sine position embedding in sequence layout ``[HW, B, C]`` (zeros without it: Table 3e)."""
        device = self.encoder_projector.weight.device
        if not self.config.sine_embedding:
            return torch.zeros(size_2d[0] * size_2d[1], 1, self.config.dim, device=device).expand(-1, batch, -1)
        pos = sine_position_embedding(*size_2d, self.config.dim, device=device)
        return map_to_seq(pos).expand(-1, batch, -1)

    def identity_embedding(self, identity_one_hot: Tensor, used: int | None = None) -> Tensor:
        """Eq. 3: one-hot identity map ``[B, M+1, H, W]`` -> ``ID`` tokens ``[HW, B, C]``."""
        return map_to_seq(self.patch_wise_id_bank.embed(identity_one_hot, used))

    def propagate(
        self,
        enc: list[Tensor],
        id_emb: Tensor | None = None,
        long_term_memories: list[tuple[Tensor, Tensor]] | None = None,
        short_term_memories: list[tuple[Tensor, Tensor]] | None = None,
        need_weights: bool = False,
    ) -> LSTTOutput:
        """Match and propagate: run the LSTT on one frame's encoding (see :class:`LSTT`)."""
        e16 = enc[-1]
        size_2d = tuple(e16.shape[-2:])
        return self.LSTT(
            map_to_seq(e16), self.position_embedding(size_2d, e16.shape[0]), size_2d, id_emb,
            long_term_memories, short_term_memories, need_weights,
        )

    def decode(self, enc: list[Tensor], lstt: LSTTOutput) -> Tensor:
        """Identity logits ``[B, M+1, H/4, W/4]`` from the encoder maps and the LSTT outputs."""
        size_2d = tuple(enc[-1].shape[-2:])
        maps = [enc[-1]] + [seq_to_map(x, size_2d) for x in lstt.decoder_inputs]
        return self.decoder(maps, enc[:3])

    def forward(self, *args, **kwargs):
        raise TypeError(
            "AOT runs frame by frame with memories: use aot_edu.segment(frames, first_mask, model) "
            "or aot_edu.inference.engine.AOTEngine"
        )


def count_parameters(model: nn.Module) -> int:
    """Parameters as the official code counts them (frozen BatchNorm buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


def state_dict_layout(variant: str | AOTConfig) -> dict[str, torch.Size]:
    """``{key: shape}`` of a variant's state dict, built without allocating weights."""
    with torch.device("meta"):
        model = AOT(get_config(variant))
    return {k: v.shape for k, v in model.state_dict().items()}
