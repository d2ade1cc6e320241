"""The course's solutions to the "your turn" exercises of notebooks 01-05.

Written as a learner would, straight from the paper's equations, without the package: the
package's implementations (``aot_edu.model.attention``, ``aot_edu.model.identity``, ``aot_edu.model.lstt``,
``aot_edu.training``) are what the checks compare with. ``aot_edu.course.exercises.check`` falls back to
these when an exercise is not written yet (see ``AOT_EDU_SOLUTIONS`` there); delete this file
to hand out a student version of the course.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# --- 01 attention --------------------------------------------------------------------------


def attention(Q: Tensor, K: Tensor, V: Tensor) -> Tensor:
    """Eq. 2: ``softmax(Q K^T / sqrt(C)) V``; ``Q [..., n, C]``, ``K [..., m, C]``, ``V [..., m, C_v]``."""
    A = torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1]), dim=-1)
    return A @ V


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``[N, B, C]`` -> ``[B, heads, N, d]``: head ``h`` owns channels ``h*d .. h*d + d - 1``."""
    N, B, C = x.shape
    return x.view(N, B, heads, C // heads).permute(1, 2, 0, 3)


def merge_heads(x: Tensor) -> Tensor:
    """``[B, heads, N, d]`` -> ``[N, B, heads * d]``."""
    B, heads, N, d = x.shape
    return x.permute(2, 0, 1, 3).reshape(N, B, heads * d)


class MultiheadAttention(nn.Module):
    """Eq. 2 in ``heads`` heads, with the projections of the trained checkpoints."""

    def __init__(self, dim: int = 256, heads: int = 8) -> None:
        super().__init__()
        self.heads = heads
        self.linear_Q = nn.Linear(dim, dim)
        self.linear_K = nn.Linear(dim, dim)
        self.linear_V = nn.Linear(dim, dim)
        self.projection = nn.Linear(dim, dim)

    def forward(self, query: Tensor, key: Tensor, value: Tensor) -> Tensor:
        """``query [N_q, B, C]``, ``key`` and ``value [N_k, B, C]`` -> ``[N_q, B, C]``."""
        Q = split_heads(self.linear_Q(query), self.heads)
        K = split_heads(self.linear_K(key), self.heads)
        V = split_heads(self.linear_V(value), self.heads)
        return self.projection(merge_heads(attention(Q, K, V)))


# --- 02 identity ---------------------------------------------------------------------------


def random_identity_assignment(batch: int, M: int, generator: torch.Generator | None = None) -> Tensor:
    """The ``P`` of Eq. 3 as an index ``[batch, M+1]``: background 0, objects a permutation of 1..M."""
    rows = [torch.cat([torch.zeros(1, dtype=torch.long), torch.randperm(M, generator=generator) + 1])
            for _ in range(batch)]
    return torch.stack(rows)


def identification_embedding(Y: Tensor, P: Tensor, D: Tensor) -> Tensor:
    """Eq. 3: ``E = ID(Y, D) = Y P D``; ``Y [HW, M+1]``, ``P [M+1, M+1]``, ``D [M+1, C]`` -> ``[HW, C]``."""
    return Y @ P @ D


def att_id(Q: Tensor, K: Tensor, V: Tensor, Y: Tensor, P: Tensor, D: Tensor) -> Tensor:
    """Eq. 4: ``AttID(Q, K, V | Y) = Att(Q, K, V + ID(Y, D))``."""
    return attention(Q, K, V + identification_embedding(Y, P, D))


def identification_decoding(L: Tensor, P: Tensor) -> Tensor:
    """Eq. 5: object probabilities ``[HW, M+1]`` from identity logits ``L [HW, M+1]``."""
    return torch.softmax(L @ P.t(), dim=-1)


# --- 03 LSTT -------------------------------------------------------------------------------


def long_term_attention(X_t: Tensor, X_m: Tensor, E_m: Tensor, W_K: nn.Linear, W_V: nn.Linear,
                        heads: int) -> Tensor:
    """Eq. 6: ``AttID(X_t W^K, X_m W^K, X_m W^V | Y_m)`` over all memory frames, ``[HW, B, C]``.

    The identity embedding enters before ``W_V``, as in the trained (official) models.
    """
    Q = split_heads(W_K(X_t), heads)
    K = split_heads(W_K(X_m), heads)
    V = split_heads(W_V(X_m + E_m), heads)
    return merge_heads(attention(Q, K, V))


def short_term_attention(Q: Tensor, K: Tensor, V: Tensor, relative_logits: Tensor,
                         relative_values: Tensor, heads: int, lam: int = 15) -> Tensor:
    """Eq. 7: each query attends to the ``lam x lam`` window of frame t-1 around it.

    ``Q, K, V [B, C, h, w]``; ``relative_logits [B, heads * lam^2, h, w]``;
    ``relative_values [heads, d, lam^2]`` -> ``[h*w, B, C]``.
    """
    B, C, h, w = Q.shape
    d, R, slots = C // heads, (lam - 1) // 2, lam * lam

    def neighbours(x: Tensor) -> Tensor:  # [B, c, h, w] -> [B, c, slots, h*w]
        x = F.unfold(F.pad(x, (R, R, R, R)), lam)
        return x.view(x.shape[0], -1, slots, h * w)

    inside = neighbours(torch.ones(1, 1, h, w, dtype=Q.dtype, device=Q.device))[0, 0] > 0
    K_win = neighbours(K).view(B, heads, d, slots, h * w)
    V_win = neighbours(V).view(B, heads, d, slots, h * w)
    q = Q.view(B, heads, d, 1, h * w) / math.sqrt(d)
    logits = (q * K_win).sum(2) + relative_logits.view(B, heads, slots, h * w)
    A = torch.softmax(logits.masked_fill(~inside, float("-inf")), dim=2)  # [B, heads, slots, hw]
    values = V_win + relative_values[None, :, :, :, None]
    out = (A[:, :, None] * values).sum(3)  # [B, heads, d, h*w]
    return out.reshape(B, C, h * w).permute(2, 0, 1)


def to_map(x: Tensor, size_2d: tuple[int, int]) -> Tensor:
    """``[HW, B, C]`` -> ``[B, C, h, w]``."""
    return x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], *size_2d)


