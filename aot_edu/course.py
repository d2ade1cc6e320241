"""Running the course: quick/full mode, paths, seeding, Colab setup and notebook generation.

Every notebook starts with ``settings = course.setup()``. The one switch is the environment
variable ``AOT_EDU_MODE``:

- ``quick``: small inputs and short runs, sized for a 2-core CPU (CI, laptops);
- ``full``: the real sizes (a GPU on Colab);
- ``auto`` (default): ``full`` when CUDA is available, else ``quick``.

Paths come from ``AOT_EDU_DATA`` (datasets), ``AOT_EDU_CHECKPOINTS`` (weights) and
``AOT_EDU_SHARED`` (the optional reference folder beside a development checkout).

The notebooks also get their material here, each with a fallback so that every notebook runs
without downloads: :func:`davis_clip` (a DAVIS sequence if one is on disk), :func:`synthetic_clip`
(always), :func:`official_model` (an official checkpoint if downloaded) and :func:`course_model`
(load if present, else train briefly). :func:`check` is the exercises' self-check.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    with ``torch.testing.assert_close``, everything else with ``==``.
    """
    if answer is None:
        print(f"{name}: not attempted yet - replace the None with your answer and run the cell")
        return
    if isinstance(expected, (torch.Tensor, np.ndarray)):
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
    num_distractors: int = 1, motion: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic video (:func:`aot_edu.data.render_video`): frames ``uint8 [T, H, W, 3]`` and
    labels ``uint8 [T, H, W]`` (objects ``1..N``), a pure function of its arguments."""
    from .data import render_video

    rng = np.random.default_rng([seed, 0])
    return render_video(rng, num_frames, size, num_objects, num_distractors, motion)


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


@dataclass(frozen=True)
class CourseRecipe:
    """How the course model is trained when no trained weights are on disk (see
    :func:`course_model`). Quick mode: about a minute on a 2-core CPU (``bench/RESULTS.md``)."""

    variant: str = "aots"  # two LSTT blocks: notebook 03 compares them
    steps: int = 50
    batch_size: int = 4
    num_frames: int = 3  # a reference frame and two frames to propagate to
    size: int = 97  # 16 * 6 + 1: a 7 x 7 token grid
    lr: float = 1e-3
    seed: int = 0
    pretrained_encoder: bool = False  # ImageNet MobileNetV2 (torchvision download)


QUICK_RECIPE = CourseRecipe()
# Full mode (a GPU): longer, larger, from an ImageNet encoder, as AOT itself is trained.
FULL_RECIPE = CourseRecipe(steps=2000, batch_size=8, num_frames=4, size=193, lr=4e-4,
                           pretrained_encoder=True)


def course_recipe(settings: Settings) -> CourseRecipe:
    return settings.pick(QUICK_RECIPE, FULL_RECIPE)


def course_model(settings: Settings, recipe: CourseRecipe | None = None, retrain: bool = False,
                 progress: bool = True):
    """Load if present, else train briefly: the course's trained AOT and where it came from.

    Returns ``(model, source)`` with the model in eval mode on ``settings.device``. The weights
    are cached in ``<checkpoint_dir>/course_<variant>_<steps>.pth`` together with the recipe
    and the loss curve (``model.course_losses``); a cache made with another recipe is retrained.

    The training step is :func:`train_briefly`, the course's stand-in until the full trainer
    (:mod:`aot_edu.train`) is connected here: it takes the model and the recipe and returns the
    loss of every step.
    """
    from .model import build_model

    recipe = recipe or course_recipe(settings)
    path = settings.checkpoint_dir / f"course_{recipe.variant}_{recipe.steps}.pth"
    if path.is_file() and not retrain:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved.get("recipe") == dataclasses.asdict(recipe):
            model = build_model(recipe.variant, weights=saved["state_dict"], device=settings.device)
            model.course_losses = list(saved["losses"])
            return model, f"loaded {path.name}"
    model = build_model(recipe.variant, pretrained_encoder=recipe.pretrained_encoder,
                        device=settings.device)
    losses = train_briefly(model, recipe, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "recipe": dataclasses.asdict(recipe), "losses": losses}, path)
    model.course_losses = losses
    return model.eval(), f"trained for {recipe.steps} steps, saved {path.name}"


def train_briefly(model, recipe: CourseRecipe, progress: bool = True) -> list[float]:
    """Train ``model`` on synthetic videos for ``recipe.steps`` steps; returns the losses.

    The course's stand-in for :mod:`aot_edu.train` (the full trainer): every step draws a batch
    of synthetic clips, gives each clip's objects random identities (Eq. 3), propagates from the
    reference frame through the clip - feeding back the model's own (detached) predictions as
    the evaluator does - and minimises the cross-entropy of every propagated frame.
    """
    import torch.nn.functional as F
    from tqdm.auto import tqdm

    from .data import SyntheticVideos, collate
    from .engine import AOTEngine, normalize
    from .identity import one_hot_labels, random_assignment

    device = model.encoder_projector.weight.device
    generator = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    videos = SyntheticVideos(recipe.steps * recipe.batch_size, recipe.num_frames, recipe.size,
                             num_objects=(1, 3), num_distractors=(0, 1), seed=recipe.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    identities = model.max_obj_num + 1
    losses = []
    model.train()
    bar = tqdm(range(recipe.steps), desc=f"training {model.config.title}", disable=not progress)
    for step in bar:
        batch = collate([videos[step * recipe.batch_size + i] for i in range(recipe.batch_size)])
        frames, masks = batch["frames"].to(device), batch["masks"].to(device)
        b, t = masks.shape[:2]
        encoded = model.encode_image(normalize(frames.flatten(0, 1)))
        encoded = [e.unflatten(0, (b, t)) for e in encoded]
        engine = AOTEngine(model, model.config.long_term_gap_train)
        engine.add_reference_frame(
            [e[:, 0] for e in encoded], one_hot_labels(masks[:, 0], identities),
            batch["obj_num"].tolist(), assignment=random_assignment(b, identities, generator, device),
        )
        loss = 0.0
        for i in range(1, t):
            enc = [e[:, i] for e in encoded]
            engine.propagate(enc)
            logits = engine.decode(enc, output_size=tuple(masks.shape[-2:]))
            loss = loss + F.cross_entropy(logits, masks[:, i]) / (t - 1)
            if i < t - 1:
                engine.update_memory(one_hot_labels(logits.argmax(1).detach(), identities))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(round(float(loss.detach()), 4))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


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
