"""The "your turn" exercises: every check accepts the course's solution and rejects the typical
wrong answers with the message a learner needs; the solutions switch; a learner's LSTT block in
a trained model; the notebooks ship stubs, not solutions."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aot_edu
from aot_edu.course import exercises
from aot_edu.course.exercises import Mistake, NotWritten

S = exercises.load_solutions()
ROOT = Path(__file__).resolve().parent.parent


def rejects(key: str, answer, *expected: str) -> str:
    """``answer`` fails exercise ``key`` with a message containing every ``expected`` text."""
    with pytest.raises(Mistake) as caught:
        exercises.check(key, answer)
    message = str(caught.value)
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    return message


def test_solutions_file_exists_and_covers_every_exercise():
    assert S is not None, f"{exercises.SOLUTIONS_FILE} is missing"
    assert len(exercises.EXERCISES) >= 8
    for key in exercises.EXERCISES:
        assert hasattr(S, key), f"notebooks/solutions.py has no {key}"


@pytest.mark.parametrize("key", list(exercises.EXERCISES))
def test_check_accepts_the_solution(key, capsys):
    assert exercises.check(key, getattr(S, key)) is getattr(S, key)
    assert "correct" in capsys.readouterr().out


# --- 01: attention ----------------------------------------------------------------------------

def softmax_scores(Q, K, scale, dim=-1):
    return torch.softmax(Q @ K.transpose(-2, -1) / scale, dim=dim)


def test_attention_mistakes():
    rejects("attention", lambda Q, K, V: softmax_scores(Q, K, 1.0) @ V, "1/sqrt(C)", "missing")
    rejects("attention", lambda Q, K, V: softmax_scores(Q, K, Q.shape[-1]) @ V, "divided by C")
    rejects("attention", lambda Q, K, V: softmax_scores(Q, K, math.sqrt(Q.shape[-1]), dim=-2) @ V,
            "wrong axis", "dim=-1")
    rejects("attention", lambda Q, K, V: softmax_scores(Q, K, math.sqrt(Q.shape[-1])),
            "Axis 3 (C_v", "the weights A - multiply them by V")
    rejects("attention", lambda Q, K, V: (Q @ K.transpose(-2, -1) / math.sqrt(Q.shape[-1])) @ V,
            "no softmax")
    rejects("attention", lambda Q, K, V: softmax_scores(Q, K, math.sqrt(Q.shape[-1])) @ V.detach()
            if not V.requires_grad else (softmax_scores(Q, K, math.sqrt(Q.shape[-1])) @ V).detach(),
            "carry no gradient")
    rejects("attention", lambda Q, K, V: torch.softmax(Q @ K / math.sqrt(8), -1) @ V, "raised",
            "last two axes swapped")
    rejects("attention", lambda Q, K, V: (S.attention(Q, K, V), None), "a tuple of 2")


class NoProjection(S.MultiheadAttention):
    def forward(self, query, key, value):
        Q, K, V = (S.split_heads(f(x), self.heads)
                   for f, x in ((self.linear_Q, query), (self.linear_K, key), (self.linear_V, value)))
        return S.merge_heads(S.attention(Q, K, V))


class ScaledByC(S.MultiheadAttention):
    def forward(self, query, key, value):
        C = query.shape[-1]
        Q, K, V = (S.split_heads(f(x), self.heads)
                   for f, x in ((self.linear_Q, query), (self.linear_K, key), (self.linear_V, value)))
        A = torch.softmax(Q @ K.transpose(-2, -1) / math.sqrt(C), -1)
        return self.projection(S.merge_heads(A @ V))


class OneHead(S.MultiheadAttention):
    def forward(self, query, key, value):
        Q, K, V = (f(x).permute(1, 0, 2)[:, None]
                   for f, x in ((self.linear_Q, query), (self.linear_K, key), (self.linear_V, value)))
        return self.projection(S.merge_heads(S.attention(Q, K, V)))


class Interleaved(S.MultiheadAttention):
    def forward(self, query, key, value):
        def split(x):  # head h takes channels h, h + heads, ... : view(N, B, d, heads)
            N, B, C = x.shape
            return x.view(N, B, C // self.heads, self.heads).permute(1, 3, 0, 2)

        out = S.attention(split(self.linear_Q(query)), split(self.linear_K(key)),
                          split(self.linear_V(value)))  # [B, heads, N, d]
        N, B = out.shape[2], out.shape[0]
        return self.projection(out.permute(2, 0, 3, 1).reshape(N, B, -1))


class BatchFirst(S.MultiheadAttention):
    def forward(self, query, key, value):
        def split(x):  # reads [N, B, C] as if it were [B, N, C]
            B, N, C = x.shape
            return x.view(B, N, self.heads, C // self.heads).transpose(1, 2)

        out = S.attention(split(self.linear_Q(query)), split(self.linear_K(key)),
                          split(self.linear_V(value)))
        return self.projection(out.transpose(1, 2).flatten(2))


class OtherNames(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)


def test_multihead_mistakes():
    rejects("MultiheadAttention", NoProjection, "output projection is missing")
    rejects("MultiheadAttention", ScaledByC, "1/sqrt(d)", "sqrt(C) = sqrt(16)")
    rejects("MultiheadAttention", OneHead, "single-head")
    rejects("MultiheadAttention", Interleaved, "heads are cut the wrong way")
    rejects("MultiheadAttention", BatchFirst, "raised", "tokens first, batch second")
    rejects("MultiheadAttention", OtherNames, "Missing in yours: linear_Q.weight",
            "Not in the trained model: in_proj.weight")


# --- 02: identity -------------------------------------------------------------------------------

def test_random_assignment_mistakes():
    def shuffled_background(batch, M, generator=None):
        return torch.stack([torch.randperm(M + 1, generator=generator) for _ in range(batch)])

    def with_replacement(batch, M, generator=None):
        objects = torch.randint(1, M + 1, (batch, M), generator=generator)
        return torch.cat([torch.zeros(batch, 1, dtype=torch.long), objects], 1)

    def same_for_all(batch, M, generator=None):
        return S.random_identity_assignment(1, M, generator).expand(batch, M + 1)

    def ignores_generator(batch, M, generator=None):
        return S.random_identity_assignment(batch, M)

    def no_background(batch, M, generator=None):
        return S.random_identity_assignment(batch, M, generator)[:, 1:]

    rejects("random_identity_assignment", shuffled_background, "background", "keep identity 0")
    rejects("random_identity_assignment", with_replacement, "never share an identity", "torch.randperm")
    rejects("random_identity_assignment", same_for_all, "every sample got the same assignment")
    rejects("random_identity_assignment", ignores_generator, "pass generator=generator")
    rejects("random_identity_assignment", lambda b, M, g=None: S.random_identity_assignment(b, M, g).float(),
            "integers")
    rejects("random_identity_assignment", no_background, "leave out the background")


def test_identification_embedding_mistakes():
    rejects("identification_embedding", lambda Y, P, D: Y @ D, "do not wear their assigned")
    rejects("identification_embedding", lambda Y, P, D: Y @ P.t() @ D, "you used P^T")
    rejects("identification_embedding", lambda Y, P, D: Y @ D @ P, "raised")
    rejects("identification_embedding", lambda Y, P, D: (Y @ P @ D).t(), "Axis 0 (HW")


def test_att_id_mistakes():
    E = S.identification_embedding
    rejects("att_id", lambda Q, K, V, Y, P, D: S.attention(Q, K + E(Y, P, D), V), "into the keys")
    rejects("att_id", lambda Q, K, V, Y, P, D: S.attention(Q, K, V + Y @ D),
            "not the assigned ones", "same P")
    rejects("att_id", lambda Q, K, V, Y, P, D: S.attention(Q, K, E(Y, P, D)), "V is missing")
    rejects("att_id", lambda Q, K, V, Y, P, D: S.attention(Q, K, V) + E(Y, P, D), "raised")
    rejects("att_id", lambda Q, K, V, Y, P, D: S.attention(Q, K, V), "no ID is added")


def test_identification_decoding_mistakes():
    rejects("identification_decoding", lambda L, P: torch.softmax(L @ P.t(), dim=0), "wrong axis")
    rejects("identification_decoding", lambda L, P: torch.softmax(L @ P, dim=-1),
            "not shared between memory and query")
    rejects("identification_decoding", lambda L, P: torch.softmax(L, dim=-1),
            "not shared between memory and query", "P = I")
    rejects("identification_decoding", lambda L, P: L @ P.t(), "logits, not probabilities")


# --- 03: LSTT -----------------------------------------------------------------------------------

def long_term(X_t, X_m, E_m, W_K, W_V, heads, keys=None, values=None, n_heads=None):
    n_heads = n_heads or heads
    K = W_K(X_m) if keys is None else keys
    V = W_V(X_m + E_m) if values is None else values
    return S.merge_heads(S.attention(S.split_heads(W_K(X_t), n_heads), S.split_heads(K, n_heads),
                                     S.split_heads(V, n_heads)))


def test_long_term_mistakes():
    key = "long_term_attention"
    rejects(key, lambda X_t, X_m, E_m, W_K, W_V, h: long_term(
        X_t, X_m, E_m, W_K, W_V, h, values=W_V(X_m) + E_m), "after the value projection")
    rejects(key, lambda X_t, X_m, E_m, W_K, W_V, h: long_term(
        X_t, X_m, E_m, W_K, W_V, h, values=W_V(X_m)), "carry no identities")
    rejects(key, lambda X_t, X_m, E_m, W_K, W_V, h: long_term(
        X_t, X_m, E_m, W_K, W_V, h, keys=X_m), "same W^K as the query")
    rejects(key, lambda X_t, X_m, E_m, W_K, W_V, h: long_term(
        X_t, X_m, E_m, W_K, W_V, h, n_heads=1), "single-head")
    rejects(key, lambda X_t, X_m, E_m, W_K, W_V, h: long_term(
        X_t, X_m[:6], E_m[:6], W_K, W_V, h), "only the first memory frame")
    rejects(key, lambda X_t, X_m, E_m, W_K, W_V, h: long_term(X_m, X_t, E_m[:6], W_K, W_V, h),
            "queries come from X_t")


def short_term(Q, K, V, relative_logits, relative_values, heads, lam=15, *, shift=0, mask=True,
               scale=True, rel_k=True, rel_v=True, transpose_slots=False, global_attention=False):
    """The solution with one deliberate mistake switched on."""
    if global_attention:
        return S.merge_heads(S.attention(*(S.split_heads(S.to_seq(x), heads) for x in (Q, K, V))))
    B, C, h, w = Q.shape
    d, R, slots = C // heads, (lam - 1) // 2, lam * lam
    pad = (R + shift, R - shift, R + shift, R - shift)

    def neighbours(x):
        x = F.unfold(F.pad(x, pad), lam)
        return x.view(x.shape[0], -1, slots, h * w)

    inside = neighbours(torch.ones(1, 1, h, w))[0, 0] > 0
    K_win = neighbours(K).view(B, heads, d, slots, h * w)
    V_win = neighbours(V).view(B, heads, d, slots, h * w)
    q = Q.view(B, heads, d, 1, h * w) / (math.sqrt(d) if scale else 1.0)
    r = relative_logits.view(B, heads, slots, h * w)
    if transpose_slots:
        r = r.view(B, heads, lam, lam, h * w).transpose(2, 3).reshape(B, heads, slots, h * w)
    logits = (q * K_win).sum(2) + (r if rel_k else 0)
    if mask:
        logits = logits.masked_fill(~inside, float("-inf"))
    A = torch.softmax(logits, dim=2)
    values = V_win + (relative_values[None, :, :, :, None] if rel_v else 0)
    return (A[:, :, None] * values).sum(3).reshape(B, C, h * w).permute(2, 0, 1)


def with_mistake(**mistake):
    return lambda *args: short_term(*args, **mistake)


def test_short_term_mistakes():
    key = "short_term_attention"
    assert exercises.check(key, with_mistake()) is not None  # the harness itself is right
    rejects(key, with_mistake(shift=1), "the window is off", "rows 1..3 and columns 2..4",
            "off by one")
    rejects(key, with_mistake(mask=False), "zero-padded slots", "-inf")
    rejects(key, with_mistake(global_attention=True), "every token of frame t-1",
            "long-term attention")
    rejects(key, with_mistake(scale=False), "1/sqrt(d) scaling is missing")
    rejects(key, with_mistake(rel_k=False), "relative_logits are ignored")
    rejects(key, with_mistake(transpose_slots=True), "wrong order", "row offset dy first")
    rejects(key, with_mistake(rel_v=False), "relative_values are ignored")
    rejects(key, lambda *args: S.to_map(short_term(*args), args[0].shape[-2:]), "map layout")


def after_self_attention(block, X, size_2d, E, long_term_memory, short_term_memory,
                         activation=F.gelu):
    """The solution's block from norm2 on (the sub-layers after the self-attention)."""
    Xn = block.norm2(X)
    if E is not None:
        long_term_memory = short_term_memory = (Xn, E)
    X_m, E_m = long_term_memory
    lt = S.long_term_attention(Xn, X_m, E_m, block.linear_Q, block.linear_V, block.att_heads)
    X_prev, E_prev = short_term_memory
    Q = S.to_map(block.linear_Q(Xn), size_2d)
    st = S.short_term_attention(
        Q, S.to_map(block.linear_Q(X_prev), size_2d), S.to_map(block.linear_V(X_prev + E_prev), size_2d),
        block.short_term_attn.relative_emb_k(Q), block.short_term_attn.relative_emb_v,
        block.att_heads, block.lam)
    X = X + block.long_term_attn.projection(lt) + block.short_term_attn.projection(st)
    hidden = S.to_map(block.linear1(block.norm3(X)), size_2d)
    hidden = block.activation.conv(activation(block.activation.gn(hidden)))
    return X + block.linear2(S.to_seq(hidden)), Xn


