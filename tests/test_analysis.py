"""analysis: baselines, per-frame J, identity bank statistics."""

from __future__ import annotations

import numpy as np
import pytest

from aot_edu import analysis
from aot_edu.data import SyntheticVideos


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
