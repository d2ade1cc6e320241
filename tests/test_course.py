from __future__ import annotations

import pytest
import torch

from aot_edu import course
from conftest import ROOT


def test_mode_switch(monkeypatch):
    monkeypatch.setenv("AOT_EDU_MODE", "full")
    assert course.resolve_mode() == "full"
    monkeypatch.setenv("AOT_EDU_MODE", "quick")
    assert course.get_settings().quick
    monkeypatch.setenv("AOT_EDU_MODE", "auto")
    assert course.resolve_mode() == ("full" if torch.cuda.is_available() else "quick")
    monkeypatch.setenv("AOT_EDU_MODE", "fast")
    with pytest.raises(ValueError, match="quick"):
        course.resolve_mode()


def test_pick_follows_mode():
    assert course.get_settings("quick").pick(1, 2) == 1
    assert course.get_settings("full").pick(1, 2) == 2


def test_paths_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AOT_EDU_DATA", str(tmp_path / "d"))
    monkeypatch.setenv("AOT_EDU_CHECKPOINTS", str(tmp_path / "c"))
    monkeypatch.setenv("AOT_EDU_SHARED", str(tmp_path / "missing"))
    settings = course.get_settings("quick")
    assert settings.data_dir == tmp_path / "d"
    assert settings.checkpoint_dir == tmp_path / "c"
    assert settings.shared_dir is None


def test_seed_everything_is_repeatable():
    course.seed_everything(3)
    a = torch.rand(4)
    course.seed_everything(3)
    assert torch.equal(a, torch.rand(4))


def test_notebooks_match_their_jupytext_sources():
    """Each notebooks/NN_topic.ipynb is exactly what `make notebooks` generates from its .py."""
    pytest.importorskip("jupytext")
    assert course.sync_notebooks(check=True, root=ROOT) == []


def test_sync_detects_a_stale_notebook(tmp_path):
    pytest.importorskip("jupytext")
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "notebooks" / "00_demo.py"
    source.write_text("# %% [markdown]\n# Hello\n\n# %%\nx = 1\n")
    assert course.sync_notebooks(check=True, root=tmp_path) == [
        "00_demo.ipynb is missing: run `make notebooks`"
    ]
    assert course.sync_notebooks(check=False, root=tmp_path) == []
    assert course.sync_notebooks(check=True, root=tmp_path) == []
    source.write_text("# %% [markdown]\n# Hello\n\n# %%\nx = 2\n")
    assert "differs" in course.sync_notebooks(check=True, root=tmp_path)[0]