class NoSelfResidual(S.LSTTBlock):
    """The self-attention's residual forgotten: X = SelfAtt(norm1(X))."""

    def forward(self, X, pos, size_2d, E=None, long_term_memory=None, short_term_memory=None):
        Xn = self.norm1(X)
        return after_self_attention(self, self.self_attn(Xn + pos, Xn + pos, Xn), size_2d, E,
                                    long_term_memory, short_term_memory)


class PositionInValues(S.LSTTBlock):
    def forward(self, X, pos, size_2d, E=None, long_term_memory=None, short_term_memory=None):
        Xn = self.norm1(X)
        return after_self_attention(self, X + self.self_attn(Xn + pos, Xn + pos, Xn + pos), size_2d,
                                    E, long_term_memory, short_term_memory)


class NoGelu(S.LSTTBlock):
    def forward(self, X, pos, size_2d, E=None, long_term_memory=None, short_term_memory=None):
        Xn = self.norm1(X)
        return after_self_attention(self, X + self.self_attn(Xn + pos, Xn + pos, Xn), size_2d, E,
                                    long_term_memory, short_term_memory, activation=lambda x: x)


class ShortTermFromLongTermMemory(S.LSTTBlock):
    """Short-term attention looks at the first long-term memory frame instead of frame t-1."""

    def forward(self, X, pos, size_2d, E=None, long_term_memory=None, short_term_memory=None):
        if long_term_memory is not None:
            hw = X.shape[0]
            short_term_memory = (long_term_memory[0][:hw], long_term_memory[1][:hw])
        return super().forward(X, pos, size_2d, E, long_term_memory, short_term_memory)


