"""aot_edu.cli: the ``aot-edu`` command parses, dispatches, reports errors without tracebacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aot_edu import cli
from aot_edu import download as dl
from aot_edu.data import read_mask, sources, write_mask
from aot_edu.data.sources import downloadable_datasets
from aot_edu.model import build_model, state_dict_layout
from aot_edu.model.zoo import VARIANTS, get_checkpoint


def test_list_shows_checkpoints_datasets_and_folders(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AOT_EDU_CHECKPOINTS", str(tmp_path / "c"))
    monkeypatch.setenv("AOT_EDU_DATA", str(tmp_path / "d"))
    assert cli.main(["download", "list"]) == 0
    out = capsys.readouterr().out
    assert all(v in out for v in VARIANTS)
    assert all(s.name in out for s in downloadable_datasets())
    assert str(tmp_path / "c") in out and str(tmp_path / "d") in out


def fake_gdown(monkeypatch, calls, error=None):
    def fetch(file_id, output, quiet):
        calls.append((file_id, quiet))
        if error is not None:
            raise error
        # an AOT-T layout; expanded zeros keep the file tiny
        state = {k: torch.zeros(1).expand(s) for k, s in state_dict_layout("aott").items()}
        torch.save({"state_dict": state}, output)

    monkeypatch.setattr(dl, "_gdown_fetch", fetch)


def test_download_checkpoint_end_to_end(capsys, monkeypatch, tmp_path):
    calls = []
    fake_gdown(monkeypatch, calls)
    assert cli.main(["download", "checkpoint", "aott", "--dir", str(tmp_path), "--quiet"]) == 0
    path = tmp_path / "AOTT_PRE_YTB_DAV.pth"
    assert capsys.readouterr().out.strip() == str(path)
    assert path.is_file() and calls == [(get_checkpoint("aott").gdrive_id, True)]


def test_download_checkpoint_uses_environment_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("AOT_EDU_CHECKPOINTS", str(tmp_path / "env"))
    calls = []
    fake_gdown(monkeypatch, calls)
    assert cli.main(["download", "checkpoint", "aott", "--stage", "PRE", "--quiet"]) == 0
    assert (tmp_path / "env" / "AOTT_PRE.pth").is_file()
    assert calls[0][0] == get_checkpoint("aott", "PRE").gdrive_id


def test_quota_error_is_a_message_not_a_traceback(capsys, monkeypatch, tmp_path):
    fake_gdown(monkeypatch, [], error=RuntimeError("Too many users have viewed or downloaded "
                                                   "this file recently."))
    assert cli.main(["download", "checkpoint", "aotl", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aot-edu: error: ")
    assert "https://drive.google.com/uc?id=" + get_checkpoint("aotl").gdrive_id in err
    assert str(tmp_path / "AOTL_PRE_YTB_DAV.pth") in err
    assert "Traceback" not in err


def test_unsupported_variant_needs_a_flag(capsys, monkeypatch, tmp_path):
    fake_gdown(monkeypatch, [])
    assert cli.main(["download", "checkpoint", "swinb_aotl", "--dir", str(tmp_path)]) == 1
    assert "allow_unsupported" in capsys.readouterr().err


def test_dataset_arguments_reach_download_dataset(capsys, monkeypatch, tmp_path):
    seen = {}

    def fake_download_dataset(name, root, **kwargs):
        seen.update(name=name, root=root, **kwargs)
        return Path(root) / "DAVIS2017"

    monkeypatch.setattr(sources, "download_dataset", fake_download_dataset)
    argv = ["download", "dataset", "davis2017", "--dir", str(tmp_path), "--part", "trainval",
            "--part", "test-dev", "--remove-archive", "--quiet"]
    assert cli.main(argv) == 0
    assert seen == {"name": "davis2017", "root": str(tmp_path), "parts": ["trainval", "test-dev"],
                    "keep_archive": False, "progress": False}
    assert capsys.readouterr().out.strip() == str(tmp_path / "DAVIS2017")


def test_bad_arguments_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["download", "checkpoint", "aotx"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([])


def test_other_commands_plug_in(monkeypatch, capsys):
    """A later command (segment, eval, train) registers itself the same way download does."""
    def add_hello(subparsers):
        parser = subparsers.add_parser("hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(handler=lambda args: print(f"hello {args.name}") or 7)

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_hello])
    assert cli.main(["hello", "--name", "AOT"]) == 7
    assert capsys.readouterr().out == "hello AOT\n"
    assert cli.main(["download", "list"]) == 0  # download is still there


@pytest.fixture(scope="module")
def aott_weights(tmp_path_factory):
    torch.manual_seed(0)
    weights = tmp_path_factory.mktemp("weights") / "w.pth"
    torch.save({"state_dict": build_model("aott").state_dict()}, weights)
    return weights


def make_video(root, t=3, size=(40, 60), mask_name="first.png"):
    """A folder of noise frames and a two-object first mask (labels 2 and 5)."""
    frames = root / "frames"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(t):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(frames / f"{i:05d}.jpg")
    first = np.zeros(size, np.uint8)
    first[10:30, 5:25], first[10:30, 35:55] = 2, 5
    write_mask(root / mask_name, first)
    return frames, root / mask_name, first


def segment_argv(frames, mask, out, weights, *extra):
    return ["segment", "--frames", str(frames), "--mask", str(mask), "--out", str(out),
            "--variant", "aott", "--weights", str(weights), "--quiet", *extra]


def test_segment_command_writes_one_mask_per_frame(tmp_path, capsys, aott_weights):
    frames, mask, first = make_video(tmp_path)
    status = cli.main(segment_argv(frames, mask, tmp_path / "out", aott_weights,
                                   "--max-long-term-frames", "2"))
    assert status == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["00000.png", "00001.png", "00002.png"]
    assert np.array_equal(read_mask(tmp_path / "out" / "00000.png"), first)
    assert set(np.unique(read_mask(tmp_path / "out" / "00002.png"))) <= {0, 2, 5}
    assert "3 masks (2 objects)" in capsys.readouterr().out


def test_segment_command_needs_weights(tmp_path, capsys):
    assert cli.main(["segment", "--frames", str(tmp_path), "--mask", "m.png", "--out", "o"]) == 1
    assert "--weights PATH" in capsys.readouterr().err


def test_segment_streams_and_an_interrupt_says_what_was_written(tmp_path, monkeypatch, capsys,
                                                               aott_weights):
    """Each mask is written before the next frame is read; Ctrl-C keeps what was written."""
    from aot_edu.data import io

    frames, mask, _ = make_video(tmp_path, t=4)
    events = []
    read_frame, write = io.read_frame, io.write_mask

    def reading(path):
        events.append(f"read {Path(path).stem}")
        return read_frame(path)

    def writing(path, labels):
        if len(events) > 4:  # after mask 00001 is written
            raise KeyboardInterrupt
        events.append(f"write {Path(path).stem}")
        write(path, labels)

    monkeypatch.setattr(io, "read_frame", reading)
    monkeypatch.setattr(io, "write_mask", writing)
    assert cli.main(segment_argv(frames, mask, tmp_path / "out", aott_weights)) == 130
    assert events == ["read 00000", "write 00000", "read 00001", "write 00001", "read 00002"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.png", "00001.png"]
    err = capsys.readouterr().err
    assert "after writing 2 of 4 masks" in err and "--overwrite" in err and "resume" not in err


def test_segment_never_overwrites_inputs_or_earlier_masks(tmp_path, capsys, aott_weights):
    frames, mask, _ = make_video(tmp_path)
    png_frames = tmp_path / "png_frames"
    png_frames.mkdir()
    for path in frames.iterdir():
        Image.open(path).save(png_frames / f"{path.stem}.png")
    before = {p.name: p.read_bytes() for p in png_frames.iterdir()}
    assert cli.main(segment_argv(png_frames, mask, png_frames, aott_weights)) == 1
    assert "is the frames folder" in capsys.readouterr().err
    assert cli.main(segment_argv(png_frames, mask, tmp_path, aott_weights)) == 1
    assert "is the folder of --mask" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in png_frames.iterdir()} == before

    out = tmp_path / "out"
    out.mkdir()
    (out / "00001.png").write_bytes(b"an earlier result")
    assert cli.main(segment_argv(frames, mask, out, aott_weights)) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "00001.png").read_bytes() == b"an earlier result"
    assert cli.main(segment_argv(frames, mask, out, aott_weights, "--overwrite")) == 0
    assert read_mask(out / "00001.png").shape == (40, 60)


def test_segment_skips_the_mask_kept_among_the_frames(tmp_path, capsys, aott_weights):
    frames, _, first = make_video(tmp_path)
    write_mask(frames / "mask.png", first)
    assert cli.main(segment_argv(frames, frames / "mask.png", tmp_path / "out", aott_weights)) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "00000.png", "00001.png", "00002.png"]
    assert "wrote 3 masks" in capsys.readouterr().out


def test_segment_checks_the_mask_before_any_download(tmp_path, monkeypatch, capsys):
    import aot_edu.model.weights as checkpoints
    import aot_edu.model.weights as model_module

    def forbidden(*args, **kwargs):
        raise AssertionError("the checkpoint was fetched before the input was checked")

    monkeypatch.setattr(checkpoints, "download_checkpoint", forbidden)
    monkeypatch.setattr(model_module, "build_model", forbidden)
    frames, mask, first = make_video(tmp_path)
    official = ["--variant", "aott", "--official", "--quiet"]
    base = ["segment", "--frames", str(frames), "--out", str(tmp_path / "out")]
    assert cli.main([*base, "--mask", str(tmp_path / "missing.png"), *official]) == 1
    assert "mask file not found" in capsys.readouterr().err
    write_mask(tmp_path / "small.png", first[:20])
    assert cli.main([*base, "--mask", str(tmp_path / "small.png"), *official]) == 1
    assert "is 60x20 (WxH) but the first frame 00000.jpg is 60x40" in capsys.readouterr().err
    write_mask(tmp_path / "empty.png", first * 0)
    assert cli.main([*base, "--mask", str(tmp_path / "empty.png"), *official]) == 1
    assert "empty" in capsys.readouterr().err
    assert cli.main([*base, "--mask", str(mask), *official, "--device", "gpu"]) == 1
    assert "not a device name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_devices_are_checked_with_a_message(monkeypatch):
    assert cli.resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.resolve_device(None) == "cpu"
    for name, message in [("cuda", "CUDA is not available"), ("gpu", "not a device name"),
                          ("mps", "MPS backend is not available")]:
        if name == "mps" and torch.backends.mps.is_available():
            continue
        with pytest.raises(ValueError, match=message):
            cli.resolve_device(name)


def test_weights_must_be_a_path_or_official_not_both(tmp_path, capsys):
    base = ["segment", "--frames", str(tmp_path), "--mask", "m.png", "--out", "o"]
    for extra, message in [(["--weights", ""], "an empty path"),
                           (["--weights", "w.pt", "--official"], "not allowed with")]:
        with pytest.raises(SystemExit) as info:
            cli.main([*base, *extra])
        assert info.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["eval", "--dataset", "davis2017", "--weights", "w.pt", "--official"])


def test_expected_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    def add_failing(subparsers):
        parser = subparsers.add_parser("fail")
        parser.add_argument("kind")

        def handler(args):
            raise {"value": ValueError("bad input"), "bug": RuntimeError("a bug"),
                   "interrupt": KeyboardInterrupt()}[args.kind]

        parser.set_defaults(handler=handler, interrupted="nothing to redo")

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_failing])
    monkeypatch.delenv("AOT_EDU_DEBUG", raising=False)
    assert cli.main(["fail", "value"]) == 1
    assert capsys.readouterr().err == "aot-edu: error: bad input\n"
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["fail", "bug"])
    with pytest.raises(ValueError, match="bad input"):
        cli.main(["--debug", "fail", "value"])
    monkeypatch.setenv("AOT_EDU_DEBUG", "1")
    with pytest.raises(ValueError, match="bad input"):
        cli.main(["fail", "value"])
    assert cli.main(["fail", "interrupt"]) == 130
    assert capsys.readouterr().err == "aot-edu: interrupted; nothing to redo.\n"


def test_segment_out_errors_name_the_path_before_any_work(tmp_path, monkeypatch, capsys,
                                                          aott_weights):
    """An --out that cannot be written is refused up front; a failed write names its file."""
    import aot_edu.model.weights as model_module
    from aot_edu.data import io

    frames, mask, _ = make_video(tmp_path)
    (tmp_path / "taken").write_text("a file")
    monkeypatch.setattr(model_module, "build_model", lambda *a, **k: pytest.fail("model built"))
    assert cli.main(segment_argv(frames, mask, tmp_path / "taken" / "out", aott_weights)) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"aot-edu: error: --out {tmp_path / 'taken' / 'out'}: ")
    assert "is a file, so no folder can be made there" in err and "Errno" not in err
    monkeypatch.undo()

    def disk_full(path, labels):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(io, "write_mask", disk_full)
    assert cli.main(segment_argv(frames, mask, tmp_path / "out", aott_weights)) == 1
    err = capsys.readouterr().err
    assert (f"could not write {tmp_path / 'out' / '00000.png'} (No space left on device); free "
            "disk space or make --out") in err
    assert "--overwrite" in err and "Errno" not in err


def test_segment_refuses_labels_above_255_with_the_api_as_the_fix(tmp_path, monkeypatch, capsys):
    import aot_edu.model.weights as checkpoints

    monkeypatch.setattr(checkpoints, "download_checkpoint",
                        lambda *a, **k: pytest.fail("downloaded before the mask was checked"))
    frames, _, first = make_video(tmp_path)
    labels = first.astype(np.uint16)
    labels[labels == 5] = 300
    Image.fromarray(labels).save(tmp_path / "m16.png")
    assert cli.main(["segment", "--frames", str(frames), "--mask", str(tmp_path / "m16.png"),
                     "--out", str(tmp_path / "out"), "--variant", "aott", "--official"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"aot-edu: error: {tmp_path / 'm16.png'}: the mask holds label values "
                          "up to 300")
    assert "Renumber the objects" in err and "aot_edu.segment(frames, first_mask, model)" in err
    assert not (tmp_path / "out").exists()


# --- segment --video ---------------------------------------------------------------------------

def video_with_masks(root, t=8, appear=5, suffix=".webm"):
    """A PyAV-encoded video of moving squares, its first mask and the newcomer's (frame
    ``appear``), as PNGs."""
    from conftest import encode_video, moving_squares

    frames, truth = moving_squares(t, appear=appear)
    video = encode_video(root / f"clip{suffix}", frames)
    write_mask(root / "first.png", truth[0])
    write_mask(root / "newcomer.png", np.where(truth[appear] == 3, 3, 0).astype(np.uint8))
    return video, truth


def video_argv(video, weights, *extra):
    return ["segment", "--video", str(video), "--variant", "aott", "--weights", str(weights),
            "--quiet", *extra]


def test_segment_a_video_end_to_end_with_an_object_that_appears_later(tmp_path, capsys,
                                                                      aott_weights):
    pytest.importorskip("av")
    from aot_edu.data import VideoSource

    video, truth = video_with_masks(tmp_path)
    status = cli.main(video_argv(video, aott_weights, "--mask", f"0:{tmp_path / 'first.png'}",
                                 "--mask", f"5:{tmp_path / 'newcomer.png'}",
                                 "--out", str(tmp_path / "masks"),
                                 "--overlay", str(tmp_path / "clip_aot.mp4")))
    out, err = capsys.readouterr()
    assert status == 0 and err == ""
    assert out == (f"wrote 8 masks (3 objects) to {tmp_path / 'masks'}; overlay "
                   f"{tmp_path / 'clip_aot.mp4'} (8 frames)\n"
                   "objects by first mask: 1, 2 from frame 0; 3 from frame 5\n")
    masks = np.stack([read_mask(tmp_path / "masks" / f"{i:05d}.png") for i in range(8)])
    assert np.array_equal(masks[0], truth[0]) and not (masks[:5] == 3).any()
    assert np.array_equal(masks[5] == 3, truth[5] == 3)
    overlay = VideoSource(tmp_path / "clip_aot.mp4")
    assert overlay.size == (64, 96) and len(list(overlay.frames())) == 8


def test_segment_video_options_are_checked_before_the_model(tmp_path, monkeypatch, capsys,
                                                            aott_weights):
    pytest.importorskip("av")
    import aot_edu.model.weights as model_module

    monkeypatch.setattr(model_module, "build_model", lambda *a, **k: pytest.fail("model built"))
    video, _ = video_with_masks(tmp_path)
    first = str(tmp_path / "first.png")
    for extra, message in [
        (["--mask", first], "nothing to write: give --out (a folder for the mask PNGs) and/or "
                            "--overlay (a video file)"),
        (["--mask", first, "--overlay", str(video)], f"--overlay {video} is an input of this run"),
        (["--mask", first, "--mask", f"40:{first}", "--overlay", str(tmp_path / "o.mp4")],
         f"the mask for frame 40 lies past the end of {video}, which has 8 frames (0..7)"),
        (["--mask", f"0:{first}", "--overlay", str(tmp_path / "o.mp4"), "--start", "3"],
         "the masks must include frame 3, the first frame segmented (start 3); got frame 0: give "
         "the first mask --mask 3:PATH (or --mask PATH)"),
        (["--mask", first, "--mask", f"0:{first}", "--overlay", str(tmp_path / "o.mp4")],
         "two masks for frame 0, the first frame segmented; give one"),
        (["--mask", first, "--mask", first, "--overlay", str(tmp_path / "o.mp4")],
         "two masks for the first frame"),
        (["--mask", first, "--overlay", str(tmp_path / "o.mp4"), "--start", "1m"],
         "start '1m': give a frame number (120), seconds (4.5s) or minutes:seconds (1:02.5)"),
    ]:
        assert cli.main(video_argv(video, aott_weights, *extra)) == 1, extra
        err = capsys.readouterr().err
        assert err.startswith("aot-edu: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.parametrize("value, message", [("48:", "give a file after the frame number"),
                                            ("", "an empty path")])
def test_segment_mask_option_forms(value, message, capsys):
    with pytest.raises(SystemExit):
        cli.main(["segment", "--video", "v.mp4", "--mask", value, "--out", "o"])
    assert message in capsys.readouterr().err
    assert cli._mask_option("48:new.png") == (48, "new.png")
    assert cli._mask_option("C:\\masks\\first.png") == (None, "C:\\masks\\first.png")
    assert cli._long_term_bound("none") is None and cli._long_term_bound("7") == 7


def test_segment_a_truncated_video_keeps_what_was_written(tmp_path, capsys, aott_weights):
    pytest.importorskip("av")
    video, _ = video_with_masks(tmp_path, t=10)
    data = video.read_bytes()
    (tmp_path / "cut.webm").write_bytes(data[: len(data) * 2 // 3])
    status = cli.main(video_argv(tmp_path / "cut.webm", aott_weights, "--mask",
                                 str(tmp_path / "first.png"), "--out", str(tmp_path / "masks")))
    err = capsys.readouterr().err
    written = len(list((tmp_path / "masks").iterdir()))
    assert status == 1 and err.count("\n") == 1 and 0 < written < 10
    assert "the file looks truncated" in err
    assert f"the {written} masks written to {tmp_path / 'masks'} are kept" in err


def test_segment_video_interrupted_keeps_a_playable_overlay(tmp_path, monkeypatch, capsys,
                                                            aott_weights):
    pytest.importorskip("av")
    from aot_edu.data import VideoSource, io

    video, _ = video_with_masks(tmp_path)
    write = io.write_mask

    def writing(path, labels):
        if Path(path).stem == "00003":
            raise KeyboardInterrupt
        write(path, labels)

    monkeypatch.setattr(io, "write_mask", writing)
    status = cli.main(video_argv(video, aott_weights, "--mask", str(tmp_path / "first.png"),
                                 "--out", str(tmp_path / "masks"),
                                 "--overlay", str(tmp_path / "o.mp4")))
    err = capsys.readouterr().err
    assert status == 130
    assert f"interrupted after writing 3 of 8 masks to {tmp_path / 'masks'}" in err
    assert "--overwrite" in err
    assert len(list(VideoSource(tmp_path / "o.mp4").frames())) == 3
