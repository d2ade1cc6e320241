"""Build the course's website (``make docs``): the executed notebooks, the README as the home
page, and the API reference from the docstrings, with MkDocs (mkdocs-material, mkdocs-jupyter,
mkdocstrings). Output: ``build/site`` (static files; open ``build/site/index.html``).

1. Every notebook runs top to bottom in quick mode (``AOT_EDU_MODE``, default ``quick``; about
   as long as the notebook part of ``make test``) with ``AOT_EDU_WIDGETS=static``: each widget
   becomes a gallery of pictures drawn now (``aot_edu.gallery``), so its controls work on a
   page without a kernel. The figures the notebooks save go to ``build/docs-figures``; the
   committed ``figures/`` are left alone.
2. ``build/docs-src`` gets the executed notebooks, ``index.md`` (the README, whose course table
   links the notebooks: here they are the course's pages), the README's pictures and one API
   page per module, found in the package's files (``::: module`` for mkdocstrings).
3. ``mkdocs build --strict`` (``mkdocs.yml``): a link to a missing page fails the build.

Offline: nothing is downloaded at build time. At view time the pages need nothing else, except
that equations are typeset by MathJax from its CDN (without a network they show as LaTeX) and
the notebooks' "Open in Colab" badge is a picture on colab.research.google.com.

``--reuse`` skips step 1 when the executed notebooks are newer than their sources and the
package (a rebuild after editing the docs only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "build" / "docs-src"
SITE = ROOT / "build" / "site"
NOTEBOOK_TIMEOUT_S = 1800  # per cell: notebook 05 trains for a few minutes on a 2-core CPU


def notebooks() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def execute(notebook: Path, out: Path) -> float:
    """Run ``notebook`` in a fresh kernel (cwd: ``notebooks/``) and save it with its outputs."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    start = time.monotonic()
    # The widget state is stored while executing (nbclient's Output-widget hook needs it: with
    # store_widget_state=False it fails with a KeyError on the first captured output) and
    # dropped afterwards by drop_widget_state: stored, it would make the pages load ipywidgets'
    # front end from a CDN (unpkg); tqdm's progress bars then show their text.
    client = NotebookClient(nb, timeout=NOTEBOOK_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(notebook.parent)}})
    try:
        client.execute()
    except CellExecutionError as error:
        raise SystemExit(f"make docs: {notebook.name} failed: {str(error).strip().splitlines()[-1]}") \
            from None
    nbformat.write(nb, out)
    return time.monotonic() - start


def up_to_date(executed: Path, source: Path) -> bool:
    if not executed.exists():
        return False
    newest = max([source.stat().st_mtime] + [p.stat().st_mtime for p in (ROOT / "aot_edu").rglob("*.py")])
    return executed.stat().st_mtime > newest


def drop_widget_state(path: Path) -> None:
    """Remove stored ipywidgets state (with it, the page would load ipywidgets' front end and
    Font Awesome from CDNs); outputs keep their text and pictures."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if nb.metadata.pop("widgets", None) is not None:
        nbformat.write(nb, path)


def api_pages() -> list[str]:
    """One page per public module of the package: ``api/<module>.md``, returns the modules."""
    modules = []
    for path in sorted((ROOT / "aot_edu").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts) or parts[-1] == "__main__":
            continue
        modules.append(".".join(parts))
    (SRC / "api").mkdir(parents=True, exist_ok=True)
    for module in modules:
        (SRC / "api" / f"{module}.md").write_text(f"# `{module}`\n\n::: {module}\n")
    lines = ["# API reference\n", "Generated from the package's docstrings.\n"]
    lines += [f"- [`{m}`]({m}.md)" for m in modules]
    (SRC / "api" / "index.md").write_text("\n".join(lines) + "\n")
    return modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true",
                        help="keep executed notebooks that are newer than their sources and the package")
    args = parser.parse_args(argv)

    os.environ.setdefault("AOT_EDU_MODE", "quick")
    os.environ["AOT_EDU_WIDGETS"] = "static"
    os.environ.setdefault("AOT_EDU_FIGURES", str(ROOT / "build" / "docs-figures"))
    # The kernels import this checkout's package, whatever an editable install points at.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])

    executed_dir = SRC / "notebooks"
    executed_dir.mkdir(parents=True, exist_ok=True)
    for notebook in notebooks():
        out = executed_dir / notebook.name
        if args.reuse and up_to_date(out, notebook):
            print(f"make docs: {notebook.name} (reused)", flush=True)
            continue
        seconds = execute(notebook, out)
        print(f"make docs: {notebook.name} executed in {seconds:.0f} s", flush=True)

    for executed in sorted(executed_dir.glob("*.ipynb")):
        drop_widget_state(executed)
    # The home page is the README: its course table links the notebooks, which are pages here.
    shutil.copy(ROOT / "README.md", SRC / "index.md")
    shutil.copy(ROOT / "ARCHITECTURE.md", SRC / "ARCHITECTURE.md")  # the README links it
    shutil.rmtree(SRC / "figures", ignore_errors=True)
    shutil.copytree(ROOT / "figures", SRC / "figures")
    modules = api_pages()
    print(f"make docs: API reference of {len(modules)} modules", flush=True)

    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
                             "--config-file", str(ROOT / "mkdocs.yml")], cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"make docs: mkdocs build failed (exit {result.returncode}); see above")
    print(f"make docs: the site is in {SITE} (open {SITE / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
