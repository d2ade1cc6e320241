"""Post-ensemble (Eq. 1): each object as its own 1-object problem, merged by soft aggregation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aot_edu.inference.post_ensemble import (
    ParallelPostEnsembleSession,
    PostEnsembleSession,
    efficiency_curve,
    make_session,
    memory_bytes,
)
from aot_edu.inference.session import InferenceSession
from conftest import random_frames


@pytest.fixture(scope="module")
def model(random_aott):
    return random_aott


def clip(t=4, h=65, w=97, seed=0):
    return torch.as_tensor(random_frames(t, h, w, seed))


def stripes(h=65, w=97, n=3):
    mask = torch.zeros(h, w, dtype=torch.long)
    edges = np.linspace(0, w, n + 1).astype(int)
    for k in range(n):
        mask[h // 4:, edges[k]:edges[k + 1]] = k + 1
    return mask


def run(session, frames, first):
    out = []
    with torch.inference_mode():
        session.add_reference(frames[0], first)
        for t in range(1, len(frames)):
            result = session.propagate(frames[t])
            session.update_memory(result.labels)
            out.append(result)
    return out


def test_one_object_is_the_identification_path(model):
    frames, first = clip(), stripes(n=1)
    ours = run(PostEnsembleSession(model), frames, first)
    ref = run(InferenceSession(model), frames, first)
    for a, b in zip(ours, ref, strict=True):
        assert torch.equal(a.probs, b.probs) and torch.equal(a.labels, b.labels)


def test_several_objects_follow_eq1_with_soft_aggregation(model):
    """Re-derive Eq. 1 by hand: one single-object session per object, each given only its own
    mask; background = product of their backgrounds; the merged argmax is fed back to each."""
    frames, first = clip(5), stripes(n=3)
    ours = run(PostEnsembleSession(model), frames, first)
    singles = [InferenceSession(model) for _ in range(3)]
    with torch.inference_mode():
        for k, session in enumerate(singles, start=1):
            session.add_reference(frames[0], (first == k).long())
        for t in range(1, len(frames)):
            probs = [s.propagate(frames[t]).probs for s in singles]  # each [1, 2, H, W]
            background = torch.prod(torch.cat([p[:, :1] for p in probs], 1), 1, keepdim=True)
            merged = torch.cat([background] + [p[:, 1:] for p in probs], 1)
            merged = torch.softmax(torch.logit(merged.clamp(1e-5, 1 - 1e-5)), 1)
            labels = merged.argmax(1)[0]
            for k, session in enumerate(singles, start=1):
                session.update_memory((labels == k).long())
            torch.testing.assert_close(ours[t - 1].probs, merged)
            assert torch.equal(ours[t - 1].labels, labels)


def test_parallel_post_ensemble_is_the_same_computation_as_a_batch(model):
    frames, first = clip(5), stripes(n=3)
    parallel = run(make_session("post_ensemble_parallel", model), frames, first)
    sequential = run(make_session("post_ensemble_sequential", model), frames, first)
    for a, b in zip(parallel, sequential, strict=True):
        torch.testing.assert_close(a.probs, b.probs, atol=1e-5, rtol=1e-4)
        assert (a.labels != b.labels).float().mean() < 1e-3  # batched kernels round differently
    session = ParallelPostEnsembleSession(model)
    run(session, frames[:2], first)
    (engine,) = session.engines
    assert engine.num_objects == [1, 1, 1] and engine.long_term[0][0].shape[1] == 3  # batch of 3
    with pytest.raises(NotImplementedError, match="PostEnsembleSession"):
        session.add_reference(frames[1], first)


def test_memory_grows_with_objects_only_under_post_ensemble(model):
    frames = clip(2)
    held = {}
    strategies = ("identification", "post_ensemble_parallel", "post_ensemble_sequential")
    for n in (1, 3):
        for strategy in strategies:
            session = make_session(strategy, model)
            run(session, frames, stripes(n=n))
            held[strategy, n] = memory_bytes(session)
    assert held["identification", 1] == held["identification", 3]
    for strategy in strategies[1:]:
        assert held[strategy, 1] == held["identification", 1]
        assert held[strategy, 3] == 3 * held[strategy, 1]


def test_new_objects_get_their_own_engine(model):
    frames, first = clip(), stripes(n=1)
    session = PostEnsembleSession(model)
    with torch.inference_mode():
        session.add_reference(frames[0], first)
        labels = session.propagate(frames[1]).labels.clone()
        labels[:8, :8] = 2
        session.add_reference(frames[1], labels)
        assert len(session.engines) == 2 and session.num_objects == 2
        assert session.engines[1].num_objects == [1] and session.engines[1].reference_frames == 1
        assert session.propagate(frames[2]).probs.shape[1] == 3


def test_efficiency_curve_rows(model):
    rows = efficiency_curve(model, clip(4), stripes(n=3), object_counts=[1, 3], warmup=1,
                            strategies=("identification", "post_ensemble_sequential"))
    assert [(r.strategy, r.objects) for r in rows] == [
        ("identification", 1), ("post_ensemble_sequential", 1),
        ("identification", 3), ("post_ensemble_sequential", 3)]
    assert all(r.frames == 2 and r.ms_per_frame > 0 and r.fps > 0 for r in rows)
    by = {(r.strategy, r.objects): r for r in rows}
    assert by["post_ensemble_sequential", 3].memory_mb == pytest.approx(
        3 * by["post_ensemble_sequential", 1].memory_mb)
    assert by["identification", 3].memory_mb == by["identification", 1].memory_mb
    assert all(r.peak_mb is None for r in rows)  # CPU: no allocator statistics


def test_bad_input(model):
    with pytest.raises(ValueError, match="object_counts"):
        efficiency_curve(model, clip(4), stripes(n=2), object_counts=[1, 3])
    with pytest.raises(ValueError, match="T >= 3"):
        efficiency_curve(model, clip(2), stripes(n=2), object_counts=[1])
    with pytest.raises(ValueError, match="unknown strategy"):
        make_session("ensemble", model)
