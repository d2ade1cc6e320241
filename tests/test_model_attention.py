"""Attention (Eq. 2) and the short-term window attention against literal re-derivations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from aot_edu.model.attention import (
    MultiheadAttention,
    ShortTermAttention,
    long_term_attention,
    merge_heads,
    scaled_dot_product_attention,
    short_term_attention,
    short_term_attention_reference,
    split_heads,
)


def test_split_and_merge_heads_are_inverse_and_keep_channel_order():
    x = torch.randn(7, 2, 16)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 7, 4)
    assert torch.equal(heads[1, 2, 3], x[3, 1, 8:12])  # head 2 owns channels 8..11
    assert torch.equal(merge_heads(heads), x)


def test_scaled_dot_product_attention_is_eq2():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g) for _ in range(3))
    k = torch.randn(2, 3, 6, 8, generator=g)
    v = torch.randn(2, 3, 6, 4, generator=g)
    expected_w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(8), dim=-1)
    out, w = scaled_dot_product_attention(q, k, v, need_weights=True)
    fused, none = scaled_dot_product_attention(q, k, v)
    assert none is None
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(out, expected_w @ v)
    torch.testing.assert_close(fused, out, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))


def test_long_term_attention_attends_to_all_memory_tokens():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(4, 1, 16, generator=g)
    mem_k, mem_v = torch.randn(12, 1, 16, generator=g), torch.randn(12, 1, 16, generator=g)
    out, w = long_term_attention(q, mem_k, mem_v, heads=2, need_weights=True)
    assert out.shape == (4, 1, 16) and w.shape == (1, 2, 4, 12)
    # a memory of identical tokens returns that token's value, whatever the query
    same_v = mem_v[:1].expand(12, -1, -1)
    out_same, _ = long_term_attention(q, mem_k, same_v, heads=2)
    torch.testing.assert_close(out_same, mem_v[:1].expand(4, -1, -1))


def literal_short_term(q, k, v, rel_logits, rel_v, heads, max_dis, dilation):
    """The official description, slot by slot: zero-padded neighbours, -1e8 outside the frame."""
    b, c, h, w = q.shape
    d = c // heads
    window = 2 * max_dis + 1
    pad = max_dis * dilation
    qs = (q / math.sqrt(d)).view(b, heads, d, h, w)
    kp = F.pad(k, (pad, pad, pad, pad)).view(b, heads, d, h + 2 * pad, w + 2 * pad)
    vp = F.pad(v, (pad, pad, pad, pad)).view(b, heads, d, h + 2 * pad, w + 2 * pad)
    inside = F.pad(torch.ones(1, 1, h, w), (pad, pad, pad, pad))[0, 0]
    logits, values, masks = [], [], []
    for i in range(window):
        for j in range(window):
            ys, xs = i * dilation, j * dilation
            logits.append((qs * kp[..., ys : ys + h, xs : xs + w]).sum(2))
            values.append(vp[..., ys : ys + h, xs : xs + w])
            masks.append(inside[ys : ys + h, xs : xs + w])
    logit = torch.stack(logits, 2) + rel_logits.view(b, heads, window * window, h, w)
    logit = logit - (1 - torch.stack(masks)) * 1e8
    attn = torch.softmax(logit, dim=2)  # [B, H, S, h, w]
    vals = torch.stack(values, 2) + rel_v[None, :, :, :, None, None].permute(0, 1, 3, 2, 4, 5)
    out = (attn[:, :, :, None] * vals).sum(2)  # [B, H, d, h, w]
    return out.reshape(b, c, h * w).permute(2, 0, 1), attn.flatten(3).transpose(2, 3)


@pytest.mark.parametrize(
    "h, w, max_dis, dilation",
    [(10, 17, 7, 1), (3, 5, 7, 1), (6, 9, 2, 2), (1, 1, 7, 1), (12, 4, 3, 1)],
)
def test_short_term_attention_matches_the_literal_window_formula(h, w, max_dis, dilation):
    g = torch.Generator().manual_seed(h * 100 + w)
    b, heads, d = 2, 2, 4
    window2 = (2 * max_dis + 1) ** 2
    q, k, v = (torch.randn(b, heads * d, h, w, generator=g) for _ in range(3))
    rel_logits = torch.randn(b, heads * window2, h, w, generator=g)
    rel_v = torch.randn(heads, d, window2, generator=g)
    expected_out, expected_w = literal_short_term(q, k, v, rel_logits, rel_v, heads, max_dis, dilation)
    args = (q, k, v, rel_logits, rel_v, heads, max_dis, dilation)
    for chunk in (1, 1 << 20):  # one query row at a time, or all rows at once
        out, weights = short_term_attention(*args, need_weights=True, chunk_elements=chunk)
        torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(weights, expected_w, atol=1e-6, rtol=1e-5)
    out, weights = short_term_attention_reference(*args, need_weights=True)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_w, atol=1e-6, rtol=1e-5)


def test_short_term_weights_are_zero_outside_the_frame_and_sum_to_one():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 8, 4, 6, generator=g) for _ in range(3))
    _, w = short_term_attention(
        q, k, v, torch.zeros(1, 2 * 225, 4, 6), torch.zeros(2, 4, 225), 2, need_weights=True
    )
    torch.testing.assert_close(w.sum(-1), torch.ones(1, 2, 24))
    corner = w[0, 0, 0].view(15, 15)  # query pixel (0, 0): nothing above or left of it
    assert torch.all(corner[:7] == 0) and torch.all(corner[:, :7] == 0)
    assert torch.all(corner[7:11, 7:13] > 0)


def test_short_term_attention_backpropagates_like_the_literal_version():
    torch.manual_seed(0)
    module = ShortTermAttention(dim=16, heads=2, max_dis=2)
    module.relative_emb_v.data.normal_()
    grads = []
    for literal in (False, True):
        module.literal = literal
        module.zero_grad()
        q, k, v = (torch.randn(1, 16, 5, 6, generator=torch.Generator().manual_seed(i)).requires_grad_()
                   for i in range(3))
        out, _ = module(q, k, v)
        (out * torch.arange(out.numel()).view_as(out).sin()).sum().backward()
        grads.append([t.grad for t in (q, k, v)] + [module.relative_emb_v.grad.clone()])
    for fast, literal in zip(*grads, strict=True):
        torch.testing.assert_close(fast, literal, atol=1e-5, rtol=1e-4)


def test_modules_have_the_official_parameter_shapes():
    st = ShortTermAttention()
    assert st.relative_emb_v.shape == (8, 32, 225)
    assert st.relative_emb_k.weight.shape == (1800, 32, 1, 1)
    assert list(MultiheadAttention().state_dict()) == [
        "linear_Q.weight", "linear_Q.bias", "linear_K.weight", "linear_K.bias",
        "linear_V.weight", "linear_V.bias", "projection.weight", "projection.bias",
    ]


def literal_multi_frame(q, frames_k, frames_v, rel_logits, rel_v, heads, max_dis):
    """Table 3c's n > 1 short-term frames, literally: the window slots of every frame side by
    side in one softmax, each frame's slot with the same relative terms (or none)."""
    b, c, h, w = q.shape
    d = c // heads
    window2 = (2 * max_dis + 1) ** 2
    logits, values = [], []
    for k, v in zip(frames_k, frames_v, strict=True):
        pad = max_dis
        qs = (q / math.sqrt(d)).view(b, heads, d, h, w)
        kp = F.pad(k, (pad,) * 4).view(b, heads, d, h + 2 * pad, w + 2 * pad)
        vp = F.pad(v, (pad,) * 4).view(b, heads, d, h + 2 * pad, w + 2 * pad)
        inside = F.pad(torch.ones(1, 1, h, w), (pad,) * 4)[0, 0]
        for i in range(2 * max_dis + 1):
            for j in range(2 * max_dis + 1):
                lg = (qs * kp[..., i:i + h, j:j + w]).sum(2) - (1 - inside[i:i + h, j:j + w]) * 1e8
                logits.append(lg)
                values.append(vp[..., i:i + h, j:j + w])
    logit = torch.stack(logits, 2)  # [B, H, n*S, h, w]
    vals = torch.stack(values, 2)  # [B, H, n*S, d, h, w]
    n = len(frames_k)
    if rel_logits is not None:
        logit = logit + rel_logits.view(b, heads, window2, h, w).repeat(1, 1, n, 1, 1)
    if rel_v is not None:
        vals = vals + rel_v.permute(0, 2, 1).repeat(1, n, 1)[None, :, :, :, None, None]
    attn = torch.softmax(logit, dim=2)
    out = (attn[:, :, :, None] * vals).sum(2)  # [B, H, d, h, w]
    return out.reshape(b, c, h * w).permute(2, 0, 1), attn.flatten(3).transpose(2, 3)


