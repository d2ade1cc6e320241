"""The notebooks: generated from their jupytext sources, and the first cell every one shares.

``notebooks/NN_topic.py`` (jupytext percent format) is the source of truth; ``make notebooks``
(``python -m aot_edu.course --write``) writes each ``.ipynb`` from it, without outputs, and
``--check`` (run by the tests) fails when the two differ.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat

from aot_edu import paths
from aot_edu.repository import COLAB_LINK, colab_url, repository_url

REPO_URL = repository_url()  # set in ONE place: pyproject.toml [project.urls] Repository
COLAB_ROOT = Path("/content/aot-edu")


def colab_setup(url: str) -> str:
    """The first code cell of every notebook, cloning ``url`` on Colab. It cannot import this
    package (on Colab the package is not installed yet), so each notebook carries this text;
    `make check-notebooks` and the tests check that every copy is exactly this one."""
    return f"""\
# On Colab: fetch the course and install it (about a minute). On your own checkout: nothing to do.
import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules:
    repo = Path("{COLAB_ROOT}")
    if not repo.exists():
        subprocess.run(["git", "clone", "--depth", "1", "{url}", str(repo)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", str(repo)], check=True)
    sys.path.insert(0, str(repo))"""


COLAB_SETUP = colab_setup(REPO_URL)
CHECK_TAG = "nbval-check-output"


def notebook_sources(root: Path | None = None) -> list[Path]:
    return sorted((root or paths.repo_root()).joinpath("notebooks").glob("[0-9][0-9]_*.py"))


def render_notebook(source: Path) -> str:
    """The ``.ipynb`` text generated from a jupytext percent-format source, without outputs.

    Except one kind: a code cell whose ``# %%`` line carries ``expected_output="..."`` (what the
    cell prints, always the same) gets that text as its stored output and nbval's
    ``nbval-check-output`` tag, so the test run checks it; every other cell only has to run.
    """
    notebook = jupytext.read(source, fmt="py:percent")
    notebook.metadata["jupytext"] = {"formats": "ipynb,py:percent"}
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index:03d}"  # nbformat draws random ids; fixed ones keep diffs clean
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            expected = cell.metadata.pop("expected_output", None)
            if expected is not None:
                # A deterministic cell: nbval compares what it prints with this text.
                cell.metadata["tags"] = [*cell.metadata.get("tags", []), CHECK_TAG]
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=expected)]
                cell.execution_count = 1  # nbval refuses stored outputs of a cell never run
    return jupytext.writes(notebook, fmt="ipynb")


def sync_notebooks(check: bool, root: Path | None = None) -> list[str]:
    """Regenerate (``check=False``) or compare (``check=True``) every ``.ipynb`` with its source.

    Returns the problems found; in write mode the list is empty once the files are written.
    """
    root = root or paths.repo_root()
    problems = []
    sources = notebook_sources(root)
    for source in sources:
        target = source.with_suffix(".ipynb")
        expected = render_notebook(source)
        if check:
            if not target.is_file():
                problems.append(f"{target.name} is missing: run `make notebooks`")
            elif target.read_text(encoding="utf-8") != expected:
                problems.append(f"{target.name} differs from {source.name}: run `make notebooks`")
        else:
            target.write_text(expected, encoding="utf-8")
    known = {s.with_suffix(".ipynb") for s in sources}
    for orphan in sorted(root.joinpath("notebooks").glob("*.ipynb")):
        if orphan not in known:
            problems.append(f"{orphan.name} has no jupytext source {orphan.with_suffix('.py').name}")
    return problems


def check_colab_cells(root: Path | None = None) -> list[str]:
    """Notebook sources whose first code cell is not :func:`colab_setup` of the repository URL
    (``pyproject.toml`` of ``root``, see :mod:`aot_edu.repository`)."""
    root = root or paths.repo_root()
    setup = colab_setup(repository_url(root) if (root / "pyproject.toml").is_file() else REPO_URL)
    problems = []
    for source in notebook_sources(root):
        cells = [c for c in jupytext.read(source, fmt="py:percent").cells if c.cell_type == "code"]
        if not cells or cells[0].source.strip() != setup:
            problems.append(f"{source.name}: the first code cell must be course.COLAB_SETUP "
                            "(copy it from aot_edu/course/notebooks.py, or run `make notebooks`)")
    return problems


_CLONE = re.compile(r'(subprocess\.run\(\["git", "clone", "--depth", "1", ")([^"]*)(")')


def link_files(root: Path | None = None) -> list[Path]:
    """The files that link to the repository: the notebook sources and the README (the
    ``.ipynb`` files are generated from the sources)."""
    root = root or paths.repo_root()
    readme = root / "README.md"
    return [*notebook_sources(root), *([readme] if readme.is_file() else [])]


def sync_links(check: bool, root: Path | None = None) -> list[str]:
    """Point every Colab link and the clone cell at ``[project.urls] Repository``.

    Rewrites (``check=False``) or lists (``check=True``) every *Open in Colab* link of the
    notebook sources and the README that does not open a notebook of that repository, and
    every notebook whose clone cell clones another URL. Each notebook must have a badge
    opening itself.
    """
    root = root or paths.repo_root()
    url = repository_url(root)
    problems = []
    for path in link_files(root):
        text = path.read_text(encoding="utf-8")
        fixed = COLAB_LINK.sub(lambda m: colab_url(m.group("path"), url), text)
        fixed = _CLONE.sub(lambda m: m.group(1) + url + m.group(3), fixed)
        if fixed != text:
            if check:
                problems.append(f"{path.relative_to(root)}: a Colab or clone link is not {url} "
                                "(pyproject.toml [project.urls] Repository): run `make notebooks`")
            else:
                path.write_text(fixed, encoding="utf-8")
        if path.suffix == ".py":
            own = colab_url(f"notebooks/{path.with_suffix('.ipynb').name}", url)
            if own not in fixed:
                problems.append(f"{path.name}: no Open in Colab badge for itself ({own})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate or check notebooks/*.ipynb.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="regenerate every .ipynb from its .py")
    group.add_argument("--check", action="store_true", help="fail when a .ipynb differs")
    args = parser.parse_args(argv)
    problems = sync_links(check=args.check)
    problems += sync_notebooks(check=args.check) + check_colab_cells()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0

