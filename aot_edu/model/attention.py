"""Attention: matching and propagation (paper Eq. 2), long-term (Eq. 6) and short-term (Eq. 7)
attention.

All three attentions of an LSTT block are the same operation,

    Att(Q, K, V) = softmax(Q K^T / sqrt(d)) V                                      (Eq. 2)

computed per head (8 heads of d = 32 channels for a 256-wide embedding). They differ in what
they attend to:

- self-attention: the frame's own tokens (with position embedding), own Q/K/V projections;
- long-term attention (Eq. 6): every token of every memory frame (no projections of its own:
  the LSTT block projects the query once and the memory stores projected keys and values);
- short-term attention (Eq. 7): a 15x15 window around the same position in frame t-1, plus a
  learned relative position term on both the logits and the values.

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
    """Long-term attention (Eq. 6): every query token attends to all memory tokens.

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
    """Where each window slot sits in a query row's key band, and whether its column is valid.

    The key band of query row ``y`` is rows ``y - R .. y + R`` (``R = max_dis * dilation``,
    stepping by ``dilation``) of the key map zero-padded above and below: ``window * w`` tokens.
    Slot ``s = (dy + max_dis) * window + (dx + max_dis)`` of query column ``x`` is band token
    ``(dy + max_dis) * w + x + dx * dilation``. Returns ``index [w, window^2]`` (clamped into the
    band) and ``valid_x [w, window^2]`` (the slot's column lies inside the frame).
    """
    window = 2 * max_dis + 1
    offsets = torch.arange(-max_dis, max_dis + 1, device=device) * dilation
    x = torch.arange(w, device=device)
    cols = x[:, None, None] + offsets[None, None, :]  # [w, 1 (dy), window (dx)]
    valid_x = ((cols >= 0) & (cols < w)).expand(w, window, window).reshape(w, window * window)
    band_row = torch.arange(window, device=device)[None, :, None]
    index = band_row * w + cols.clamp(0, w - 1)
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
    """Map ``[B, C, h, w]`` -> per query row, its key band ``[B, heads, h, window * w, d]``."""
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
    relative_logits: Tensor | None,
    relative_values: Tensor | None,
    heads: int,
    max_dis: int = 7,
    dilation: int = 1,
    need_weights: bool = False,
    chunk_elements: int = 1 << 20,
) -> tuple[Tensor, Tensor | None]:
    """Short-term attention (Eq. 7): each query attends to a (2*max_dis+1)^2 window of frame t-1.

    For query pixel ``p = (y, x)`` and window slot ``s = (dy, dx)``, ``dy, dx in -7..7``:

        logit[h, p, s] = q[h, p] . k[h, p + s] / sqrt(d) + relative_logits[h, s, p]
        out[h, p]      = sum_s A[h, p, s] * (v[h, p + s] + relative_values[h, :, s])

    with ``A = softmax_s(logit)``; slots outside the frame get zero weight.
    :func:`short_term_attention_reference` computes exactly this, slot by slot.

    Args:
        q: the query map ``[B, C, h, w]`` (the unscaled projected query).
        k, v: frame t-1's maps ``[B, C, h, w]``, or ``n`` frames ``[B, n, C, h, w]`` (t-1, t-2,
            ...; paper Table 3c): one softmax over the ``n * window^2`` slots of all their
            windows, every frame's slot with the same relative-position terms (our choice: the
            paper does not say how its n > 1 rows shared them).
        relative_logits: ``[B, heads * window^2, h, w]``, the relative-position logits computed
            from the unscaled query (``ShortTermAttention.relative_emb_k``); ``None``: none
            (Table 3e without "Rel").
        relative_values: ``[heads, d, window^2]``, the relative-position value bias, or ``None``.
        chunk_elements: size of the per-chunk temporaries (a speed knob, same results).

    Returns ``(output [h*w, B, C], weights [B, heads, h*w, n * window^2] or None)`` before the
    output projection; slot ``f * window^2 + s`` is slot ``s`` of frame ``t - 1 - f``.

    How it runs fast without a compiled kernel: all windows of one query row lie in the same
    ``window`` rows of keys (its "band"), so one matrix product per row gives every logit the
    row needs; the 225 window logits are gathered from it, and after the softmax the weights are
    scattered back into the band for one product with the band's values. Rows are processed in
    chunks so the temporaries stay small (cache-resident, no page faults), and no copy of the 225
    neighbours of every pixel is ever made.
    """
    b, c, h, w = q.shape
    d = c // heads
    window2 = (2 * max_dis + 1) ** 2
    index, valid_x = _window_index(w, max_dis, dilation, q.device)
    row_valid = _row_validity(h, max_dis, dilation, q.device)
    k_frames, v_frames = _frames(k), _frames(v)

    q_rows = (q / math.sqrt(d)).reshape(b, heads, d, h, w).permute(0, 1, 3, 4, 2)  # [B,H,h,w,d]
    k_bands = [_row_bands(x, heads, max_dis, dilation) for x in k_frames]  # [B,H,h,window*w,d]
    v_bands = [_row_bands(x, heads, max_dis, dilation) for x in v_frames]
    rel = None
    if relative_logits is not None:
        rel = relative_logits.reshape(b, heads, window2, h, w).permute(0, 1, 3, 4, 2)
    rel_v = None if relative_values is None else relative_values.transpose(-2, -1)[None, :, None]

    rows = max(1, chunk_elements // (b * heads * w * k_bands[0].shape[3]))
    outs, weights = [], []
    for y0 in range(0, h, rows):
        y = slice(y0, min(h, y0 + rows))
        bands = [q_rows[:, :, y] @ kb[:, :, y].transpose(-2, -1) for kb in k_bands]  # [B,H,r,w,window*w]
        gather_index = index.expand(*bands[0].shape[:-1], window2)
        n = len(bands)
        logits = torch.cat([band.gather(-1, gather_index) for band in bands], dim=-1) if n > 1 \
            else bands[0].gather(-1, gather_index)
        if rel is not None:
            logits = logits + (rel[:, :, y].repeat(1, 1, 1, 1, n) if n > 1 else rel[:, :, y])
        valid = valid_x[None] & row_valid[y, None, :]
        if n > 1:
            valid = valid.repeat(1, 1, n)
        attn = torch.softmax(logits.masked_fill(~valid, float("-inf")), dim=-1)
        out = None
        for f, band in enumerate(bands):
            a = attn[..., f * window2:(f + 1) * window2]
            # Out-of-frame slots carry exactly zero weight; their clamped indices may repeat: add.
            band = band.zero_() if not torch.is_grad_enabled() else torch.zeros_like(band)
            band = band.scatter_add_(-1, gather_index, a)
            term = band @ v_bands[f][:, :, y]
            out = term if out is None else out + term
        if rel_v is not None:
            out = out + (attn.unflatten(-1, (n, window2)).sum(-2) if n > 1 else attn) @ rel_v
        outs.append(out)
        if need_weights:
            weights.append(attn)
    slots = len(k_bands) * window2
    out = torch.cat(outs, dim=2).reshape(b, heads, h * w, d)
    attn_maps = torch.cat(weights, dim=2).reshape(b, heads, h * w, slots) if need_weights else None
    return merge_heads(out), attn_maps


def _frames(x: Tensor) -> list[Tensor]:
    """Short-term memory maps ``[B, C, h, w]`` or ``[B, n, C, h, w]`` -> ``n`` maps ``[B, C, h, w]``."""
    return [x] if x.dim() == 4 else list(x.unbind(1))


def short_term_attention_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    relative_logits: Tensor | None,
    relative_values: Tensor | None,
    heads: int,
    max_dis: int = 7,
    dilation: int = 1,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """:func:`short_term_attention` written literally, as the official pure-PyTorch path does it.

    Every pixel gets an explicit copy of its ``window^2`` neighbouring keys and values
    (``F.unfold`` of the zero-padded maps); neighbours outside the frame get ``-1e8`` on their
    logit. Easy to read, but the copies take ``2 * window^2 * C * h * w`` floats (about 770 MB at
    480p) - the reason for the tiled version. Same arguments and results.
    """
    b, c, h, w = q.shape
    d = c // heads
    window = 2 * max_dis + 1
    pad = max_dis * dilation

    def neighbours(x: Tensor) -> Tensor:  # [B, C, h, w] -> [B, C, window^2, h*w]
        x = F.unfold(F.pad(x, (pad, pad, pad, pad)), window, dilation=dilation)
        return x.view(x.shape[0], -1, window * window, h * w)

    frames = len(_frames(k))
    inside = neighbours(torch.ones(1, 1, h, w, device=q.device, dtype=q.dtype))[0, 0]
    inside = inside.repeat(frames, 1)  # [frames * window^2, h*w]
    neighbour_k = torch.cat([neighbours(x).view(b, heads, d, window * window, h * w) for x in _frames(k)], 3)
    neighbour_v = torch.cat([neighbours(x).view(b, heads, d, window * window, h * w) for x in _frames(v)], 3)
    qs = (q / math.sqrt(d)).view(b, heads, d, 1, h * w)
    logits = (qs * neighbour_k).sum(2)  # [B, heads, frames * window^2, h*w]
    if relative_logits is not None:
        logits = logits + relative_logits.view(b, heads, window * window, h * w).repeat(1, 1, frames, 1)
    logits = logits - (1 - inside) * 1e8
    attn = torch.softmax(logits, dim=2)  # [B, heads, frames * window^2, h*w]
    values = neighbour_v
    if relative_values is not None:
        values = values + relative_values.repeat(1, 1, frames)[None, :, :, :, None]
    out = (attn[:, :, None] * values).sum(3)  # [B, heads, d, h*w]
    out = out.permute(3, 0, 1, 2).reshape(h * w, b, c)
    return out, attn.transpose(2, 3) if need_weights else None


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
    Set ``literal = True`` to run :func:`short_term_attention_reference` instead (same results,
    the official formulation's memory cost; for teaching and benchmarks).
    """

    literal: bool = False

    def __init__(self, dim: int = 256, heads: int = 8, max_dis: int = 7, dilation: int = 1,
                 relative: bool = True) -> None:
        super().__init__()
        self.heads = heads
        self.max_dis = max_dis
        self.dilation = dilation
        window2 = (2 * max_dis + 1) ** 2
        if relative:  # relative=False: Table 3e's row without "Rel" (no such parameters)
            self.relative_emb_v = nn.Parameter(torch.zeros(heads, dim // heads, window2))
            self.relative_emb_k = nn.Conv2d(dim, heads * window2, kernel_size=1, groups=heads)
        self.relative = relative
        self.projection = nn.Linear(dim, dim)

    def forward(
        self, q: Tensor, k: Tensor, v: Tensor, need_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        """Maps ``q [B, C, h, w]``, ``k, v [B, C, h, w]`` (or ``[B, n, C, h, w]``, ``n`` frames) ->
        ``([h*w, B, C], weights [B, heads, h*w, n * window^2] or None)``."""
        attention = short_term_attention_reference if self.literal else short_term_attention
        rel_k, rel_v = (self.relative_emb_k(q), self.relative_emb_v) if self.relative else (None, None)
        out, weights = attention(
            q, k, v, rel_k, rel_v, self.heads, self.max_dis, self.dilation, need_weights,
        )
        return self.projection(out), weights