class NoIdentityInReference(S.LSTTBlock):
    def forward(self, X, pos, size_2d, E=None, long_term_memory=None, short_term_memory=None):
        if E is not None:
            E = torch.zeros_like(E)
        return super().forward(X, pos, size_2d, E, long_term_memory, short_term_memory)


class NoLongTermProjection(S.LSTTBlock):
    def forward(self, X, pos, size_2d, E=None, long_term_memory=None, short_term_memory=None):
        projection, self.long_term_attn.projection = self.long_term_attn.projection, nn.Identity()
        try:
            return super().forward(X, pos, size_2d, E, long_term_memory, short_term_memory)
        finally:
            self.long_term_attn.projection = projection


class LongTermIdentitiesInShortTerm(S.LSTTBlock):
    """Frame t-1's tokens, but the long-term memory's identity embedding."""

    def forward(self, X, pos, size_2d, E=None, long_term_memory=None, short_term_memory=None):
        if short_term_memory is not None:
            short_term_memory = (short_term_memory[0], long_term_memory[1][:X.shape[0]])
        return super().forward(X, pos, size_2d, E, long_term_memory, short_term_memory)


class MemoryIsOutput(S.LSTTBlock):
    def forward(self, *args, **kwargs):
        out, _ = super().forward(*args, **kwargs)
        return out, out


