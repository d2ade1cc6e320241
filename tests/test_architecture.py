"""The package's layers (ARCHITECTURE.md): the import contract holds, and the command line starts
without loading torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    # the checkout under test first, whichever copy of the package is installed
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def test_the_layer_contract_holds():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.is_file():
        pytest.fail("import-linter is missing: install the dev extra (pip install -e '.[dev]')")
    run = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, env=_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 kept, 0 broken" in run.stdout


@pytest.mark.parametrize("argv", [["--help"], ["segment", "--help"], ["download", "list"]])
def test_the_command_line_starts_without_torch(argv, tmp_path):
    code = (
        "import sys\n"
        "from aot_edu.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('torch loaded' if 'torch' in sys.modules else 'no torch')\n"
    )
    env = {**_env(), "AOT_EDU_DATA": str(tmp_path), "AOT_EDU_CHECKPOINTS": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "usage: aot-edu" in run.stdout or "Datasets" in run.stdout
    assert run.stdout.strip().endswith("no torch"), run.stdout[-300:]


def test_the_public_api_resolves_on_first_use():
    code = (
        "import sys\n"
        "import aot_edu\n"
        "assert 'torch' not in sys.modules, 'import aot_edu loaded torch'\n"
        "from aot_edu import SegmentationResult, build_model, segment, segment_frames\n"
        "assert segment.__module__ == 'aot_edu.inference.session'\n"
        "assert build_model.__module__ == 'aot_edu.model.weights'\n"
        "assert aot_edu.video.segment_video.__module__ == 'aot_edu.video'\n"
        "print(sorted(aot_edu.__all__))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "'build_model', 'segment', 'segment_frames'" in run.stdout
