"""The course layer: what the notebooks call (the top of the package, below only the CLI).

- this module: quick/full mode, settings, seeding, the notebooks' material;
- :mod:`.model`: the shipped course model (fp16 export, model card, logs, loading);
- :mod:`.exercises`: the "your turn" checks and hints;
- :mod:`.notebooks`: the ``.ipynb`` generated from the jupytext sources, the Colab cell.

Every notebook starts with ``settings = course.setup()``. The one switch is the environment
variable ``AOT_EDU_MODE``:

- ``quick``: small inputs and short runs, sized for a 2-core CPU (CI, laptops);
- ``full``: the real sizes (a GPU on Colab);
- ``auto`` (default): ``full`` when CUDA is available, else ``quick``.

Folders come from :mod:`aot_edu.paths`: ``AOT_EDU_DATA`` (datasets), ``AOT_EDU_CHECKPOINTS``
(weights), ``AOT_EDU_FIGURES`` (where the notebooks save their figures; ``make test`` points it
at ``build/test-figures`` so that a test run leaves the committed ``figures/`` alone),
``AOT_EDU_OUTPUTS`` (machine-dependent outputs such as timing plots; ignored by git) and
``AOT_EDU_SHARED`` (the optional reference folder beside a development checkout).

The notebooks also get their material here, each with a fallback so that every notebook runs
without downloads: :func:`davis_clip` (a DAVIS sequence if one is on disk), :func:`synthetic_clip`
(always), :func:`official_model` (an official checkpoint if downloaded) and :func:`course_model`
(the shipped, trained course model, :mod:`aot_edu.course.model`). :func:`check` is the exercises' self-check;
:func:`show_source` shows a package function's code.
"""

from __future__ import annotations

import inspect
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aot_edu import paths
from aot_edu.data import DAVIS, render_video
from aot_edu.model import build_model, download_checkpoint, get_checkpoint
from aot_edu.training import load_config

from .model import STAGES, course_losses, load_course_model, read_card
from .notebooks import COLAB_SETUP  # noqa: F401 (the notebooks' first cell; tests compare it)

MODES = ("quick", "full")


@dataclass(frozen=True)
class Settings:
    """What a notebook needs to know about where and how it runs (folders: :mod:`aot_edu.paths`)."""

    mode: str
    device: torch.device
    root: Path
    data_dir: Path
    checkpoint_dir: Path
    figures_dir: Path
    outputs_dir: Path
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


def get_settings(mode: str | None = None) -> Settings:
    resolved = resolve_mode(mode)
    device = torch.device("cuda" if resolved == "full" and torch.cuda.is_available() else "cpu")
    root = paths.repo_root()
    return Settings(
        mode=resolved,
        device=device,
        root=root,
        data_dir=paths.data_dir(),
        checkpoint_dir=paths.checkpoint_dir(),
        figures_dir=paths.figures_dir(),
        outputs_dir=paths.outputs_dir(),
        shared_dir=paths.find_shared(root),
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
    settings.outputs_dir.mkdir(parents=True, exist_ok=True)
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
    rng = np.random.default_rng([seed, 0])
    return render_video(rng, num_frames, size, num_objects, num_distractors, motion, scale=scale)


# --- models --------------------------------------------------------------------------------

def official_model(settings: Settings, variant: str = "aotl", download: bool = False):
    """The official ``PRE_YTB_DAV`` model of ``variant`` if its checkpoint is in
    ``settings.checkpoint_dir`` (or ``download=True`` fetches it), else ``None``."""
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


def course_config(overrides: dict | None = None, root: Path | None = None, stage: str = "fine"):
    """A training configuration of the shipped course model (:class:`aot_edu.training.TrainConfig`):
    ``stage`` is one of ``course_model.STAGES``: ``"pre"`` (static images,
    ``configs/course_pre.toml``), ``"main"`` (videos, ``configs/course.toml``), ``"long"``
    (long clips fed back, ``configs/course_long.toml``) or ``"fine"`` (the last stage, whose
    frame size the shipped model was made for: ``configs/course_fine.toml``)."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {sorted(STAGES)}, got {stage!r}")
    return load_config((root or paths.repo_root()) / STAGES[stage], overrides or {}, check_paths=False)


def course_model(settings: Settings):
    """The course's trained AOT: the shipped course model (:mod:`aot_edu.course.model`), loaded at once.

    Returns ``(model, source)``: the float16 EMA weights of ``aot_edu/assets/course_model.pt``
    as a float32 model in eval mode on ``settings.device``, with the shipped run's training
    losses attached as ``model.course_losses`` (``{stage: [...]}``, one loss per step, for the
    stages of ``course_model.STAGES``) and a line saying what it is and how it scores (from its card).
    """
    card = read_card()
    model = load_course_model(settings.device)
    model.course_losses = course_losses()
    held_out = card["held_out"]
    source = (f"shipped course model ({card['weights']}: {sum(card['steps'].values()):,} steps, "
              f"{card['train_time_min']:.0f} min of training; held-out J&F "
              f"{held_out['model']['J&F']:.2f}, copying the first mask "
              f"{held_out['copy_first_mask']['J&F']:.2f})")
    return model, source
