"""The Long Short-Term Transformer (paper Sec. 3.3, Fig. 2c).

An LSTT block refines the current frame's tokens in three steps, each with a pre-LayerNorm and a
residual connection:

1. self-attention over the frame's own tokens (queries and keys carry a sine position embedding);
2. long-term attention to all memory frames plus short-term attention to a 15x15 window of
   frame t-1 - this is where the objects' identities are *matched and propagated*;
3. a feed-forward network whose hidden layer passes GroupNorm -> GELU -> a 5x5 depth-wise
   convolution (the only place where neighbouring tokens mix spatially besides attention).

Blocks are stacked (1 for AOT-T, 2 for AOT-S, 3 for AOT-B/L); every block keeps memories of its
own. The memory of a frame is, per block, the key ``linear_Q(norm2(x))`` and the value
``linear_V(norm2(x) + ID)`` (the identification embedding of Eq. 3 is added before the value
projection: the official form of AttID, Eq. 4). Long-term attention is the paper's Eq. 6,
short-term attention Eq. 7. Tokens are in sequence layout ``[HW, B, C]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import LongTermAttention, MultiheadAttention, ShortTermAttention


def seq_to_map(x: Tensor, size_2d: tuple[int, int]) -> Tensor:
    """``[HW, B, C]`` -> ``[B, C, h, w]``."""
    h, w = size_2d
    return x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], h, w)


def map_to_seq(x: Tensor) -> Tensor:
    """``[B, C, h, w]`` -> ``[HW, B, C]``."""
    return x.flatten(2).permute(2, 0, 1)


@lru_cache(maxsize=16)
@torch.inference_mode(False)  # the cached tensor must also serve training
def _sine_position_embedding(
    h: int, w: int, dim: int, temperature: float, device: torch.device
) -> Tensor:
    half = dim // 2
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(h, dtype=torch.float32, device=device) / (h - 1 + eps) * scale
    x = torch.arange(w, dtype=torch.float32, device=device) / (w - 1 + eps) * scale
    k = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(k, 2, rounding_mode="floor") / half)

    def encode(u: Tensor) -> Tensor:
        angles = u[:, None] / dim_t  # [n, half]
        return torch.where(k.long() % 2 == 0, angles.sin(), angles.cos())

    pos_y = encode(y)[:, None, :].expand(h, w, half)
    pos_x = encode(x)[None, :, :].expand(h, w, half)
    return torch.cat([pos_y, pos_x], dim=-1).permute(2, 0, 1)[None].contiguous()


def sine_position_embedding(
    h: int, w: int, dim: int = 256, temperature: float = 10000.0,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Sine position embedding ``[1, dim, h, w]`` of the 1/16 token grid (DETR-style).

    Rows and columns are normalised to ``[0, 2*pi]``; channels ``0..dim/2-1`` encode the row,
    the rest the column, as interleaved sin/cos pairs with wavelengths ``temperature^(2i/(dim/2))``.
    Used only by the self-attention (added to its queries and keys).
    """
    return _sine_position_embedding(h, w, dim, float(temperature), torch.device(device))


class DropPath(nn.Module):
    """Stochastic depth: drop a residual branch for whole samples while training.

    Applied to sequence-layout tensors ``[HW, B, C]`` (the batch is dimension 1).
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty(1, x.shape[1], 1).bernoulli_(keep)
        return x * mask / keep


class GNActDWConv2d(nn.Module):
    """The feed-forward's hidden activation: GroupNorm(32) -> GELU -> 5x5 depth-wise conv."""

    def __init__(self, dim: int = 1024, groups: int = 32) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(groups, dim)
        self.conv = nn.Conv2d(dim, dim, kernel_size=5, padding=2, groups=dim, bias=False)

    def forward(self, x: Tensor, size_2d: tuple[int, int]) -> Tensor:
        """``[HW, B, dim]`` -> ``[HW, B, dim]``."""
        x = F.gelu(self.gn(seq_to_map(x, size_2d)))
        return map_to_seq(self.conv(x))


@dataclass
class BlockMemory:
    """What a propagated frame leaves for the memory, per LSTT block.

    ``key = linear_Q(norm2(x))`` and the un-fused value ``norm2(x)``: the identity embedding
    of the frame's (predicted) mask is fused in later, ``linear_V(value + ID)``.
    """

    key: Tensor  # [HW, B, C]
    value: Tensor  # [HW, B, C]


@dataclass
class AttentionMaps:
    """Attention weights of one block, for visualisation (paper Fig. 6-7)."""

    self_attn: Tensor | None = None  # [B, heads, HW, HW]
    long_term: Tensor | None = None  # [B, heads, HW, T*HW]
    short_term: Tensor | None = None  # [B, heads, HW, window^2]


