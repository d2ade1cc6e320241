"""Training samples: augmentations, DAVIS / YouTube-VOS clips, static-image clips, collate."""

from __future__ import annotations

import json
from itertools import pairwise

import numpy as np
import pytest
import torch
from PIL import Image

from aot_edu.data import (
    DAVISTrain,
    StaticTrain,
    VOSTrain,
    YouTubeVOSTrain,
    collate,
    training,
    transforms,
    write_mask,
)
from aot_edu.data.training import TrainVideo, reflect_index

H, W = 60, 80
BACKGROUND_G, OBJECT_G = 200, 20  # green channel tells objects from background in the frames


def _frame(index: int, labels: np.ndarray) -> np.ndarray:
    """Red encodes the frame index (10 + 8 k) on the background; objects are dark green."""
    frame = np.empty((*labels.shape, 3), np.uint8)
    frame[...] = (10 + 8 * index, BACKGROUND_G, 50)
    frame[labels > 0] = (240, OBJECT_G, 240)
    return frame


def _squares(count: int, shift: int = 0) -> np.ndarray:
    """``count`` 12x12 objects (144 pixels each) on a grid, moved right by ``shift``."""
    labels = np.zeros((H, W), np.uint8)
    for k in range(count):
        y, x = 2 + 14 * (k // 5), 2 + 14 * (k % 5) + shift
        labels[y : y + 12, x : x + 12] = k + 1
    return labels


def _write_video(images, annotations, stems, objects):
    for t, stem in enumerate(stems):
        labels = _squares(objects, shift=t % 3)
        images.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_frame(t, labels)).save(images / f"{stem}.jpg", quality=100, subsampling=0)
        write_mask(annotations / f"{stem}.png", labels)


@pytest.fixture(scope="module")
def davis_train(tmp_path_factory):
    root = tmp_path_factory.mktemp("DAVIS")
    seqs = {"two": 2, "twelve": 12}
    for name, objects in seqs.items():
        stems = [f"{t:05d}" for t in range(30)]
        _write_video(
            root / "JPEGImages/480p" / name, root / "Annotations/480p" / name, stems, objects
        )
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/train.txt").write_text("two\ntwelve\n")
    return root


@pytest.fixture(scope="module")
def youtubevos_train(tmp_path_factory):
    root = tmp_path_factory.mktemp("YTB")
    train = root / "train"
    stems = [f"{t:05d}" for t in range(0, 60, 5)]
    videos = {
        "long": {"1": stems, "2": stems[2:], "3": stems[:1]},  # object 3 has one frame only
        "short": {"1": stems[:1]},  # no object spans two frames: skipped
    }
    meta = {
        "videos": {
            v: {"objects": {o: {"frames": f} for o, f in objs.items()}}
            for v, objs in videos.items()
        }
    }
    train.mkdir(parents=True)
    (train / "meta.json").write_text(json.dumps(meta))
    _write_video(train / "JPEGImages/long", train / "Annotations/long", stems, 3)
    _write_video(train / "JPEGImages/short", train / "Annotations/short", stems[:1], 1)
    return root


SMALL = dict(crop_size=(64, 96), short_edge=H, scale_range=(1.0, 1.0))  # no resize, full frame


def _frame_indices(sample) -> list[int]:
    """Decode the frame index from the red channel of background pixels (not padding)."""
    frames = sample["frames"].numpy()
    out = []
    for frame, mask in zip(frames, sample["masks"].numpy(), strict=True):
        r, g = frame[0].astype(int), frame[1].astype(int)
        background = (mask == 0) & (np.abs(g - BACKGROUND_G) < 20)
        out.append(int(round((np.median(r[background]) - 10) / 8)))
    return out


# -- augmentations ----------------------------------------------------------------------------


def test_balanced_crop_retries_to_keep_an_object():
    frames = np.zeros((2, 80, 100, 3), np.uint8)
    masks = np.zeros((2, 80, 100), np.uint8)
    masks[:, 60:75, 5:20] = 1  # one 225-pixel object near a corner

    def hit_rate(max_steps):
        hits = 0
        for seed in range(200):
            _, out, n = transforms.balanced_random_crop(
                frames, masks, np.random.default_rng(seed), (48, 48), max_steps=max_steps
            )
            if n:
                hits += 1
                assert (out[0] == 1).sum() > 100 and out.max() == 1
        return hits / 200

    once, retried = hit_rate(1), hit_rate(5)
    assert retried > once + 0.2  # retrying finds the object far more often


def test_balanced_crop_keeps_reference_objects_only_and_at_most_m():
    masks = np.stack([_squares(12), _squares(12)])
    masks[1, 40:52, 60:72] = 13  # object absent from the reference frame
    frames = np.zeros((*masks.shape, 3), np.uint8)
    _, out, n = transforms.balanced_random_crop(frames, masks, np.random.default_rng(0), (100, 100))
    assert n == 10 and out.max() == 10 and set(np.unique(out[0])) == set(range(11))
    assert (out[1, 40:52, 60:72] == 0).all()


