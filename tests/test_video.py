"""aot_edu.video: your own video in (a real mp4 / webm / gif encoded with PyAV), mask PNGs and an
overlay video out; objects that appear later; long videos; bad input refused before any work,
and nothing lost when a video breaks off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aot_edu import viz
from aot_edu.data import VideoSource, davis_palette, read_mask, write_mask
from aot_edu.video import LONG_VIDEO_MEMORY, plan_video, segment_video
from conftest import ROOT, encode_video, moving_squares

av = pytest.importorskip("av")
QUIET = {"progress": False, "log": None}


@pytest.fixture(scope="module")
def model(random_aott):
    return random_aott


@pytest.fixture(scope="module")
def squares():
    """10 frames 64x96; a third square appears at frame 5."""
    return moving_squares(10, appear=5)


def decode(path):
    with av.open(str(path)) as container:
        frames = [(f.to_ndarray(format="rgb24"), f.time) for f in container.decode(video=0)]
    return np.stack([f for f, _ in frames]), [t for _, t in frames]


def swatch_shown(picture: np.ndarray, label: int) -> bool:
    """Whether the legend band at the top of an overlay frame shows label's colour swatch."""
    band = picture[:16].astype(int)
    return bool((np.abs(band - davis_palette()[label]).max(axis=-1) < 30).sum() >= 6)


def test_a_video_file_in_masks_and_an_overlay_out(tmp_path, model, squares):
    frames, truth = squares
    video = encode_video(tmp_path / "clip.mp4", frames)
    result = segment_video(video, truth[0], model, out=tmp_path / "masks",
                           overlay=tmp_path / "clip_aot.mp4", **QUIET)
    assert result.frames == 10 and result.masks_written == 10
    assert result.entry_frames == {1: 0, 2: 0} and result.max_long_term_frames is None
    names = sorted(p.name for p in (tmp_path / "masks").iterdir())
    assert names == [f"{i:05d}.png" for i in range(10)]
    assert np.array_equal(read_mask(tmp_path / "masks" / "00000.png"), truth[0])

    overlay, times = decode(tmp_path / "clip_aot.mp4")
    assert overlay.shape == (10, 64, 96, 3)
    assert times == pytest.approx([i / 25 for i in range(10)], abs=1e-3)
    # frame 0: each object's colour sits where its mask is (what the overlay painted there)
    source = next(iter(VideoSource(video)))
    expected = viz.overlay(source, truth[0]).astype(int)
    for label in (1, 2):
        inside = truth[0] == label  # its interior: 4:2:0 chroma smears the 1-pixel outline
        inside = inside & np.roll(inside, 2, 0) & np.roll(inside, -2, 0) \
            & np.roll(inside, 2, 1) & np.roll(inside, -2, 1)
        inside[:16] = False  # the legend band
        assert inside.sum() > 20
        assert np.abs(overlay[0][inside] - expected[inside]).mean() < 8
        assert np.abs(source[inside].astype(int) - expected[inside]).mean() > 20
    assert swatch_shown(overlay[0], 1) and swatch_shown(overlay[0], 2)


def test_an_object_added_at_frame_k_is_absent_before_and_tracked_from_k(tmp_path, model, squares):
    frames, truth = squares
    video = encode_video(tmp_path / "clip.webm", frames)
    write_mask(tmp_path / "first.png", truth[0])
    newcomer = np.where(truth[5] == 3, 3, 0).astype(np.uint8)
    write_mask(tmp_path / "newcomer.png", newcomer)
    result = segment_video(video, {0: tmp_path / "first.png", 5: tmp_path / "newcomer.png"},
                           model, out=tmp_path / "masks", overlay=tmp_path / "clip_aot.gif",
                           **QUIET)
    assert result.entry_frames == {1: 0, 2: 0, 3: 5}
    masks = np.stack([read_mask(tmp_path / "masks" / f"{i:05d}.png") for i in range(10)])
    assert not (masks[:5] == 3).any()
    assert np.array_equal(masks[5] == 3, truth[5] == 3)  # the given mask, on its frame
    overlay, _ = decode(tmp_path / "clip_aot.gif")
    assert len(overlay) == 10
    assert [swatch_shown(f, 3) for f in overlay] == [False] * 5 + [True] * 5  # the legend


COURSE_MODEL = ROOT / "aot_edu" / "assets" / "course_model.pt"


def test_the_course_model_tracks_an_object_that_appears_later(tmp_path):
    """Real tracking (the shipped AOT-B): J of every object stays high, the newcomer included."""
    if not COURSE_MODEL.is_file():
        pytest.skip(f"{COURSE_MODEL.relative_to(ROOT)} is absent (the course model ships later)")
    from aot_edu.course.model import load_course_model

    frames, truth = moving_squares(16, h=96, w=160, appear=6)
    video = encode_video(tmp_path / "clip.mp4", frames)
    newcomer = np.where(truth[6] == 3, 3, 0)
    segment_video(video, {0: truth[0], 6: newcomer}, load_course_model("cpu"),
                  out=tmp_path / "masks", **QUIET)
    masks = np.stack([read_mask(tmp_path / "masks" / f"{i:05d}.png") for i in range(16)])
    assert not (masks[:6] == 3).any()
    for label, first in ((1, 0), (2, 0), (3, 6)):
        for t in range(first + 1, 16):
            pred, true = masks[t] == label, truth[t] == label
            assert (pred & true).sum() / (pred | true).sum() > 0.5, (label, t)


