"""Fixtures of the real-browser tests: a headless Chromium and a JupyterLab (``browserkit``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .browserkit import (
    ARTIFACTS,
    CHROMIUM_NAMES,
    HOW_TO_GET_CHROMIUM,
    ROOT,
    LabServer,
    StaticServer,
    find_chromium,
    missing,
    written,
)


@pytest.fixture(scope="session")
def chromium():
    """A launched headless Chromium (Playwright's ``Browser``), one per test session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed: `make setup` installs it "
                "(or `.venv/bin/python -m pip install -e '.[dev]'`)")
    executable = find_chromium()
    if executable is None:
        explicit = os.environ.get("AOT_EDU_CHROMIUM")
        where = f"AOT_EDU_CHROMIUM={explicit} is not a file" if explicit else \
            f"no Chromium or Chrome on PATH ({', '.join(CHROMIUM_NAMES)})"
        missing(f"the browser tests need Chromium: {where}; {HOW_TO_GET_CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--disable-gpu"])
        yield browser
        browser.close()


def pytest_terminal_summary(terminalreporter) -> None:
    if written():
        terminalreporter.write_line(f"browser test screenshots: {ARTIFACTS} "
                                    f"({', '.join(p.name for p in written())})")


@pytest.fixture(scope="session")
def lab(chromium, tmp_path_factory):
    """A running JupyterLab serving a copy of the notebooks (quick mode); stopped afterwards."""
    server = LabServer(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def site(chromium):
    """The course's website served on localhost: ``AOT_EDU_SITE`` if set, else built now by
    ``docs/build.py --reuse`` (as ``make docs`` does) into ``build/site``."""
    explicit = os.environ.get("AOT_EDU_SITE")
    if explicit:
        root = Path(explicit)
        assert (root / "index.html").is_file(), f"AOT_EDU_SITE={explicit} holds no index.html"
    else:
        try:
            import mkdocs  # noqa: F401
            import mkdocs_jupyter  # noqa: F401
        except ImportError:
            missing("the website tests need MkDocs: `make setup` installs it (the dev extra)")
        result = subprocess.run([sys.executable, str(ROOT / "docs" / "build.py"), "--reuse"], cwd=ROOT,
                                capture_output=True, text=True)
        assert result.returncode == 0, \
            f"docs/build.py failed (exit {result.returncode}): {(result.stdout + result.stderr)[-3000:]}"
        root = ROOT / "build" / "site"
    server = StaticServer(root)
    yield server
    server.stop()
