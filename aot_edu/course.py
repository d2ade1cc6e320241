"""Running the course: quick/full mode, paths, seeding, Colab setup and notebook generation.

Every notebook starts with ``settings = course.setup()``. The one switch is the environment
variable ``AOT_EDU_MODE``:

- ``quick``: small inputs and short runs, sized for a 2-core CPU (CI, laptops);
- ``full``: the real sizes (a GPU on Colab);
- ``auto`` (default): ``full`` when CUDA is available, else ``quick``.

Paths come from ``AOT_EDU_DATA`` (datasets), ``AOT_EDU_CHECKPOINTS`` (weights),
``AOT_EDU_FIGURES`` (where the notebooks save their figures; ``make test`` points it at
``build/test-figures`` so that a test run leaves the committed ``figures/`` alone) and
``AOT_EDU_SHARED`` (the optional reference folder beside a development checkout).

The notebooks also get their material here, each with a fallback so that every notebook runs
without downloads: :func:`davis_clip` (a DAVIS sequence if one is on disk), :func:`synthetic_clip`
(always), :func:`official_model` (an official checkpoint if downloaded) and :func:`course_model`
(the shipped, trained course model, :mod:`aot_edu.course_model`). :func:`check` is the exercises' self-check;
:func:`show_source` shows a package function's code.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .repository import COLAB_LINK, colab_url, repository_url

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
        figures_dir=Path(os.environ.get("AOT_EDU_FIGURES", root / "figures")),
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
    _inline_figures()
    if on_colab():  # Colab renders ipywidgets 8 through its custom widget manager
        from google.colab import output  # type: ignore[import-not-found]

        output.enable_custom_widget_manager()
    print(f"aot-edu: {settings.mode} mode on {settings.device.type}")
    return settings


def _inline_figures() -> None:
    """In a notebook, show returned matplotlib figures as inline PNGs (``%matplotlib inline``);
    the course's figures are plain ``Figure`` objects, displayed like any other value."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and hasattr(shell, "kernel"):
        shell.run_line_magic("matplotlib", "inline")


def on_colab() -> bool:
    return "google.colab" in sys.modules


# --- exercises -----------------------------------------------------------------------------

