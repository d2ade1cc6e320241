"""aot_edu.data.video: video files decoded frame by frame, frame folders, the overlay writer,
and the one-line errors for files that are not (whole) videos."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from aot_edu.data import FrameFolder, VideoReadError, VideoSource, VideoWriter, read_video_frame
from aot_edu.data.video import Position, parse_position
from conftest import encode_video, moving_squares

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def clip():
    return moving_squares(12)


def decode(path):
    """Frames and times of a video, decoded with PyAV directly."""
    with av.open(str(path)) as container:
        frames = [(f.to_ndarray(format="rgb24"), f.time) for f in container.decode(video=0)]
    return np.stack([f for f, _ in frames]), [t for _, t in frames]


@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif", ".mkv"])
def test_a_video_file_is_decoded_frame_by_frame(tmp_path, clip, suffix):
    frames, _ = clip
    path = encode_video(tmp_path / f"clip{suffix}", frames)
    source = VideoSource(path)
    assert source.size == (64, 96) and source.fps == pytest.approx(25)
    assert source.frame_count == 12 and "12 frames" in source.describe()
    decoded = list(source.frames())
    assert [f.index for f in decoded] == list(range(12))
    assert [f.name for f in decoded[:2]] == ["00000", "00001"]
    assert [f.time for f in decoded[:3]] == pytest.approx([0, 0.04, 0.08], abs=1e-3)
    images = np.stack(list(source))
    assert images.dtype == np.uint8 and images.shape == frames.shape
    # lossy codecs: close, and the squares where they were drawn
    assert np.abs(images.astype(int) - frames).mean() < 8
    assert images[5, 8:24][frames[5, 8:24, :, 0] == 220][:, 0].mean() > 180


def test_start_end_and_every_pick_frames_by_number_or_time(tmp_path, clip):
    path = encode_video(tmp_path / "clip.mp4", clip[0])
    picked = [f.index for f in VideoSource(path, start=2, end=9, every=3).frames()]
    assert picked == [2, 5, 8]
    assert VideoSource(path, start=2, end=9, every=3).expected_frames() == 3
    assert [f.index for f in VideoSource(path, start="0.2s", end="0:00.32").frames()] == [5, 6, 7]
    assert [f.index for f in VideoSource(path, start=0.2, every=4).frames()] == [5, 9]
    assert VideoSource(path, end="0.1s").expected_frames() == 3
    assert np.array_equal(read_video_frame(path, 4), np.stack(list(VideoSource(path)))[4])


@pytest.mark.parametrize(
    "value, expected",
    [(120, Position(frame=120)), ("120", Position(frame=120)), (4.5, Position(seconds=4.5)),
     ("4.5s", Position(seconds=4.5)), ("1:02.5", Position(seconds=62.5)),
     ("1:00:02", Position(seconds=3602)), (None, None)],
)
def test_positions_are_frame_numbers_or_times(value, expected):
    assert parse_position(value) == expected


@pytest.mark.parametrize("value", [-1, "-3", "1m", "abc", True, float("nan"), "s"])
def test_a_bad_position_says_the_forms_it_takes(value):
    with pytest.raises(ValueError, match=r"^start .*: give a frame number \(120\), seconds "
                                         r"\(4.5s\) or minutes:seconds \(1:02.5\)"):
        parse_position(value)


def test_a_selection_that_cannot_hold_frames_is_refused(tmp_path, clip):
    path = encode_video(tmp_path / "clip.mp4", clip[0])
    with pytest.raises(ValueError, match=r"^end 3 is not after start 5: nothing to segment"):
        VideoSource(path, start=5, end=3)
    with pytest.raises(ValueError, match=r"^start 40 is past the end of .*clip.mp4 \(12 frames, "
                                         r"0.5 s, 25 fps, 96x64\)"):
        VideoSource(path, start=40)
    with pytest.raises(ValueError, match=r"^start 2s is past the end"):
        VideoSource(path, start="2s")
    with pytest.raises(ValueError, match="every must be a whole number >= 1"):
        VideoSource(path, every=0)


def test_a_variable_frame_rate_keeps_each_frames_time(tmp_path, clip):
    times = [0, 0.04, 0.08, 0.2, 0.24, 0.5, 0.54, 0.58, 0.62, 0.66, 0.7, 0.74]
    source = VideoSource(encode_video(tmp_path / "vfr.mp4", clip[0], times=times))
    assert [f.time for f in source.frames()] == pytest.approx(times, abs=1e-3)
    assert source.frame_gaps == pytest.approx((0.04, 0.26), abs=1e-3)
    assert [f.index for f in VideoSource(source.path, start="0.45s").frames()][:2] == [5, 6]


def test_a_phone_videos_rotation_is_applied(tmp_path, clip):
    frames = clip[0][:3]
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        if not hasattr(stream, "set_display_rotation"):
            pytest.skip("this PyAV cannot write a rotation flag (set_display_rotation)")
        stream.height, stream.width, stream.pix_fmt = 64, 96, "yuv420p"
        stream.set_display_rotation(90)  # counterclockwise, as phones store portrait videos
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = VideoSource(path)
    assert source.rotation == 90 and source.size == (96, 64)
    upright = next(iter(source))
    assert upright.shape == (96, 64, 3)
    assert np.abs(upright.astype(int) - np.rot90(frames[0])).mean() < 8


# --- what is not a (whole) video ---------------------------------------------------------------

def test_files_that_are_not_videos_get_one_line(tmp_path):
    (tmp_path / "notes.mp4").write_text("not a video\n" * 20)
    with pytest.raises(ValueError, match=r"notes.mp4: not a readable video \(Invalid data found "
                                         r"when processing input\); give a video file"):
        VideoSource(tmp_path / "notes.mp4")
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.jpg")
    with pytest.raises(ValueError, match=r"photo.jpg is an image, not a video; .*--frames"):
        VideoSource(tmp_path / "photo.jpg")
    with pytest.raises(FileNotFoundError, match="video file not found"):
        VideoSource(tmp_path / "missing.mp4")
    with pytest.raises(ValueError, match="is a folder; give a video file"):
        VideoSource(tmp_path)


def test_a_video_without_frames_is_refused(tmp_path, clip):
    data = encode_video(tmp_path / "clip.mkv", clip[0]).read_bytes()
    first_cluster = data.index(bytes.fromhex("1F43B675"))  # where Matroska's frames begin
    (tmp_path / "header.mkv").write_bytes(data[:first_cluster])
    with pytest.raises(ValueError, match=r"header.mkv: the file ends before a video can be read "
                                         r"from it \(End of file\): it is incomplete"):
        VideoSource(tmp_path / "header.mkv")
    (tmp_path / "no_frames.mkv").write_bytes(data[: first_cluster + 8])  # a cluster cut short
    with pytest.raises(ValueError, match=r"no_frames.mkv: the file holds no video frames"):
        VideoSource(tmp_path / "no_frames.mkv")


def test_an_mp4_cut_before_its_index_cannot_be_opened(tmp_path, clip):
    data = encode_video(tmp_path / "clip.mp4", clip[0]).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # the index comes last
    with pytest.raises(ValueError, match=r"cut.mp4: not a readable video .*damaged or "
                                         r"incomplete .*download or export it again"):
        VideoSource(tmp_path / "cut.mp4")


@pytest.mark.parametrize("suffix, faststart", [(".webm", False), (".mp4", True)])
def test_a_truncated_video_delivers_its_frames_then_says_so(tmp_path, clip, suffix, faststart):
    data = encode_video(tmp_path / f"clip{suffix}", clip[0], faststart=faststart).read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    seen = []
    with pytest.raises(VideoReadError, match=r"the file looks (damaged or )?truncated") as info:
        for frame in VideoSource(cut).frames():
            seen.append(frame.index)
    assert 0 < len(seen) < 12 and info.value.frames_read >= len(seen)
    assert str(cut) in str(info.value) and "\n" not in str(info.value)


# --- frame folders -------------------------------------------------------------------------

def test_a_frame_folder_has_the_same_interface(tmp_path, clip):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, image in enumerate(clip[0][:6]):
        Image.fromarray(image).save(folder / f"f{i}.png")
    source = FrameFolder(folder, start=1, every=2)
    assert [(f.index, f.name, f.time) for f in source.frames()] == [
        (1, "f1", None), (3, "f3", None), (5, "f5", None)]
    assert source.expected_frames() == 3 and source.size == (64, 96)
    assert np.array_equal(next(iter(source)), clip[0][1])
    with pytest.raises(ValueError, match="a folder of frames has no times; give start as a "
                                         "frame number"):
        FrameFolder(folder, start="1s")
    with pytest.raises(ValueError, match=r"start 9 is past the end of .*frames \(6 frames\)"):
        FrameFolder(folder, start=9)


# --- writing -------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".gif"])
def test_the_writer_keeps_frames_size_and_times(tmp_path, clip, suffix):
    frames = clip[0][:6]
    times = [0, 0.04, 0.08, 0.3, 0.34, 0.38]  # a variable rate is kept
    with VideoWriter(tmp_path / f"out{suffix}", fps=25) as writer:
        for image, t in zip(frames, times, strict=True):
            writer.write(image, t)
    assert writer.frames == 6
    decoded, decoded_times = decode(tmp_path / f"out{suffix}")
    assert decoded.shape == frames.shape
    assert decoded_times == pytest.approx(times, abs=0.011)
    tolerance = 5 if suffix == ".gif" else 8  # a palette per frame keeps colours close
    assert np.abs(decoded.astype(int) - frames).mean() < tolerance


def test_the_writer_without_times_uses_its_rate_and_pads_odd_sizes(tmp_path, clip):
    frames = clip[0][:4, :63, :95]
    with VideoWriter(tmp_path / "odd.mp4", fps=10) as writer:
        for image in frames:
            writer.write(image)
    decoded, times = decode(tmp_path / "odd.mp4")
    assert decoded.shape == (4, 64, 96, 3) and times == pytest.approx([0, 0.1, 0.2, 0.3])
    assert np.abs(decoded[:, :63, :95].astype(int) - frames).mean() < 8
    with av.open(str(tmp_path / "odd.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(10)


def test_a_writer_closed_after_an_error_leaves_a_playable_file(tmp_path, clip):
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "partial.mp4") as writer:
        for i, image in enumerate(clip[0]):
            if i == 3:
                raise RuntimeError("the run stopped")
            writer.write(image)
    assert len(decode(tmp_path / "partial.mp4")[0]) == 3


def test_the_writer_refuses_what_it_cannot_write(tmp_path, clip):
    with pytest.raises(ValueError, match=r"cannot write .avi; give a .mp4, .mov, .mkv, .webm, "
                                         r".gif file"):
        VideoWriter(tmp_path / "out.avi")
    with pytest.raises(ValueError, match="fps must be a positive number"):
        VideoWriter(tmp_path / "out.mp4", fps=0)
    writer = VideoWriter(tmp_path / "out.mp4")
    with pytest.raises(ValueError, match=r"uint8 RGB \[H, W, 3\], got float64"):
        writer.write(np.zeros((64, 96, 3)))
    writer.write(clip[0][0])
    with pytest.raises(ValueError, match="frame 1 is 48x32 but the video being written is 96x64"):
        writer.write(clip[0][0, :32, :48])
    writer.close()


def test_frames_are_counted_from_packets_when_the_header_does_not_say(tmp_path, clip):
    source = VideoSource(encode_video(tmp_path / "clip.webm", clip[0]))
    assert source.header_frames is None and source.count_frames() == 12
    data = source.path.read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) * 2 // 3])
    cut = VideoSource(tmp_path / "cut.webm")
    assert 0 < cut.count_frames() < 12
    with pytest.raises(VideoReadError, match="looks truncated"):  # counting does not hide it
        list(cut)
