"""The exercises' machinery: the registry, :func:`check` with the solutions switch, hints,
grades. The checks themselves are registered by the modules of each notebook.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from aot_edu.course import show_source

SOLUTIONS_FILE = Path(__file__).resolve().parents[3] / "notebooks" / "solutions.py"
SWITCH = "AOT_EDU_SOLUTIONS"
GRADES = "AOT_EDU_GRADES"


# --- what the learner sees -------------------------------------------------------------------

class Mistake(AssertionError):
    """The learner's code runs but is not right yet; the message says what to fix.

    In a notebook only the message is shown, not the check's own traceback.
    """

    def _render_traceback_(self) -> list[str]:  # IPython: show the message, not our stack
        return [f"{type(self).__name__}: {line}" if i == 0 else line
                for i, line in enumerate(str(self).splitlines())]


class NotWritten(NotImplementedError):
    """The exercise still raises ``NotImplementedError`` and no solution may stand in."""

    _render_traceback_ = Mistake._render_traceback_


@dataclass(frozen=True)
class Exercise:
    """One "your turn" exercise: where it is, what to write, how it is checked."""

    key: str
    title: str
    paper: str  # "Eq. 2", "Fig. 2c", ...
    notebook: str
    signature: str
    hints: tuple[str, ...]
    run: Callable[[object], None]  # raises Mistake (or NotWritten via _call)

    @property
    def name(self) -> str:
        return f"{self.title} ({self.paper})"


EXERCISES: dict[str, Exercise] = {}
_results: dict[str, str] = {}
_hints_given: dict[str, int] = {}


def _exercise(key: str, title: str, paper: str, notebook: str, signature: str,
              hints: Sequence[str]) -> Callable:
    def register(run: Callable[[object], None]) -> Callable[[object], None]:
        EXERCISES[key] = Exercise(key, title, paper, notebook, signature, tuple(hints), run)
        return run
    return register


def _get(key: str) -> Exercise:
    if key not in EXERCISES:
        raise KeyError(f"no exercise {key!r}; the exercises are: {', '.join(EXERCISES)}")
    return EXERCISES[key]


def solutions_mode() -> str:
    """``auto``, ``on`` or ``off``, from ``AOT_EDU_SOLUTIONS``."""
    value = os.environ.get(SWITCH, "auto").strip().lower()
    value = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off",
             "": "auto"}.get(value, value)
    if value not in ("auto", "on", "off"):
        raise ValueError(f"{SWITCH} must be auto, on or off, got {os.environ[SWITCH]!r}")
    return value


def solutions_path() -> Path | None:
    """Where the course's solutions are: ``notebooks/solutions.py`` of the checkout the package
    comes from, else of the working directory (or ``solutions.py`` in it: a kernel started in
    ``notebooks/``); ``None`` when there are none (a student version)."""
    for candidate in (SOLUTIONS_FILE, Path.cwd() / "notebooks" / "solutions.py",
                      Path.cwd() / "solutions.py"):
        if candidate.is_file():
            return candidate
    return None


def load_solutions(path: str | Path | None = None):
    """The course's solutions module (:func:`solutions_path`), or ``None`` if absent."""
    path = Path(path) if path is not None else solutions_path()
    if path is None or not path.is_file():
        return None
    name = "aot_edu_course_solutions"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _solution(exercise: Exercise):
    module = load_solutions()
    return None if module is None else getattr(module, exercise.key)


def check(key: str, answer):
    """Check the learner's ``answer`` to exercise ``key``; return what the notebook goes on with.

    Right: prints so and returns ``answer``. Wrong: raises :class:`Mistake` (what is wrong and
    how to find out more). Not written yet (it raises ``NotImplementedError``): returns the
    course's solution with a notice, or raises :class:`NotWritten` when the solutions switch
    is off or the solutions are absent (a student version).
    """
    exercise = _get(key)
    try:
        exercise.run(answer)
    except NotWritten:
        mode = solutions_mode()
        solution = None if mode == "off" else _solution(exercise)
        if solution is None:
            _record(key, "not written")
            if mode == "on":
                raise NotWritten(f"{exercise.name}: {SWITCH}=on but the solutions file "
                                 f"notebooks/solutions.py is missing") from None
            raise NotWritten(
                f"{exercise.name} is not written yet: your {exercise.signature.split('(')[0]} "
                f"still raises NotImplementedError.\nWrite it in the cell above, run that cell, "
                f"then this one. Stuck? exercises.hint({key!r})") from None
        _record(key, "solution used")
        print(f"NOTE {exercise.name}: not written yet, so the course's solution stands in and the "
              f"notebook goes on.\n     Write yours in the cell above and run both cells again; "
              f"exercises.hint({key!r}) gives a hint.")
        return solution
    except Mistake:
        _record(key, "not right yet")
        raise
    _record(key, "correct")
    print(f"{exercise.name}: correct - yours is used from here on")
    return answer


def _record(key: str, status: str) -> None:
    """Note the check's result; with ``AOT_EDU_GRADES`` set, also append it to that file with
    the folder the notebook runs in (one folder per student tells the students apart).

    A relative ``AOT_EDU_GRADES`` is taken from the directory where the command was started
    (``$PWD``, which a kernel inherits), not the kernel's own directory: nbval and Jupyter
    start a kernel in the notebook's folder, where a relative path would scatter the file.
    """
    _results[key] = status
    path = os.environ.get(GRADES)
    if path:
        path = Path(os.environ.get("PWD", os.getcwd()), path)
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"exercise": key, "notebook": EXERCISES[key].notebook,
                                "status": status, "folder": os.getcwd()}) + "\n")


def hint(key: str, all: bool = False) -> None:  # noqa: A002 (reads well in a notebook)
    """Print the hints of exercise ``key`` given so far and one more (``all=True``: all)."""
    exercise = _get(key)
    given = _hints_given.get(key, 0)
    shown = exercise.hints if all else exercise.hints[: given + 1]
    _hints_given[key] = len(shown)
    for i, text in enumerate(shown, 1):
        print(f"hint {i}/{len(exercise.hints)}: {text}")
    if not all and given >= len(exercise.hints):
        print("that was the last hint; exercises.solution(...) shows the course's solution")


def solution(key: str) -> None:
    """Show the course's solution of exercise ``key`` (when the solutions are at hand)."""
    found = _solution(_get(key))
    if found is None:
        print("no solutions in this copy of the course")
        return
    show_source(found)


def summary() -> dict[str, str]:
    """Print and return where each exercise stands in this session."""
    rows = {key: _results.get(key, "not checked") for key in EXERCISES}
    for key, status in rows.items():
        exercise = EXERCISES[key]
        print(f"{exercise.notebook:<13} {exercise.name:<52} {status}")
    return rows


def exercise_keys(notebook: str | None = None) -> list[str]:
    """The exercises (of one notebook, e.g. ``"01_attention"``), in course order."""
    return [k for k, e in EXERCISES.items() if notebook is None or e.notebook == notebook]


def signature_of(key: str) -> str:
    """The signature the learner writes, as the exercise states it."""
    return _get(key).signature
