from __future__ import annotations

import numpy as np
import pytest
import torch

from aot_edu import course
from aot_edu.course import notebooks as course_notebooks
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
    monkeypatch.setenv("AOT_EDU_FIGURES", str(tmp_path / "f"))
    monkeypatch.setenv("AOT_EDU_SHARED", str(tmp_path / "missing"))
    settings = course.get_settings("quick")
    assert settings.data_dir == tmp_path / "d"
    assert settings.checkpoint_dir == tmp_path / "c"
    assert settings.figures_dir == tmp_path / "f"
    assert settings.shared_dir is None
    monkeypatch.delenv("AOT_EDU_FIGURES")  # default: the committed figures/ beside the package
    assert course.get_settings("quick").figures_dir == settings.root / "figures"


def test_seed_everything_is_repeatable():
    course.seed_everything(3)
    a = torch.rand(4)
    course.seed_everything(3)
    assert torch.equal(a, torch.rand(4))


def test_notebooks_match_their_jupytext_sources():
    """Each notebooks/NN_topic.ipynb is exactly what `make notebooks` generates from its .py."""
    pytest.importorskip("jupytext")
    assert course_notebooks.sync_notebooks(check=True, root=ROOT) == []


def test_sync_detects_a_stale_notebook(tmp_path):
    pytest.importorskip("jupytext")
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "notebooks" / "00_demo.py"
    source.write_text("# %% [markdown]\n# Hello\n\n# %%\nx = 1\n")
    assert course_notebooks.sync_notebooks(check=True, root=tmp_path) == [
        "00_demo.ipynb is missing: run `make notebooks`"
    ]
    assert course_notebooks.sync_notebooks(check=False, root=tmp_path) == []
    assert course_notebooks.sync_notebooks(check=True, root=tmp_path) == []
    source.write_text("# %% [markdown]\n# Hello\n\n# %%\nx = 2\n")
    assert "differs" in course_notebooks.sync_notebooks(check=True, root=tmp_path)[0]


# --- the notebooks' helpers ----------------------------------------------------------------

def test_check_reports_right_wrong_and_missing_answers(capsys):
    course.check("sum", None, 3)
    assert "not attempted yet" in capsys.readouterr().out
    course.check("sum", 3, 3)
    course.check("tensor", torch.ones(2), torch.ones(2) + 1e-7)
    course.check("array", [1.0, 2.0], np.array([1.0, 2.0]))
    course.check("size", [481, 849], (481, 849))
    assert capsys.readouterr().out.count("correct") == 4
    with pytest.raises(AssertionError, match="expected 3, got 4"):
        course.check("sum", 4, 3)
    with pytest.raises(AssertionError, match="not quite"):
        course.check("tensor", torch.zeros(2), torch.ones(2))
    with pytest.raises(AssertionError, match="not quite"):
        course.check("shape", torch.ones(3), torch.ones(2))


def test_check_compares_floats_with_a_tolerance_and_returns_nothing(capsys):
    # 0.9 - 0.6 != 0.3 exactly: a learner's float answer must not fail on rounding
    assert course.check("decay", 0.3, 0.9 - 0.6) is None
    assert course.check("decay", np.float64(0.3), 0.9 - 0.6) is None
    assert course.check("radius", 18, np.int64(18)) is None
    assert course.check("not attempted", None, 0.3) is None  # no stray value for a cell to show
    assert capsys.readouterr().out.count("correct") == 3
    with pytest.raises(AssertionError, match="decay: expected 0.3, got 0.31"):
        course.check("decay", 0.31, 0.9 - 0.6)
    course.check("loose", 0.31, 0.3, atol=0.02)
    with pytest.raises(AssertionError, match="expected 18, got 17"):
        course.check("radius", 17, 18)


def test_show_source_prints_the_package_code_outside_a_notebook(capsys):
    course.show_source(course.seed_everything)
    out = capsys.readouterr().out
    assert out.startswith("def seed_everything(seed: int = 0)") and "manual_seed(seed)" in out


def test_synthetic_clip_is_a_pure_function_of_its_arguments():
    frames, masks = course.synthetic_clip(seed=4, num_frames=3, size=(33, 49), num_objects=2)
    assert frames.shape == (3, 33, 49, 3) and frames.dtype == np.uint8
    assert masks.shape == (3, 33, 49) and set(np.unique(masks[0])) == {0, 1, 2}
    again = course.synthetic_clip(seed=4, num_frames=3, size=(33, 49), num_objects=2)
    assert np.array_equal(frames, again[0]) and np.array_equal(masks, again[1])
    assert not np.array_equal(frames, course.synthetic_clip(seed=5, num_frames=3, size=(33, 49))[0])