class RenamedFeedForward(S.LSTTBlock):
    def __init__(self, *args):
        super().__init__(*args)
        self.ffn_in = self.linear1
        del self.linear1


def test_lstt_block_mistakes():
    key = "LSTTBlock"
    rejects(key, NoSelfResidual, "reference frame", "norm2 must get X + SelfAtt")
    rejects(key, PositionInValues, "values are norm1(X), without the position embedding")
    rejects(key, ShortTermFromLongTermMemory, "propagated", "frame t-1's tokens",
            "not the long-term memory's")
    rejects(key, NoGelu, "GELU(GroupNorm(...))")
    rejects(key, NoIdentityInReference, "its own memory", "linear_V(Xn + E)")
    rejects(key, MemoryIsOutput, "X_memory is wrong", "norm2")
    rejects(key, NoLongTermProjection, "long_term_attn.projection is never called")
    rejects(key, LongTermIdentitiesInShortTerm, "frame t-1's identity embedding")
    rejects(key, RenamedFeedForward, "Missing in yours: linear1.weight")


# --- 05: the loss -----------------------------------------------------------------------------

def pixel_losses(logits, labels):
    return F.cross_entropy(logits, labels, ignore_index=255, reduction="none").flatten(1)


def test_bootstrapped_cross_entropy_mistakes():
    key = "bootstrapped_cross_entropy"
    rejects(key, lambda lo, la, f: pixel_losses(lo, la).mean(1), "every pixel is averaged")
    rejects(key, lambda lo, la, f: pixel_losses(lo, la).topk(
        int(f * 42), 1, largest=False).values.mean(1), "easiest pixels")
    rejects(key, lambda lo, la, f: pixel_losses(lo, la).topk(round(f * 42), 1).values.mean(1),
            "one too many", "rounded down")
    rejects(key, lambda lo, la, f: pixel_losses(lo, la).flatten().topk(int(f * 84)).values.mean(),
            "A single number")
    rejects(key, lambda lo, la, f: F.cross_entropy(lo, la, reduction="none").flatten(1).mean(1),
            "raised", "ignore_index=255")


