"""Where the course lives: the repository URL, set in one place, and the links made from it.

The one place is ``pyproject.toml``, ``[project.urls] Repository``. Everything that names the
repository comes from there: the notebooks' *Open in Colab* badges and their first cell (which
clones the repository on Colab), the README's badges, and the downloader's user agent.
``make notebooks`` (``python -m aot_edu.course --write``) rewrites the links in the notebook
sources, the generated ``.ipynb`` files and the README after the URL changes - e.g. in a fork:
set ``Repository`` to the fork's URL, run ``make notebooks``, commit and push, and the badges
open the fork's notebooks. ``make check-notebooks`` and ``tests/test_course.py`` fail when any
link differs from it.

An installed package without its ``pyproject.toml`` reads the same value from its metadata
(``Project-URL: Repository, ...``).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

__all__ = ["COLAB_LINK", "colab_url", "github_path", "repository_url"]

PROJECT = "aot-edu"
# A Colab link to a notebook on GitHub: owner, name, branch, the notebook's path.
COLAB_LINK = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<owner>[^/\s)\"']+)/(?P<name>[^/\s)\"']+)"
    r"/blob/(?P<branch>[^/\s)\"']+)/(?P<path>[^\s)\"']+\.ipynb)"
)
BRANCH = "main"


def _checkout_pyproject() -> Path | None:
    """The ``pyproject.toml`` of the checkout this module lies in: the nearest one above it
    whose project is ``aot-edu`` (an installed copy may lie inside another project)."""
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            with candidate.open("rb") as file:
                if tomllib.load(file).get("project", {}).get("name") == PROJECT:
                    return candidate
    return None


def repository_url(root: Path | None = None) -> str:
    """``[project.urls] Repository`` of ``root/pyproject.toml`` (default: this checkout's), or
    of the installed package's metadata when there is no ``pyproject.toml``."""
    pyproject = root / "pyproject.toml" if root is not None else _checkout_pyproject()
    if pyproject is not None and pyproject.is_file():
        with pyproject.open("rb") as file:
            urls = tomllib.load(file).get("project", {}).get("urls", {})
        if "Repository" not in urls:
            raise KeyError(f"{pyproject} has no [project.urls] Repository: the course's links come from it")
        return urls["Repository"].rstrip("/")
    from importlib.metadata import metadata

    for entry in metadata(PROJECT).get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip().rstrip("/")
    raise LookupError(f"the installed {PROJECT} has no Repository URL in its metadata")


def github_path(url: str) -> str:
    """``owner/name`` of a ``https://github.com/owner/name`` URL (Colab opens notebooks from
    GitHub only); ``ValueError`` for another host."""
    match = re.fullmatch(r"https://github\.com/([^/\s]+)/([^/\s]+?)(?:\.git)?/?", url)
    if not match:
        raise ValueError(f"Colab opens notebooks from GitHub: the Repository URL must be "
                         f"https://github.com/OWNER/NAME, got {url!r}")
    return f"{match.group(1)}/{match.group(2)}"


def colab_url(notebook: str, url: str | None = None) -> str:
    """The *Open in Colab* link of ``notebook`` (e.g. ``"notebooks/04_model.ipynb"``) in the
    repository ``url`` (default :func:`repository_url`), on branch ``main``."""
    return f"https://colab.research.google.com/github/{github_path(url or repository_url())}/blob/{BRANCH}/{notebook}"