def _fake_davis(root, sequence="blackswan", frames=3):
    from PIL import Image

    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text(f"{sequence}\n")
    for kind in ("JPEGImages", "Annotations"):
        (root / kind / "480p" / sequence).mkdir(parents=True)
    for t in range(frames):
        Image.fromarray(np.full((40, 60, 3), 10 * t, np.uint8)).save(root / "JPEGImages" / "480p" / sequence / f"{t:05d}.jpg")
        mask = np.zeros((40, 60), np.uint8)
        mask[5:20, 5 + t : 25 + t] = 1
        image = Image.fromarray(mask, mode="P")
        image.putpalette([0, 0, 0, 128, 0, 0] + [0] * 762)
        image.save(root / "Annotations" / "480p" / sequence / f"{t:05d}.png")


def test_davis_clip_found_in_the_data_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("AOT_EDU_DATA", str(tmp_path))
    monkeypatch.setenv("AOT_EDU_SHARED", str(tmp_path / "missing"))
    settings = course.get_settings("quick")
    assert course.find_davis(settings) is None and course.davis_clip(settings) is None
    _fake_davis(tmp_path / "DAVIS2017", frames=4)
    assert course.find_davis(settings) == (tmp_path / "DAVIS2017", 2017)
    frames, masks = course.davis_clip(settings, "blackswan", num_frames=2, step=2, scale=0.5)
    assert frames.shape == (2, 20, 30, 3) and masks.shape == (2, 20, 30)
    assert masks.max() == 1 and masks[1].sum() > 0
    assert course.davis_clip(settings, "dog") is None, "a sequence that is not there"


def test_davis_clip_from_the_shared_folder():
    from conftest import require_shared

    require_shared("datasets", "DAVIS2016", "JPEGImages", "480p", "blackswan")
    settings = course.get_settings("quick")
    frames, masks = course.davis_clip(settings, "blackswan", num_frames=2, scale=0.25)
    assert frames.shape == (2, 120, 214, 3) and set(np.unique(masks)) == {0, 1}


def test_official_model_is_none_without_a_file_and_loads_one(monkeypatch, tmp_path):
    from aot_edu import build_model

    monkeypatch.setenv("AOT_EDU_CHECKPOINTS", str(tmp_path))
    settings = course.get_settings("quick")
    assert course.official_model(settings, "aott") is None
    torch.manual_seed(1)
    weights = build_model("aott").state_dict()
    torch.save({"state_dict": weights}, tmp_path / "AOTT_PRE_YTB_DAV.pth")
    model = course.official_model(settings, "aott")
    torch.testing.assert_close(model.state_dict(), weights)


def test_course_model_is_the_shipped_model_loaded_at_once():
    """No training before the course: the notebooks get the shipped model and its losses."""
    from aot_edu.course.model import STAGES, read_card

    model, source = course.course_model(course.get_settings("quick"))
    card = read_card()
    assert not model.training and model.config.name == card["variant"] == "aotl"
    assert source.startswith("shipped course model (course_model.pt")
    assert f"held-out J&F {card['held_out']['model']['J&F']:.2f}" in source
    assert list(model.course_losses) == list(STAGES)
    assert {k: len(v) for k, v in model.course_losses.items()} == card["steps"]


def test_best_times_interleaves_and_keeps_the_fastest():
    order = []
    runs = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    best = course.best_times(runs, repeats=3)
    assert order == ["a", "b"] * 4, "one warm-up round, then the runs alternate"
    assert set(best) == {"a", "b"} and all(0 <= t < 1 for t in best.values())


def test_expected_output_cells_are_checked_by_nbval(tmp_path):
    import json

    source = tmp_path / "99_demo.py"
    source.write_text(
        '# %% [markdown]\n# A demo.\n\n# %% expected_output="4\\n"\nprint(2 + 2)\n\n# %%\nprint("free")\n'
    )
    cells = json.loads(course_notebooks.render_notebook(source))["cells"]
    checked, free = cells[1], cells[2]
    assert checked["metadata"]["tags"] == [course_notebooks.CHECK_TAG]
    assert checked["outputs"] == [{"name": "stdout", "output_type": "stream", "text": ["4\n"]}]
    assert "expected_output" not in checked["metadata"] and checked["execution_count"] == 1
    assert free["outputs"] == [] and "tags" not in free["metadata"]


