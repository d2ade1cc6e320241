"""analysis: baselines, per-frame J, identity bank statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from aot_edu.data import SyntheticVideos
from aot_edu.evaluation import analysis


def test_copy_first_mask_and_grid_oracle_on_synthetic_videos():
    videos = SyntheticVideos(2, 6, 65, num_objects=2, seed=4)
    frames, labels = videos.video(0)
    copied = analysis.copy_first_mask(frames, labels)
    assert copied.shape == labels.shape and all(np.array_equal(m, labels[0]) for m in copied)
    assert np.array_equal(analysis.grid_oracle(labels, 1), labels)  # stride 1: the truth itself
    perfect = analysis.per_frame_j(videos, lambda f, truth: truth)
    assert perfect.shape == (5,) and np.allclose(perfect, 1.0)
    still = analysis.per_frame_j(videos, analysis.copy_first_mask)
    assert still[0] > still[-1]  # moving objects leave the first mask behind
    scores = analysis.score_videos(videos, analysis.copy_first_mask)
    assert len(analysis.video_scores(scores)) == 2


def test_identity_bank_stats_name_the_equidistant_cosine(random_aott):
    stats = analysis.identity_bank_stats(random_aott)
    assert stats["equidistant"] == pytest.approx(-1 / 9)
    assert -1 <= stats["min"] <= stats["mean"] <= stats["max"] <= 1


def test_compare_strategies_agree_on_one_object_and_time_both(random_aott):
    # With one object, post-ensemble (Eq. 1) and identification run the same computation.
    videos = SyntheticVideos(2, 3, 33, num_objects=1, num_distractors=1, seed=7)
    rows = analysis.compare_strategies(random_aott, videos)
    ident, post = rows["identification"], rows["post_ensemble_sequential"]
    assert ident["J&F"] == pytest.approx(post["J&F"], abs=1e-6)
    assert ident["per_video_jf"] == pytest.approx(post["per_video_jf"], abs=1e-6)
    assert ident["videos"] == 2 and ident["objects"] == 2
    assert ident["ms_per_frame"] > 0 and post["ms_per_frame"] > 0
    with pytest.raises(ValueError, match="unknown strategy"):
        analysis.compare_strategies(random_aott, videos, ("identification", "ensemble"))


def test_reappearance_frames():
    labels = np.zeros((6, 4, 4), np.uint8)
    labels[[0, 1, 4, 5], 1, 1] = 1
    labels[:, 2, 2] = 2
    assert analysis.reappearance_frames(labels, 1) == [4]
    assert analysis.reappearance_frames(labels, 2) == []


def test_attention_removed_changes_the_output_and_restores_the_model(random_aott):
    import aot_edu

    videos = SyntheticVideos(1, 3, 33, num_objects=2, seed=3)
    frames, labels = videos.video(0)

    def probs():
        return aot_edu.segment(frames, labels[0], random_aott, return_probs=True).probs

    before = probs()
    with analysis.attention_removed(random_aott, "long"):
        without_long = probs()
    assert np.array_equal(probs(), before)  # the hooks are gone
    assert not np.allclose(without_long[1:], before[1:])  # propagated frames change
    assert np.array_equal(without_long[0], before[0])  # the reference frame does not
    with pytest.raises(ValueError, match="which"):
        with analysis.attention_removed(random_aott, "middle"):
            pass


@pytest.fixture(scope="module")
def course_aot():
    from aot_edu.course.model import load_course_model

    return load_course_model("cpu")


@pytest.mark.slow
def test_occlusion_long_term_finds_the_object_short_term_cannot(course_aot):
    """Paper Fig. 7 with the course model, on notebook 03's occlusion video: at the return
    frame the short-term attention carries nothing of object 1 (hidden at t - 1), the
    long-term attention of at least one layer carries far more than chance (not every layer:
    block 2 of the shipped model barely looks at it); without long-term attention the object
    is never found again."""
    from aot_edu.data import render_occlusion_video
    from aot_edu.inference.attention_maps import record_attention

    frames, labels = render_occlusion_video(np.random.default_rng([0]), 12, 129)
    back = analysis.reappearance_frames(labels)[0]
    record = record_attention(course_aot, frames, labels[0], ground_truth=labels)
    seen = analysis.occlusion_attention(record, back)
    assert len(seen["long"]) == len(seen["short"]) == 3
    assert max(seen["short"]) < 0.01 and seen["chance_short"] < 0.01
    assert max(seen["long"]) > 5 * seen["chance_long"]
    with pytest.raises(ValueError, match="not visible"):
        analysis.occlusion_attention(record, back - 1)
    for removed, found in ((None, True), ("long", False)):
        with analysis.attention_removed(course_aot, removed):
            masks = analysis.model_predictor(course_aot)(frames, labels)
        j = np.mean([analysis.jaccard(labels[t] == 1, masks[t] == 1) for t in range(back, len(labels))])
        assert (j > 0.3) == found, (removed, j)


def test_cosine_similarity_matrix():
    q = torch.linalg.qr(torch.randn(16, 5))[0].t()
    torch.testing.assert_close(analysis.cosine_similarity_matrix(q * 3), torch.eye(5), atol=1e-5, rtol=0)
    v = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    sim = analysis.cosine_similarity_matrix(v)
    assert sim[0, 1] == pytest.approx(1 / math.sqrt(2)) and sim[0, 2] == pytest.approx(-1.0)
    stats = analysis.similarity_stats(torch.cat([torch.ones(1, 2), v]))  # row 0 = background, left out
    assert stats["max"] == pytest.approx(1 / math.sqrt(2)) and stats["min"] == pytest.approx(-1.0)


def test_removing_short_term_attention_from_a_model_without_it_says_so():
    from aot_edu import build_model

    model = build_model(build_model("aott").config.replace(short_term_frames=0))
    with pytest.raises(ValueError, match="no short-term attention to remove"):
        with analysis.attention_removed(model, "short"):
            pass