def test_flip_moves_frames_and_masks_together():
    frames = np.zeros((3, 8, 10, 3), np.uint8)
    masks = np.zeros((3, 8, 10), np.uint8)
    frames[:, :, :2] = 255
    masks[:, :, :2] = 1
    f, m = transforms.random_horizontal_flip(frames, masks, np.random.default_rng(0), p=1.0)
    assert (f[:, :, -2:] == 255).all() and (m[:, :, -2:] == 1).all() and m[:, :, :-2].sum() == 0
    f, m = transforms.random_horizontal_flip(frames, masks, np.random.default_rng(0), p=0.0)
    assert f is frames and m is masks


def test_pad_and_merge():
    rng = np.random.default_rng(0)
    frames = np.full((2, 10, 12, 3), 7, np.uint8)
    masks = np.ones((2, 10, 12), np.uint8)
    f, m = transforms.pad_to_size(frames, masks, rng, (16, 16))
    assert f.shape == (2, 16, 16, 3) and m.sum() == masks.sum()
    assert (f[m == 0] == transforms.IMAGE_FILL).all()
    a = (np.zeros((1, 20, 20, 3), np.uint8), np.zeros((1, 20, 20), np.uint8))
    a[1][0, :, :10] = 1
    b = (np.full((1, 20, 20, 3), 9, np.uint8), np.zeros((1, 20, 20), np.uint8))
    b[1][0, 5:17, 5:17] = 1
    f, m, n = transforms.merge_clips(a, b, rng)
    assert n == 2 and (m[0, 5:17, 5:17] == 2).all() and (f[0, 5:17, 5:17] == 9).all()
    assert (m[0, :5, :10] == 1).all()


def test_reflect_index():
    assert [reflect_index(i, 5) for i in range(-2, 12)] == [
        2,
        1,
        0,
        1,
        2,
        3,
        4,
        3,
        2,
        1,
        0,
        1,
        2,
        3,
    ]
    assert reflect_index(7, 1) == 0


# -- video clips --------------------------------------------------------------------------------


def test_davis_train_samples(davis_train):
    dataset = DAVISTrain(davis_train, merge_prob=0.0, seed=0, **SMALL)
    assert len(dataset) == 2 * 5  # DATA_DAVIS_REPEAT
    for i in range(len(dataset)):
        sample = dataset[i]
        assert sample["frames"].shape == (5, 3, 64, 96) and sample["frames"].dtype == torch.uint8
        assert sample["masks"].shape == (5, 64, 96) and sample["masks"].dtype == torch.int64
        n = sample["num_objects"]
        assert 1 <= n <= 10 and sample["masks"].max() <= n and sample["masks"].min() >= 0
        if sample["name"] == "twelve":
            assert n == 10  # 12 objects in the video, M = 10 per sample
        # flip and crop keep frames and masks aligned: object pixels are the dark-green ones
        frames = sample["frames"].numpy()
        inside = sample["masks"].numpy() > 0
        padding = (frames == np.array(transforms.IMAGE_FILL, np.uint8)[None, :, None, None]).all(1)
        green = frames[:, 1].astype(int)
        assert (green[inside] < 110).all()
        if sample["name"] == "two":  # (in "twelve" the 2 objects left out are background)
            assert (green[~inside & ~padding] > 110).all()


def test_davis_train_gaps_and_determinism(davis_train):
    dataset = DAVISTrain(davis_train, max_gap=12, merge_prob=0.0, seed=3, **SMALL)
    diffs = []
    for i in range(len(dataset)):
        indices = _frame_indices(dataset[i])
        diffs += [abs(b - a) for a, b in pairwise(indices)]
    assert max(diffs) <= 12 and max(diffs) > 3
    assert torch.equal(
        dataset[4]["frames"], DAVISTrain(davis_train, merge_prob=0.0, seed=3, **SMALL)[4]["frames"]
    )
    first = dataset[4]["frames"]
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[4]["frames"])


def test_choose_frames_gap_limits(monkeypatch):
    video = TrainVideo("v", tuple(range(200)), tuple(range(200)))
    dataset = VOSTrain([video], max_gap=3, reverse=False, seed=0)
    monkeypatch.setattr(training, "read_mask", lambda path: np.ones((20, 20), np.uint8))
    for seed in range(50):
        chosen = dataset.choose_frames(video, np.random.default_rng(seed))
        assert len(chosen) == 5
        if chosen[0] + 12 < 200:  # no reflection at the end: every gap is 1..3
            assert all(1 <= b - a <= 3 for a, b in pairwise(chosen))
        else:
            assert all(abs(b - a) <= 3 for a, b in pairwise(chosen))


