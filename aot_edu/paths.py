"""Where things are: the checkout, and the folders for datasets, checkpoints, figures and outputs.

The bottom layer of the package (see ``ARCHITECTURE.md``): it imports nothing of aot-edu and
not even torch, so every layer above (the downloader, the checkpoint loader, the benchmark
runner, the trainer, the command line) can ask where a folder is without pulling in the course.

Each folder is read from the environment at the moment it is asked for, so a test or a notebook
that sets a variable sees it at once:

| folder | variable | default |
|---|---|---|
| datasets | ``AOT_EDU_DATA`` | ``<checkout>/data`` |
| checkpoints | ``AOT_EDU_CHECKPOINTS`` | ``<checkout>/checkpoints`` |
| figures the notebooks save | ``AOT_EDU_FIGURES`` | ``<checkout>/figures`` |
| machine-dependent outputs (timings) | ``AOT_EDU_OUTPUTS`` | ``<checkout>/build/outputs`` |
| reference material (golden outputs) | ``AOT_EDU_SHARED`` | ``<checkout>/../shared`` if present |
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "atomic_write_text", "checkpoint_dir", "data_dir", "figures_dir",
           "find_shared", "outputs_dir", "repo_root", "results_dir"]


def repo_root() -> Path:
    """The checkout this package was installed from (editable install), else the working dir."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


def _folder(variable: str, default: Path) -> Path:
    value = os.environ.get(variable)
    return Path(value) if value else default


def data_dir() -> Path:
    """Where datasets are downloaded and looked for (``AOT_EDU_DATA``)."""
    return _folder("AOT_EDU_DATA", repo_root() / "data")


def checkpoint_dir() -> Path:
    """Where model weights are downloaded and looked for (``AOT_EDU_CHECKPOINTS``)."""
    return _folder("AOT_EDU_CHECKPOINTS", repo_root() / "checkpoints")


def figures_dir() -> Path:
    """Where the notebooks save the figures the README shows (``AOT_EDU_FIGURES``)."""
    return _folder("AOT_EDU_FIGURES", repo_root() / "figures")


def outputs_dir() -> Path:
    """Where outputs that depend on the machine go (timing plots): ignored by git, so running
    the course never rewrites a committed file (``AOT_EDU_OUTPUTS``)."""
    return _folder("AOT_EDU_OUTPUTS", repo_root() / "build" / "outputs")


def results_dir() -> Path:
    """Where ``aot-edu eval`` writes a benchmark's result masks by default."""
    return repo_root() / "results"


def find_shared(root: Path | None = None) -> Path | None:
    """The reference folder ``../shared`` beside the checkout (or ``AOT_EDU_SHARED``), if present."""
    env = os.environ.get("AOT_EDU_SHARED")
    candidate = Path(env) if env else (root or repo_root()).parent / "shared"
    return candidate if candidate.is_dir() else None


# --- writing files whole ------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_args) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; when the block ends without an error
    the file is flushed to disk and renamed onto ``path`` (``os.replace``), else removed.

    So ``path`` is always absent, the old file or the whole new one, even if the process is
    killed mid-write (checkpoints, logs, result tables, masks). The temporary name,
    ``.<name>.<pid>.tmp``, is hidden and per process, so two processes never share one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, mode, **open_args) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` whole (:func:`atomic_write`); returns ``path``."""
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)
