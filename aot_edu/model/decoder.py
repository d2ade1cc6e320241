"""The FPN decoder (paper Sec. 4): from the 1/16 LSTT tokens back to 1/4-resolution logits.

Input: the projected encoder map and every LSTT block's (normed) output, concatenated along
channels, at 1/16. Three refinement steps add a skip connection from the encoder (through a 1x1
"adapter") and apply conv 3x3 -> GroupNorm(8) -> ReLU, upsampling bilinearly (``align_corners``
as the model's) between them: 1/16 (256 ch) -> 1/8 (128 ch) -> 1/4 (128 ch). A final 1x1 conv
gives ``M + 1`` identity logits per pixel - one channel per identity of the bank, decoded
to objects with Eq. 5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvGN(nn.Sequential):
    """Conv ``k x k`` (same padding, with bias) followed by GroupNorm(8 groups)."""

    def __init__(self, in_dim: int, out_dim: int, kernel: int, groups: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_dim, out_dim, kernel, padding=kernel // 2)
        self.gn = nn.GroupNorm(groups, out_dim)


class FPNDecoder(nn.Module):
    """Feature-pyramid decoder with GroupNorm (official key names).

    Args:
        in_dim: channels of the concatenated 1/16 input, ``256 * (num_lstt_layers + 1)``.
        encoder_dims: channels of the encoder's 1/4, 1/8 and 1/16 maps.
        out_dim: ``M + 1`` identity logits.
    """

    def __init__(
        self, in_dim: int, encoder_dims: tuple[int, int, int], out_dim: int = 11,
        hidden_dim: int = 256, shortcut_dim: int = 128, align_corners: bool = True,
    ) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.conv_in = ConvGN(in_dim, hidden_dim, 1)
        self.conv_16x = ConvGN(hidden_dim, hidden_dim, 3)
        self.conv_8x = ConvGN(hidden_dim, shortcut_dim, 3)
        self.conv_4x = ConvGN(shortcut_dim, shortcut_dim, 3)
        self.adapter_16x = nn.Conv2d(encoder_dims[2], hidden_dim, 1)
        self.adapter_8x = nn.Conv2d(encoder_dims[1], hidden_dim, 1)
        self.adapter_4x = nn.Conv2d(encoder_dims[0], shortcut_dim, 1)
        self.conv_out = nn.Conv2d(shortcut_dim, out_dim, 1)

    def _up(self, x: Tensor, like: Tensor) -> Tensor:
        return F.interpolate(x, like.shape[-2:], mode="bilinear", align_corners=self.align_corners)

    def forward(self, inputs: list[Tensor], shortcuts: list[Tensor]) -> Tensor:
        """``inputs``: 1/16 maps ``[B, C_i, h, w]`` (encoder projection first, then LSTT outputs);
        ``shortcuts``: encoder maps ``[s4, s8, s16]``. Returns logits ``[B, M+1, H/4, W/4]``.
        """
        s4, s8, s16 = shortcuts
        x = F.relu(self.conv_in(torch.cat(inputs, dim=1)))
        x = F.relu(self.conv_16x(self.adapter_16x(s16) + x))
        x = self._up(x, s8)
        x = F.relu(self.conv_8x(self.adapter_8x(s8) + x))
        x = self._up(x, s4)
        x = F.relu(self.conv_4x(self.adapter_4x(s4) + x))
        return self.conv_out(x)