def jaccard(logits, labels, *, softmax=True, present_only=True, valid_mask=True, one_minus=True):
    valid = (labels != 255)[:, None].float() if valid_mask else torch.ones_like(labels[:, None]).float()
    p = (torch.softmax(logits, 1) if softmax else logits) * valid
    g = F.one_hot(labels.clamp(max=logits.shape[1] - 1) * (labels != 255), logits.shape[1])
    g = g.permute(0, 3, 1, 2).float() * (labels != 255)[:, None]
    inter = (p * g).sum((2, 3))
    iou = inter / (inter + (p * (1 - g)).sum((2, 3)) + ((1 - p) * g).sum((2, 3)) + 1e-6)
    per_class = 1 - iou if one_minus else iou
    present = (g.sum((2, 3)) > 0).float() if present_only else torch.ones_like(per_class)
    return (per_class * present).sum(1) / present.sum(1)


def test_aot_loss_mistakes():
    key = "aot_loss"
    ce = S.bootstrapped_cross_entropy
    assert exercises.check(key, lambda lo, la, f: 0.5 * ce(lo, la, f) + 0.5 * jaccard(lo, la))
    rejects(key, lambda lo, la, f: ce(lo, la, f) + jaccard(lo, la), "0.5 * CE + 0.5 * Jaccard")
    rejects(key, lambda lo, la, f: 0.5 * ce(lo, la, f) + 0.5 * jaccard(lo, la, softmax=False),
            "uses the logits")
    rejects(key, lambda lo, la, f: 0.5 * ce(lo, la, f) + 0.5 * jaccard(lo, la, present_only=False),
            "absent ones too")
    rejects(key, lambda lo, la, f: 0.5 * ce(lo, la, f) + 0.5 * jaccard(lo, la, one_minus=False),
            "soft IoU")
    rejects(key, lambda lo, la, f: 0.5 * ce(lo, la, f), "soft Jaccard part is missing")


