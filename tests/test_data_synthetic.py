"""Synthetic multi-object videos: format, labels, visibility, distractors, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from aot_edu.data import SyntheticVideos, collate, render_video


def test_sample_format_and_label_range():
    videos = SyntheticVideos(num_videos=6, num_frames=5, size=(65, 97), num_objects=(1, 4), seed=1)
    counts = set()
    for i in range(len(videos)):
        sample = videos[i]
        assert sample["frames"].shape == (5, 3, 65, 97) and sample["frames"].dtype == torch.uint8
        assert sample["masks"].shape == (5, 65, 97) and sample["masks"].dtype == torch.int64
        n = sample["num_objects"]
        assert 1 <= n <= 4
        counts.add(n)
        assert sample["masks"].min() >= 0 and sample["masks"].max() <= n
        # every object is visible on the reference frame
        assert set(torch.unique(sample["masks"][0]).tolist()) == set(range(n + 1))
        assert sample["name"] == videos.name(i)
    assert len(counts) > 1  # the object count varies within the range


def test_objects_move_between_frames():
    frames, labels = render_video(np.random.default_rng(0), 4, 65, num_objects=3, num_distractors=0)
    assert frames.shape == (4, 65, 65, 3) and labels.shape == (4, 65, 65)
    assert not np.array_equal(labels[0], labels[3])
    static, static_labels = render_video(np.random.default_rng(0), 3, 65, 3, 0, motion=0.0)
    assert np.array_equal(static_labels[0], static_labels[2])  # motion=0 freezes the shapes


def test_many_objects_and_one_frame():
    frames, labels = render_video(
        np.random.default_rng(3), 1, 129, num_objects=12, num_distractors=2
    )
    assert labels.max() <= 12 and len(np.unique(labels[0])) >= 10
    with pytest.raises(ValueError, match="num_objects"):
        render_video(np.random.default_rng(0), 2, 33, num_objects=300)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distractors_look_like_an_object_but_are_background(seed):
    def look_alike_pixels(num_distractors):
        frames, labels = render_video(
            np.random.default_rng(seed), 1, 97, 1, num_distractors, motion=0.0, noise=0.0
        )
        assert set(np.unique(labels)) == {0, 1}  # distractors never get a label
        object_colours = {tuple(c) for c in frames[0][labels[0] == 1]}
        return sum(tuple(c) in object_colours for c in frames[0][labels[0] == 0])

    assert look_alike_pixels(0) < 20
    assert look_alike_pixels(3) > 200  # background pixels painted with the object's texture


def test_deterministic_by_seed_and_index():
    a = SyntheticVideos(num_videos=3, size=33, seed=7)
    b = SyntheticVideos(num_videos=3, size=33, seed=7)
    c = SyntheticVideos(num_videos=3, size=33, seed=8)
    assert torch.equal(a[1]["frames"], b[1]["frames"]) and torch.equal(a[1]["masks"], b[1]["masks"])
    assert not torch.equal(a[1]["frames"], a[2]["frames"])
    assert not torch.equal(a[1]["frames"], c[1]["frames"])
    assert torch.equal(a[-1]["masks"], a[2]["masks"])
    with pytest.raises(IndexError):
        a[3]


def test_batches_through_a_dataloader():
    loader = DataLoader(
        SyntheticVideos(num_videos=4, size=33, seed=0), batch_size=2, collate_fn=collate
    )
    batch = next(iter(loader))
    assert batch["frames"].shape == (2, 5, 3, 33, 33) and batch["masks"].shape == (2, 5, 33, 33)
    assert batch["num_objects"].shape == (2,) and len(batch["name"]) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_objects"):
        SyntheticVideos(num_objects=(3, 1))
    with pytest.raises(ValueError, match="seed"):
        SyntheticVideos(seed=-1)


def test_scale_makes_objects_larger_with_the_same_layout():
    small = SyntheticVideos(num_videos=8, num_frames=1, size=129, num_objects=1, num_distractors=0, seed=2)
    large = SyntheticVideos(num_videos=8, num_frames=1, size=129, num_objects=1, num_distractors=0, seed=2,
                            scale=1.5)
    areas = [((large.video(i)[1] > 0).sum(), (small.video(i)[1] > 0).sum()) for i in range(8)]
    assert all(big > little for big, little in areas)
    with pytest.raises(ValueError, match="scale must be positive"):
        SyntheticVideos(scale=0)


def test_max_gap_skips_rendered_frames_and_keeps_the_first():
    """Frames U{1..max_gap} rendered frames apart: the same scene, more motion per clip."""
    from aot_edu.data.synthetic import render_video as render

    consecutive = SyntheticVideos(4, 5, 65, num_objects=2, seed=3)
    gapped = SyntheticVideos(4, 5, 65, num_objects=2, seed=3, max_gap=3)
    spans = []
    for i in range(4):
        frames, labels = gapped.video(i)
        assert frames.shape == (5, 65, 65, 3) and labels.shape == (5, 65, 65)
        # the clip is a subsequence of the 13-frame video its generator renders
        rng = np.random.default_rng([3, i])
        n = int(rng.integers(2, 3))
        d = int(rng.integers(0, 3))
        full, full_labels = render(rng, 13, (65, 65), n, d, 1.0, 3.0)
        picked = [next(t for t in range(13) if np.array_equal(full[t], f)) for f in frames]
        assert picked[0] == 0 and all(1 <= b - a <= 3 for a, b in zip(picked, picked[1:], strict=False))
        spans.append(picked[-1])
    assert max(spans) > 4  # some clip skipped frames
    assert consecutive.video(0)[0].shape == gapped.video(0)[0].shape
    with pytest.raises(ValueError, match="max_gap must be at least 1"):
        SyntheticVideos(4, 5, 65, max_gap=0)


def test_synthetic_images_are_static_clips_of_rendered_scenes():
    from aot_edu.data import StaticClips, SyntheticImages

    images = SyntheticImages(6, size=65, seq_len=4, num_objects=(2, 4), num_distractors=1, seed=2)
    assert len(images) == 6
    for i in range(len(images)):
        sample = images[i]
        assert sample["frames"].shape == (4, 3, 65, 65) and sample["masks"].shape == (4, 65, 65)
        n = sample["num_objects"]
        assert 1 <= n <= 4 and sample["masks"].max() <= n
        assert set(torch.unique(sample["masks"][0]).tolist()) == set(range(n + 1))
        assert sample["name"] == images.name(i)
        # every later frame is its own warp of the scene: not a copy of the first
        assert not torch.equal(sample["frames"][0], sample["frames"][1])
    assert torch.equal(images[3]["frames"], SyntheticImages(6, 65, 4, (2, 4), 1, seed=2)[3]["frames"])
    images.set_epoch(1)  # another epoch, another augmentation of the same scene
    assert not torch.equal(images[3]["frames"], SyntheticImages(6, 65, 4, (2, 4), 1, seed=2)[3]["frames"])
    # the scene is frame 0 of a motionless one-frame synthetic video
    frames, labels = images.scenes.video(0)
    assert frames.shape == (1, 65, 65, 3) and labels[0].max() >= 1
    assert isinstance(images, StaticClips)  # the official static-clip recipe, shared
    merged = SyntheticImages(6, 65, 3, 2, 0, seed=0, merge_prob=1.0)[0]
    assert "+" in merged["name"]


def _distance_to_colour_line(pixels_a: np.ndarray, pixels_b: np.ndarray) -> float:
    """Largest distance of the colours ``pixels_b`` to the line through the colours of
    ``pixels_a`` (a texture mixes two colours: its pixels lie on a segment)."""
    a, b = pixels_a.astype(np.float64), pixels_b.astype(np.float64)
    centre = a.mean(0)
    direction = np.linalg.svd(a - centre, full_matrices=False)[2][0]
    offsets = b - centre
    return float(np.linalg.norm(offsets - np.outer(offsets @ direction, direction), axis=1).max())


def test_look_alike_objects_share_object_one_colours():
    far = []
    for seed in range(4):
        for look_alike in (True, False):
            frames, labels = render_video(np.random.default_rng(seed), 1, 97, 3, 0, noise=0.0,
                                          look_alike_objects=look_alike)
            obj = [frames[0][labels[0] == k] for k in (1, 2, 3)]
            distance = max(_distance_to_colour_line(obj[0], o) for o in obj[1:])
            if look_alike:
                assert distance < 2.0, seed  # on object 1's colour segment (uint8 rounding)
            else:
                far.append(distance)
    assert min(far) > 10  # independent objects have their own colours
    videos = SyntheticVideos(2, 3, 65, num_objects=3, num_distractors=0, seed=2, look_alike_objects=True)
    frames, labels = videos.video(1)
    assert set(np.unique(labels[0])) == {0, 1, 2, 3}
    plain = SyntheticVideos(2, 3, 65, num_objects=3, num_distractors=0, seed=2)
    assert not np.array_equal(plain.video(1)[0], frames)


def test_occlusion_video_hides_object_one_and_brings_it_back():
    from aot_edu.data import render_occlusion_video

    frames, labels = render_occlusion_video(np.random.default_rng(5), 12, 129)
    assert frames.shape == (12, 129, 129, 3) and frames.dtype == np.uint8
    assert labels.shape == (12, 129, 129) and labels.dtype == np.uint8
    area = [(frame == 1).sum() for frame in labels]
    hidden = [t for t, a in enumerate(area) if a == 0]
    assert len(hidden) >= 2 and 0 < hidden[0] and hidden[-1] < 11
    assert hidden == list(range(hidden[0], hidden[-1] + 1))  # one occlusion, then back
    assert area[0] == area[-1] > 300  # fully visible at both ends
    assert all((frame == 2).sum() > 300 for frame in labels)  # object 2 never hidden
    assert set(np.unique(labels)) == {0, 1, 2}
    # the occluder is in front: it looks the same over the hidden frames, object 1 or not
    occluder = (slice(40, 88), slice(50, 78))
    assert np.abs(frames[hidden[0]][occluder].astype(int) - frames[4][occluder].astype(int)).mean() < 15
    again, again_labels = render_occlusion_video(np.random.default_rng(5), 12, 129)
    assert np.array_equal(again, frames) and np.array_equal(again_labels, labels)
    one, one_labels = render_occlusion_video(np.random.default_rng(5), 8, 65, second_object=False)
    assert set(np.unique(one_labels)) == {0, 1}
    with pytest.raises(ValueError, match="num_frames"):
        render_occlusion_video(np.random.default_rng(0), 2, 129)


def test_occlusion_videos_are_seeded_occlusion_renders():
    from aot_edu.data import OcclusionVideos, render_occlusion_video

    videos = OcclusionVideos(2, num_frames=12, size=65, seed=3)
    assert len(videos) == 2
    frames, labels = videos.video(1)
    again, again_labels = render_occlusion_video(np.random.default_rng([3, 1]), 12, 65)
    assert frames.shape == (12, 65, 65, 3) and np.array_equal(frames, again)
    assert np.array_equal(labels, again_labels)
    assert not np.array_equal(videos.video(0)[0], frames)  # each index its own textures
    with pytest.raises(IndexError, match="out of range"):
        videos.video(2)
    with pytest.raises(ValueError, match="num_videos >= 1"):
        OcclusionVideos(0)