def to_seq(x: Tensor) -> Tensor:
    """``[B, C, h, w]`` -> ``[HW, B, C]``."""
    return x.flatten(2).permute(2, 0, 1)


class LongTermAttention(nn.Module):
    """Eq. 6's own parameter: the output projection (the block holds W^K and W^V)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.projection = nn.Linear(dim, dim)


class ShortTermAttention(nn.Module):
    """Eq. 7's own parameters: relative-position logits and values, the output projection."""

    def __init__(self, dim: int, heads: int, lam: int) -> None:
        super().__init__()
        self.relative_emb_k = nn.Conv2d(dim, heads * lam * lam, kernel_size=1, groups=heads)
        self.relative_emb_v = nn.Parameter(torch.zeros(heads, dim // heads, lam * lam))
        self.projection = nn.Linear(dim, dim)


class FeedForwardActivation(nn.Module):
    """The feed-forward's hidden activation: GroupNorm, GELU, 5x5 depth-wise convolution."""

    def __init__(self, ffn_dim: int) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(32, ffn_dim)
        self.conv = nn.Conv2d(ffn_dim, ffn_dim, kernel_size=5, padding=2, groups=ffn_dim, bias=False)


class LSTTBlock(nn.Module):
    """Fig. 2c: self-attention, long- and short-term attention, feed-forward; pre-norm."""

    def __init__(self, dim: int = 256, self_heads: int = 8, att_heads: int = 8,
                 ffn_dim: int = 1024, lam: int = 15) -> None:
        super().__init__()
        self.att_heads, self.lam = att_heads, lam
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = MultiheadAttention(dim, self_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.linear_Q = nn.Linear(dim, dim)  # W^K of Eq. 6-7 (query and memory keys)
        self.linear_V = nn.Linear(dim, dim)  # W^V
        self.long_term_attn = LongTermAttention(dim)
        self.short_term_attn = ShortTermAttention(dim, att_heads, lam)
        self.norm3 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn_dim)
        self.activation = FeedForwardActivation(ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, dim)

    def forward(self, X: Tensor, pos: Tensor, size_2d: tuple[int, int], E: Tensor | None = None,
                long_term_memory: tuple[Tensor, Tensor] | None = None,
                short_term_memory: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        Xn = self.norm1(X)
        X = X + self.self_attn(Xn + pos, Xn + pos, Xn)

        Xn = self.norm2(X)
        if E is not None:  # a reference frame is its own memory
            long_term_memory = short_term_memory = (Xn, E)
        X_m, E_m = long_term_memory
        long_term = long_term_attention(Xn, X_m, E_m, self.linear_Q, self.linear_V, self.att_heads)
        X_prev, E_prev = short_term_memory
        Q = to_map(self.linear_Q(Xn), size_2d)
        short_term = short_term_attention(
            Q, to_map(self.linear_Q(X_prev), size_2d), to_map(self.linear_V(X_prev + E_prev), size_2d),
            self.short_term_attn.relative_emb_k(Q), self.short_term_attn.relative_emb_v,
            self.att_heads, self.lam)
        X = X + self.long_term_attn.projection(long_term) + self.short_term_attn.projection(short_term)

        hidden = to_map(self.linear1(self.norm3(X)), size_2d)
        hidden = self.activation.conv(F.gelu(self.activation.gn(hidden)))
        return X + self.linear2(to_seq(hidden)), Xn


# --- 05 training ---------------------------------------------------------------------------


def bootstrapped_cross_entropy(logits: Tensor, labels: Tensor, fraction: float) -> Tensor:
    """Mean of the ``int(fraction * H * W)`` largest pixel losses of each sample, ``[B]``."""
    pixel = F.cross_entropy(logits, labels, ignore_index=255, reduction="none").flatten(1)
    K = max(1, int(fraction * pixel.shape[1]))
    return pixel.topk(K, dim=1).values.mean(1)


def aot_loss(logits: Tensor, labels: Tensor, fraction: float) -> Tensor:
    """``0.5 * bootstrapped CE + 0.5 * soft Jaccard`` per sample, ``[B]``."""
    valid = (labels != 255)[:, None].float()
    p = torch.softmax(logits, dim=1) * valid
    classes = torch.arange(logits.shape[1], device=labels.device)
    g = (labels[:, None] == classes[None, :, None, None]).float() * valid
    intersection = (p * g).sum((2, 3))
    union = intersection + (p * (1 - g)).sum((2, 3)) + ((1 - p) * g).sum((2, 3))
    present = (g.sum((2, 3)) > 0).float()
    jaccard = ((1 - intersection / (union + 1e-6)) * present).sum(1) / present.sum(1)
    return 0.5 * bootstrapped_cross_entropy(logits, labels, fraction) + 0.5 * jaccard
