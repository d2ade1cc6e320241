"""Attention: matching and propagation (paper Eq. 2), long-term and short-term attention.

All three attentions of an LSTT block are the same operation,

    Att(Q, K, V) = softmax(Q K^T / sqrt(d)) V                                      (Eq. 2)

computed per head (8 heads of d = 32 channels for a 256-wide embedding). They differ in what
they attend to:

- self-attention: the frame's own tokens (with position embedding), own Q/K/V projections;
- long-term attention: every token of every memory frame (no projections of its own: the LSTT
  block projects the query once and the memory stores projected keys and values);
- short-term attention: a 15x15 window around the same position in frame t-1, plus a learned
  relative position term on both the logits and the values.

Layouts: "sequence" tensors are ``[N, B, C]`` (token index ``y * w + x``); "map" tensors are
``[B, C, h, w]``; per-head tensors are ``[B, heads, N, d]``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``[N, B, C]`` -> ``[B, heads, N, C / heads]``; head ``h`` owns channels ``h*d .. h*d+d-1``."""
    n, b, c = x.shape
    return x.view(n, b, heads, c // heads).permute(1, 2, 0, 3)


def merge_heads(x: Tensor) -> Tensor:
    """``[B, heads, N, d]`` -> ``[N, B, heads * d]`` (inverse of :func:`split_heads`)."""
    b, heads, n, d = x.shape
    return x.permute(2, 0, 1, 3).reshape(n, b, heads * d)


def scaled_dot_product_attention(
    q: Tensor, k: Tensor, v: Tensor, need_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Eq. 2 per head: ``softmax(q k^T / sqrt(d)) v``.

    Args:
        q: queries ``[B, heads, Nq, d]``; k: keys ``[B, heads, Nk, d]``; v: values ``[B, heads, Nk, dv]``.
        need_weights: also return the attention weights ``[B, heads, Nq, Nk]`` (rows sum to 1).

    Returns ``(output [B, heads, Nq, dv], weights or None)``. The query is scaled before the
    product, as the official implementation does.
    """
    q = q / math.sqrt(q.shape[-1])
    if not need_weights:
        # PyTorch's fused kernel computes the same softmax without materialising the weights.
        return F.scaled_dot_product_attention(q, k, v, scale=1.0), None
    weights = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
    return weights @ v, weights


def long_term_attention(
    q: Tensor, k: Tensor, v: Tensor, heads: int, need_weights: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Long-term attention: every query token attends to all memory tokens (Eq. 2).

    Args:
        q: current-frame queries ``[HW, B, C]`` (already projected by the block's ``linear_Q``).
        k, v: memory keys and values ``[T*HW, B, C]``: all long-term memory frames concatenated
            along the token axis (projected, values carrying the identity embedding).

    Returns ``(output [HW, B, C], weights [B, heads, HW, T*HW] or None)``, before the output
    projection.
    """
    out, weights = scaled_dot_product_attention(
        split_heads(q, heads), split_heads(k, heads), split_heads(v, heads), need_weights
    )
    return merge_heads(out), weights


@lru_cache(maxsize=32)
@torch.inference_mode(False)  # cached tensors must also serve training
def _window_index(
    w: int, max_dis: int, dilation: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Index of each window slot inside a query row's key band, and its column validity.

    The key band of query row ``y`` is rows ``y - R .. y + R`` (``R = max_dis * dilation``) of
    the zero-padded key map, stepping by ``dilation``: ``window * w`` tokens. Slot
    ``s = (dy + max_dis) * window + (dx + max_dis)`` of query column ``x`` is band token
    ``(dy + max_dis) * w + x + dx * dilation``. Returns ``index [w, window^2]`` (clamped into the
    band) and ``valid_x [w, window^2]`` (the slot's column lies inside the frame).
    """
    window = 2 * max_dis + 1
    offsets = torch.arange(-max_dis, max_dis + 1, device=device) * dilation
    x = torch.arange(w, device=device)
    band_row = torch.arange(window, device=device)
    cols = x[:, None, None] + offsets[None, None, :]  # [w, 1(dy), window(dx)]
    valid_x = ((cols >= 0) & (cols < w)).expand(w, window, window).reshape(w, window * window)
    index = band_row[None, :, None] * w + cols.clamp(0, w - 1)
    return index.reshape(w, window * window), valid_x


@lru_cache(maxsize=32)
@torch.inference_mode(False)
def _row_validity(h: int, max_dis: int, dilation: int, device: torch.device) -> Tensor:
    """``[h, window^2]``: whether each slot's row lies inside the frame, per query row."""
    window = 2 * max_dis + 1
    offsets = torch.arange(-max_dis, max_dis + 1, device=device) * dilation
    rows = torch.arange(h, device=device)[:, None] + offsets[None, :]
    valid = (rows >= 0) & (rows < h)
    return valid[:, :, None].expand(h, window, window).reshape(h, window * window)


def _row_bands(x: Tensor, heads: int, max_dis: int, dilation: int) -> Tensor:
    """Map ``[B, C, h, w]`` -> per query row, the key band ``[B, heads, h, window * w, d]``."""
    b, c, h, w = x.shape
    pad = max_dis * dilation
    padded = F.pad(x, (0, 0, pad, pad))  # zero rows above and below
    bands = padded.unfold(2, 2 * pad + 1, 1)[..., ::dilation]  # [B, C, h, w, window]
    window = bands.shape[-1]
    bands = bands.reshape(b, heads, c // heads, h, w, window)
    return bands.permute(0, 1, 3, 5, 4, 2).reshape(b, heads, h, window * w, c // heads)


def short_term_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    relative_logits: Tensor,
    relative_values: Tensor,
    heads: int,
    max_dis: int = 7,
    dilation: int = 1,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Short-term attention: each query attends to a (2*max_dis+1)^2 window of frame t-1.

    For query pixel ``p = (y, x)`` and window slot ``s = (dy, dx)``, ``dy, dx in -7..7``:

        logit[h, p, s] = q[h, p] . k[h, p + s] / sqrt(d) + relative_logits[h, s, p]
        out[h, p]      = sum_s A[h, p, s] * (v[h, p + s] + relative_values[h, :, s])

    with ``A = softmax_s(logit)``; slots outside the frame get zero weight.

    Args:
        q, k, v: maps ``[B, C, h, w]`` (the query is the unscaled projected query).
        relative_logits: ``[B, heads * window^2, h, w]``, the relative-position logits computed
            from the unscaled query (``ShortTermAttention.relative_emb_k``).
        relative_values: ``[heads, d, window^2]``, the relative-position value bias.

    Returns ``(output [h*w, B, C], weights [B, heads, h*w, window^2] or None)`` before the
    output projection.

    Instead of unfolding a 225-slot copy of every key and value, each query row is matched
    against the band of key rows its windows cover with one batched matrix product; the 225
    window logits are gathered from that band and the weights are scattered back into it for
    the value product. Same numbers, a fraction of the memory.
    """
    b, c, h, w = q.shape
    d = c // heads
    window2 = (2 * max_dis + 1) ** 2
    index, valid_x = _window_index(w, max_dis, dilation, q.device)
    valid = valid_x[None, :, :] & _row_validity(h, max_dis, dilation, q.device)[:, None, :]

    q_rows = (q / math.sqrt(d)).reshape(b, heads, d, h, w).permute(0, 1, 3, 4, 2)  # [B,H,h,w,d]
    k_bands = _row_bands(k, heads, max_dis, dilation)  # [B, H, h, window*w, d]
    band_logits = q_rows @ k_bands.transpose(-2, -1)  # [B, H, h, w, window*w]
    gather_index = index.expand(b, heads, h, w, window2)
    logits = band_logits.gather(-1, gather_index)
    logits = logits + relative_logits.reshape(b, heads, window2, h, w).permute(0, 1, 3, 4, 2)
    logits = logits.masked_fill(~valid, float("-inf"))
    attn = torch.softmax(logits, dim=-1)  # [B, H, h, w, window^2]

    # Out-of-frame slots carry exactly zero weight; their clamped indices may repeat, so add.
    band_attn = torch.zeros_like(band_logits).scatter_add_(-1, gather_index, attn)
    out = band_attn @ _row_bands(v, heads, max_dis, dilation)  # [B, H, h, w, d]
    out = out + attn @ relative_values.transpose(-2, -1)[None, :, None]
    out = out.reshape(b, heads, h * w, d)
    weights = attn.reshape(b, heads, h * w, window2) if need_weights else None
    return merge_heads(out), weights


class MultiheadAttention(nn.Module):
    """Self-attention with its own Q/K/V projections (Eq. 2; Vaswani et al.).

    State-dict keys: ``linear_Q``, ``linear_K``, ``linear_V``, ``projection`` (256 -> 256).
    """

    def __init__(self, dim: int = 256, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.linear_Q = nn.Linear(dim, dim)
        self.linear_K = nn.Linear(dim, dim)
        self.linear_V = nn.Linear(dim, dim)
        self.projection = nn.Linear(dim, dim)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """``query [Nq, B, C]``, ``key/value [Nk, B, C]`` -> ``([Nq, B, C], weights or None)``."""
        out, weights = scaled_dot_product_attention(
            split_heads(self.linear_Q(query), self.heads),
            split_heads(self.linear_K(key), self.heads),
            split_heads(self.linear_V(value), self.heads),
            need_weights,
        )
        return self.projection(merge_heads(out)), weights


class LongTermAttention(nn.Module):
    """Long-term attention module: :func:`long_term_attention` + output ``projection``."""

    def __init__(self, dim: int = 256, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.projection = nn.Linear(dim, dim)

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        out, weights = long_term_attention(q, k, v, self.heads, need_weights)
        return self.projection(out), weights


class ShortTermAttention(nn.Module):
    """Short-term attention module: :func:`short_term_attention` + output ``projection``.

    Parameters (official keys): ``relative_emb_v [heads, d, window^2]`` (value bias per slot),
    ``relative_emb_k`` (grouped 1x1 conv ``C -> heads * window^2``, one group per head, giving
    each query its relative-position logit for every slot), ``projection``.
    """

    def __init__(self, dim: int = 256, heads: int = 8, max_dis: int = 7, dilation: int = 1) -> None:
        super().__init__()
        self.heads = heads
        self.max_dis = max_dis
        self.dilation = dilation
        window2 = (2 * max_dis + 1) ** 2
        self.relative_emb_v = nn.Parameter(torch.zeros(heads, dim // heads, window2))
        self.relative_emb_k = nn.Conv2d(dim, heads * window2, kernel_size=1, groups=heads)
        self.projection = nn.Linear(dim, dim)

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Maps ``[B, C, h, w]`` -> ``([h*w, B, C], weights [B, heads, h*w, window^2] or None)``."""
        out, weights = short_term_attention(
            q,
            k,
            v,
            self.relative_emb_k(q),
            self.relative_emb_v,
            self.heads,
            self.max_dis,
            self.dilation,
            need_weights,
        )
        return self.projection(out), weights
