"""Helpers of the real-browser tests (fixtures: ``conftest.py``).

Real-browser tests: Chromium (Playwright) against JupyterLab and against the built website.

What a learner sees is only seen in a browser: a widget that renders blank, raises in the front
end, ignores its slider or squeezes its sliders to nothing passes every Python-side test. These
tests start their own JupyterLab (localhost, a random token, a free port, temporary settings,
workspace and runtime folders, a copy of the notebooks so that nothing is saved into the
checkout) and drive the system's Chromium through Playwright.

Chromium: the system's (Debian/Ubuntu: ``apt-get install chromium``; Playwright's own browser
download is not needed) or ``AOT_EDU_CHROMIUM=/path/to/chrome``. Without one the tests skip,
saying how to get it; under CI (``CI=true``) a missing browser or Playwright is a failure.

Screenshots are kept in ``build/browser-artifacts`` (``AOT_EDU_BROWSER_ARTIFACTS`` to move it);
the path is printed at the end of the test run.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("AOT_EDU_BROWSER_ARTIFACTS", ROOT / "build" / "browser-artifacts"))
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
HOW_TO_GET_CHROMIUM = (
    "install it (Debian/Ubuntu: `sudo apt-get install chromium`; macOS: install Google Chrome) "
    "or set AOT_EDU_CHROMIUM=/path/to/chrome"
)
_written: list[Path] = []


def written() -> list[Path]:
    """The artefact folders this test session wrote."""
    return _written


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip on a learner's machine; fail under CI, where the browser tests must run."""
    if under_ci():
        pytest.fail(f"{reason} (CI=true: the browser tests must run, a missing browser is a failure)",
                    pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str | None:
    explicit = os.environ.get("AOT_EDU_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def artifact_dir(name: str) -> Path:
    path = ARTIFACTS / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    _written.append(path)
    return path


# --- pages ---------------------------------------------------------------------------------

class PageWatch:
    """Collects what a page reports: console errors, uncaught exceptions, failed requests.

    A failed request to another host (the notebooks' Colab badge, an offline machine) is
    recorded but is not an error of the course; its console line ("Failed to load resource")
    is then not counted either. Everything else logged as an error is."""

    def __init__(self, page, local_prefix: str) -> None:
        self.local_prefix = local_prefix
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.external_failures: list[str] = []
        self.local_failures: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("requestfailed", self._request_failed)
        self.external_requests: list[str] = []
        page.on("request", lambda r: None if r.url.startswith((local_prefix, "data:", "blob:"))
                else self.external_requests.append(r.url))

    def _console(self, message) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _request_failed(self, request) -> None:
        if "ERR_ABORTED" in str(request.failure):
            return  # the page navigated away while it loaded (a missing file is a 404 instead)
        target = self.local_failures if request.url.startswith(self.local_prefix) else self.external_failures
        target.append(f"{request.url} ({request.failure})")

    def errors(self) -> list[str]:
        console = self.console_errors
        if self.external_failures and not self.local_failures:
            console = [m for m in console if not m.startswith("Failed to load resource")]
        return [f"console: {m}" for m in console] + [f"page error: {m}" for m in self.page_errors] + \
            [f"request failed: {m}" for m in self.local_failures]


def screenshot_array(locator, path: Path) -> np.ndarray:
    """Screenshot of one element, saved to ``path`` and returned as an RGB array."""
    png = locator.screenshot(path=str(path))
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def changed_fraction(before: np.ndarray, after: np.ndarray, skip_top: float = 0.0) -> float:
    """Fraction of pixels that differ (by more than a rounding error) between two screenshots,
    ignoring the top ``skip_top`` of their height (a figure's title). Different sizes: 1.0."""
    if before.shape != after.shape:
        return 1.0
    top = int(round(before.shape[0] * skip_top))
    diff = np.abs(before[top:].astype(int) - after[top:].astype(int)).max(axis=-1)
    return float((diff > 8).mean())


# --- JupyterLab ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A JupyterLab on localhost for the tests, with nothing of the user's JupyterLab state."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.notebooks = home / "notebooks"
        self.notebooks.mkdir()
        # A copy: running cells in the browser must never save outputs into the checkout.
        for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
            shutil.copy(path, self.notebooks)
        settings = home / "settings"
        # No requests to the Jupyter news feed, and no pop-up asking about it.
        notification = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        notification.parent.mkdir(parents=True)
        notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        env.update(
            AOT_EDU_MODE="quick",
            AOT_EDU_FIGURES=str(home / "figures"),
            # The kernel imports this checkout's package (a worktree, a fresh clone) whatever
            # the environment's editable install points at.
            PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]),
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            IPYTHONDIR=str(home / "ipython"),
        )
        command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
                   f"--port={self.port}", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.notebooks}",
                   f"--LabApp.user_settings_dir={settings}",
                   f"--LabApp.workspaces_dir={home / 'workspaces'}",
                   "--LabApp.extension_manager=readonly"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        self.log_path = home / "server.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self._wait_ready(timeout=120)

    def api(self, path: str, method: str = "GET"):
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.process.returncode}: "
                                   f"{self.log_tail()}")
            try:
                self.api("status")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        return " | ".join(self.log_path.read_text().splitlines()[-lines:])

    def stop(self) -> None:
        try:
            self.api("shutdown", method="POST")  # shuts the kernels down too
            self.process.wait(timeout=30)
        except Exception:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


# --- the website ---------------------------------------------------------------------------

class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # the test reports what matters
        pass


class StaticServer:
    """The built site on localhost, as any static host would serve it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(self.root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
