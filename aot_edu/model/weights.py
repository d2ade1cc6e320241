"""Weights: the official AOT checkpoints (registry, download, loading, key diagnostics) and
:func:`build_model`, which builds a variant and loads a checkpoint into it unchanged.

The official code (yoxu515/aot-benchmark) loads checkpoints by copying whichever keys happen
to match and silently dropping the rest, so a wrong file or a wrong ``--model`` flag gives a
network with random layers that still runs (and scores ~56 J&F instead of ~80). aot-edu refuses
instead: :func:`check_state_dict` lists missing, unexpected and mis-shaped keys and names the
variant the file belongs to.

Facts used here, from the official repository:

- the model zoo (``MODEL_ZOO.md``) publishes one Google Drive file per model and training
  stage: ``PRE`` (pre-training on static images) and ``PRE_YTB_DAV`` (main training on
  YouTube-VOS 2019 + DAVIS 2017; the weights behind every reported score);
- training saves ``{'state_dict': model.state_dict(), 'optimizer': ...}`` (``save_step_*.pth``,
  ``utils/checkpoint.py``); its loader also accepts ``{'model': ...}`` and a bare state dict,
  and strips a ``module.`` prefix left by ``DataParallel``;
- AOT-B and AOT-L have the same architecture, hence identical state-dict layouts: only the
  test-time long-term memory gap differs, so no file can be told apart between the two.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import Tensor

from aot_edu import paths
from aot_edu.download import GDriveFetch, download_gdrive, hash_file, read_sidecar

from .aot import AOT, state_dict_layout
from .variants import VARIANTS as MODEL_VARIANTS
from .variants import AOTConfig, get_config
from .zoo import (
    CHECKPOINTS,
    FINGERPRINTS,
    SUPPORTED_VARIANTS,
    VARIANTS,
    CheckpointError,
    OfficialCheckpoint,
    get_checkpoint,
    variant_title,
)

__all__ = [
    "build_model",
    "check_state_dict",
    "download_checkpoint",
    "identify_variants",
    "load_state_dict_file",
    "load_weights",
    "official_layouts",
    "resolve_checkpoint_path",
]

_WRAPPER_KEYS = ("state_dict", "model", "ema", "model_ema", "module", "net", "network")


def _official_entry(path: Path) -> OfficialCheckpoint | None:
    """The official checkpoint a file name is that of, if any."""
    return next((e for e in CHECKPOINTS if e.filename == path.name), None)


def _download_hint(path: Path, *, again: bool = True) -> str:
    entry = _official_entry(path)
    if entry is None:
        if again:  # the user's own file: nothing aot-edu could fetch, nothing was moved
            return (f"{path.name} is not a file aot-edu downloads, so it was left as it is: "
                    "save it again where it was made (torch.save(model.state_dict(), path)) "
                    "or copy it again; for official weights use `aot-edu download checkpoint "
                    "<variant>` (`aot-edu download list` shows the variants)")
        return ("download it (`aot-edu download checkpoint <variant>`; `aot-edu download "
                "list` shows the variants)")
    stage = "" if entry.stage == "PRE_YTB_DAV" else f" --stage {entry.stage}"
    # A download first checks a file already at the path and moves a bad one to <file>.corrupt.
    start = (f"download it again (the download moves this copy aside to {path.name}.corrupt "
             "first, so nothing is deleted)" if again else "download it")
    return (f"{start}: `aot-edu download checkpoint {entry.variant}{stage} --dir "
            f"{path.parent}` (in Python: aot_edu.model.weights.download_checkpoint("
            f"{entry.variant!r}, stage={entry.stage!r}, root={str(path.parent)!r}))")


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _error_text(error: BaseException) -> str:
    """``error`` in one short line, without PyTorch's advice to load with weights_only=False
    (which runs any code the file holds): the class a safe load refused is all that is kept."""
    text = " ".join(_ANSI.sub("", str(error)).split())
    if "weights_only" in text or "weights only" in text.lower():
        refused = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
        text = (f"a safe load refuses the Python object {refused.group(1)} in it" if refused
                else "a safe load refuses its contents")
    return text if len(text) <= 200 else text[:197] + "..."


def _describe_unreadable(path: Path, error: BaseException) -> str:
    with open(path, "rb") as f:
        head = f.read(64)
    size = path.stat().st_size
    reason = f"{type(error).__name__}: {_error_text(error)}"
    if size == 0:
        what = "it is empty (0 bytes): the download never wrote anything"
    elif head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
        what = ("it is a web page, not a checkpoint (Google Drive sends one when the download "
                "quota is exceeded or a confirmation is needed)")
    elif head.startswith(b"version https://git-lfs"):
        what = "it is a Git LFS pointer, not the checkpoint itself"
    elif head.startswith(b"PK") and "weights only" in str(error).lower():
        what = ("it holds Python objects other than tensors, which a safe load "
                "(weights_only=True) refuses to run; official AOT checkpoints hold only "
                "tensors and plain containers, so this is not one")
    elif head.startswith(b"PK") or head.startswith(b"\x80"):
        what = ("it is truncated or corrupt (an interrupted download or save, or a damaged disk "
                "copy)")
    else:
        what = "it is not a PyTorch checkpoint (corrupt, or a different kind of file)"
    return f"Cannot load checkpoint {path}: {what} [{reason}]."


def resolve_checkpoint_path(path: str | Path) -> Path:
    """The checkpoint file ``path`` names.

    A path that exists is used as it is. A bare file name (no folder, e.g.
    ``"AOTT_PRE_YTB_DAV.pth"``) that is not in the working directory is looked up in the
    checkpoint folder (``AOT_EDU_CHECKPOINTS``, else ``checkpoints/`` in the project), where
    ``aot-edu download checkpoint`` puts files. Raises :class:`CheckpointError` for a folder, or
    for a file found nowhere (naming every place looked at and the download command).
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix in (".pth", ".pt"))
        found = (f" (checkpoint files there: {', '.join(inside[:3])}"
                 f"{' ...' if len(inside) > 3 else ''})" if inside else "")
        raise CheckpointError(
            f"Checkpoint {path} is a folder, not a file{found}. What to do: give the checkpoint "
            f"file itself, e.g. {path / (inside[0] if inside else CHECKPOINTS[0].filename)}."
        )
    if len(path.parts) == 1:  # a bare name: also look where downloads go
        folder = paths.checkpoint_dir()
        if (folder / path.name).is_file():
            return folder / path.name
        raise CheckpointError(
            f"Checkpoint {path} not found: looked in the working directory ({Path.cwd()}) and "
            f"in the checkpoint folder ({folder}; set AOT_EDU_CHECKPOINTS to change it). What "
            f"to do: {_download_hint(folder / path.name, again=False)}."
        )
    raise CheckpointError(f"Checkpoint {path} does not exist. What to do: "
                          f"{_download_hint(path, again=False)}.")