# --- the switch, hints, grades ----------------------------------------------------------------

def stub(*args, **kwargs):
    raise NotImplementedError


def test_unwritten_exercise_falls_back_to_the_solution_with_a_notice(monkeypatch, capsys):
    monkeypatch.delenv(exercises.SWITCH, raising=False)
    assert exercises.check("attention", stub) is S.attention
    out = capsys.readouterr().out
    assert "not written yet" in out and "course's solution stands in" in out
    assert "exercises.hint('attention')" in out


def test_switch_off_or_no_solutions_stops_at_the_exercise(monkeypatch, tmp_path):
    monkeypatch.setenv(exercises.SWITCH, "off")
    with pytest.raises(NotWritten, match="still raises NotImplementedError"):
        exercises.check("attention", stub)
    monkeypatch.setenv(exercises.SWITCH, "auto")  # a student version: no solutions file
    monkeypatch.setattr(exercises.framework, "SOLUTIONS_FILE", tmp_path / "solutions.py")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotWritten, match=r"exercises.hint\('attention'\)"):
        exercises.check("attention", stub)
    monkeypatch.setenv(exercises.SWITCH, "on")
    with pytest.raises(NotWritten, match="solutions file"):
        exercises.check("attention", stub)
    monkeypatch.setenv(exercises.SWITCH, "maybe")
    with pytest.raises(ValueError, match="auto, on or off"):
        exercises.check("attention", stub)


def test_solutions_are_found_beside_a_notebook(monkeypatch, tmp_path):
    monkeypatch.setattr(exercises.framework, "SOLUTIONS_FILE", tmp_path / "missing.py")
    monkeypatch.chdir(tmp_path)
    assert exercises.load_solutions() is None
    (tmp_path / "solutions.py").write_text("def attention(Q, K, V):\n    return 'mine'\n")
    assert exercises.load_solutions().attention(1, 2, 3) == "mine"


def test_not_written_is_a_not_implemented_error_and_mistake_an_assertion():
    assert issubclass(NotWritten, NotImplementedError) and issubclass(Mistake, AssertionError)
    assert Mistake("one\ntwo")._render_traceback_() == ["Mistake: one", "two"]


def test_hints_come_one_at_a_time(capsys):
    exercises._hints_given.pop("attention", None)
    exercises.hint("attention")
    assert capsys.readouterr().out.count("hint ") == 1
    exercises.hint("attention")
    assert capsys.readouterr().out.count("hint ") == 2
    exercises.hint("attention", all=True)
    assert capsys.readouterr().out.count("hint ") == len(exercises.EXERCISES["attention"].hints)
    with pytest.raises(KeyError, match="the exercises are"):
        exercises.hint("atention")


def test_grades_are_recorded(monkeypatch, tmp_path):
    grades = tmp_path / "grades.jsonl"
    monkeypatch.setenv(exercises.GRADES, str(grades))
    exercises.check("attention", S.attention)
    with pytest.raises(Mistake):
        exercises.check("identification_decoding", lambda L, P: L)
    rows = [json.loads(line) for line in grades.read_text().splitlines()]
    here = str(Path.cwd())
    assert rows == [
        {"exercise": "attention", "notebook": "01_attention", "status": "correct", "folder": here},
        {"exercise": "identification_decoding", "notebook": "02_identity", "status": "not right yet",
         "folder": here},
    ]
    assert exercises.summary()["attention"] == "correct"


def test_relative_grades_file_lands_where_the_command_ran(monkeypatch, tmp_path):
    # nbval starts the kernel in the notebook's folder; $PWD is still the instructor's.
    instructor, student = tmp_path / "course", tmp_path / "course" / "student" / "notebooks"
    student.mkdir(parents=True)
    monkeypatch.setenv("PWD", str(instructor))
    monkeypatch.chdir(student)
    monkeypatch.setenv(exercises.GRADES, "grades.jsonl")
    exercises.check("attention", S.attention)
    assert not (student / "grades.jsonl").exists()
    row = json.loads((instructor / "grades.jsonl").read_text())
    assert row["status"] == "correct" and row["folder"] == str(student)


