"""Notebook 01: attention (Eq. 2) and multi-head attention.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from aot_edu.model import attention as att

from .checking import (
    _call,
    _close,
    _diagnose,
    _explain_layout,
    _explain_transpose,
    _fixed,
    _gradients_flow,
    _load_strict,
    _same_shape,
    _seeded_module,
    _tensor,
    _with_grad,
)
from .framework import EXERCISES, Mistake, _exercise

# --- 01 attention ------------------------------------------------------------------------------

@_exercise(
    "attention", "scaled dot-product attention", "Eq. 2", "01_attention",
    "attention(Q: Tensor, K: Tensor, V: Tensor) -> Tensor",
    hints=(
        "Q K^T has one row per query and one column per key: Q @ K.transpose(-2, -1) "
        "(transpose the last two axes only, so leading batch/head axes stay).",
        "Divide the scores by sqrt(C), C = Q.shape[-1], before the softmax.",
        "Each query's weights sum to 1 over the keys: softmax over the last axis (dim=-1).",
        "Then weight the values: A @ V has shape [..., n, C_v].",
    ))
def _check_attention(attention: Callable) -> None:
    key = "attention"
    Q, K, V = _fixed(2, 3, 5, 8, seed=1), _fixed(2, 3, 7, 8, seed=2), _fixed(2, 3, 7, 6, seed=3)
    called = "attention(Q, K, V) with Q [2, 3, 5, 8], K [2, 3, 7, 8], V [2, 3, 7, 6]"
    expected = att.scaled_dot_product_attention(Q, K, V)[0]
    got = _tensor(key, _call(key, attention, Q, K, V, called=called, explain=_explain_transpose),
                  "A V")

    def shape_advice(got_shape: tuple, _: tuple) -> str | None:
        if got_shape[-1] == K.shape[-2]:
            return ("The last axis has one entry per key: that is the weights A - multiply "
                    "them by V.")
        if got_shape[-2] == K.shape[-2]:
            return "One row per key instead of per query: the scores are Q K^T (queries first)."
        return None

    _same_shape(key, got, expected, ("batch", "heads", "n: one row per query",
                                     "C_v: the values' channels"), "A V", shape_advice)
    scores = Q @ K.transpose(-2, -1)
    root_c = math.sqrt(Q.shape[-1])
    _diagnose(key, got, expected, [
        ("the 1/sqrt(C) scaling is missing: softmax(Q K^T / sqrt(C)) - without it the scores "
         "grow with C and the softmax becomes too peaked.",
         lambda: att.scaled_dot_product_attention(Q * root_c, K, V)[0]),
        ("the scores are divided by C; Eq. 2 divides by sqrt(C).",
         lambda: att.scaled_dot_product_attention(Q / root_c, K, V)[0]),
        ("the softmax runs over the wrong axis: each query's weights must sum to 1 over the "
         "keys, the last axis of Q K^T ([..., n, m]): softmax(dim=-1). Yours sum to 1 over the "
         "queries.",
         lambda: torch.softmax(scores / root_c, dim=-2) @ V),
        ("there is no softmax: the weights must be positive and sum to 1 per query, "
         "softmax(Q K^T / sqrt(C), dim=-1).",
         lambda: (scores / root_c) @ V),
    ])
    ones = _call(key, attention, Q, K, torch.ones_like(V), called=called)
    if not _close(ones, torch.ones_like(expected)):
        raise Mistake(f"{EXERCISES[key].name}: with V all ones every output must be 1 (each "
                      f"query's weights sum to 1 over the keys), yours are not: check the "
                      f"softmax's axis (dim=-1).")
    inputs = _with_grad(Q, K, V)
    got = _call(key, attention, *inputs, called=called)
    ref_inputs = _with_grad(Q, K, V)
    _gradients_flow(key, got, att.scaled_dot_product_attention(*ref_inputs)[0],
                    list(zip(("Q", "K", "V"), inputs, strict=True)), ref_inputs)


@_exercise(
    "MultiheadAttention", "multi-head attention", "Eq. 2, multi-head", "01_attention",
    "class MultiheadAttention(nn.Module): __init__(dim, heads); forward(query, key, value) -> Tensor",
    hints=(
        "Four nn.Linear(dim, dim) named linear_Q, linear_K, linear_V and projection - the names "
        "of the trained checkpoints.",
        "Tokens come as [N, B, C]. Project, then cut the channels into heads: "
        "x.view(N, B, heads, d) with d = C // heads; head h owns channels h*d .. h*d + d - 1.",
        "Put the heads next to the batch, [B, heads, N, d] (permute(1, 2, 0, 3)), and use your "
        "attention: it scales by sqrt(d), the channels of one head.",
        "Merge back to [N, B, C] (permute(2, 0, 1, 3).reshape(N, B, C)) and apply projection.",
    ))
def _check_multihead(cls: type) -> None:
    key = "MultiheadAttention"
    dim, heads = 16, 4
    mine = _call(key, cls, dim, heads, called=f"{getattr(cls, '__name__', cls)}(dim=16, heads=4)")
    reference = _seeded_module(lambda: att.MultiheadAttention(dim, heads), seed=11)
    _load_strict(key, mine, reference.state_dict(), "the package's MultiheadAttention")
    mine.eval()
    query, key_, value = _fixed(6, 2, dim, seed=12), _fixed(7, 2, dim, seed=13), _fixed(7, 2, dim, seed=14)
    called = "forward(query, key, value) with query [6, 2, 16], key and value [7, 2, 16]"
    got = _tensor(key, _call(key, mine, query, key_, value, called=called,
                             explain=_explain_layout), "the output")
    expected = reference(query, key_, value)[0]

    def shape_advice(got_shape: tuple, _: tuple) -> str | None:
        if got_shape[:2] == (2, 6):
            return "The batch came first: return the sequence layout [N, B, C], as the input."
        return None

    _same_shape(key, got, expected, ("N: query tokens", "B: batch", "C: channels"), "the output",
                shape_advice)
    r = reference
    d = dim // heads

    def by_heads(q: Tensor, k: Tensor, v: Tensor, n_heads: int) -> Tensor:
        split = [att.split_heads(x, n_heads) for x in (q, k, v)]
        return att.merge_heads(att.scaled_dot_product_attention(*split)[0])

    interleave = torch.arange(dim).view(d, heads).t().flatten()  # head h: channels h, h + heads, ...
    undo = torch.argsort(interleave)
    q, k, v = r.linear_Q(query), r.linear_K(key_), r.linear_V(value)
    _diagnose(key, got, expected, [
        ("the output projection is missing: after merging the heads apply self.projection.",
         lambda: by_heads(q, k, v, heads)),
        (f"each head must be scaled by 1/sqrt(d) with d = C / heads = {d}, the channels of one "
         f"head; yours divides by sqrt(C) = sqrt({dim}).",
         lambda: r.projection(by_heads(q / math.sqrt(heads), k, v, heads))),
        ("this is single-head attention: cut the C channels into `heads` groups of C / heads "
         "and attend in each group separately.",
         lambda: r.projection(by_heads(q, k, v, 1))),
        (f"the heads are cut the wrong way: head h must own channels h*d .. h*d + d - 1 "
         f"(view(N, B, heads, d)); yours takes every {heads}-th channel (view(N, B, d, heads)).",
         lambda: r.projection(by_heads(q[..., interleave], k[..., interleave],
                                       v[..., interleave], heads)[..., undo])),
        ("the position of query and key is swapped: queries come from `query` "
         "(linear_Q), keys from `key` (linear_K).",
         lambda: r.projection(by_heads(r.linear_Q(key_), r.linear_K(query), v, heads))),
    ])
    inputs = _with_grad(query, key_, value)
    got = _call(key, mine, *inputs, called=called)
    ref_inputs = _with_grad(query, key_, value)
    _gradients_flow(key, got, reference(*ref_inputs)[0],
                    list(zip(("query", "key", "value"), inputs, strict=True)), ref_inputs)