def load_state_dict_file(
    path_or_dict: str | Path | Mapping[str, object], *, check_sidecar: bool = True
) -> dict[str, torch.Tensor]:
    """Read a checkpoint safely and return its bare state dict ``{key: tensor}``.

    Accepts a file (found as :func:`resolve_checkpoint_path` says; loaded with
    ``torch.load(map_location="cpu", weights_only=True)``) or an already loaded object. Unwraps the containers checkpoints come in (``{'state_dict': ...}``
    as the official ``save_step_*.pth``, ``{'model': ...}``, ``{'ema': ...}``, nested ones) and
    strips a ``module.`` prefix (``DataParallel``). A file with a sidecar ``<file>.sha256``
    (written at its first verified download) must still match it, which catches damage that
    ``torch.load`` cannot see (flipped bytes inside tensor data load without complaint).

    Raises :class:`CheckpointError` naming the file, what is wrong with it (truncated, empty,
    a web page, not a checkpoint, changed since download) and how to get a good copy.
    """
    if isinstance(path_or_dict, Mapping):
        return _unwrap(path_or_dict, "the given object")
    return _read_state_dict(resolve_checkpoint_path(path_or_dict), check_sidecar, advise=True)


def _read_state_dict(path: Path, check_sidecar: bool, *, advise: bool) -> dict[str, torch.Tensor]:
    """:func:`load_state_dict_file` of a file; ``advise=False`` leaves out the "What to do"
    (a download checking its own bytes says what it does with them)."""

    def todo() -> str:
        return f" What to do: {_download_hint(path)}." if advise else ""

    recorded = read_sidecar(path) if check_sidecar else None
    if recorded is not None:
        actual = hash_file(path)
        if actual != recorded:
            raise CheckpointError(
                f"Checkpoint {path} is corrupt: its SHA-256 ({actual}) differs from the one "
                f"recorded when it was downloaded and verified ({recorded}, in "
                f"{path.name}.sha256).{todo()}"
            )
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError,
            UnicodeDecodeError, zipfile.BadZipFile, KeyError, AttributeError,
            IndexError) as error:
        raise CheckpointError(f"{_describe_unreadable(path, error)}{todo()}") from error
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"Checkpoint {path} holds a {type(loaded).__name__}, not a dict of tensors.{todo()}"
        )
    return _unwrap(loaded, str(path))


