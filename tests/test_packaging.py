"""The conda environment and pyproject.toml must name the same dependencies."""

from __future__ import annotations

import re

import pytest

from conftest import ROOT

tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_name(r): r.replace(" ", "") for r in reqs}


def _environment_pip_requirements() -> tuple[dict[str, str], list[str]]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "- pip:")
    reqs, local = {}, []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped.startswith("- "):
            break
        item = stripped[2:].strip().strip("'\"")
        if item.startswith("-e") or item.startswith("."):
            local.append(item)
        else:
            reqs[_name(item)] = item.replace(" ", "")
    return reqs, local


def test_environment_and_pyproject_name_the_same_dependencies():
    env, _ = _environment_pip_requirements()
    assert env == _pyproject_requirements()


def test_environment_installs_this_package_with_dev_extra():
    _, local = _environment_pip_requirements()
    assert local == ["-e .[dev]"]


def test_environment_uses_python_311():
    assert "  - python=3.11" in (ROOT / "environment.yml").read_text().splitlines()


def test_torch_is_a_range_not_a_pin():
    reqs = _pyproject_requirements()
    for name in ("torch", "torchvision"):
        assert ">=" in reqs[name] and "==" not in reqs[name]


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci
