"""aot_edu.cli: the ``aot-edu`` command parses, dispatches, reports errors without tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aot_edu import cli
from aot_edu import download as dl
from aot_edu.checkpoints import VARIANTS, get_checkpoint
from aot_edu.download import DATASETS
from aot_edu.model import build_model, state_dict_layout


def test_list_shows_checkpoints_datasets_and_folders(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("AOT_EDU_CHECKPOINTS", str(tmp_path / "c"))
    monkeypatch.setenv("AOT_EDU_DATA", str(tmp_path / "d"))
    assert cli.main(["download", "list"]) == 0
    out = capsys.readouterr().out
    assert all(v in out for v in VARIANTS)
    assert all(s.name in out for s in DATASETS)
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

    monkeypatch.setattr(dl, "download_dataset", fake_download_dataset)
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


def test_segment_command_writes_one_mask_per_frame(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from aot_edu.data import read_mask, write_mask

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(frames / f"{i:05d}.jpg")
    first = np.zeros((40, 60), np.uint8)
    first[10:30, 5:25], first[10:30, 35:55] = 2, 5
    write_mask(tmp_path / "first.png", first)
    torch.manual_seed(0)
    weights = tmp_path / "w.pth"
    torch.save({"state_dict": build_model("aott").state_dict()}, weights)
    status = cli.main(["segment", "--frames", str(frames), "--mask", str(tmp_path / "first.png"),
                   "--out", str(tmp_path / "out"), "--variant", "aott", "--weights", str(weights),
                   "--quiet"])
    assert status == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["00000.png", "00001.png", "00002.png"]
    assert np.array_equal(read_mask(tmp_path / "out" / "00000.png"), first)
    assert set(np.unique(read_mask(tmp_path / "out" / "00002.png"))) <= {0, 2, 5}
    assert "3 masks (2 objects)" in capsys.readouterr().out


def test_segment_command_needs_weights(tmp_path, capsys):
    assert cli.main(["segment", "--frames", str(tmp_path), "--mask", "m.png", "--out", "o"]) == 1
    assert "--weights PATH" in capsys.readouterr().err
