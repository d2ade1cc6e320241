"""Running the course: quick/full mode, paths, seeding, Colab setup and notebook generation.

Every notebook starts with ``settings = course.setup()``. The one switch is the environment
variable ``AOT_EDU_MODE``:

- ``quick``: small inputs and short runs, sized for a 2-core CPU (CI, laptops);
- ``full``: the real sizes (a GPU on Colab);
- ``auto`` (default): ``full`` when CUDA is available, else ``quick``.

Paths come from ``AOT_EDU_DATA`` (datasets), ``AOT_EDU_CHECKPOINTS`` (weights) and
``AOT_EDU_SHARED`` (the optional reference folder beside a development checkout).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

REPO_URL = "https://github.com/aot-edu/aot-edu"
COLAB_ROOT = Path("/content/aot-edu")
MODES = ("quick", "full")


def repo_root() -> Path:
    """The checkout this package was installed from (editable install), else the working dir."""
    here = Path(__file__).resolve().parent.parent
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


@dataclass(frozen=True)
class Settings:
    """What a notebook needs to know about where and how it runs."""

    mode: str
    device: torch.device
    root: Path
    data_dir: Path
    checkpoint_dir: Path
    figures_dir: Path
    shared_dir: Path | None

    @property
    def quick(self) -> bool:
        return self.mode == "quick"

    def pick(self, quick, full):
        """``quick`` in quick mode, ``full`` in full mode: sizes and step counts in one line."""
        return quick if self.quick else full


def resolve_mode(value: str | None = None) -> str:
    """Turn ``AOT_EDU_MODE`` (or ``value``) into ``quick`` or ``full``."""
    value = (value if value is not None else os.environ.get("AOT_EDU_MODE", "auto")).strip().lower()
    if value in ("", "auto"):
        return "full" if torch.cuda.is_available() else "quick"
    if value not in MODES:
        raise ValueError(f"AOT_EDU_MODE must be 'quick', 'full' or 'auto', got {value!r}")
    return value


def find_shared(root: Path | None = None) -> Path | None:
    """The reference folder ``../shared`` beside the checkout (or ``AOT_EDU_SHARED``), if present."""
    env = os.environ.get("AOT_EDU_SHARED")
    candidate = Path(env) if env else (root or repo_root()).parent / "shared"
    return candidate if candidate.is_dir() else None


def get_settings(mode: str | None = None) -> Settings:
    root = repo_root()
    resolved = resolve_mode(mode)
    device = torch.device("cuda" if resolved == "full" and torch.cuda.is_available() else "cpu")
    return Settings(
        mode=resolved,
        device=device,
        root=root,
        data_dir=Path(os.environ.get("AOT_EDU_DATA", root / "data")),
        checkpoint_dir=Path(os.environ.get("AOT_EDU_CHECKPOINTS", root / "checkpoints")),
        figures_dir=root / "figures",
        shared_dir=find_shared(root),
    )


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def setup(seed: int = 0, mode: str | None = None) -> Settings:
    """Call once at the top of a notebook: seeds everything and reports the mode."""
    settings = get_settings(mode)
    seed_everything(seed)
    settings.figures_dir.mkdir(parents=True, exist_ok=True)
    print(f"aot-edu: {settings.mode} mode on {settings.device.type}")
    return settings


def on_colab() -> bool:
    return "google.colab" in sys.modules


# --- notebook generation -------------------------------------------------------------------

def notebook_sources(root: Path | None = None) -> list[Path]:
    return sorted((root or repo_root()).joinpath("notebooks").glob("[0-9][0-9]_*.py"))


def render_notebook(source: Path) -> str:
    """The ``.ipynb`` text generated from a jupytext percent-format source, without outputs."""
    import jupytext

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
    return jupytext.writes(notebook, fmt="ipynb")


def sync_notebooks(check: bool, root: Path | None = None) -> list[str]:
    """Regenerate (``check=False``) or compare (``check=True``) every ``.ipynb`` with its source.

    Returns the problems found; in write mode the list is empty once the files are written.
    """
    root = root or repo_root()
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate or check notebooks/*.ipynb.")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="regenerate every .ipynb from its .py")
    group.add_argument("--check", action="store_true", help="fail when a .ipynb differs")
    args = parser.parse_args(argv)
    problems = sync_notebooks(check=args.check)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