# --- the notebooks ------------------------------------------------------------------------------

def notebook_checks() -> dict[str, list[tuple[str, str]]]:
    """Per notebook source: the ``(exercise, name)`` of every ``exercises.check(...)`` call."""
    found = {}
    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute) and node.func.attr == "check"
                 and isinstance(node.func.value, ast.Name) and node.func.value.id == "exercises"]
        found[source.stem] = [(c.args[0].value, c.args[1].id) for c in calls]
    return found


def raises_not_implemented(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Raise) and "NotImplementedError" in ast.unparse(n)
               for n in ast.walk(node))


def test_every_exercise_is_in_its_notebook_once_as_a_stub():
    checks = notebook_checks()
    keys = [key for calls in checks.values() for key, _ in calls]
    assert sorted(keys) == sorted(exercises.EXERCISES), "each exercise checked exactly once"
    for notebook, calls in checks.items():
        tree = ast.parse((ROOT / "notebooks" / f"{notebook}.py").read_text(encoding="utf-8"))
        for key, name in calls:
            assert exercises.EXERCISES[key].notebook == notebook
            definitions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)
                           and n.name == name]
            assert len(definitions) == 1, f"{notebook}: {name} defined {len(definitions)} times"
            assert raises_not_implemented(definitions[0]), \
                f"{notebook}: {name} must ship as a stub raising NotImplementedError"


# --- your block in a trained model -------------------------------------------------------------

def clip(seed: int = 3):
    from aot_edu.data import render_video

    return render_video(np.random.default_rng([seed, 0]), 4, 65, 2, 1, 1.0)


def test_plug_in_learner_blocks_into_aotb_gives_the_same_masks():
    torch.manual_seed(0)
    model = aot_edu.build_model("aotb")
    with torch.no_grad():  # random LayerNorm / relative_emb_v, so every parameter matters
        for p in model.LSTT.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    plugged = exercises.plug_in(model, S.LSTTBlock)
    assert type(model.LSTT.layers[0]).__name__ == "LSTTBlock", "the original model is unchanged"
    assert all(isinstance(layer, exercises.LearnerBlock) for layer in plugged.LSTT.layers)
    frames, masks = clip()
    theirs = aot_edu.segment(frames, masks[0], model, return_probs=True)
    yours = aot_edu.segment(frames, masks[0], plugged, return_probs=True)
    np.testing.assert_array_equal(yours.masks, theirs.masks)
    np.testing.assert_allclose(yours.probs, theirs.probs, atol=1e-4)


def test_plug_in_with_aotl_memory_updates_and_wrong_names():
    torch.manual_seed(1)
    model = aot_edu.build_model("aotl")
    frames, masks = clip(4)
    theirs = aot_edu.segment(frames, masks[0], model, long_term_gap=2, return_probs=True)
    yours = aot_edu.segment(frames, masks[0], exercises.plug_in(model, S.LSTTBlock),
                            long_term_gap=2, return_probs=True)
    np.testing.assert_allclose(yours.probs, theirs.probs, atol=1e-4)
    with pytest.raises(ValueError, match="does not load into your RenamedFeedForward"):
        exercises.plug_in(model, RenamedFeedForward)


def test_plug_in_the_shipped_course_model():
    course_model = pytest.importorskip(
        "aot_edu.course.model", reason="aot_edu.course.model (the shipped course model) is not "
                                       "in this checkout")
    if not Path(course_model.COURSE_WEIGHTS).is_file():
        pytest.skip(f"the course model's weights {course_model.COURSE_WEIGHTS} are absent")
    model = course_model.load_course_model()
    frames, masks = clip(5)
    theirs = aot_edu.segment(frames, masks[0], model)
    yours = aot_edu.segment(frames, masks[0], exercises.plug_in(model, S.LSTTBlock))
    np.testing.assert_array_equal(yours.masks, theirs.masks)