class LSTTBlock(nn.Module):
    """One Long Short-Term Transformer block (paper Fig. 2c), pre-norm, eval- and train-ready.

    Submodule names are the official state-dict keys. Note the official naming: ``norm1`` is the
    self-attention's pre-norm, ``norm2`` the long/short-term attention's, ``norm3`` the
    feed-forward's. The long- and short-term attentions share one query projection
    ``linear_Q``, which is also the key projection of the current frame, and one value
    projection ``linear_V``.
    """

    def __init__(
        self, dim: int = 256, self_heads: int = 8, att_heads: int = 8, ffn_dim: int = 1024,
        max_dis: int = 7, dilation: int = 1, droppath: float = 0.0, short_term_frames: int = 1,
        relative_embedding: bool = True,
    ) -> None:
        super().__init__()
        # Registration order = official state-dict order.
        self.norm1 = nn.LayerNorm(dim)
        self.linear_Q = nn.Linear(dim, dim)
        self.linear_V = nn.Linear(dim, dim)
        self.long_term_attn = LongTermAttention(dim, att_heads)
        # short_term_frames = 0: no short-term attention at all (the ablation of Table 3b-c)
        self.short_term_attn = ShortTermAttention(
            dim, att_heads, max_dis, dilation, relative_embedding
        ) if short_term_frames > 0 else None
        self.norm2 = nn.LayerNorm(dim)
        self.self_attn = MultiheadAttention(dim, self_heads)
        self.norm3 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.activation = GNActDWConv2d(ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)
        self.droppath = DropPath(droppath)

    def memory_value(self, value: Tensor, id_emb: Tensor) -> Tensor:
        """AttID (Eq. 4) inside the block: ``V' = linear_V(norm2(x) + ID)``; ``[HW, B, C]``."""
        return self.linear_V(value + id_emb)

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        size_2d: tuple[int, int],
        id_emb: Tensor | None = None,
        long_term_memory: tuple[Tensor, Tensor] | None = None,
        short_term_memory: tuple[Tensor, Tensor] | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, BlockMemory, AttentionMaps | None]:
        """Refine the tokens of one frame.

        Args:
            x: tokens ``[HW, B, C]``; pos: position embedding ``[HW, B, C]``.
            id_emb: identity embedding ``[HW, B, C]`` when this frame's mask is known (a
                reference frame): the frame then attends to itself, its own keys and
                identity-carrying values serving as both memories.
            long_term_memory: ``(K [T*HW, B, C], V [T*HW, B, C])`` for a propagated frame.
            short_term_memory: ``(K [B, C, h, w], V [B, C, h, w])`` of frame t-1, or of ``n``
                frames ``[B, n, C, h, w]`` (t-1, t-2, ...; ``AOTConfig.short_term_frames``).

        Returns ``(x [HW, B, C], memory of this frame, attention maps or None)``.
        """
        maps = AttentionMaps() if need_weights else None

        t = self.norm1(x)
        qk = t + pos
        out, weights = self.self_attn(qk, qk, t, need_weights)
        x = x + self.droppath(out)
        if maps:
            maps.self_attn = weights

        lst_in = self.norm2(x)
        query = self.linear_Q(lst_in)
        if id_emb is not None:
            value = self.memory_value(lst_in, id_emb)
            long_term_memory = (query, value)
            short_term_memory = (seq_to_map(query, size_2d), seq_to_map(value, size_2d))
        elif long_term_memory is None or short_term_memory is None:
            raise ValueError("a frame without identity embedding needs long- and short-term memories")
        long_out, long_w = self.long_term_attn(query, *long_term_memory, need_weights=need_weights)
        x = x + long_out
        short_w = None
        if self.short_term_attn is not None:
            short_out, short_w = self.short_term_attn(
                seq_to_map(query, size_2d), *short_term_memory, need_weights=need_weights
            )
            x = x + short_out
        if maps:
            maps.long_term, maps.short_term = long_w, short_w

        t = self.norm3(x)
        x = x + self.droppath(self.linear2(self.activation(self.linear1(t), size_2d)))
        return x, BlockMemory(key=query, value=lst_in), maps


@dataclass
class LSTTOutput:
    """Result of running the LSTT on one frame."""

    decoder_inputs: list[Tensor]  # per block, normed tokens [HW, B, C] for the decoder
    memories: list[BlockMemory]  # per block, this frame's key and un-fused value
    attention: list[AttentionMaps] | None = field(default=None)


class LSTT(nn.Module):
    """A stack of :class:`LSTTBlock` plus one LayerNorm per block output for the decoder.

    The decoder sees every block's output (``decoder_norms[i]`` applied to block ``i``'s
    output), while the un-normed output flows into the next block. ``mask_token`` exists in
    the official checkpoints but is unused by AOT; it is kept so they load strictly.
    """

    def __init__(
        self, num_layers: int, dim: int = 256, self_heads: int = 8, att_heads: int = 8,
        ffn_dim: int = 1024, max_dis: int = 7, dilation: int = 1, droppath: float = 0.0,
        short_term_frames: int = 1, relative_embedding: bool = True,
    ) -> None:
        super().__init__()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.layers = nn.ModuleList(
            LSTTBlock(dim, self_heads, att_heads, ffn_dim, max_dis, dilation, droppath,
                      short_term_frames, relative_embedding)
            for _ in range(num_layers)
        )
        self.decoder_norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(num_layers))

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        size_2d: tuple[int, int],
        id_emb: Tensor | None = None,
        long_term_memories: list[tuple[Tensor, Tensor]] | None = None,
        short_term_memories: list[tuple[Tensor, Tensor]] | None = None,
        need_weights: bool = False,
    ) -> LSTTOutput:
        """Run all blocks on one frame's tokens ``x [HW, B, C]`` (see :meth:`LSTTBlock.forward`)."""
        outputs, memories, maps = [], [], []
        for i, (layer, norm) in enumerate(zip(self.layers, self.decoder_norms, strict=True)):
            x, memory, block_maps = layer(
                x, pos, size_2d, id_emb,
                None if long_term_memories is None else long_term_memories[i],
                None if short_term_memories is None else short_term_memories[i],
                need_weights,
            )
            outputs.append(norm(x))
            memories.append(memory)
            maps.append(block_maps)
        return LSTTOutput(outputs, memories, maps if need_weights else None)