def test_youtubevos_train_samples(youtubevos_train):
    dataset = YouTubeVOSTrain(youtubevos_train, merge_prob=0.0, seed=0, **SMALL)
    assert [v.name for v in dataset.videos] == ["long"] and len(dataset) == 1
    assert len(dataset.videos[0].frame_paths) == 12
    sample = dataset[0]
    assert sample["frames"].shape == (5, 3, 64, 96) and sample["num_objects"] == 3
    diffs = np.abs(np.diff(_frame_indices(sample)))
    assert diffs.max() <= 3  # DATA_RANDOM_GAP_YTB, counted in annotated frames


def test_merge_pastes_a_second_video(davis_train):
    sample = DAVISTrain(davis_train, merge_prob=1.0, seed=0, **SMALL)[0]
    assert "+" in sample["name"] and sample["num_objects"] <= 10


def test_video_errors(tmp_path, davis_train):
    with pytest.raises(ValueError, match="no training videos"):
        VOSTrain([])
    with pytest.raises(FileNotFoundError, match="aot-edu download dataset davis2017"):
        DAVISTrain(tmp_path / "empty")
    (tmp_path / "ytb/train/JPEGImages").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="meta.json"):
        YouTubeVOSTrain(tmp_path / "ytb")
    bad = TrainVideo(
        "bad",
        tuple(sorted((davis_train / "JPEGImages/480p/two").glob("*.jpg")))[:3],
        (davis_train / "Annotations/480p/two/00000.png",) * 2 + (tmp_path / "small.png",),
    )
    write_mask(tmp_path / "small.png", np.ones((10, 10), np.uint8))
    with pytest.raises(ValueError, match="its frame"):
        VOSTrain([bad], seq_len=3, seed=0).load(bad, [0, 1, 2])


# -- static images ------------------------------------------------------------------------------


@pytest.fixture
def static_root(tmp_path):
    root = tmp_path / "static"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(3):
        labels = _squares(3 + k)
        Image.fromarray(_frame(k, labels)).save(root / "images" / f"img{k}.jpg")
        write_mask(root / "masks" / f"img{k}.png", labels)
    salient = np.zeros((H, W), np.uint8)
    salient[10:40, 20:60] = 255  # 0/255 grayscale saliency mask -> one object
    Image.fromarray(_frame(3, salient)).save(root / "images" / "sal.png")
    Image.fromarray(salient, mode="L").save(root / "masks" / "sal.png")
    return root


def test_static_train_samples(static_root):
    dataset = StaticTrain(static_root, size=(48, 48), merge_prob=0.0, seed=0)
    assert len(dataset) == 4
    for i in range(4):
        sample = dataset[i]
        assert sample["frames"].shape == (5, 3, 48, 48) and sample["masks"].shape == (5, 48, 48)
        assert 1 <= sample["num_objects"] <= 5 and sample["masks"].max() <= sample["num_objects"]
    assert dataset[3]["num_objects"] == 1  # the saliency mask is a single object
    assert torch.equal(
        dataset[1]["frames"],
        StaticTrain(static_root, (48, 48), merge_prob=0.0, seed=0)[1]["frames"],
    )
    merged = StaticTrain(static_root, size=(48, 48), max_objects=4, seed=1)[0]  # merge_prob 1.0
    assert "+" in merged["name"] and merged["num_objects"] <= 4


def test_static_train_errors(tmp_path, static_root):
    (tmp_path / "empty/images").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images"):
        StaticTrain(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="images/"):
        StaticTrain(tmp_path)
    (static_root / "masks/img0.png").unlink()
    with pytest.raises(FileNotFoundError, match="img0.jpg"):
        StaticTrain(static_root)
    write_mask(static_root / "masks/img0.png", np.ones((10, 10), np.uint8))
    with pytest.raises(ValueError, match="must have its image's size"):
        StaticTrain(static_root, size=(32, 32))[0]
    Image.fromarray(np.full((H, W, 3), (1, 2, 3), np.uint8)).save(static_root / "masks/img0.png")
    with pytest.raises(ValueError, match="outside the DAVIS palette"):
        StaticTrain(static_root, size=(32, 32))[0]


# -- collate ------------------------------------------------------------------------------------


def test_collate_batches_equal_sizes_only(davis_train):
    dataset = DAVISTrain(davis_train, merge_prob=0.0, seed=0, **SMALL)
    batch = collate([dataset[0], dataset[1], dataset[2]])
    assert batch["frames"].shape == (3, 5, 3, 64, 96) and batch["masks"].shape == (3, 5, 64, 96)
    assert batch["num_objects"].dtype == torch.int64 and batch["name"] == ["two", "twelve", "two"]
    other = DAVISTrain(davis_train, merge_prob=0.0, seed=0, crop_size=(32, 32), short_edge=H)[0]
    with pytest.raises(ValueError, match="differ in size"):
        collate([dataset[0], other])
    with pytest.raises(ValueError, match="at least one"):
        collate([])
