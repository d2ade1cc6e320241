"""Wall time of every course notebook, executed top to bottom in quick mode.

The course promises at most 3 minutes per notebook and 15 for the whole course on a 2-core CPU
in quick mode. The notebooks run in course order (00, 01, ...), each in a fresh kernel of the
current Python with ``AOT_EDU_MODE=quick``, an empty checkpoint folder and none of the
notebooks' own runs (a clean clone has none: notebook 05 trains its short run); the course
model ships with the course (``aot_edu/assets``), so nothing is trained beforehand. Each runs
exactly as the test command runs it (pytest + nbval), so the time is what CI spends on it.
``python bench/bench_notebooks.py [NN ...]`` runs some notebooks and prints the times.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PER_NOTEBOOK_BUDGET_S = 180
COURSE_BUDGET_S = 15 * 60
NOTEBOOK_RUNS = (ROOT / "runs" / "nb05_quick",)  # what the notebooks train for themselves


@contextlib.contextmanager
def notebook_runs_set_aside():
    """Run the notebooks as on a clean clone: their own runs are moved aside meanwhile, then
    put back (the runs the benchmark made are deleted), so nothing of the user's is lost."""
    with tempfile.TemporaryDirectory(dir=ROOT / "runs") as keep:
        moved = []
        for run_dir in NOTEBOOK_RUNS:
            if run_dir.exists():
                run_dir.rename(Path(keep) / run_dir.name)
                moved.append(run_dir)
        try:
            yield
        finally:
            for run_dir in NOTEBOOK_RUNS:
                shutil.rmtree(run_dir, ignore_errors=True)
            for run_dir in moved:
                (Path(keep) / run_dir.name).rename(run_dir)


def execute(path: Path, env: dict[str, str], timeout: int = 900) -> tuple[float, str]:
    """Run one notebook as the test command does (pytest + nbval, fresh kernel); return
    (seconds, pytest's last line). Raises if the notebook fails."""
    command = [sys.executable, "-m", "pytest", str(path), "--nbval-lax", "--nbval-current-env",
               "-p", "no:cacheprovider", "-q"]
    start = time.perf_counter()
    done = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    seconds = time.perf_counter() - start
    last = (done.stdout.strip().splitlines() or [""])[-1]
    if done.returncode != 0:
        raise RuntimeError(f"{path.name} failed:\n{done.stdout[-3000:]}")
    return seconds, last


def run(quick: bool, names: list[str] | None = None) -> str:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if p.name[:2] in names or p.stem in names]
    env = {"AOT_EDU_MODE": "quick", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows, total = [], 0.0
    with tempfile.TemporaryDirectory() as checkpoints, notebook_runs_set_aside():
        for path in paths:
            load = os.getloadavg()[0]  # other programs on the machine slow the notebooks down
            seconds, summary = execute(path, {**env, "AOT_EDU_CHECKPOINTS": checkpoints})
            total += seconds
            rows.append((path.name, seconds, load, summary))
            print(f"{path.name}: {seconds:.0f} s ({summary})", flush=True)
    over = [name for name, seconds, _, _ in rows if seconds > PER_NOTEBOOK_BUDGET_S]
    lines = [
        "## Notebooks (quick mode)",
        "",
        "Wall time of each notebook run top to bottom in course order by the test command "
        "(`pytest --nbval-lax`, a fresh kernel each, `AOT_EDU_MODE=quick`, an empty checkpoint "
        "folder and no notebook runs, as in a clean clone; pytest's start-up included); the "
        "course model is the shipped one (nothing trained beforehand). Budget: "
        f"{PER_NOTEBOOK_BUDGET_S} s per notebook, {COURSE_BUDGET_S // 60} min for the course, "
        f"on a 2-core CPU. *Load*: the 1-minute load average when the notebook started (this "
        f"machine has {os.cpu_count()} cores; above that, other programs competed for the CPU).",
        "",
        "| notebook | seconds | load | nbval |",
        "|---|---:|---:|---|",
    ]
    lines += [f"| {name} | {seconds:.0f} | {load:.1f} | {summary} |" for name, seconds, load, summary in rows]
    lines += [f"| **whole course** | **{total:.0f}** | | |", ""]
    lines.append("Over the per-notebook budget: " + (", ".join(over) if over else "none."))
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick=True, names=sys.argv[1:]))