def _unwrap(obj: Mapping[str, object], origin: str) -> dict[str, torch.Tensor]:
    for _ in range(4):  # wrappers nest at most a couple of levels in practice
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS
                      if k in obj and isinstance(obj[k], Mapping)), None)
        if inner is None:
            break
        obj = inner
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            top = ", ".join(f"{k!r}" for k in list(obj)[:8])
            raise CheckpointError(
                f"Cannot find a state dict in {origin}: entry {key!r} is a "
                f"{type(value).__name__}, not a tensor (top-level keys: {top}). A checkpoint "
                "should be a dict of tensors, or hold one under 'state_dict' or 'model'."
            )
        name = str(key)
        while name.startswith("module."):
            name = name[len("module."):]
        if name in state:
            raise CheckpointError(f"{origin} holds {key!r} both with and without the "
                                  "'module.' prefix; cannot tell which one to use")
        state[name] = value
    if not state:
        raise CheckpointError(f"{origin} holds no tensors")
    return state


# --- diagnostics ---------------------------------------------------------------------------

def identify_variants(state_dict: Mapping[str, torch.Tensor]) -> tuple[str, ...]:
    """Variants whose architecture fits ``state_dict`` by its fingerprint (encoder width and
    LSTT depth): e.g. ``('aott',)``, or ``('aotb', 'aotl')`` which cannot be told apart.

    A quick check that needs no model; :func:`check_state_dict` does the full comparison.
    """
    projector = state_dict.get("encoder_projector.weight")
    if projector is None or projector.ndim != 4:
        return ()
    depth = 0
    while f"LSTT.layers.{depth}.linear1.weight" in state_dict:
        depth += 1
    fingerprint = (int(projector.shape[1]), depth)
    return tuple(v for v, fp in FINGERPRINTS.items() if fp == fingerprint)


def _check_fingerprint(path: Path, entry: OfficialCheckpoint) -> None:
    state = _read_state_dict(path, False, advise=False)
    found = identify_variants(state)
    if entry.variant not in found:
        seems = " / ".join(variant_title(v) for v in found) or "no AOT variant aot-edu knows"
        raise CheckpointError(f"its layout is that of {seems}, not of {entry.title}")