def test_part_of_a_video_every_nth_frame_masks_keyed_by_frame_number(tmp_path, model, squares):
    frames, truth = squares
    video = encode_video(tmp_path / "clip.mp4", frames)
    newcomer = np.where(truth[6] == 3, 3, 0)
    result = segment_video(video, {2: truth[2], 6: newcomer}, model, out=tmp_path / "masks",
                           start="0.08s", every=2, **QUIET)
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == [
        "00002.png", "00004.png", "00006.png", "00008.png"]
    assert result.entry_frames == {1: 2, 2: 2, 3: 6}
    assert np.array_equal(read_mask(tmp_path / "masks" / "00002.png"), truth[2])


def test_a_variable_frame_rate_overlay_keeps_the_source_timing(tmp_path, model, squares):
    frames, truth = squares
    times = [0, 0.04, 0.08, 0.2, 0.24, 0.5, 0.54, 0.58, 0.62, 0.66]
    video = encode_video(tmp_path / "vfr.mp4", frames, times=times)
    notes = []
    segment_video(video, truth[0], model, overlay=tmp_path / "out.mp4", progress=False,
                  log=notes.append)
    assert len(notes) == 1 and "has a variable frame rate (frames 40-260 ms apart)" in notes[0]
    assert "fps=N gives it a constant rate" in notes[0]
    assert decode(tmp_path / "out.mp4")[1] == pytest.approx(times, abs=1e-3)
    segment_video(video, truth[0], model, overlay=tmp_path / "fixed.mp4", fps=10, **QUIET)
    assert decode(tmp_path / "fixed.mp4")[1] == pytest.approx([i / 10 for i in range(10)])


@pytest.mark.parametrize("length, gap, bound", [(2000, 5, LONG_VIDEO_MEMORY),
                                                (None, 5, LONG_VIDEO_MEMORY),
                                                (2000, 9999, None), (200, 5, None)])
def test_long_videos_get_a_bounded_memory_said_in_the_output(tmp_path, model, squares, monkeypatch,
                                                            length, gap, bound):
    frames, truth = squares
    job = plan_video(encode_video(tmp_path / "clip.mp4", frames[:3]), truth[0],
                     overlay=tmp_path / "out.mp4")
    monkeypatch.setattr(job.source, "expected_frames", lambda: length)  # as a long file says
    notes = []
    result = job.run(model, long_term_gap=gap, progress=False, log=notes.append)
    assert result.max_long_term_frames == bound and result.notes == notes
    if bound is None:
        assert notes == []
    else:
        assert len(notes) == 1 and notes[0].startswith(
            f"long video ({'2000 frames' if length else 'a length its header does not give'}): "
            f"the long-term memory keeps at most {LONG_VIDEO_MEMORY} frames")
        assert "max_long_term_frames=N changes it, max_long_term_frames=None lifts" in notes[0]


def test_a_truncated_video_keeps_the_masks_and_overlay_written(tmp_path, model, squares):
    frames, truth = squares
    data = encode_video(tmp_path / "clip.webm", frames).read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError) as info:
        segment_video(tmp_path / "cut.webm", truth[0], model, out=tmp_path / "masks",
                      overlay=tmp_path / "out.mp4", **QUIET)
    message = str(info.value)
    written = len(list((tmp_path / "masks").iterdir()))
    assert 0 < written < 10 and "\n" not in message
    assert "the file looks truncated" in message
    assert message.endswith(f"the {written} masks written to {tmp_path / 'masks'} are kept and "
                            f"{tmp_path / 'out.mp4'} holds the {written} frames before it")
    assert len(decode(tmp_path / "out.mp4")[0]) == written  # finished, playable


# --- checked before any work -----------------------------------------------------------------

@pytest.fixture
def clip_and_mask(tmp_path, squares):
    frames, truth = squares
    video = encode_video(tmp_path / "clip.mp4", frames)
    write_mask(tmp_path / "first.png", truth[0])
    return video, tmp_path / "first.png"


