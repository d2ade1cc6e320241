"""Wall time of every course notebook, executed top to bottom in quick mode.

The course promises at most 3 minutes per notebook and 15 for the whole course on a 2-core CPU
in quick mode. Two runs are timed:

- **course order**: 00, 01, ... with one fresh checkpoint folder, as a learner runs them (the
  course model is trained once - by notebook 02 - and loaded by the later notebooks);
- **cold** (not with ``--quick``): each notebook that would load the course model, run alone
  with an empty checkpoint folder, so it has to train the model itself (its worst case).

Each notebook runs in a fresh kernel of the current Python (nbclient), with ``AOT_EDU_MODE=quick``.
Cells that write to stderr are listed: the notebooks should show none.
``python bench/bench_notebooks.py [NN ...]`` runs some notebooks and prints the times.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PER_NOTEBOOK_BUDGET_S = 180
COURSE_BUDGET_S = 15 * 60


def execute(path: Path, env: dict[str, str], timeout: int = 900) -> tuple[float, list[str]]:
    """Run a notebook in a fresh kernel; return (seconds, stderr snippets of its cells)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    noise = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                noise.append(f"cell {index}: {output['text'].strip()[:120]}")
    return seconds, noise


def _uses_course_model(path: Path) -> bool:
    return "course_model(" in path.with_suffix(".py").read_text(encoding="utf-8")


def run(quick: bool, names: list[str] | None = None) -> str:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if p.name[:2] in names or p.stem in names]
    env = {"AOT_EDU_MODE": "quick", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows, total, problems = [], 0.0, []
    with tempfile.TemporaryDirectory() as checkpoints:
        for path in paths:
            load = os.getloadavg()[0]  # other programs on the machine slow the notebooks down
            seconds, noise = execute(path, {**env, "AOT_EDU_CHECKPOINTS": checkpoints})
            total += seconds
            cold = ""
            if not quick and _uses_course_model(path):
                with tempfile.TemporaryDirectory() as empty:
                    cold_s, _ = execute(path, {**env, "AOT_EDU_CHECKPOINTS": empty})
                cold = f"{cold_s:.0f}"
            rows.append((path.name, seconds, cold, load))
            problems += [f"{path.name} {n}" for n in noise]
            print(f"{path.name}: {seconds:.0f} s{' (cold ' + cold + ' s)' if cold else ''}", flush=True)
    lines = [
        "## Notebooks (quick mode)",
        "",
        "Wall time of each notebook executed top to bottom (nbclient, fresh kernel, "
        "`AOT_EDU_MODE=quick`). *Course order*: the notebooks in sequence sharing one fresh "
        "checkpoint folder (notebook 02 trains the course model, later ones load it). *Cold*: "
        "the notebook alone with an empty checkpoint folder (it trains the course model "
        f"itself). Budget: {PER_NOTEBOOK_BUDGET_S} s per notebook, {COURSE_BUDGET_S // 60} min "
        "for the course, on a 2-core CPU.",
        "",
        f"The machine has {os.cpu_count()} cores; *load* is the 1-minute load average when the "
        "notebook started (above the core count, other programs were competing for the CPU and "
        "the times are inflated).",
        "",
        "| notebook | course order (s) | cold (s) | load |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {seconds:.0f} | {cold or '-'} | {load:.1f} |" for name, seconds, cold, load in rows]
    lines += [f"| **whole course** | **{total:.0f}** | | |", ""]
    lines.append("Cells writing to stderr: " + ("; ".join(problems) if problems else "none."))
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick=True, names=sys.argv[1:]))