def download_checkpoint(
    variant: str,
    stage: str = "PRE_YTB_DAV",
    root: str | Path | None = None,
    *,
    expected: Mapping[str, torch.Size] | None = None,
    allow_unsupported: bool = False,
    progress: bool = True,
    fetch: GDriveFetch | None = None,
) -> Path:
    """Download an official checkpoint into ``root`` (default: the course's checkpoint folder,
    ``AOT_EDU_CHECKPOINTS``) and return its path, e.g. ``<root>/AOTL_PRE_YTB_DAV.pth``.

    The file is verified before it is kept: it must load with ``weights_only=True`` and have
    exactly the keys and shapes of the variant's model (``expected``, by default
    :func:`aot_edu.model.state_dict_layout`; for Swin-B, which aot-edu does not build, its
    fingerprint, :func:`identify_variants`). Its SHA-256 is then recorded
    beside it. A verified file already present is not downloaded again. Swin-B (not built by
    aot-edu) needs ``allow_unsupported=True``. ``fetch`` replaces gdown (tests).
    """
    entry = get_checkpoint(variant, stage)
    if not entry.supported and not allow_unsupported:
        raise ValueError(
            f"{entry.title} is in the official model zoo but aot-edu does not build it "
            f"(supported: {', '.join(SUPPORTED_VARIANTS)}); pass allow_unsupported=True to "
            "download the file anyway"
        )
    if root is None:
        root = paths.checkpoint_dir()

    if expected is None and entry.supported:
        expected = state_dict_layout(entry.variant)

    def validate(path: Path) -> None:
        if expected is None:
            _check_fingerprint(path, entry)
        else:
            check_state_dict(_read_state_dict(path, False, advise=False), expected,
                             variant=entry.variant, layouts=official_layouts())

    return download_gdrive(entry.gdrive_id, Path(root) / entry.filename, sha256=entry.sha256,
                           size=entry.size, validate=validate, progress=progress, fetch=fetch)


