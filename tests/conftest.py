"""Shared fixtures. Reference material in ``../shared`` is optional: tests that need it skip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

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
