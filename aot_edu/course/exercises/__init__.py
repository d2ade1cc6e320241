"""Your turn: the course's graded exercises, checks that teach, hints, and the solutions switch.

In notebooks 01-05 the learner writes AOT's pieces with the paper's names: attention (Eq. 2),
the identification mechanism (Eq. 3-5), long- and short-term attention (Eq. 6-7), an LSTT
block (Fig. 2c) and the training loss. An exercise is two cells:

    def attention(Q: Tensor, K: Tensor, V: Tensor) -> Tensor:
        raise NotImplementedError  # your code here

    attention = exercises.check("attention", attention)

:func:`check` runs the learner's code on small fixed inputs against the package's own
implementation (:mod:`aot_edu.model.attention`, :mod:`aot_edu.model.identity`, :mod:`aot_edu.model.lstt`,
:mod:`aot_edu.training`: this module holds no second copy of the model) and either prints that it
is right or raises :class:`Mistake`, whose message says what is wrong in the learner's words:
which axis of which shape, a missing ``1/sqrt(C)``, a softmax over the wrong axis, a window
off by one, identities not shared between memory and query, ... It returns the function (or
class) the rest of the notebook then uses: the learner's own.

**The solutions switch.** A stub that still raises ``NotImplementedError`` is "not written
yet". With the course's solutions at hand (``notebooks/solutions.py``) :func:`check` then
prints a notice and returns the solution, so every notebook runs from top to bottom (the test
suite relies on it); without them it stops with a message saying what to write. The
environment variable ``AOT_EDU_SOLUTIONS`` decides: ``auto`` (default: use the solutions if
the file exists), ``on`` (use them; a missing file is an error) or ``off`` (never: every
exercise must be written - for learners who want to be held to it, and for grading).

**A student version** for a class is this repository without ``notebooks/solutions.py``:
checks and hints keep working, the solutions are gone. ``AOT_EDU_GRADES=results.jsonl``
appends one line per check (exercise, notebook, status, the notebook's folder) for an
instructor who runs the students' notebooks, e.g. with ``AOT_EDU_SOLUTIONS=off pytest
--nbval-lax`` (the README's command); :func:`summary` shows a learner's own table.

Hints come on request: ``exercises.hint("attention")`` gives the next one each time.
:func:`plug_in` swaps the learner's LSTT block into a trained model (notebook 03).

Modules: :mod:`.framework` (registry, check, hints, grades), :mod:`.checking` (what the checks
share), and the checks of each notebook: :mod:`.attention` (01), :mod:`.identity` (02),
:mod:`.lstt` (03), :mod:`.loss` (05).
"""

from . import attention, identity, loss, lstt  # noqa: F401 (each registers its notebook's checks)
from .framework import (
    EXERCISES,
    GRADES,
    SOLUTIONS_FILE,
    SWITCH,
    Exercise,
    Mistake,
    NotWritten,
    _hints_given,  # noqa: F401 (the tests reset the hints given)
    check,
    exercise_keys,
    hint,
    load_solutions,
    signature_of,
    solution,
    solutions_mode,
    summary,
)
from .lstt import LearnerBlock, plug_in

__all__ = ["EXERCISES", "GRADES", "SOLUTIONS_FILE", "SWITCH", "Exercise", "LearnerBlock", "Mistake",
           "NotWritten", "check", "exercise_keys", "hint", "load_solutions", "plug_in",
           "signature_of", "solution", "solutions_mode", "summary"]