def check(name: str, answer, expected, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Self-check for an exercise: prints "correct" when ``answer`` matches ``expected``.

    ``answer is None`` means "not attempted yet" (prints a hint); a wrong
    answer raises ``AssertionError`` saying how far off it is. Tensors and arrays are compared
    with ``torch.testing.assert_close``, a float (``expected`` or ``answer``) with
    ``math.isclose`` to ``atol`` / ``rtol`` (``0.9 - 0.6`` is not exactly ``0.3``), everything
    else with ``==``. Returns nothing, so an exercise cell displays only the message.
    """
    if answer is None:
        print(f"{name}: not attempted yet - replace the None with your answer and run the cell")
        return
    if _is_real(expected) and _is_real(answer) and (
            _is_float(expected) or _is_float(answer)):
        if not math.isclose(float(answer), float(expected), rel_tol=rtol, abs_tol=atol):
            raise AssertionError(f"{name}: expected {float(expected):.6g}, got {float(answer):.6g}")
    elif isinstance(expected, (torch.Tensor, np.ndarray)):
        try:
            torch.testing.assert_close(
                torch.as_tensor(np.asarray(answer) if not isinstance(answer, torch.Tensor) else answer),
                torch.as_tensor(expected), atol=atol, rtol=rtol, check_dtype=False,
            )
        except AssertionError as error:
            raise AssertionError(f"{name}: not quite - {error}") from None
    elif (tuple(answer) if isinstance(answer, (list, tuple)) else answer) != (
        tuple(expected) if isinstance(expected, (list, tuple)) else expected
    ):
        raise AssertionError(f"{name}: expected {expected!r}, got {answer!r}")
    print(f"{name}: correct")


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _is_float(value) -> bool:
    return isinstance(value, (float, np.floating))


def show_source(obj) -> None:
    """Show the code of a package function or class: highlighted in a notebook, printed elsewhere.

    The notebooks explain the package's own code this way instead of keeping a copy of it.
    """
    import inspect

    code = inspect.getsource(obj)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(code)
        return
    if get_ipython() is None:
        print(code)
    else:
        display(Markdown(f"```python\n{code}```"))


# --- timing -------------------------------------------------------------------------------

def best_times(runs: dict, repeats: int = 3, warmup: bool = True) -> dict:
    """Time every zero-argument callable of ``runs``; the fastest of ``repeats`` runs, seconds.

    The runs are interleaved (each repeat runs all of them once), so a burst of load from other
    programs slows every run alike instead of one; ``warmup`` runs each once untimed first.
    """
    import time

    if warmup:
        for fn in runs.values():
            fn()
    best = {key: float("inf") for key in runs}
    for _ in range(repeats):
        for key, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[key] = min(best[key], time.perf_counter() - start)
    return best


# --- clips ---------------------------------------------------------------------------------

def find_davis(settings: Settings) -> tuple[Path, int] | None:
    """A DAVIS folder with frames on disk: ``(root, year)``, or ``None``.

    Looked for in this order: ``<data_dir>/DAVIS2017``, ``<data_dir>/DAVIS2016`` (what
    ``aot-edu download dataset ...`` writes) and ``<shared_dir>/datasets/DAVIS2016``.
    """
    candidates = [(settings.data_dir / "DAVIS2017", 2017), (settings.data_dir / "DAVIS2016", 2016)]
    if settings.shared_dir is not None:
        candidates.append((settings.shared_dir / "datasets" / "DAVIS2016", 2016))
    for root, year in candidates:
        if (root / "JPEGImages" / "480p").is_dir() and (root / "ImageSets" / str(year)).is_dir():
            return root, year
    return None


def davis_clip(
    settings: Settings, name: str = "blackswan", num_frames: int | None = None, step: int = 1,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Frames ``uint8 [T, H, W, 3]`` and labels ``uint8 [T, H, W]`` of a DAVIS sequence, or
    ``None`` when no DAVIS copy with that sequence's frames is on disk.

    ``num_frames`` frames ``step`` apart from frame 0; ``scale`` resizes them (bilinear frames,
    nearest masks), e.g. 0.5 for quick mode.
    """
    from PIL import Image

    from .data import DAVIS

    found = find_davis(settings)
    if found is None:
        return None
    davis = DAVIS(found[0], year=found[1], split="val")
    if name not in davis.names:
        return None
    sequence = davis.sequence(name)
    if not sequence.has_frames:
        return None
    indices = list(range(0, sequence.num_frames, step))[:num_frames]
    frames, masks = sequence.frames(indices), sequence.masks(indices)
    if scale != 1.0:
        size = (round(frames.shape[2] * scale), round(frames.shape[1] * scale))
        frames = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in frames])
        masks = np.stack([np.asarray(Image.fromarray(m).resize(size, Image.NEAREST)) for m in masks])
    return frames, masks