@pytest.mark.parametrize("frames, relative", [(2, True), (3, True), (2, False), (1, False)])
def test_short_term_attention_over_several_frames_and_without_relative_terms(frames, relative):
    """Table 3c (n frames t-1 .. t-n) and 3e (no "Rel"): the fast kernel and the unfold
    reference both equal the literal slot-by-slot formula."""
    g = torch.Generator().manual_seed(frames * 10 + relative)
    b, heads, d, h, w, max_dis = 2, 2, 4, 5, 7, 2
    window2 = (2 * max_dis + 1) ** 2
    q = torch.randn(b, heads * d, h, w, generator=g)
    ks = [torch.randn(b, heads * d, h, w, generator=g) for _ in range(frames)]
    vs = [torch.randn(b, heads * d, h, w, generator=g) for _ in range(frames)]
    rel_logits = torch.randn(b, heads * window2, h, w, generator=g) if relative else None
    rel_v = torch.randn(heads, d, window2, generator=g) if relative else None
    expected_out, expected_w = literal_multi_frame(q, ks, vs, rel_logits, rel_v, heads, max_dis)
    k, v = (torch.stack(ks, 1), torch.stack(vs, 1)) if frames > 1 else (ks[0], vs[0])
    for fn in (short_term_attention, short_term_attention_reference):
        out, weights = fn(q, k, v, rel_logits, rel_v, heads, max_dis, 1, need_weights=True)
        assert weights.shape == (b, heads, h * w, frames * window2)
        torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(weights, expected_w, atol=1e-6, rtol=1e-5)


def test_two_identical_short_term_frames_give_the_one_frame_output():
    """The softmax spreads over both copies of every slot equally: same output, half weights."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 8, 4, 6, generator=g) for _ in range(3))
    rel = torch.randn(1, 2 * 49, 4, 6, generator=g), torch.randn(2, 4, 49, generator=g)
    one, w1 = short_term_attention(q, k, v, *rel, 2, 3, need_weights=True)
    two, w2 = short_term_attention(q, torch.stack([k, k], 1), torch.stack([v, v], 1), *rel, 2, 3,
                                   need_weights=True)
    torch.testing.assert_close(two, one, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w2[..., :49] * 2, w1, atol=1e-6, rtol=1e-5)


def test_short_term_module_without_relative_terms_has_no_such_parameters():
    st = ShortTermAttention(dim=16, heads=2, max_dis=2, relative=False)
    assert sorted(st.state_dict()) == ["projection.bias", "projection.weight"]
    out, _ = st(*(torch.randn(1, 16, 3, 4) for _ in range(3)))
    assert out.shape == (12, 1, 16)
