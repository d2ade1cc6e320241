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


def test_cosine_similarity_matrix():
    q = torch.linalg.qr(torch.randn(16, 5))[0].t()
    torch.testing.assert_close(analysis.cosine_similarity_matrix(q * 3), torch.eye(5), atol=1e-5, rtol=0)
    v = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    sim = analysis.cosine_similarity_matrix(v)
    assert sim[0, 1] == pytest.approx(1 / math.sqrt(2)) and sim[0, 2] == pytest.approx(-1.0)
    stats = analysis.similarity_stats(torch.cat([torch.ones(1, 2), v]))  # row 0 = background, left out
    assert stats["max"] == pytest.approx(1 / math.sqrt(2)) and stats["min"] == pytest.approx(-1.0)