def synthetic_clip(
    seed: int = 0, num_frames: int = 8, size: int | tuple[int, int] = 129, num_objects: int = 3,
    num_distractors: int = 1, motion: float = 1.0, scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic video (:func:`aot_edu.data.render_video`): frames ``uint8 [T, H, W, 3]`` and
    labels ``uint8 [T, H, W]`` (objects ``1..N``), a pure function of its arguments."""
    from .data import render_video

    rng = np.random.default_rng([seed, 0])
    return render_video(rng, num_frames, size, num_objects, num_distractors, motion, scale=scale)


# --- models --------------------------------------------------------------------------------

def official_model(settings: Settings, variant: str = "aotl", download: bool = False):
    """The official ``PRE_YTB_DAV`` model of ``variant`` if its checkpoint is in
    ``settings.checkpoint_dir`` (or ``download=True`` fetches it), else ``None``."""
    from .checkpoints import download_checkpoint, get_checkpoint
    from .model import build_model

    path = settings.checkpoint_dir / get_checkpoint(variant).filename
    if not path.is_file():
        if not download:
            return None
        try:
            path = download_checkpoint(variant, root=settings.checkpoint_dir)
        except Exception as error:  # no network, Google Drive quota, ...: fall back, say why
            print(f"could not download the official {variant} checkpoint ({error}); "
                  "using the course model instead")
            return None
    return build_model(variant, weights=path, device=settings.device)


CHECK_TAG = "nbval-check-output"


def course_config(overrides: dict | None = None, root: Path | None = None, stage: str = "main"):
    """A training configuration of the shipped course model (:class:`aot_edu.train.TrainConfig`):
    ``stage`` is one of ``course_model.STAGES``: ``"pre"`` (static images,
    ``configs/course_pre.toml``), ``"main"`` (videos, ``configs/course.toml``) or ``"long"``
    (long clips fed back, ``configs/course_long.toml``)."""
    from .course_model import STAGES
    from .train import load_config

    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage!r}")
    return load_config((root or repo_root()) / STAGES[stage], overrides or {}, check_paths=False)


def course_model(settings: Settings):
    """The course's trained AOT: the shipped AOT-B (:mod:`aot_edu.course_model`), loaded at once.

    Returns ``(model, source)``: the float16 EMA weights of ``aot_edu/assets/course_aotb.pt``
    as a float32 model in eval mode on ``settings.device``, with the shipped run's training
    losses attached as ``model.course_losses`` (``{stage: [...]}``, one loss per step, for the
    stages of ``course_model.STAGES``) and a line saying what it is and how it scores (from its card).
    """
    from .course_model import course_losses, load_course_model, read_card

    card = read_card()
    model = load_course_model(settings.device)
    model.course_losses = course_losses()
    held_out = card["held_out"]
    source = (f"shipped course model ({card['weights']}: {sum(card['steps'].values()):,} steps, "
              f"{card['train_time_min']:.0f} min of training; held-out J&F "
              f"{held_out['model']['J&F']:.2f}, copying the first mask "
              f"{held_out['copy_first_mask']['J&F']:.2f})")
    return model, source


# --- notebook generation -------------------------------------------------------------------

def notebook_sources(root: Path | None = None) -> list[Path]:
    return sorted((root or repo_root()).joinpath("notebooks").glob("[0-9][0-9]_*.py"))


def render_notebook(source: Path) -> str:
    """The ``.ipynb`` text generated from a jupytext percent-format source, without outputs.

    Except one kind: a code cell whose ``# %%`` line carries ``expected_output="..."`` (what the
    cell prints, always the same) gets that text as its stored output and nbval's
    ``nbval-check-output`` tag, so the test run checks it; every other cell only has to run.
    """
    import jupytext
    import nbformat

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


def check_colab_cells(root: Path | None = None) -> list[str]:
    """Notebook sources whose first code cell is not :func:`colab_setup` of the repository URL
    (``pyproject.toml`` of ``root``, see :mod:`aot_edu.repository`)."""
    import jupytext

    root = root or repo_root()
    setup = colab_setup(repository_url(root) if (root / "pyproject.toml").is_file() else REPO_URL)
    problems = []
    for source in notebook_sources(root):
        cells = [c for c in jupytext.read(source, fmt="py:percent").cells if c.cell_type == "code"]
        if not cells or cells[0].source.strip() != setup:
            problems.append(f"{source.name}: the first code cell must be course.COLAB_SETUP "
                            "(copy it from aot_edu/course.py, or run `make notebooks`)")
    return problems


_CLONE = re.compile(r'(subprocess\.run\(\["git", "clone", "--depth", "1", ")([^"]*)(")')


def link_files(root: Path | None = None) -> list[Path]:
    """The files that link to the repository: the notebook sources and the README (the
    ``.ipynb`` files are generated from the sources)."""
    root = root or repo_root()
    readme = root / "README.md"
    return [*notebook_sources(root), *([readme] if readme.is_file() else [])]


def sync_links(check: bool, root: Path | None = None) -> list[str]:
    """Point every Colab link and the clone cell at ``[project.urls] Repository``.

    Rewrites (``check=False``) or lists (``check=True``) every *Open in Colab* link of the
    notebook sources and the README that does not open a notebook of that repository, and
    every notebook whose clone cell clones another URL. Each notebook must have a badge
    opening itself.
    """
    root = root or repo_root()
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


if __name__ == "__main__":
    raise SystemExit(main())