@pytest.mark.parametrize(
    "masks, options, message",
    [
        ("first", {}, r"^nothing to write: give out \(a folder for the mask PNGs\) and/or overlay"),
        ("small", {"overlay": "o.mp4"},
         r"^mask .*small.png is 48x32 \(WxH\) but the video clip.mp4 is 96x64; give each mask at "
         r"the frame size"),
        ("empty", {"overlay": "o.mp4"}, r"^mask .*empty.png is empty \(all background\)"),
        ({0: "first", 40: "first"}, {"overlay": "o.mp4"},
         r"^the mask for frame 40 lies past the end of .*clip.mp4, which has 10 frames \(0..9\)"),
        ({0: "first", 3: "first"}, {"overlay": "o.mp4", "every": 2},
         r"^frame 3 is skipped by every 2 \(frames 0, 2, 4, ...\); give the mask of frame 2 or 4"),
        ({0: "first"}, {"overlay": "o.mp4", "start": 4},
         r"^the masks must include frame 4, the first frame segmented \(start 4\); got frame 0: "
         r"give the first mask the key 4 \(or give a single mask\)"),
        ({0: "first", 8: "first"}, {"overlay": "o.mp4", "end": 6},
         r"^the mask for frame 8 lies past the end of the frames segmented \(end 6\): end 6 is "
         r"exclusive"),
        ("first", {"overlay": "clip.mp4"},
         r"^overlay .*clip.mp4 is an input of this run; give another file"),
        ("first", {"overlay": "out.avi"}, r"^overlay .*out.avi: write a .mp4, .mov, .mkv, .webm, "
                                          r".gif file"),
        ("first", {"overlay": "old.mp4"}, r"^overlay .*old.mp4 already exists; pass overwrite=True"),
        ("first", {"out": "masks"}, r"^out .*masks already holds 1 of the masks this run would "
                                    r"write \(00003.png\); pass overwrite=True"),
        ("first", {"out": "."}, r"^out .* is the folder of mask .*first.png"),
        ("first", {"overlay": "o.mp4", "start": "9s"}, r"^start 9s is past the end of"),
    ],
)
def test_bad_input_is_refused_before_any_work(tmp_path, clip_and_mask, masks, options, message):
    video, first = clip_and_mask
    write_mask(tmp_path / "small.png", read_mask(first)[:32, :48])
    write_mask(tmp_path / "empty.png", read_mask(first) * 0)
    (tmp_path / "old.mp4").write_bytes(b"an earlier overlay")
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "00003.png").write_bytes(b"an earlier mask")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    given = ({k: tmp_path / f"{v}.png" for k, v in masks.items()} if isinstance(masks, dict)
             else tmp_path / f"{masks}.png")
    options = {k: tmp_path / v if k in ("out", "overlay") else v for k, v in options.items()}
    with pytest.raises(ValueError, match=message):
        plan_video(video, given, **options)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing created
    assert (tmp_path / "old.mp4").read_bytes() == b"an earlier overlay"


def test_masks_as_arrays_or_tensors_and_labels_pngs_cannot_hold(tmp_path, clip_and_mask):
    video, first = clip_and_mask
    labels = read_mask(first).astype(np.int64)
    job = plan_video(video, torch.as_tensor(labels), overlay=tmp_path / "o.mp4")
    assert np.array_equal(job.masks[None], labels) and job.expected_frames() == 10
    labels[labels == 2] = 300
    with pytest.raises(ValueError, match=r"^mask holds labels outside 0..255, which PNG masks "
                                         r"cannot hold; renumber"):
        plan_video(video, labels, out=tmp_path / "masks")
    assert plan_video(video, labels, overlay=tmp_path / "o.mp4").masks[None].max() == 300
    with pytest.raises(TypeError, match=r"^mask must be a label map \(numpy array or torch "
                                        r"tensor\) or a PNG file, got list"):
        plan_video(video, [[0, 1]], overlay=tmp_path / "o.mp4")
    with pytest.raises(ValueError, match="masks are keyed by frame number, a whole number >= 0"):
        plan_video(video, {-2: labels}, overlay=tmp_path / "o.mp4")


def test_a_folder_of_frames_works_the_same(tmp_path, model, squares):
    from PIL import Image

    frames, truth = squares
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(frames[:4]):
        Image.fromarray(image).save(folder / f"frame{i}.jpg")
    result = segment_video(folder, truth[0], model, out=tmp_path / "masks",
                           overlay=tmp_path / "out.mp4", **QUIET)
    assert sorted(p.name for p in Path(tmp_path / "masks").iterdir()) == [
        f"frame{i}.png" for i in range(4)]
    assert result.frames == 4 and decode(tmp_path / "out.mp4")[1] == pytest.approx(
        [i / 24 for i in range(4)])  # a folder has no times: 24 fps


def test_a_mask_past_a_time_end_is_found_at_the_end_with_nothing_lost(tmp_path, model, squares):
    frames, truth = squares
    video = encode_video(tmp_path / "clip.mp4", frames)
    with pytest.raises(ValueError, match=r"^a mask was given for frame 8 but the frames segmented "
                                         r"\(end 0.2s\) end at frame 4; the 5 masks written to "
                                         r".*masks are kept$"):
        segment_video(video, {0: truth[0], 8: truth[8]}, model, out=tmp_path / "masks",
                      end="0.2s", **QUIET)
    assert len(list((tmp_path / "masks").iterdir())) == 5
    with pytest.raises(ValueError, match=r"^out .*clip.mp4 is the input video; give a folder"):
        plan_video(video, truth[0], out=video)
