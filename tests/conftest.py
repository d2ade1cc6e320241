"""Shared fixtures. Reference material in ``../shared`` is optional: tests that need it skip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from aot_edu import build_model
from aot_edu.course import find_shared

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(min(2, torch.get_num_threads()))


def require_shared(*parts: str) -> Path:
    """Path inside ``../shared`` (or ``$AOT_EDU_SHARED``), skipping the test when it is absent."""
    shared = find_shared(ROOT)
    if shared is None:
        pytest.skip(
            "reference folder ../shared is absent (a user's clone has none); set AOT_EDU_SHARED "
            "to a folder with golden/, reference/ and datasets/ to run this test"
        )
    path = shared.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent from the reference folder")
    return path


@pytest.fixture
def shared_dir() -> Path:
    return require_shared()


@pytest.fixture(scope="module")
def random_aott() -> torch.nn.Module:
    """A randomly initialised AOT-T (seed 0), one per test module."""
    torch.manual_seed(0)
    return build_model("aott")


def random_frames(t: int = 4, h: int = 65, w: int = 97, seed: int = 0) -> np.ndarray:
    """uint8 noise frames ``[T, H, W, 3]``: enough to exercise shapes and code paths."""
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def official_layout(name: str) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    """``({key: shape}, footer numbers)`` of ``../shared/reference/official_state_dicts/<name>.tsv``."""
    path = require_shared("reference", "official_state_dicts", f"{name}.tsv")
    layout, footer = {}, {}
    for line in path.read_text().splitlines():
        if line.startswith("# ") and "\t" in line and not line.startswith("# key"):
            label, value = line[2:].split("\t")
            footer[label] = int(value)
        elif line and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            layout[key] = tuple(int(s) for s in shape.split("x")) if shape else ()
    return layout, footer


def load_golden(name: str) -> dict:
    return torch.load(require_shared("golden", f"{name}.pt"), weights_only=True)
