"""Wall time of every course notebook, executed top to bottom in quick mode.

The course promises at most 3 minutes per notebook and 15 for the whole course on a 2-core CPU
in quick mode. The notebooks run in course order (00, 01, ...), each in a fresh kernel of the
current Python (nbclient) with ``AOT_EDU_MODE=quick`` and an empty checkpoint folder, with the
course model already trained (``make course-model``: it is a set-up step like the install, and
its own training time is reported beside the table). Cells that write to stderr are listed:
the notebooks should show none. The executed notebooks are kept in ``runs/bench/notebooks``.
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


def execute(path: Path, env: dict[str, str], timeout: int = 900):
    """Run a notebook in a fresh kernel; return (seconds, stderr snippets of its cells, the
    executed notebook)."""
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
    return seconds, noise, notebook


def run(quick: bool, names: list[str] | None = None) -> str:
    import json

    import nbformat

    course_run = ROOT / "runs" / "course" / "summary.json"
    if not course_run.is_file():
        raise SystemExit("the notebooks need the course model: run `make course-model` first")
    course = json.loads(course_run.read_text())
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if names:
        paths = [p for p in paths if p.name[:2] in names or p.stem in names]
    kept = ROOT / "runs" / "bench" / "notebooks"
    kept.mkdir(parents=True, exist_ok=True)
    env = {"AOT_EDU_MODE": "quick", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    rows, total, problems = [], 0.0, []
    with tempfile.TemporaryDirectory() as checkpoints:
        for path in paths:
            load = os.getloadavg()[0]  # other programs on the machine slow the notebooks down
            seconds, noise, executed = execute(path, {**env, "AOT_EDU_CHECKPOINTS": checkpoints})
            nbformat.write(executed, kept / path.name)
            total += seconds
            rows.append((path.name, seconds, load))
            problems += [f"{path.name} {n}" for n in noise]
            print(f"{path.name}: {seconds:.0f} s", flush=True)
    over = [name for name, seconds, _ in rows if seconds > PER_NOTEBOOK_BUDGET_S]
    lines = [
        "## Notebooks (quick mode)",
        "",
        "Wall time of each notebook executed top to bottom in course order (nbclient, fresh "
        "kernel, `AOT_EDU_MODE=quick`, empty checkpoint folder), with the course model trained "
        f"beforehand by `make course-model` ({course['step']} steps, "
        f"{course['train_time'] / 60:.1f} min of training when it was made). Budget: "
        f"{PER_NOTEBOOK_BUDGET_S} s per notebook, {COURSE_BUDGET_S // 60} min for the course, "
        f"on a 2-core CPU. *Load*: the 1-minute load average when the notebook started (this "
        f"machine has {os.cpu_count()} cores; above that, other programs competed for the CPU).",
        "",
        "| notebook | seconds | load |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {seconds:.0f} | {load:.1f} |" for name, seconds, load in rows]
    lines += [f"| **whole course** | **{total:.0f}** | |", ""]
    lines.append("Over the per-notebook budget: " + (", ".join(over) if over else "none."))
    lines.append("Cells writing to stderr: " + ("; ".join(problems) if problems else "none."))
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick=True, names=sys.argv[1:]))
