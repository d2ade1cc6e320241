"""The notebooks: generated from their jupytext sources, and the first cell every one shares.

``notebooks/NN_topic.py`` (jupytext percent format) is the source of truth; ``make notebooks``
(``python -m aot_edu.course --write``) writes each ``.ipynb`` from it, without outputs, and
``--check`` (run by the tests) fails when the two differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jupytext
import nbformat

from aot_edu import paths

REPO_URL = "https://github.com/aot-edu/aot-edu"
COLAB_ROOT = Path("/content/aot-edu")
# The first code cell of every notebook. It cannot import this package (on Colab the package is
# not installed yet), so each notebook carries this text; `make check-notebooks` and the tests
# check that every copy is exactly this one.
COLAB_SETUP = f"""\
# On Colab: fetch the course and install it (about a minute). On your own checkout: nothing to do.
import subprocess
import sys
from pathlib import Path

if "google.colab" in sys.modules:
    repo = Path("{COLAB_ROOT}")
    if not repo.exists():
        subprocess.run(["git", "clone", "--depth", "1", "{REPO_URL}", str(repo)], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", str(repo)], check=True)
    sys.path.insert(0, str(repo))"""
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
    """Notebook sources whose first code cell is not :data:`COLAB_SETUP`."""
    problems = []
    for source in notebook_sources(root or paths.repo_root()):
        cells = [c for c in jupytext.read(source, fmt="py:percent").cells if c.cell_type == "code"]
        if not cells or cells[0].source.strip() != COLAB_SETUP:
            problems.append(f"{source.name}: the first code cell must be course.COLAB_SETUP "
                            "(copy it from aot_edu/course/notebooks.py)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate or check notebooks/*.ipynb.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="regenerate every .ipynb from its .py")
    group.add_argument("--check", action="store_true", help="fail when a .ipynb differs")
    args = parser.parse_args(argv)
    problems = sync_notebooks(check=args.check) + check_colab_cells()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0

