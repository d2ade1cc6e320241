"""Runs that lose nothing: checkpoints written atomically with everything needed to continue
(model, optimiser, scaler, EMA, random states, data position, step), resuming, and what to do
with a run folder trained under another configuration.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aot_edu import paths
from aot_edu.data.io import FILE_BROWSER_FILES
from aot_edu.model import AOT, build_model

from .config import ConfigError, TrainConfig, model_config_of
from .logs import read_log

CHECKPOINT_FORMAT = "aot-edu-train/1"


def atomic_save(obj, path: str | Path) -> Path:
    """``torch.save`` written whole (:func:`aot_edu.paths.atomic_write`): the target is always
    either the old or the new complete file."""
    with paths.atomic_write(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


def rng_state() -> dict:
    """Python, NumPy and torch (CPU, CUDA) random states, in types ``weights_only`` loads."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(words), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping) -> None:
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


_KEEP_RUN = ("Restore the file from a copy to resume; or, to start over and keep this folder as "
             "it is, set run.output_dir to a new folder (e.g. --set run.output_dir=runs/new)")


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint (``weights_only=True``) and check its format.

    Raises :class:`ConfigError` (the ``aot-edu`` command prints it as a one-line error) when the
    file is damaged or is not a training checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a damaged file: say which and what to do
        reason = str(error).strip().rstrip(".")
        raise ConfigError(
            f"cannot read the training checkpoint {path} ({reason}). Checkpoints are written "
            f"atomically, so the file was damaged after it was written. {_KEEP_RUN}."
        ) from error
    if not isinstance(state, Mapping) or state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path} is not an aot-edu training checkpoint ({CHECKPOINT_FORMAT}). "
                          f"{_KEEP_RUN}.")
    return state


def check_run_dir(run_dir: Path) -> None:
    """Refuse a ``run.output_dir`` that holds other files than a run's: training writes
    ``log.csv``, ``model_ema.pt``, ... there and would overwrite files of those names."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run.output_dir {run_dir} is a file; set run.output_dir to a folder")
    if not run_dir.is_dir() or any((run_dir / n).is_file() for n in ("checkpoint.pt",
                                                                      "config.json")):
        return  # new, or a run (maybe stopped before its first checkpoint) to continue
    # ignore file browsers' files and our own atomic-write temporaries (another process's)
    entries = sorted(p.name for p in run_dir.iterdir()
                     if p.name not in FILE_BROWSER_FILES
                     and not (p.name.startswith(".") and p.name.endswith(".tmp")))
    if entries:
        raise ConfigError(
            f"run.output_dir {run_dir} is not empty ({len(entries)} entries, e.g. "
            f"{', '.join(entries[:3])}) and holds no aot-edu run (no checkpoint.pt or "
            "config.json); training there would overwrite files such as log.csv and "
            "model_ema.pt. Set run.output_dir to a new or empty folder (e.g. --set "
            "run.output_dir=runs/new), or move those files away first."
        )


@dataclass
class TrainResult:
    """What :func:`train` returns (also rebuilt from a finished run's folder)."""

    config: TrainConfig
    run_dir: Path
    step: int
    train_time: float  # seconds spent training (all sessions; evaluation excluded)
    metrics: dict  # held-out evaluation of the EMA weights at the end ({} when disabled)
    resumed_from: int | None = None

    @property
    def checkpoint(self) -> Path:
        """Full training state; also loads with ``build_model(variant, weights=...)`` (raw
        weights under ``state_dict``)."""
        return self.run_dir / "checkpoint.pt"

    @property
    def weights(self) -> Path:
        """The EMA weights, the ones to use (``build_model(variant, weights=result.weights)``)."""
        return self.run_dir / "model_ema.pt"

    @property
    def log(self) -> Path:
        return self.run_dir / "log.csv"

    @property
    def curves(self) -> Path:
        return self.run_dir / "curves.png"

    def history(self) -> list[dict]:
        return read_log(self.log)

    def load_model(self, ema: bool = True, device: torch.device | str = "cpu") -> AOT:
        """The trained model in eval mode (EMA weights unless ``ema=False``)."""
        return build_model(model_config_of(self.config),
                           weights=self.weights if ema else self.checkpoint, device=device)


def _comparable(config_dict: Mapping) -> dict:
    """The settings that change a run's numbers, with today's defaults for keys an older
    version of the package did not write (a new option's default keeps the old behaviour)."""
    out = json.loads(json.dumps(dict(config_dict)))
    for key, default in json.loads(json.dumps(TrainConfig().to_dict())).items():
        if isinstance(default, dict) and isinstance(out.get(key), dict):
            out[key] = {**default, **out[key]}
        else:
            out.setdefault(key, default)
    out.pop("run", None)
    out.pop("eval", None)
    return out


def retire_outdated_run(run_dir: str | Path, config: TrainConfig) -> Path | None:
    """Keep a run made with another configuration out of the way of ``config``'s run.

    If ``run_dir`` holds a run whose configuration differs (:func:`run_differences`), it is
    renamed ``<run_dir>-outdated-<time>`` - nothing is deleted - and the new name returned, with
    a message saying what changed; otherwise nothing happens and ``None`` is returned. For runs
    that a configuration file owns (the course model, a notebook's run), so that editing the
    file or pulling a new version trains afresh instead of stopping with an error.
    """
    run_dir = Path(run_dir)
    changed = run_differences(run_dir, config)
    if not changed:
        return None
    kept = run_dir.with_name(f"{run_dir.name}-outdated-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(kept)
    print(f"{run_dir} was trained with another configuration ({'; '.join(changed)}); it is now "
          f"{kept}, and a new run starts")
    return kept


def _differences(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            diffs += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return diffs


def run_differences(run_dir: str | Path, config: TrainConfig) -> list[str]:
    """How the run in ``run_dir`` was configured differently from ``config`` (settings that
    change the numbers only; ``[run]`` and ``[eval]`` may differ). ``[]`` when the folder holds
    no checkpoint or the same configuration - the cases :func:`train` continues."""
    checkpoint = Path(run_dir) / "checkpoint.pt"
    if not checkpoint.is_file():
        return []
    return config_changes(load_checkpoint(checkpoint)["config"], config)


def config_changes(stored: Mapping, config: TrainConfig) -> list[str]:
    """``old -> new`` for every setting that changes the numbers, stored run vs ``config``."""
    return _differences(_comparable(stored), _comparable(config.to_dict()))
