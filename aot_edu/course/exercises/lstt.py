"""Notebook 03: long-term (Eq. 6) and short-term attention (Eq. 7), an LSTT block (Fig. 2c), and
the learner's block plugged into a trained model (:func:`plug_in`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from aot_edu.model import attention as att
from aot_edu.model.lstt import BlockMemory, LSTTBlock, map_to_seq, seq_to_map

from .checking import (
    _call,
    _close,
    _diagnose,
    _fixed,
    _gradients_flow,
    _load_strict,
    _same_shape,
    _seeded_module,
    _shape,
    _tensor,
    _with_grad,
)
from .framework import EXERCISES, Mistake, _exercise

# --- 03 LSTT -----------------------------------------------------------------------------------

def _linear(dim: int, seed: int) -> nn.Linear:
    return _seeded_module(lambda: nn.Linear(dim, dim), seed)


@_exercise(
    "long_term_attention", "long-term attention AttLT", "Eq. 6", "03_lstt",
    "long_term_attention(X_t, X_m, E_m, W_K: nn.Linear, W_V: nn.Linear, heads: int) -> Tensor",
    hints=(
        "Eq. 6: AttLT = AttID(X_t W^K, X_m W^K, X_m W^V | Y_m). The query and the memory share "
        "one projection W^K: a token finds memory tokens that look alike through the same "
        "lens.",
        "The identities ride on the values. As in the official code (and the trained weights), "
        "they are added before the value projection: V = W_V(X_m + E_m).",
        "X_m holds all T memory frames one after another ([T*HW, B, C]); every query sees all "
        "of them.",
        "Multi-head, without projections of its own: split Q, K, V into heads as in your "
        "MultiheadAttention ([N, B, C] -> [B, heads, N, d]), attention, merge back to [HW, B, C].",
    ))
def _check_long_term(long_term_attention: Callable) -> None:
    key = "long_term_attention"
    dim, heads, hw = 16, 4, 6
    X_t, X_m, E_m = _fixed(hw, 2, dim, seed=51), _fixed(2 * hw, 2, dim, seed=52), _fixed(2 * hw, 2, dim, seed=53)
    W_K, W_V = _linear(dim, 54), _linear(dim, 55)
    called = ("long_term_attention(X_t, X_m, E_m, W_K, W_V, heads=4) with X_t [6, 2, 16] and two "
              "memory frames X_m, E_m [12, 2, 16]")
    got = _tensor(key, _call(key, long_term_attention, X_t, X_m, E_m, W_K, W_V, heads,
                             called=called), "the output")

    def lt(q: Tensor, k: Tensor, v: Tensor, n_heads: int = heads) -> Tensor:
        return att.long_term_attention(q, k, v, n_heads)[0]

    expected = lt(W_K(X_t), W_K(X_m), W_V(X_m + E_m))
    _same_shape(key, got, expected, ("HW: the query frame's tokens", "B: batch", "C: channels"),
                "the output",
                lambda g, e: "One row per memory token: the queries come from X_t."
                if g[0] == X_m.shape[0] else None)
    Q = W_K(X_t)
    _diagnose(key, got, expected, [
        ("the identities are added after the value projection. The trained model adds them "
         "before: V = W_V(X_m + E_m) (the paper writes X_m W^V + ID; the official code, whose "
         "weights we load, projects the sum).",
         lambda: lt(Q, W_K(X_m), W_V(X_m) + E_m)),
        ("the values carry no identities: V = W_V(X_m + E_m) - without E_m nothing tells which "
         "object a memory token belongs to.",
         lambda: lt(Q, W_K(X_m), W_V(X_m))),
        ("the identities went into the keys too: only the values carry them.",
         lambda: lt(Q, W_K(X_m + E_m), W_V(X_m + E_m))),
        ("the memory's keys must be projected by the same W^K as the query: X_m W^K.",
         lambda: lt(Q, X_m, W_V(X_m + E_m))),
        ("the memory's keys must be projected by W^K (shared with the query), not W^V.",
         lambda: lt(Q, W_V(X_m), W_V(X_m + E_m))),
        ("the query must be projected too: X_t W^K.",
         lambda: lt(X_t, W_K(X_m), W_V(X_m + E_m))),
        ("this is single-head attention: split the channels into `heads` heads.",
         lambda: lt(Q, W_K(X_m), W_V(X_m + E_m), 1)),
        (f"each head must be scaled by 1/sqrt(d), d = C / heads = {dim // heads}; yours divides "
         f"by sqrt(C).",
         lambda: lt(Q / math.sqrt(heads), W_K(X_m), W_V(X_m + E_m))),
        ("only the first memory frame is attended: every query sees all T memory frames "
         "(X_m is [T*HW, B, C]).",
         lambda: lt(Q, W_K(X_m[:hw]), W_V(X_m[:hw] + E_m[:hw]))),
        ("only the last memory frame is attended: every query sees all T memory frames.",
         lambda: lt(Q, W_K(X_m[hw:]), W_V(X_m[hw:] + E_m[hw:]))),
    ])
    inputs = _with_grad(X_t, X_m, E_m)
    got = _call(key, long_term_attention, *inputs, W_K, W_V, heads, called=called)
    ref = _with_grad(X_t, X_m, E_m)
    _gradients_flow(key, got, lt(W_K(ref[0]), W_K(ref[1]), W_V(ref[1] + ref[2])),
                    list(zip(("X_t", "X_m", "E_m"), inputs, strict=True)), ref)


def _short_term(q: Tensor, k: Tensor, v: Tensor, rel_k: Tensor, rel_v: Tensor, heads: int,
                lam: int) -> Tensor:
    return att.short_term_attention(q, k, v, rel_k, rel_v, heads, (lam - 1) // 2)[0]


def _window_of(support: Tensor, w: int) -> str:
    tokens = support.nonzero().flatten().tolist()
    if not tokens:
        return "no token at all"
    rows = sorted({t // w for t in tokens})
    cols = sorted({t % w for t in tokens})
    return f"rows {rows[0]}..{rows[-1]} and columns {cols[0]}..{cols[-1]} ({len(tokens)} tokens)"


@_exercise(
    "short_term_attention", "short-term attention AttST", "Eq. 7", "03_lstt",
    "short_term_attention(Q, K, V, relative_logits, relative_values, heads: int, lam: int = 15) "
    "-> Tensor",
    hints=(
        "Query (y, x) attends to the lam x lam window of frame t-1 centred on (y, x): rows "
        "y-R..y+R and columns x-R..x+R, R = (lam - 1) // 2.",
        "F.unfold(F.pad(K, (R, R, R, R)), lam) gives every pixel its lam*lam neighbours: "
        "[B, C*lam*lam, h*w]; view it as [B, heads, d, lam*lam, h*w].",
        "Slots outside the frame are padding, not tokens: give them a logit of -inf (unfold a "
        "map of ones the same way to know which slots are inside).",
        "Slot s = (dy + R) * lam + (dx + R). Its logit for head hd is q.k / sqrt(d) plus "
        "relative_logits[:, hd * lam*lam + s] at the query's position; its value is "
        "V(neighbour) + relative_values[hd, :, s].",
        "Softmax over the slots, weight the values, and return the sequence layout "
        "[h*w, B, C] (token y * w + x).",
    ))
def _check_short_term(short_term_attention: Callable) -> None:
    key = "short_term_attention"
    name = EXERCISES[key].name

    def run(q, k, v, rel_k, rel_v, heads, lam, *, grad: bool = False):
        b, c, h, w = q.shape
        called = (f"short_term_attention(Q, K, V, relative_logits, relative_values, heads={heads}, "
                  f"lam={lam}) with Q, K, V [{b}, {c}, {h}, {w}], relative_logits "
                  f"{_shape(rel_k)}, relative_values {_shape(rel_v)}")
        out = _tensor(key, _call(key, short_term_attention, q, k, v, rel_k, rel_v, heads, lam,
                                 called=called), "the output")
        expected = _short_term(q, k, v, rel_k, rel_v, heads, lam)

        def shape_advice(g: tuple, e: tuple) -> str | None:
            if g == (b, c, h, w):
                return ("That is the map layout: return the sequence layout [h*w, B, C] "
                        "(token y * w + x), e.g. out.flatten(2).permute(2, 0, 1).")
            if len(g) == 3 and g[0] == h * w and g[1] == b and g[2] != c:
                return "One entry per window slot on the last axis: weight the values."
            return None

        _same_shape(key, out, expected, ("h*w: tokens y * w + x", "B: batch", "C: channels"),
                    "the output", shape_advice)
        return out, expected

    # 1. Which tokens does each query see? Q = K = 0 gives uniform weights over the window, and
    # values that are one-hot codes of their own position reveal it.
    h, w, lam, R = 5, 6, 3, 1
    zeros = torch.zeros(1, h * w, h, w)
    codes = torch.eye(h * w).view(1, h * w, h, w)
    out, expected = run(zeros, zeros, codes, torch.zeros(1, lam * lam, h, w),
                        torch.zeros(1, h * w, lam * lam), 1, lam)
    weights = out[:, 0]  # [query token, key token]
    wanted = expected[:, 0]
    if not _close(weights, wanted, atol=1e-5):
        sums = weights.sum(-1)
        for y, x in [(2, 3), (0, 0), (h - 1, w - 1), (0, 3)] + [(t // w, t % w) for t in range(h * w)]:
            p = y * w + x
            mine_support, true_support = weights[p] > 1e-6, wanted[p] > 1e-6
            if torch.equal(mine_support, true_support):
                continue
            yours, right = _window_of(mine_support, w), _window_of(true_support, w)
            if bool(mine_support.all()):
                raise Mistake(f"{name}: query ({y}, {x}) attends to every token of frame t-1 - that "
                              f"is long-term attention. Eq. 7 restricts it to the lam x lam window "
                              f"around (y, x): with lam = {lam}, {right}.")
            raise Mistake(f"{name}: the window is off. With lam = {lam}, query ({y}, {x}) must see "
                          f"{right} of frame t-1 (y-R..y+R, x-R..x+R with R = (lam-1)/2 = {R}); "
                          f"yours sees {yours}. A window off by one?")
        p = int((sums - 1).abs().argmax())
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            inside = int((wanted[p] > 0).sum())
            if bool((sums <= 1 + 1e-5).all()):
                raise Mistake(
                    f"{name}: near the border query ({p // w}, {p % w}) gives only "
                    f"{sums[p]:.3f} of its weight to the frame's tokens: the zero-padded slots "
                    f"outside the frame took part in the softmax. Give them a logit of -inf, so "
                    f"the {inside} slots inside share all the weight.")
            raise Mistake(f"{name}: query ({p // w}, {p % w})'s weights sum to {sums[p]:.3f}, not "
                          f"1: the softmax must run over the window's slots.")
        raise Mistake(f"{name}: with equal logits every slot inside the frame must get the same "
                      f"weight; yours do not.")

    # 2. Eq. 7 itself, several heads, no relative positions; then a window larger than the frame.
    def plain(b: int, c: int, h: int, w: int, heads: int, lam: int, seed: int) -> None:
        q, k, v = (_fixed(b, c, h, w, seed=seed + i) for i in range(3))
        rel_k, rel_v = torch.zeros(b, heads * lam * lam, h, w), torch.zeros(heads, c // heads, lam * lam)
        out, expected = run(q, k, v, rel_k, rel_v, heads, lam)
        _diagnose(key, out, expected, [
            ("the 1/sqrt(d) scaling is missing (d = C / heads, the channels of one head).",
             lambda: _short_term(q * math.sqrt(c // heads), k, v, rel_k, rel_v, heads, lam)),
            ("each head must be scaled by 1/sqrt(d), d = C / heads; yours divides by sqrt(C).",
             lambda: _short_term(q / math.sqrt(heads), k, v, rel_k, rel_v, heads, lam)),
            ("this is single-head attention: split the C channels into `heads` heads "
             "(view(B, heads, d, ...)).",
             lambda: _short_term(q, k, v, torch.zeros(b, lam * lam, h, w),
                                 torch.zeros(1, c, lam * lam), 1, lam)),
        ])

    plain(2, 8, 5, 6, heads=2, lam=3, seed=61)
    plain(1, 8, 4, 5, heads=2, lam=15, seed=64)  # the window is larger than the frame

    # 3. Relative positions: first the logits, then the values.
    b, c, h, w, heads, lam = 2, 8, 5, 6, 2, 3
    q, k, v = (_fixed(b, c, h, w, seed=70 + i) for i in range(3))
    rel_k = _fixed(b, heads * lam * lam, h, w, seed=74)
    no_rel_v = torch.zeros(heads, c // heads, lam * lam)
    slots = torch.arange(lam * lam).view(lam, lam)
    transposed = torch.cat([slots.t().flatten() + hd * lam * lam for hd in range(heads)])
    slot_major = torch.arange(heads * lam * lam).view(heads, lam * lam).t().flatten()
    out, expected = run(q, k, v, rel_k, no_rel_v, heads, lam)
    _diagnose(key, out, expected, [
        ("relative_logits are ignored: add relative_logits[:, hd * lam*lam + s] at the query's "
         "position to the logit of slot s (head hd) before the softmax.",
         lambda: _short_term(q, k, v, torch.zeros_like(rel_k), no_rel_v, heads, lam)),
        ("the relative logits must be added after the scaling: q.k / sqrt(d) + r, not "
         "(q.k + r) / sqrt(d).",
         lambda: _short_term(q, k, v, rel_k / math.sqrt(c // heads), no_rel_v, heads, lam)),
        ("the slots of relative_logits are read in the wrong order: slot s = (dy + R) * lam + "
         "(dx + R) - the row offset dy first.",
         lambda: _short_term(q, k, v, rel_k[:, transposed], no_rel_v, heads, lam)),
        ("relative_logits are grouped by head: head hd's slots are channels hd*lam*lam .. "
         "hd*lam*lam + lam*lam - 1.",
         lambda: _short_term(q, k, v, rel_k[:, slot_major], no_rel_v, heads, lam)),
    ], what="the values with relative position logits")
    rel_v = _fixed(heads, c // heads, lam * lam, seed=75)
    out, expected = run(q, k, v, rel_k, rel_v, heads, lam)
    _diagnose(key, out, expected, [
        ("relative_values are ignored: slot s's value is V(neighbour) + relative_values[hd, :, s].",
         lambda: _short_term(q, k, v, rel_k, no_rel_v, heads, lam)),
        ("the slots of relative_values are read in the wrong order: slot s = (dy + R) * lam + "
         "(dx + R).",
         lambda: _short_term(q, k, v, rel_k, rel_v[..., slots.t().flatten()], heads, lam)),
    ], what="the values with relative position values")
    inputs = _with_grad(q, k, v, rel_k, rel_v)
    got = _call(key, short_term_attention, *inputs, heads, lam, called="short_term_attention(...)")
    ref = _with_grad(q, k, v, rel_k, rel_v)
    _gradients_flow(key, got, _short_term(*ref, heads, lam),
                    list(zip(("Q", "K", "V", "relative_logits", "relative_values"), inputs,
                             strict=True)), ref)


# The sub-layers of an LSTT block in data-flow order, and what their input must be.
_BLOCK_STEPS: tuple[tuple[str, str], ...] = (
    ("norm1", "norm1 must get the block's input X: the block is pre-norm, its first step is "
              "norm1(X)."),
    ("self_attn.linear_Q", "self-attention: the queries are norm1(X) + pos (the position "
                           "embedding tells each token where it is)."),
    ("self_attn.linear_K", "self-attention: the keys are norm1(X) + pos, like the queries."),
    ("self_attn.linear_V", "self-attention: the values are norm1(X), without the position "
                           "embedding."),
    ("self_attn.projection", "the self-attention's merged heads go into self_attn.projection: "
                             "check your MultiheadAttention."),
    ("norm2", "norm2 must get X + SelfAtt(...): the residual connection around the "
              "self-attention."),
    ("linear_Q", "linear_Q (W^K, shared by query and memory) must project norm2 of the tokens "
                 "- the query frame's and each memory frame's."),
    ("linear_V", "linear_V (W^V) must project a memory frame's tokens plus its identity "
                 "embedding: W_V(X_m + E_m)."),
    ("short_term_attn.relative_emb_k", "the relative-position logits are computed from the "
                                       "query as a map: relative_emb_k(Q as [B, C, h, w])."),
    ("long_term_attn.projection", "the long-term attention (Eq. 6) goes into "
                                  "long_term_attn.projection: AttLT of Xn = norm2(X) over the "
                                  "memory, with linear_Q and linear_V, in att_heads heads."),
    ("short_term_attn.projection", "the short-term attention (Eq. 7) goes into "
                                   "short_term_attn.projection: over frame t-1's lam x lam "
                                   "window, with the relative-position logits and values."),
    ("norm3", "norm3 must get X + LongTerm + ShortTerm, each after its projection (one "
              "residual connection for both)."),
    ("linear1", "the feed-forward starts with linear1(norm3(...))."),
    ("activation.gn", "the hidden activation works on maps: GroupNorm of linear1's output as "
                      "[B, ffn_dim, h, w]."),
    ("activation.conv", "the depth-wise conv gets GELU(GroupNorm(...))."),
    ("linear2", "linear2 gets the conv's output back in sequence layout [HW, B, ffn_dim]."),
)


def _record_inputs(module: nn.Module, names: Sequence[str]) -> tuple[dict[str, list[Tensor]], list]:
    inputs: dict[str, list[Tensor]] = {name: [] for name in names}
    modules = dict(module.named_modules())
    handles = []
    for name in names:
        if name in modules:
            handles.append(modules[name].register_forward_pre_hook(
                lambda _m, args, name=name: inputs[name].append(args[0].detach().clone())))
    return inputs, handles


def _first_wrong_step(mine: dict[str, list[Tensor]],
                      expected: dict[str, list[tuple[Tensor, str | None]]], atol: float) -> str | None:
    """The first sub-layer (data-flow order) that never got an input it should have got.

    ``expected[name]``: the inputs the package gave that sub-layer, each with a message of its
    own or ``None`` (the sub-layer's message in :data:`_BLOCK_STEPS`).
    """
    for name, message in _BLOCK_STEPS:
        for wanted, own_message in expected.get(name, []):
            if not mine.get(name):
                return f"{name} is never called: {own_message or message}"
            if not any(_close(got, wanted, atol, 1e-3) for got in mine[name]):
                return f"{own_message or message}\n  ({name} was called with other inputs.)"
    return None


@_exercise(
    "LSTTBlock", "an LSTT block", "Fig. 2c", "03_lstt",
    "class LSTTBlock(nn.Module): forward(X, pos, size_2d, E=None, long_term_memory=None, "
    "short_term_memory=None) -> (X_out, X_memory)",
    hints=(
        "Three sub-layers, each pre-norm with a residual: X = X + SelfAtt(norm1(X)); then "
        "X = X + LongTerm + ShortTerm from norm2(X); then X = X + FeedForward(norm3(X)).",
        "Self-attention: queries and keys norm1(X) + pos, values norm1(X) - your "
        "MultiheadAttention.",
        "With Xn = norm2(X): a reference frame (E given) is its own memory, "
        "long_term_memory = short_term_memory = (Xn, E). Return Xn as the second output: it is "
        "what this frame leaves to the memory.",
        "Long-term: long_term_attn.projection(long_term_attention(Xn, X_m, E_m, linear_Q, linear_V, "
        "heads)). Short-term: queries Q = linear_Q(Xn), keys linear_Q(X_{t-1}), values "
        "linear_V(X_{t-1} + E_{t-1}), all as maps [B, C, h, w]; relative_logits = "
        "short_term_attn.relative_emb_k(Q map), relative_values = short_term_attn.relative_emb_v; "
        "then short_term_attn.projection.",
        "Feed-forward: linear1, then as a map [B, ffn_dim, h, w]: GELU(activation.gn(.)), "
        "activation.conv, back to [HW, B, ffn_dim], linear2.",
    ))
def _check_block(cls: type) -> None:
    key = "LSTTBlock"
    name = EXERCISES[key].name
    dim, heads, ffn, lam, (h, w), batch = 32, 4, 64, 5, (3, 4), 2
    made = f"{getattr(cls, '__name__', cls)}(dim=32, self_heads=4, att_heads=4, ffn_dim=64, lam=5)"
    mine = _call(key, cls, dim, heads, heads, ffn, lam, called=made)
    reference = _seeded_module(lambda: LSTTBlock(dim, heads, heads, ffn, (lam - 1) // 2), seed=81,
                               spread=0.2)
    _load_strict(key, mine, reference.state_dict(), "the package's LSTTBlock")
    mine.eval()
    hw = h * w
    X, pos, E = (_fixed(hw, batch, dim, seed=82 + i) for i in range(3))
    X_m, E_m = _fixed(2 * hw, batch, dim, seed=85), _fixed(2 * hw, batch, dim, seed=86)
    X_prev, E_prev = _fixed(hw, batch, dim, seed=87), _fixed(hw, batch, dim, seed=88)
    names = [n for n, _ in _BLOCK_STEPS]

    def package(reference_frame: bool):
        """The package block's output, memory tokens, and the inputs of its sub-layers."""
        if not reference_frame:
            long_mem = (reference.linear_Q(X_m), reference.memory_value(X_m, E_m))
            short_mem = (seq_to_map(reference.linear_Q(X_prev), (h, w)),
                         seq_to_map(reference.memory_value(X_prev, E_prev), (h, w)))
        inputs, handles = _record_inputs(reference, names)
        try:
            if reference_frame:
                out, memory, _ = reference(X, pos, (h, w), id_emb=E)
            else:
                out, memory, _ = reference(X, pos, (h, w), long_term_memory=long_mem,
                                           short_term_memory=short_mem)
        finally:
            for handle in handles:
                handle.remove()
        expected = {name: [(t, None) for t in ts] for name, ts in inputs.items()}
        if reference_frame:
            expected["linear_V"] = [(t, "a reference frame is its own memory: its values are "
                                        "linear_V(Xn + E), Xn = norm2(X) and E its identity "
                                        "embedding.") for t in inputs["linear_V"]]
        else:
            expected["linear_Q"] += [
                (X_m, "the long-term memory's keys are linear_Q(X_m): the same projection W^K as "
                      "the query (Eq. 6)."),
                (X_prev, "short-term attention's keys are linear_Q(X_{t-1}): frame t-1's tokens "
                         "(short_term_memory), not the long-term memory's (Eq. 7).")]
            expected["linear_V"] = [
                (X_m + E_m, "the long-term memory's values are linear_V(X_m + E_m): the memory "
                            "frames' tokens plus their own identity embedding."),
                (X_prev + E_prev, "short-term attention's values are linear_V(X_{t-1} + E_{t-1}): "
                                  "frame t-1's tokens plus frame t-1's identity embedding "
                                  "(short_term_memory), not the long-term memory's.")]
        return out, memory.value, expected

    for reference_frame in (True, False):
        case = ("a reference frame (E given: it is its own memory)" if reference_frame else
                "a frame propagated from two long-term memory frames and frame t-1")
        kwargs = dict(E=E) if reference_frame else dict(long_term_memory=(X_m, E_m),
                                                         short_term_memory=(X_prev, E_prev))
        called = (f"forward(X, pos, (3, 4), {', '.join(f'{k}=...' for k in kwargs)}) for {case}, "
                  f"X [12, 2, 32]")
        inputs, handles = _record_inputs(mine, names)
        try:
            result = _call(key, mine, X, pos, (h, w), **kwargs, called=called)
        finally:
            for handle in handles:
                handle.remove()
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise Mistake(f"{name}: forward must return two tensors, (X_out, X_memory): the "
                          f"refined tokens and norm2 of the tokens after self-attention (what "
                          f"this frame leaves to the memory); yours returned "
                          f"{type(result).__name__}.")
        out, memory = (_tensor(key, r, what) for r, what in zip(result, ("X_out", "X_memory"),
                                                                   strict=True))
        expected, expected_memory, expected_inputs = package(reference_frame)
        axes = ("HW: tokens", "B: batch", "C: channels")
        _same_shape(key, out, expected, axes, "X_out")
        _same_shape(key, memory, expected_memory, axes, "X_memory")
        if not _close(out, expected, 1e-4, 1e-3):
            where = _first_wrong_step(inputs, expected_inputs, 1e-4)
            if where is None:
                where = ("every sub-layer got the right input, so the last step differs: "
                         "X_out = X + linear2(...) (the residual around the feed-forward).")
            raise Mistake(f"{name}: X_out is wrong for {case}.\n  First difference: {where}")
        if not _close(memory, expected_memory, 1e-4, 1e-3):
            raise Mistake(f"{name}: X_memory is wrong for {case}: it is norm2 of the tokens after "
                          f"the self-attention (X + SelfAtt), the Xn whose keys and values the "
                          f"memory holds.")
    my_X, ref_X = _with_grad(X, X)
    out = _call(key, mine, my_X, pos, (h, w), E=E, called="forward(X, pos, (3, 4), E=E)")[0]
    _gradients_flow(key, out, reference(ref_X, pos, (h, w), id_emb=E)[0], [("X", my_X)], [ref_X])
    out = _call(key, mine, X, pos, (h, w), E=E, called="forward(X, pos, (3, 4), E=E)")[0]
    parameters = list(mine.named_parameters())
    grads = torch.autograd.grad(out.sum(), [p for _, p in parameters], allow_unused=True)
    unused = [n for (n, _), g in zip(parameters, grads, strict=True) if g is None]
    if unused:
        raise Mistake(f"{name}: these parameters get no gradient, so your block does not use "
                      f"them: {', '.join(unused)}")


# --- your block in a trained model ---------------------------------------------------------------

class LearnerBlock(nn.Module):
    """A learner's LSTT block behind the interface :class:`aot_edu.model.lstt.LSTT` and the engine use.

    The learner's block keeps each memory frame as its normalised tokens and identity embedding
    ``(X_m, E_m)`` and projects them itself (Eq. 6-7 as written); the package stores projected
    keys and values. So here a frame's memory "key" is ``norm2`` of its tokens and its
    "value" is its identity embedding, and the engine, which only concatenates and reshapes
    memories, keeps them unchanged.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def memory_value(self, value: Tensor, id_emb: Tensor) -> Tensor:
        return id_emb

    def forward(self, x: Tensor, pos: Tensor, size_2d: tuple[int, int], id_emb: Tensor | None = None,
                long_term_memory: tuple[Tensor, Tensor] | None = None,
                short_term_memory: tuple[Tensor, Tensor] | None = None,
                need_weights: bool = False) -> tuple[Tensor, BlockMemory, None]:
        if need_weights:
            raise ValueError("a learner's block does not return attention maps")
        short = None if short_term_memory is None else tuple(map_to_seq(m) for m in short_term_memory)
        out, memory = self.block(x, pos, size_2d, id_emb, long_term_memory, short)
        return out, BlockMemory(key=memory, value=memory), None


def plug_in(model: nn.Module, block_class: type) -> nn.Module:
    """A copy of ``model`` whose LSTT blocks are ``block_class`` loaded with its trained weights.

    Each block is built as ``block_class(dim, self_heads, att_heads, ffn_dim, lam)`` and loaded
    with ``load_state_dict(strict=True)``: the learner's parameter names must be the trained
    model's. ``model`` is left as it was.
    """
    config = model.config
    if config.dilation != 1:
        raise ValueError("the exercise's short-term attention has no dilation")
    plugged = copy.deepcopy(model)
    for i, layer in enumerate(model.LSTT.layers):
        block = block_class(config.dim, config.self_heads, config.att_heads, config.ffn_dim,
                            2 * config.max_dis + 1)
        try:
            block.load_state_dict(layer.state_dict(), strict=True)
        except RuntimeError as error:
            raise ValueError(f"block {i} of {config.title} does not load into your "
                             f"{block_class.__name__}: {error}") from None
        block.to(next(layer.parameters()).device)
        plugged.LSTT.layers[i] = LearnerBlock(block.eval())
    return plugged.eval()
