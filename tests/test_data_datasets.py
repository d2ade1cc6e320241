"""Evaluation readers (DAVIS 2016/2017, YouTube-VOS valid) and the DAVIS-layout writer."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image

from aot_edu.data import (
    DAVIS,
    SyntheticVideos,
    YouTubeVOS,
    read_mask,
    write_davis_layout,
    write_mask,
)
from conftest import require_shared

# Frame counts from ../shared/datasets/DAVIS2016/README.md.
DAVIS2016_FRAMES = {
    "blackswan": 50,
    "bmx-trees": 80,
    "breakdance": 84,
    "camel": 90,
    "car-roundabout": 75,
    "car-shadow": 40,
    "cows": 104,
    "dance-twirl": 90,
    "dog": 60,
    "drift-chicane": 52,
    "drift-straight": 50,
    "goat": 90,
    "horsejump-high": 50,
    "kite-surf": 50,
    "libby": 49,
    "motocross-jump": 40,
    "paragliding-launch": 80,
    "parkour": 100,
    "scooter-black": 43,
    "soapbox": 99,
}
DAVIS2016_WITH_FRAMES = {"blackswan", "car-shadow", "dog", "libby", "motocross-jump"}


def _jpeg(path, value, size=(24, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path, quality=95)


# -- real DAVIS 2016 -------------------------------------------------------------------------


def test_real_davis2016_sequences_and_frame_counts():
    root = require_shared("datasets", "DAVIS2016")
    davis = DAVIS(root, year=2016, split="val")
    assert davis.names == sorted(DAVIS2016_FRAMES)
    assert {s.name: len(s) for s in davis} == DAVIS2016_FRAMES
    assert sum(len(s) for s in davis) == 1376
    assert {s.name for s in davis.with_frames()} == DAVIS2016_WITH_FRAMES
    for sequence in davis:
        assert sequence.reference_frames == [0] and sequence.object_ids == [1]
        assert sorted(sequence.annotations) == list(range(len(sequence)))


def test_real_davis2016_masks_are_label_1_and_frames_load():
    root = require_shared("datasets", "DAVIS2016")
    davis = DAVIS(root, year=2016)
    for name in ("blackswan", "camel", "soapbox"):  # masks exist even without frames
        mask = davis[name].mask(0)
        assert mask.shape == (480, 854) and set(np.unique(mask)) == {0, 1}
    blackswan = davis["blackswan"]
    first, second = itertools.islice(iter(blackswan), 2)  # lazy: only two frames are read
    assert first.image.shape == (480, 854, 3) and first.image.dtype == np.uint8
    assert first.mask is not None and first.new_objects == (1,)
    assert second.mask is None and second.new_objects == ()
    assert blackswan.output_name(49) == "00049.png"


def test_real_davis2016_missing_frames_give_a_clear_error():
    root = require_shared("datasets", "DAVIS2016")
    camel = DAVIS(root, year=2016)["camel"]
    assert not camel.has_frames and len(camel) == 90
    with pytest.raises(FileNotFoundError, match="has_frames"):
        camel.frame(0)
    with pytest.raises(FileNotFoundError, match="aot-edu download dataset davis2017"):
        next(iter(camel))


# -- DAVIS 2017 fixture ------------------------------------------------------------------------


@pytest.fixture
def davis2017(tmp_path):
    """Two sequences; 'multi' uses ids 1 and 3 and a void border, 'solo' has no JPEGs."""
    root = tmp_path / "DAVIS"
    for t in range(4):
        _jpeg(root / "JPEGImages/480p/multi" / f"{t:05d}.jpg", 40 * t)
        labels = np.zeros((24, 32), np.uint8)
        labels[2:10, 2:10] = 1
        labels[12:20, 12 + t : 20 + t] = 3
        labels[0, :] = 255
        write_mask(root / "Annotations/480p/multi" / f"{t:05d}.png", labels)
    for t in range(3):
        write_mask(
            root / "Annotations/480p/solo" / f"{t:05d}.png", np.eye(24, 32, dtype=np.uint8) * 2
        )
    (root / "ImageSets/2017").mkdir(parents=True)
    (root / "ImageSets/2017/val.txt").write_text("multi\nsolo\n")
    (root / "ImageSets/2016").mkdir(parents=True)
    (root / "ImageSets/2016/val.txt").write_text("multi\n")
    return root


def test_davis2017_reindexes_objects_and_keeps_void(davis2017, tmp_path):
    multi = DAVIS(davis2017)["multi"]
    assert multi.object_ids == [1, 3] and multi.num_objects == 2
    mask = multi.mask(2)
    assert set(np.unique(mask)) == {0, 1, 2, 255}
    assert (mask[12:20, 14:22] == 2).all() and (mask[0] == 255).all()
    assert multi.masks().shape == (4, 24, 32)
    assert multi.frames().shape == (4, 24, 32, 3)
    # Predictions are written back with the dataset's ids.
    path = multi.save_prediction(tmp_path / "results", 1, np.where(mask == 255, 0, mask))
    assert path == tmp_path / "results/multi/00001.png"
    assert set(np.unique(read_mask(path))) == {0, 1, 3}
    with pytest.raises(ValueError, match="0..2"):
        multi.to_dataset_labels(np.full((2, 2), 3))


def test_davis_annotation_only_sequence_and_year_2016_merges_objects(davis2017):
    solo = DAVIS(davis2017)["solo"]
    assert len(solo) == 3 and not solo.has_frames and solo.object_ids == [2]
    merged = DAVIS(davis2017, year=2016)["multi"]
    assert merged.object_ids == [1]
    assert set(np.unique(merged.mask(0))) == {0, 1}  # every non-zero pixel is the one object


def test_davis_wrong_roots_name_the_expected_folder(tmp_path, davis2017):
    with pytest.raises(FileNotFoundError, match="aot-edu download dataset davis2017"):
        DAVIS(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/2017/train\.txt"):
        DAVIS(davis2017, split="train")
    with pytest.raises(FileNotFoundError, match=r"Annotations/480p"):
        DAVIS(tmp_path)
    with pytest.raises(ValueError, match="split"):
        DAVIS(davis2017, split="validation")
    with pytest.raises(KeyError, match="no sequence"):
        DAVIS(davis2017)["bear"]


# -- YouTube-VOS fixture -----------------------------------------------------------------------


@pytest.fixture
def youtubevos(tmp_path):
    """valid/: 'vid' (object 2 from 00000, object 5 from 00010) and 'late' (first object at
    00005 although 00000 exists); valid_all_frames/ with every frame of 'vid'."""
    root = tmp_path / "YTB"
    valid = root / "2019" / "valid"
    meta = {
        "videos": {
            "vid": {
                "objects": {
                    "2": {"category": "cat", "frames": ["00000", "00005", "00010", "00015"]},
                    "5": {"category": "dog", "frames": ["00010", "00015"]},
                }
            },
            "late": {"objects": {"1": {"category": "car", "frames": ["00005", "00010"]}}},
        }
    }
    valid.mkdir(parents=True)
    (valid / "meta.json").write_text(json.dumps(meta))
    for t in (0, 5, 10, 15):
        _jpeg(valid / "JPEGImages/vid" / f"{t:05d}.jpg", 10 * t)
    for t in range(16):
        _jpeg(root / "2019/valid_all_frames/JPEGImages/vid" / f"{t:05d}.jpg", 10 * t)
    for t in (0, 5, 10):
        _jpeg(valid / "JPEGImages/late" / f"{t:05d}.jpg", 10 * t)
    first = np.zeros((24, 32), np.uint8)
    first[:8, :8] = 2
    write_mask(valid / "Annotations/vid/00000.png", first)
    later = np.zeros((24, 32), np.uint8)
    later[10:20, 10:20] = 5  # only the new object is annotated, as in YouTube-VOS valid
    write_mask(valid / "Annotations/vid/00010.png", later)
    write_mask(valid / "Annotations/late/00005.png", first // 2)
    return root


def test_youtubevos_objects_appearing_later(youtubevos):
    ytvos = YouTubeVOS(youtubevos, year=2019)
    assert ytvos.names == ["vid", "late"]
    vid = ytvos["vid"]
    assert vid.frame_names == ["00000", "00005", "00010", "00015"]
    assert vid.reference_frames == [0, 2] and vid.object_ids == [2, 5]
    assert [vid.new_objects(i) for i in range(4)] == [[1], [], [2], []]
    assert [vid.num_objects_at(i) for i in range(4)] == [1, 1, 2, 2]
    assert set(np.unique(vid.mask(2))) == {0, 2}  # object 5 re-indexed to 2
    frames = list(vid)
    assert [f.mask is not None for f in frames] == [True, False, True, False]
    assert frames[2].new_objects == (2,)
    with pytest.raises(KeyError, match="annotated frames"):
        vid.mask(1)


def test_youtubevos_skips_frames_before_the_first_object(youtubevos):
    late = YouTubeVOS(youtubevos)["late"]
    assert late.frame_names == ["00005", "00010"] and late.reference_frames == [0]
    assert late.output_frames == [0, 1]


def test_youtubevos_all_frames_outputs_the_sparse_frames(youtubevos):
    vid = YouTubeVOS(youtubevos, all_frames=True)["vid"]
    assert len(vid) == 16 and vid.has_frames
    assert vid.reference_frames == [0, 10] and vid.new_objects(10) == [2]
    assert vid.output_frames == [0, 5, 10, 15]
    assert vid.annotations[10].name == "00010.png"


def test_youtubevos_layouts_and_errors(youtubevos, tmp_path):
    assert YouTubeVOS(youtubevos / "2019").names == ["vid", "late"]  # root/valid also works
    with pytest.raises(FileNotFoundError, match="youtubevos2019"):
        YouTubeVOS(tmp_path / "missing")
    (youtubevos / "2019/valid/meta.json").write_text('{"videos": [1, 2]}')
    with pytest.raises(ValueError, match="meta.json"):
        YouTubeVOS(youtubevos)
    (youtubevos / "2019/valid/meta.json").write_text('{"videos": {}}')
    with pytest.raises(ValueError, match="lists no videos"):
        YouTubeVOS(youtubevos)


# -- download hints ----------------------------------------------------------------------------


def _hints(call) -> str:
    """The message of the error ``call()`` raises."""
    with pytest.raises((FileNotFoundError, ValueError)) as caught:
        call()
    return str(caught.value)


def _assert_names_a_download_that_exists(message: str, dataset: str) -> None:
    """Every ``aot-edu download dataset ...`` in ``message`` parses and names a registered
    dataset and part; without one, the message says where else to get ``dataset``."""
    import re
    import shlex

    from aot_edu.cli import build_parser
    from aot_edu.data.sources import get_dataset

    commands = re.findall(r"`(aot-edu download[^`]*)`", message)
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])  # SystemExit if invalid
        source = get_dataset(args.name)
        for part in args.part or []:
            source.archive(part)
    if not commands:
        assert f"aot-edu does not download {dataset}" in message and "--data-root" in message, \
            message


def test_every_dataset_error_names_a_download_that_exists(tmp_path, youtubevos, davis2017):
    # The reviewer's case: `aot-edu eval --dataset youtubevos2018` said to run
    # `aot-edu download dataset youtubevos2018`, which the command rejects.
    from aot_edu.data.datasets import open_dataset
    from aot_edu.data.sources import DATASETS
    from aot_edu.evaluation.benchmark import run_benchmark

    messages = []
    for name in (s.name for s in DATASETS):
        messages.append((name, _hints(lambda n=name: open_dataset(n, root=tmp_path / "no"))))
    ytb2018 = youtubevos / "2018"
    (youtubevos / "2019").rename(ytb2018)
    (ytb2018 / "valid_all_frames").rename(tmp_path / "elsewhere")
    messages.append(("youtubevos2018", _hints(lambda: YouTubeVOS(ytb2018, year=2018,
                                                                 all_frames=True))))
    (ytb2018 / "valid/JPEGImages/vid/00005.jpg").unlink()
    messages.append(("youtubevos2018",
                     _hints(lambda: YouTubeVOS(ytb2018, year=2018)["vid"].frames())))
    messages.append(("youtubevos2018", _hints(lambda: run_benchmark(
        YouTubeVOS(ytb2018, year=2018), None, None, tmp_path / "out"))))
    (ytb2018 / "valid/meta.json").unlink()
    messages.append(("youtubevos2018", _hints(lambda: YouTubeVOS(ytb2018, year=2018))))
    messages.append(("davis2016", _hints(lambda: DAVIS(davis2017, year=2016).sequence("solo").frames())))
    messages.append(("davis2017", _hints(lambda: DAVIS(davis2017, split="train"))))
    (davis2017 / "ImageSets/2017/val.txt").write_text("multi\nbear\n")
    messages.append(("davis2017", _hints(lambda: DAVIS(davis2017)["bear"])))
    for dataset, message in messages:
        _assert_names_a_download_that_exists(message, dataset)
    assert "youtube-vos.org" in messages[4][1]  # where to get 2018 instead


# -- DAVIS layout writer -----------------------------------------------------------------------


def test_write_davis_layout_round_trip(tmp_path):
    videos = SyntheticVideos(num_videos=2, num_frames=3, size=33, num_objects=(2, 2), seed=5)
    root = write_davis_layout(videos, tmp_path / "toy")
    davis = DAVIS(root, year=2017, split="val")
    assert davis.names == [videos.name(0), videos.name(1)]
    for i, sequence in enumerate(davis):
        frames, labels = videos.video(i)
        assert sequence.has_frames and len(sequence) == 3
        assert sequence.object_ids == [1, 2]
        assert np.array_equal(sequence.masks(), labels)  # PNG: exact
        error = np.abs(sequence.frames().astype(int) - frames.astype(int)).mean()
        assert error < 8  # JPEG: close
    with pytest.raises(ValueError, match="unique"):
        write_davis_layout([("a", frames, labels), ("a", frames, labels)], tmp_path / "dup")
    with pytest.raises(ValueError, match=r"masks must be \[T, H, W\]"):
        write_davis_layout([("b", frames, labels[:, :5])], tmp_path / "bad")