def _shape(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def _agreement(state: Mapping[str, tuple[int, ...]], layout: Mapping[str, torch.Size]) -> float:
    """Share of (key, shape) pairs the two have in common (Jaccard index, 1.0 = identical)."""
    a = {(k, tuple(s)) for k, s in state.items()}
    b = {(k, tuple(int(x) for x in s)) for k, s in layout.items()}
    return len(a & b) / max(len(a | b), 1)


def check_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
    *,
    variant: str,
    layouts: Mapping[str, Mapping[str, torch.Size]],
    max_listed: int = 5,
) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly the keys and shapes of
    ``expected`` (the model being built, variant ``variant``).

    The message lists up to ``max_listed`` missing keys, unexpected keys and shape mismatches,
    and names the variant(s) in ``layouts`` (``{variant: {key: shape}}``) the file matches
    best. Variants with identical layouts (AOT-B and AOT-L) are named together, with the reason
    they cannot be told apart.
    """
    have = {k: tuple(int(s) for s in v.shape) for k, v in state_dict.items()}
    want = {k: tuple(int(s) for s in v) for k, v in expected.items()}
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    mismatched = [k for k in want if k in have and have[k] != want[k]]
    if not (missing or unexpected or mismatched):
        return

    def listed(keys: list[str], fmt=lambda k: k) -> str:
        shown = "; ".join(fmt(k) for k in keys[:max_listed])
        more = f"; ... and {len(keys) - max_listed} more" if len(keys) > max_listed else ""
        return shown + more

    lines = [f"The checkpoint does not fit {variant_title(variant)} (variant {variant!r}): "
             f"{len(have)} tensors in the file, {len(want)} in the model."]
    if missing:
        lines.append(f"- {len(missing)} missing (in the model, not in the file): "
                     f"{listed(missing)}")
    if unexpected:
        lines.append(f"- {len(unexpected)} unexpected (in the file, not in the model): "
                     f"{listed(unexpected)}")
    if mismatched:
        lines.append(f"- {len(mismatched)} with another shape: " + listed(
            mismatched, lambda k: f"{k} file {_shape(have[k])} vs model {_shape(want[k])}"))
    lines.append(_best_match_sentence(have, variant, layouts))
    raise CheckpointError("\n".join(lines))


def _best_match_sentence(
    have: Mapping[str, tuple[int, ...]],
    variant: str,
    layouts: Mapping[str, Mapping[str, torch.Size]],
) -> str:
    if not layouts:
        return ("Check that the file and the variant belong together (`aot-edu download list` "
                "shows the official files).")
    scores = {name: _agreement(have, layout) for name, layout in layouts.items()}
    best_score = max(scores.values())
    order = {name: i for i, name in enumerate(VARIANTS)}
    best = sorted((name for name, score in scores.items() if score == best_score),
                  key=lambda name: order.get(name, len(order)))
    titles = " / ".join(f"{variant_title(n)} ('{n}')" for n in best)
    if best_score < 0.5:
        return (f"It matches no known variant closely (best: {titles}, {best_score:.0%} of "
                "keys and shapes agree); it is probably not an AOT checkpoint.")
    exact = best_score == 1.0
    kind = "is exactly the layout of" if exact else \
        f"looks most like ({best_score:.0%} of keys and shapes agree)"
    unsupported = [n for n in best if n not in SUPPORTED_VARIANTS]
    if len(best) > 1:
        sentence = (f"The file {kind} {titles}: these variants have identical state dicts "
                    "(AOT-B and AOT-L share one architecture and differ only in the test-time "
                    "long-term memory gap), so the file alone cannot tell which one it is. "
                    "Build the model with the variant the file was published as (the official "
                    "files say it in their name, e.g. AOTB_PRE_YTB_DAV.pth).")
    else:
        sentence = f"The file {kind} {titles}."
        if best[0] != variant and not unsupported:
            sentence += (f" This looks like an {variant_title(best[0])} checkpoint; build the "
                         f"model with variant '{best[0]}'.")
    if unsupported:
        sentence += (f" aot-edu does not build {', '.join(variant_title(n) for n in unsupported)}"
                     f"; supported: {', '.join(SUPPORTED_VARIANTS)}.")
    return sentence


def official_layouts() -> dict[str, dict[str, torch.Size]]:
    """``{variant: {key: shape}}`` of every variant aot-edu builds (for diagnostics)."""
    return {name: state_dict_layout(name) for name in MODEL_VARIANTS}


def load_weights(model: torch.nn.Module, weights: str | Path | Mapping[str, object]) -> None:
    """Load an official checkpoint (file or state dict) into ``model`` strictly.

    Unlike the official loader, nothing is dropped silently: any missing, unexpected or
    mis-shaped key raises :class:`CheckpointError`, naming the variant the file looks like.
    """
    state = load_state_dict_file(weights)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    check_state_dict(state, expected, variant=model.config.name, layouts=official_layouts())
    model.load_state_dict(state, strict=True)


def build_model(
    variant: str | AOTConfig,
    weights: str | Path | dict[str, Tensor] | None = None,
    *,
    pretrained_encoder: bool = False,
    device: torch.device | str = "cpu",
) -> AOT:
    """Build an AOT variant, optionally loading an official checkpoint unchanged.

    Args:
        variant: ``aott``, ``aots``, ``aotb``, ``aotl`` or ``r50_aotl`` (or an :class:`AOTConfig`).
        weights: path of an official checkpoint (any wrapper or ``module.`` prefix) or a state
            dict. Keys and shapes must match the variant exactly; a mismatch raises
            :class:`CheckpointError` naming the variant the file looks like.
        pretrained_encoder: start the encoder from ImageNet weights (training from scratch).

    Returns the model in eval mode.
    """
    config = get_config(variant)
    model = AOT(config, pretrained_encoder=pretrained_encoder)
    if weights is not None:
        load_weights(model, weights)
    return model.to(device).eval()
