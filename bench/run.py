"""Run the benchmarks and write ``bench/RESULTS.md``.

Each ``bench/bench_<name>.py`` defines ``run(quick: bool) -> str`` returning a Markdown section.
``python bench/run.py`` runs all of them; ``python bench/run.py metrics engine`` runs some and
keeps the other sections of RESULTS.md as they were. ``--quick`` runs reduced sizes (a smoke
test of the benchmark code, not numbers to quote).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "RESULTS.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"CPU {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
        f"GPU {gpu}; Python {platform.python_version()}, torch {torch.__version__}"
    )


def available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py"))


def load(name: str):
    path = BENCH / f"bench_{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH))
    spec.loader.exec_module(module)
    return module


def update_results(sections: dict[str, str], header: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    text = re.sub(r"(?s)<!-- machine -->.*?<!-- /machine -->\n?", "", text)
    text = text.replace("# Benchmark results\n", f"# Benchmark results\n\n{header}", 1)
    for name, body in sections.items():
        block = f"<!-- bench:{name} -->\n{body.strip()}\n<!-- /bench:{name} -->\n"
        pattern = rf"(?s)<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->\n?"
        text = re.sub(pattern, lambda _, b=block: b, text) if re.search(pattern, text) else text + "\n" + block
    RESULTS.write_text(re.sub(r"\n{3,}", "\n\n", text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {available()})")
    parser.add_argument("--quick", action="store_true", help="reduced sizes; do not write RESULTS.md")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {available()}")
    sections = {}
    for name in names:
        start = time.perf_counter()
        print(f"== bench {name}", flush=True)
        sections[name] = load(name).run(quick=args.quick)
        print(sections[name])
        print(f"== bench {name} took {time.perf_counter() - start:.1f} s", flush=True)
    if not args.quick:
        stamp = time.strftime("%Y-%m-%d")
        header = f"<!-- machine -->\nLast run {stamp} on: {machine()}.\n<!-- /machine -->\n"
        update_results(sections, header)
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