def test_every_notebook_opens_with_the_one_colab_setup_cell(tmp_path):
    assert course_notebooks.check_colab_cells(ROOT) == []
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "97_other.py").write_text("# %%\nimport sys\n")
    assert "97_other.py: the first code cell must be course.COLAB_SETUP" in course_notebooks.check_colab_cells(tmp_path)[0]


def test_every_colab_link_uses_the_one_repository_url():
    """Issue 19, item 6: the repository is named in pyproject.toml [project.urls] only; every
    Colab badge, clone cell and link to the course's repository is made from it."""
    import re

    from aot_edu.repository import COLAB_LINK, colab_url, github_path, repository_url

    url = repository_url(ROOT)
    assert course_notebooks.REPO_URL == url and github_path(url).count("/") == 1
    files = [*ROOT.glob("notebooks/*.py"), *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("*.md")]
    links = 0
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in COLAB_LINK.finditer(text):
            links += 1
            assert f"https://github.com/{match['owner']}/{match['name']}" == url, (path.name, match[0])
            assert match["branch"] == "main" and (ROOT / match["path"]).is_file(), (path.name, match[0])
        for other in re.findall(r"https://github\.com/[\w.-]+/aot-edu[\w.-]*", text):
            assert other in (url, "https://github.com/YOU/aot-edu"), (path.name, other)  # YOU: the README's fork
        if path.parent.name == "notebooks" and path.name[:2].isdigit():
            assert colab_url(f"notebooks/{path.with_suffix('.ipynb').name}", url) in text, path.name
            assert f'"git", "clone", "--depth", "1", "{url}"' in text.replace('\\"', '"'), path.name
    assert links >= 2 * len(course_notebooks.notebook_sources(ROOT))  # a badge in every source and .ipynb
    assert course_notebooks.sync_links(check=True, root=ROOT) == []


def test_a_fork_sets_its_url_once_and_make_notebooks_rewrites_the_links(tmp_path):
    from aot_edu.repository import colab_url, github_path

    fork = "https://github.com/someone/aot-edu-fork"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert course_notebooks.REPO_URL in pyproject
    (tmp_path / "pyproject.toml").write_text(pyproject.replace(course_notebooks.REPO_URL, fork), encoding="utf-8")
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "notebooks" / "04_model.py"
    source.write_text((ROOT / "notebooks" / "04_model.py").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "README.md").write_text(
        f"[open]({colab_url('notebooks/04_model.ipynb', course_notebooks.REPO_URL)})\n", encoding="utf-8")

    problems = course_notebooks.sync_links(check=True, root=tmp_path)
    assert len(problems) == 2 and all("run `make notebooks`" in p for p in problems)
    assert "the first code cell must be course.COLAB_SETUP" in course_notebooks.check_colab_cells(tmp_path)[0]
    assert course_notebooks.sync_links(check=False, root=tmp_path) == []
    assert course_notebooks.sync_links(check=True, root=tmp_path) == [] and course_notebooks.check_colab_cells(tmp_path) == []
    text = source.read_text(encoding="utf-8")
    assert course_notebooks.REPO_URL not in text and colab_url("notebooks/04_model.ipynb", fork) in text
    assert f'"git", "clone", "--depth", "1", "{fork}"' in text
    assert "someone/aot-edu-fork/blob/main/notebooks/04_model.ipynb" in (tmp_path / "README.md").read_text()
    with pytest.raises(ValueError, match="GitHub"):
        github_path("https://gitlab.com/someone/aot-edu")


def test_an_installed_copy_reads_the_url_from_its_metadata(monkeypatch, tmp_path):
    import email.message
    import importlib.metadata

    from aot_edu.repository import repository_url

    installed = email.message.Message()
    installed["Project-URL"] = "Homepage, https://example.org"
    installed["Project-URL"] = "Repository, https://github.com/someone/aot-edu/"
    monkeypatch.setattr(importlib.metadata, "metadata", lambda name: installed)
    assert repository_url(tmp_path) == "https://github.com/someone/aot-edu"  # no pyproject.toml there
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "aot-edu"\n', encoding="utf-8")
    with pytest.raises(KeyError, match="Repository"):
        repository_url(tmp_path)
