"""aot_edu.inference.attention_maps: attention weights recorded along the engine's inference
path (Fig. 6-7), their entropy and its uniform reference."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from aot_edu import build_model
from aot_edu.inference import attention_maps


def test_record_attention_shapes(record, clip):
    frames, mask = clip
    assert record.frames.shape == frames.shape and record.token_size == (5, 7)
    assert (record.masks[0] == mask).all() and record.masks.shape == (4, 65, 97)
    assert record.num_layers == 2 and record.num_heads == 8 and record.num_objects == 2
    assert len(record.long_term) == 3 and record.long_term_frames == [[0], [0], [0]]
    assert record.long_term[0][1].shape == (8, 35, 35)
    assert record.short_term[2][0].shape == (8, 35, 225)
    torch.testing.assert_close(record.token_labels(0).sum(0), torch.ones(5, 7))


def test_record_follows_the_long_term_memory(clip):
    torch.manual_seed(0)
    record = attention_maps.record_attention(build_model("aott"), *clip, long_term_gap=1)
    assert record.long_term_frames == [[0], [1, 0], [2, 1, 0]], "newest memory frame first"
    assert record.long_term[2][0].shape == (8, 35, 3 * 35)


def test_record_resizes_to_the_input_size():
    frames = np.zeros((2, 60, 100, 3), dtype=np.uint8)
    mask = np.zeros((60, 100), dtype=np.int64)
    mask[10:30, 10:30] = 1
    record = attention_maps.record_attention(build_model("aott"), frames, mask)
    assert record.frames.shape[1:3] == (65, 97) and record.masks.shape[1:] == (65, 97)
    with pytest.raises(ValueError, match="objects"):
        attention_maps.record_attention(build_model("aott"), frames, np.zeros((60, 100), dtype=np.int64))


def test_attention_entropy(record):
    entropy = attention_maps.attention_entropy(record, "long_term")
    assert entropy.shape == (3, 2)
    assert (entropy > 0).all() and (entropy <= math.log(35) + 1e-4).all()
    with pytest.raises(ValueError, match="long_term"):
        attention_maps.attention_entropy(record, "self")


def test_uniform_entropy_counts_the_keys_each_query_sees(record):
    np.testing.assert_allclose(attention_maps.uniform_entropy(record, "long_term"), [math.log(35)] * 3, rtol=1e-6)
    # a 5x7 grid lies inside every 15x15 window: each query sees all 35 tokens, not 225
    np.testing.assert_allclose(attention_maps.uniform_entropy(record, "short_term"), [math.log(35)] * 3, rtol=1e-6)
    assert (attention_maps.attention_entropy(record, "short_term") <= math.log(35) + 1e-4).all()
    h, w = 20, 9
    by_hand = [math.log(sum(0 <= y + dy < h and 0 <= x + dx < w for dy in range(-7, 8) for dx in range(-7, 8)))
               for y in range(h) for x in range(w)]
    larger = dataclasses.replace(record, token_size=(h, w))
    assert attention_maps.uniform_entropy(larger, "short_term")[0] == pytest.approx(np.mean(by_hand), rel=1e-6)
    with pytest.raises(ValueError, match="short_term"):
        attention_maps.uniform_entropy(record, "self")


def test_record_keeps_the_ground_truth(clip):
    frames, mask = clip
    truth = np.stack([mask] * len(frames))
    record = attention_maps.record_attention(build_model("aott"), frames[:, :60, :90], mask[:60, :90],
                                  ground_truth=truth[:, :60, :90])
    assert record.ground_truth.shape == (4, 65, 97) and (record.ground_truth[0] == record.masks[0]).all()
    with pytest.raises(ValueError, match="every frame"):
        attention_maps.record_attention(build_model("aott"), frames, mask, ground_truth=truth[:2])
    with pytest.raises(ValueError, match="no ground truth"):
        dataclasses.replace(record, ground_truth=None).token_labels(1, ground_truth=True)


@pytest.mark.parametrize("frames", [0, 2])
def test_models_without_one_short_term_frame_are_refused_with_the_reason(frames):
    model = build_model(build_model("aott").config.replace(short_term_frames=frames))
    with pytest.raises(ValueError, match="record_attention shows one short-term frame"):
        attention_maps.record_attention(model, np.zeros((2, 33, 33, 3), np.uint8), np.ones((33, 33), np.int64))
