"""Your turn: the course's graded exercises, checks that teach, hints, and the solutions switch.

In notebooks 01-05 the learner writes AOT's pieces with the paper's names: attention (Eq. 2),
the identification mechanism (Eq. 3-5), long- and short-term attention (Eq. 6-7), an LSTT
block (Fig. 2c) and the training loss. An exercise is two cells:

    def attention(Q: Tensor, K: Tensor, V: Tensor) -> Tensor:
        raise NotImplementedError  # your code here

    attention = exercises.check("attention", attention)

:func:`check` runs the learner's code on small fixed inputs against the package's own
implementation (:mod:`aot_edu.attention`, :mod:`aot_edu.identity`, :mod:`aot_edu.lstt`,
:mod:`aot_edu.train`: this module holds no second copy of the model) and either prints that it
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
--nbval-lax`` (the README's command); :func:`summary` shows a
learner's own table.

Hints come on request: ``exercises.hint("attention")`` gives the next one each time.
:func:`plug_in` swaps the learner's LSTT block into a trained model (notebook 03).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import attention as att
from . import identity as ident
from .lstt import BlockMemory, LSTTBlock, map_to_seq, seq_to_map

SOLUTIONS_FILE = Path(__file__).resolve().parent.parent / "notebooks" / "solutions.py"
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
    from .course import show_source

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


# --- helpers of the checks ---------------------------------------------------------------------

def _fixed(*shape: int, seed: int, scale: float = 1.0) -> Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _shape(x) -> str:
    return f"[{', '.join(map(str, x.shape))}]" if isinstance(x, Tensor) else type(x).__name__


def _call(exercise_key: str, fn: Callable, *args, called: str,
          explain: Callable[[Exception], str | None] | None = None, **kwargs):
    """Run the learner's code; a crash becomes a :class:`Mistake` naming the call (and, with
    ``explain``, the likely cause)."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotWritten(exercise_key) from None
    except Mistake:
        raise
    except Exception as error:  # the learner's own bug: say where, keep PyTorch's words
        cause = explain(error) if explain else None
        raise Mistake(f"{EXERCISES[exercise_key].name}: your code raised "
                      f"{type(error).__name__}: {error}\n  when called as {called}"
                      + (f"\n  {cause}" if cause else "")) from None


def _explain_transpose(error: Exception) -> str | None:
    text = str(error)
    if any(word in text for word in ("size", "shape", "dimension", "multiplied")):
        return ("Likely cause: a product of the wrong axes. Q K^T needs K with its last two "
                "axes swapped, and only those: K.transpose(-2, -1) (K.T reverses every axis).")
    return None


def _explain_layout(error: Exception) -> str | None:
    if any(word in str(error) for word in ("size", "shape", "dimension")):
        return ("Likely cause: the layout. Tokens come as [N, B, C] - tokens first, batch "
                "second - and the keys may be more (or fewer) than the queries.")
    return None


def _explain_ignore(error: Exception) -> str | None:
    if "out of bounds" in str(error) or "255" in str(error):
        return ("Likely cause: labels 255 mark pixels to ignore (e.g. around objects); tell "
                "F.cross_entropy with ignore_index=255, and leave them out of the Jaccard.")
    return None


def _tensor(exercise_key: str, got, what: str) -> Tensor:
    name = EXERCISES[exercise_key].name
    if isinstance(got, tuple | list):
        raise Mistake(f"{name}: {what} should be one tensor, yours returned a {type(got).__name__} "
                      f"of {len(got)}")
    if not isinstance(got, Tensor):
        raise Mistake(f"{name}: {what} should be a tensor, yours returned {type(got).__name__}")
    return got


def _same_shape(exercise_key: str, got: Tensor, expected: Tensor, axes: Sequence[str],
                what: str = "the result", advice: Callable[[tuple, tuple], str | None] | None = None,
                ) -> None:
    """Shapes must agree; otherwise name the axis (``axes``: one description per axis)."""
    if tuple(got.shape) == tuple(expected.shape):
        return
    want = "[" + ", ".join(f"{n} ({a})" for n, a in zip(expected.shape, axes, strict=True)) + "]"
    lines = [f"{EXERCISES[exercise_key].name}: {what} has shape {_shape(got)}, expected {want}."]
    if got.dim() != expected.dim():
        lines.append(f"  It has {got.dim()} axes instead of {expected.dim()}.")
    else:
        for i, (g, e) in enumerate(zip(got.shape, expected.shape, strict=True)):
            if g != e:
                lines.append(f"  Axis {i} ({axes[i]}) has {g} entries instead of {e}.")
                break
    extra = advice(tuple(got.shape), tuple(expected.shape)) if advice else None
    if extra:
        lines.append(f"  {extra}")
    raise Mistake("\n".join(lines))


def _close(a: Tensor, b: Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().float(), b.detach().float(), atol=atol,
                                                 rtol=rtol)


def _diagnose(exercise_key: str, got: Tensor, expected: Tensor,
              candidates: Sequence[tuple[str, Callable[[], Tensor]]], atol: float = 1e-5,
              what: str = "the values") -> None:
    """Values must agree; otherwise the first typical mistake that reproduces ``got`` is named."""
    if _close(got, expected, atol):
        return
    name = EXERCISES[exercise_key].name
    for message, candidate in candidates:
        try:
            wrong = candidate()
        except Exception:  # a candidate that does not apply to these inputs
            continue
        if _close(got, wrong, atol):
            raise Mistake(f"{name}: {message}")
    error = (got.detach().float() - expected.float()).abs().max().item()
    raise Mistake(f"{name}: the shape is right but {what} are not (off by up to {error:.3g}).\n"
                  f"  None of the usual mistakes explains it; exercises.hint({exercise_key!r}) "
                  f"gives a hint.")


def _gradients_flow(exercise_key: str, got: Tensor, expected: Tensor,
                    inputs: Sequence[tuple[str, Tensor]], expected_inputs: Sequence[Tensor],
                    atol: float = 1e-4) -> None:
    """The learner's result must pass the same gradients back to ``inputs`` as the package's."""
    name = EXERCISES[exercise_key].name
    if not got.requires_grad:
        raise Mistake(f"{name}: the values are right but carry no gradient - did you use "
                      f".detach(), .item(), .numpy() or torch.no_grad()? Training needs the "
                      f"gradient to flow through this.")
    weight = _fixed(*expected.shape, seed=99)
    grads = torch.autograd.grad((got * weight).sum(), [t for _, t in inputs], allow_unused=True)
    reference = torch.autograd.grad((expected * weight).sum(), list(expected_inputs),
                                    allow_unused=True)
    for (label, _), g, r in zip(inputs, grads, reference, strict=True):
        if r is None:
            continue
        if g is None or not _close(g, r, atol):
            raise Mistake(f"{name}: the values are right but the gradient with respect to "
                          f"{label} is not - is part of the computation detached or done "
                          f"in place?")


def _with_grad(*tensors: Tensor) -> list[Tensor]:
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def _seeded_module(build: Callable[[], nn.Module], seed: int, spread: float = 0.0) -> nn.Module:
    """Build a module from a fixed seed without touching the notebook's random state.

    ``spread > 0`` also randomises parameters that start as constants (LayerNorm, the zero
    ``relative_emb_v``), so that forgetting one of them changes the result.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build()
        if spread:
            with torch.no_grad():
                for p in module.parameters():
                    p.add_(torch.randn_like(p) * spread)
    return module.eval()


def _load_strict(exercise_key: str, module: nn.Module, state: dict[str, Tensor],
                 whose: str) -> None:
    """Load ``state`` with ``strict=True``; name the missing / unexpected parameters."""
    name = EXERCISES[exercise_key].name
    if not isinstance(module, nn.Module):
        raise Mistake(f"{name}: expected an nn.Module, got {type(module).__name__}")
    mine = module.state_dict()
    missing = [k for k in state if k not in mine]
    unexpected = [k for k in mine if k not in state]
    if missing or unexpected:
        lines = [f"{name}: the parameter names must be the trained model's, to load {whose} "
                 f"strictly."]
        if missing:
            lines.append(f"  Missing in yours: {', '.join(missing)}")
        if unexpected:
            lines.append(f"  Not in the trained model: {', '.join(unexpected)}")
        raise Mistake("\n".join(lines))
    for key, value in state.items():
        if mine[key].shape != value.shape:
            raise Mistake(f"{name}: parameter {key} has shape {_shape(mine[key])}, the trained "
                          f"model's has {_shape(value)}")
    module.load_state_dict(state, strict=True)


# --- 01 attention ------------------------------------------------------------------------------

@_exercise(
    "attention", "scaled dot-product attention", "Eq. 2", "01_attention",
    "attention(Q: Tensor, K: Tensor, V: Tensor) -> Tensor",
    hints=(
        "Q K^T has one row per query and one column per key: Q @ K.transpose(-2, -1) "
        "(transpose the last two axes only, so leading batch/head axes stay).",
        "Divide the scores by sqrt(C), C = Q.shape[-1], before the softmax.",
        "Each query's weights sum to 1 over the keys: softmax over the last axis (dim=-1).",
        "Then weight the values: A @ V has shape [..., n, C_v].",
    ))
def _check_attention(attention: Callable) -> None:
    key = "attention"
    Q, K, V = _fixed(2, 3, 5, 8, seed=1), _fixed(2, 3, 7, 8, seed=2), _fixed(2, 3, 7, 6, seed=3)
    called = "attention(Q, K, V) with Q [2, 3, 5, 8], K [2, 3, 7, 8], V [2, 3, 7, 6]"
    expected = att.scaled_dot_product_attention(Q, K, V)[0]
    got = _tensor(key, _call(key, attention, Q, K, V, called=called, explain=_explain_transpose),
                  "A V")

    def shape_advice(got_shape: tuple, _: tuple) -> str | None:
        if got_shape[-1] == K.shape[-2]:
            return ("The last axis has one entry per key: that is the weights A - multiply "
                    "them by V.")
        if got_shape[-2] == K.shape[-2]:
            return "One row per key instead of per query: the scores are Q K^T (queries first)."
        return None

    _same_shape(key, got, expected, ("batch", "heads", "n: one row per query",
                                     "C_v: the values' channels"), "A V", shape_advice)
    scores = Q @ K.transpose(-2, -1)
    root_c = math.sqrt(Q.shape[-1])
    _diagnose(key, got, expected, [
        ("the 1/sqrt(C) scaling is missing: softmax(Q K^T / sqrt(C)) - without it the scores "
         "grow with C and the softmax becomes too peaked.",
         lambda: att.scaled_dot_product_attention(Q * root_c, K, V)[0]),
        ("the scores are divided by C; Eq. 2 divides by sqrt(C).",
         lambda: att.scaled_dot_product_attention(Q / root_c, K, V)[0]),
        ("the softmax runs over the wrong axis: each query's weights must sum to 1 over the "
         "keys, the last axis of Q K^T ([..., n, m]): softmax(dim=-1). Yours sum to 1 over the "
         "queries.",
         lambda: torch.softmax(scores / root_c, dim=-2) @ V),
        ("there is no softmax: the weights must be positive and sum to 1 per query, "
         "softmax(Q K^T / sqrt(C), dim=-1).",
         lambda: (scores / root_c) @ V),
    ])
    ones = _call(key, attention, Q, K, torch.ones_like(V), called=called)
    if not _close(ones, torch.ones_like(expected)):
        raise Mistake(f"{EXERCISES[key].name}: with V all ones every output must be 1 (each "
                      f"query's weights sum to 1 over the keys), yours are not: check the "
                      f"softmax's axis (dim=-1).")
    inputs = _with_grad(Q, K, V)
    got = _call(key, attention, *inputs, called=called)
    ref_inputs = _with_grad(Q, K, V)
    _gradients_flow(key, got, att.scaled_dot_product_attention(*ref_inputs)[0],
                    list(zip(("Q", "K", "V"), inputs, strict=True)), ref_inputs)


@_exercise(
    "MultiheadAttention", "multi-head attention", "Eq. 2, multi-head", "01_attention",
    "class MultiheadAttention(nn.Module): __init__(dim, heads); forward(query, key, value) -> Tensor",
    hints=(
        "Four nn.Linear(dim, dim) named linear_Q, linear_K, linear_V and projection - the names "
        "of the trained checkpoints.",
        "Tokens come as [N, B, C]. Project, then cut the channels into heads: "
        "x.view(N, B, heads, d) with d = C // heads; head h owns channels h*d .. h*d + d - 1.",
        "Put the heads next to the batch, [B, heads, N, d] (permute(1, 2, 0, 3)), and use your "
        "attention: it scales by sqrt(d), the channels of one head.",
        "Merge back to [N, B, C] (permute(2, 0, 1, 3).reshape(N, B, C)) and apply projection.",
    ))
def _check_multihead(cls: type) -> None:
    key = "MultiheadAttention"
    dim, heads = 16, 4
    mine = _call(key, cls, dim, heads, called=f"{getattr(cls, '__name__', cls)}(dim=16, heads=4)")
    reference = _seeded_module(lambda: att.MultiheadAttention(dim, heads), seed=11)
    _load_strict(key, mine, reference.state_dict(), "the package's MultiheadAttention")
    mine.eval()
    query, key_, value = _fixed(6, 2, dim, seed=12), _fixed(7, 2, dim, seed=13), _fixed(7, 2, dim, seed=14)
    called = "forward(query, key, value) with query [6, 2, 16], key and value [7, 2, 16]"
    got = _tensor(key, _call(key, mine, query, key_, value, called=called,
                             explain=_explain_layout), "the output")
    expected = reference(query, key_, value)[0]

    def shape_advice(got_shape: tuple, _: tuple) -> str | None:
        if got_shape[:2] == (2, 6):
            return "The batch came first: return the sequence layout [N, B, C], as the input."
        return None

    _same_shape(key, got, expected, ("N: query tokens", "B: batch", "C: channels"), "the output",
                shape_advice)
    r = reference
    d = dim // heads

    def by_heads(q: Tensor, k: Tensor, v: Tensor, n_heads: int) -> Tensor:
        split = [att.split_heads(x, n_heads) for x in (q, k, v)]
        return att.merge_heads(att.scaled_dot_product_attention(*split)[0])

    interleave = torch.arange(dim).view(d, heads).t().flatten()  # head h: channels h, h + heads, ...
    undo = torch.argsort(interleave)
    q, k, v = r.linear_Q(query), r.linear_K(key_), r.linear_V(value)
    _diagnose(key, got, expected, [
        ("the output projection is missing: after merging the heads apply self.projection.",
         lambda: by_heads(q, k, v, heads)),
        (f"each head must be scaled by 1/sqrt(d) with d = C / heads = {d}, the channels of one "
         f"head; yours divides by sqrt(C) = sqrt({dim}).",
         lambda: r.projection(by_heads(q / math.sqrt(heads), k, v, heads))),
        ("this is single-head attention: cut the C channels into `heads` groups of C / heads "
         "and attend in each group separately.",
         lambda: r.projection(by_heads(q, k, v, 1))),
        (f"the heads are cut the wrong way: head h must own channels h*d .. h*d + d - 1 "
         f"(view(N, B, heads, d)); yours takes every {heads}-th channel (view(N, B, d, heads)).",
         lambda: r.projection(by_heads(q[..., interleave], k[..., interleave],
                                       v[..., interleave], heads)[..., undo])),
        ("the position of query and key is swapped: queries come from `query` "
         "(linear_Q), keys from `key` (linear_K).",
         lambda: r.projection(by_heads(r.linear_Q(key_), r.linear_K(query), v, heads))),
    ])
    inputs = _with_grad(query, key_, value)
    got = _call(key, mine, *inputs, called=called)
    ref_inputs = _with_grad(query, key_, value)
    _gradients_flow(key, got, reference(*ref_inputs)[0],
                    list(zip(("query", "key", "value"), inputs, strict=True)), ref_inputs)


# --- 02 identity ---------------------------------------------------------------------------------

@_exercise(
    "random_identity_assignment", "random identity assignment", "the P of Eq. 3", "02_identity",
    "random_identity_assignment(batch: int, M: int, generator: torch.Generator | None = None) "
    "-> Tensor",
    hints=(
        "Return an index, [batch, M + 1] of torch.long: row b says which identity each object "
        "j = 0..M of sample b wears.",
        "The background (j = 0) always keeps identity 0; objects 1..M get a permutation of "
        "1..M: torch.randperm(M, generator=generator) + 1.",
        "A new permutation for every sample; then torch.cat a column of zeros in front.",
    ))
def _check_random_assignment(random_assignment: Callable) -> None:
    key = "random_identity_assignment"
    name = EXERCISES[key].name
    batch, M = 64, 10
    called = "random_identity_assignment(64, 10, generator)"

    def draw(seed: int) -> Tensor:
        out = _call(key, random_assignment, batch, M, torch.Generator().manual_seed(seed),
                    called=called)
        return _tensor(key, out, "the assignment")

    got = draw(0)
    _same_shape(key, got, torch.zeros(batch, M + 1), ("batch: one row per sample",
                                                      "M + 1: objects 0 (background) to M"),
                "the assignment",
                lambda g, e: "Did you leave out the background (object 0)?" if g == (batch, M) else None)
    if got.dtype.is_floating_point or got.dtype == torch.bool:
        raise Mistake(f"{name}: the assignment is an index: use integers (torch.long, as "
                      f"torch.randperm gives them), not {got.dtype}.")
    if not torch.equal(got[:, 0], torch.zeros(batch, dtype=got.dtype)):
        raise Mistake(f"{name}: the background (object 0, column 0) must keep identity 0 in "
                      f"every sample; yours gives it {sorted(set(got[:, 0].tolist()))[:5]}.")
    if got.min() < 0 or got.max() > M:
        raise Mistake(f"{name}: identities are 0..M = 0..{M}; yours go from {got.min().item()} "
                      f"to {got.max().item()}.")
    for b, row in enumerate(got.tolist()):
        if len(set(row)) != len(row):
            twice = sorted({i for i in row if row.count(i) > 1})
            objects = [j for j, i in enumerate(row) if i == twice[0]]
            raise Mistake(f"{name}: in sample {b} objects {objects} all wear identity {twice[0]}: "
                          f"two objects must never share an identity - draw a permutation "
                          f"(torch.randperm), not independent random numbers.")
    if all(torch.equal(got[0], row) for row in got):
        raise Mistake(f"{name}: every sample got the same assignment {got[0].tolist()}: draw a new "
                      f"permutation for every sample, or identity j would learn to mean object j.")
    if not torch.equal(got, draw(0)):
        raise Mistake(f"{name}: the same seeded generator gave two different assignments: pass "
                      f"generator=generator to torch.randperm, so that a training step can be "
                      f"reproduced.")
    if torch.equal(got, draw(1)):
        raise Mistake(f"{name}: two different generators gave the same assignment: the "
                      f"assignment must be random (use the generator you are given).")
    ones = torch.ones(batch, M + 1, 1, 1)
    if not torch.equal(ident.decode_identities(ident.assign_identities(ones, got.long()),
                                               got.long()), ones):
        raise Mistake(f"{name}: the package cannot assign and decode with it.")


def _permutation(assignment: Tensor) -> Tensor:
    """The matrix ``P`` with ``P[j, assignment[j]] = 1`` (object ``j`` wears that identity)."""
    return F.one_hot(assignment, len(assignment)).float()


def _identity_inputs(seed: int, tokens: int = 12, M: int = 5, C: int = 4):
    """One-hot masks ``Y [tokens, M+1]`` (objects 0..3 present), an assignment that is not its
    own inverse, and a bank ``D [M+1, C]``."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 1, 2, 3] * (tokens // 4))[torch.randperm(tokens, generator=generator)]
    Y = F.one_hot(labels, M + 1).float()
    assignment = torch.tensor([0, 3, 5, 1, 2, 4])[: M + 1]  # object 1 -> identity 3 -> object 3 ...
    D = torch.randn(M + 1, C, generator=generator)
    return Y, assignment, D


def _embedding_by_package(Y: Tensor, assignment: Tensor, D: Tensor) -> Tensor:
    """Eq. 3 through the package: ``assign_identities`` (Y P), then the bank's vectors."""
    identities = ident.assign_identities(Y.t()[None, :, :, None], assignment[None])[0, :, :, 0].t()
    return identities @ D


@_exercise(
    "identification_embedding", "identification embedding E = ID(Y, D) = Y P D", "Eq. 3",
    "02_identity",
    "identification_embedding(Y: Tensor, P: Tensor, D: Tensor) -> Tensor",
    hints=(
        "Shapes: Y [HW, M+1] one-hot objects, P [M+1, M+1] with P[j, i] = 1 when object j wears "
        "identity i, D [M+1, C] one vector per identity. E is [HW, C].",
        "Y @ P moves each pixel's 1 from its object's column to its identity's column.",
        "Then @ D replaces that one-hot row by the identity's vector: E = Y @ P @ D.",
    ))
def _check_identification_embedding(identification_embedding: Callable) -> None:
    key = "identification_embedding"
    Y, assignment, D = _identity_inputs(seed=21)
    P = _permutation(assignment)
    called = "identification_embedding(Y, P, D) with Y [12, 6], P [6, 6], D [6, 4]"
    got = _tensor(key, _call(key, identification_embedding, Y, P, D, called=called), "E")
    expected = _embedding_by_package(Y, assignment, D)
    _same_shape(key, got, expected, ("HW: one row per pixel", "C: the identity vector"), "E")
    inverse = torch.argsort(assignment)
    _diagnose(key, got, expected, [
        ("the objects do not wear their assigned identities: E = Y P D. Without P, object j "
         "wears identity j whatever P says.",
         lambda: Y @ D),
        ("you used P^T: row j of P says which identity object j wears, so E = Y @ P @ D (with "
         "P^T object j would wear the identity of the object that wears identity j).",
         lambda: _embedding_by_package(Y, inverse, D)),
    ])


@_exercise(
    "att_id", "attention with identities AttID", "Eq. 4", "02_identity",
    "att_id(Q: Tensor, K: Tensor, V: Tensor, Y: Tensor, P: Tensor, D: Tensor) -> Tensor",
    hints=(
        "AttID(Q, K, V | Y) = Att(Q, K, V + ID(Y, D)): the memory's values carry its identities.",
        "Q [n, C] are the query frame's tokens, K and V [m, C] the memory's, Y [m, M+1] the "
        "memory's masks: the identities belong to the memory.",
        "Use your two earlier functions: attention(Q, K, V + identification_embedding(Y, P, D)).",
    ))
def _check_att_id(att_id: Callable) -> None:
    key = "att_id"
    Y, assignment, D = _identity_inputs(seed=31, tokens=12, C=8)
    P = _permutation(assignment)
    Q, K, V = _fixed(5, 8, seed=32), _fixed(12, 8, seed=33), _fixed(12, 8, seed=34)
    called = "att_id(Q, K, V, Y, P, D) with Q [5, 8], K and V [12, 8], Y [12, 6], D [6, 8]"
    got = _tensor(key, _call(key, att_id, Q, K, V, Y, P, D, called=called), "the output")

    def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        return att.scaled_dot_product_attention(q[None], k[None], v[None])[0][0]

    E = _embedding_by_package(Y, assignment, D)
    expected = attend(Q, K, V + E)
    _same_shape(key, got, expected, ("n: query tokens", "C: channels"), "the output",
                lambda g, e: "One row per memory token: the output has one row per query."
                if g[0] == K.shape[0] else None)
    _diagnose(key, got, expected, [
        ("the identities went into the keys: ID is added to the values, V + ID. Keys decide "
         "where to look (image features); values carry what is found (here: which object).",
         lambda: attend(Q, K + E, V)),
        ("the identities are in both keys and values: only the values carry them, "
         "Att(Q, K, V + ID).",
         lambda: attend(Q, K + E, V + E)),
        ("V is missing: the values are V + ID, the image features plus the identities.",
         lambda: attend(Q, K, E)),
        ("the identities are not the assigned ones: ID(Y, D) = Y P D, with the same P that "
         "decodes the query frame (Eq. 5); without P the memory and the query would not share "
         "identities.",
         lambda: attend(Q, K, V + Y @ D)),
        ("the identities are assigned with P^T: ID(Y, D) = Y @ P @ D.",
         lambda: attend(Q, K, V + _embedding_by_package(Y, torch.argsort(assignment), D))),
        ("the identities were not attended: no ID is added to the result after the "
         "attention; it goes into the values, Att(Q, K, V + ID).",
         lambda: attend(Q, K, V)),
    ])


@_exercise(
    "identification_decoding", "identification decoding", "Eq. 5", "02_identity",
    "identification_decoding(L: Tensor, P: Tensor) -> Tensor",
    hints=(
        "L [HW, M+1] holds each pixel's logit for every identity; the answer is [HW, M+1]: each "
        "pixel's probability for every object.",
        "Object j's logit is the logit of the identity it wears (P[j, i] = 1): column j of "
        "L @ P.T. The same P that embedded the memory (Eq. 3) - that is how memory and query "
        "share identities.",
        "Then a softmax over the objects, the last axis: each pixel's probabilities sum to 1.",
    ))
def _check_identification_decoding(identification_decoding: Callable) -> None:
    key = "identification_decoding"
    name = EXERCISES[key].name
    _, assignment, _ = _identity_inputs(seed=41)
    P = _permutation(assignment)
    L = _fixed(12, 6, seed=42, scale=2.0)
    called = "identification_decoding(L, P) with L [12, 6], P [6, 6]"
    got = _tensor(key, _call(key, identification_decoding, L, P, called=called), "Y'")

    def decode(assign: Tensor) -> Tensor:
        logits = ident.decode_identities(L.t()[None, :, :, None], assign[None])[0, :, :, 0].t()
        return torch.softmax(logits, dim=-1)

    expected = decode(assignment)
    _same_shape(key, got, expected, ("HW: one row per pixel", "M + 1: objects"), "Y'")
    identity = torch.arange(len(assignment))
    _diagnose(key, got, expected, [
        ("the softmax runs over the wrong axis: each pixel's probabilities over the objects must "
         "sum to 1 (softmax over the last axis); yours sum to 1 over the pixels.",
         lambda: torch.softmax(L @ P.t(), dim=0)),
        ("these are logits, not probabilities: apply the softmax over the objects.",
         lambda: L @ P.t()),
        ("the identities are not shared between memory and query: you decoded with P^T's "
         "inverse mapping (L @ P). Object j wears identity i where P[j, i] = 1 in the memory, "
         "so its logit here is L[:, i]: L @ P.T.",
         lambda: decode(torch.argsort(assignment))),
        ("the identities are not shared between memory and query: you decoded as if object j "
         "wore identity j (P = I), but the memory gave it the identity P says. Decode with the "
         "same P.",
         lambda: decode(identity)),
    ])
    if not torch.allclose(got.sum(-1), torch.ones(len(L)), atol=1e-5):
        raise Mistake(f"{name}: each pixel's probabilities must sum to 1.")


# --- 03 LSTT -----------------------------------------------------------------------------------

def _linear(dim: int, seed: int) -> nn.Linear:
    return _seeded_module(lambda: nn.Linear(dim, dim), seed)


@_exercise(
    "long_term_attention", "long-term attention AttLT", "Eq. 6", "03_lstt",
    "long_term_attention(X_t, X_m, E_m, W_K: nn.Linear, W_V: nn.Linear, heads: int) -> Tensor",
    hints=(
        "Eq. 6: AttLT = AttID(X_t W^K, X_m W^K, X_m W^V | Y_m). The query and the memory share "
        "one projection W^K: a token finds memory tokens that look alike through the same "
        "lens.",
        "The identities ride on the values. As in the official code (and the trained weights), "
        "they are added before the value projection: V = W_V(X_m + E_m).",
        "X_m holds all T memory frames one after another ([T*HW, B, C]); every query sees all "
        "of them.",
        "Multi-head, without projections of its own: split Q, K, V into heads as in your "
        "MultiheadAttention ([N, B, C] -> [B, heads, N, d]), attention, merge back to [HW, B, C].",
    ))
def _check_long_term(long_term_attention: Callable) -> None:
    key = "long_term_attention"
    dim, heads, hw = 16, 4, 6
    X_t, X_m, E_m = _fixed(hw, 2, dim, seed=51), _fixed(2 * hw, 2, dim, seed=52), _fixed(2 * hw, 2, dim, seed=53)
    W_K, W_V = _linear(dim, 54), _linear(dim, 55)
    called = ("long_term_attention(X_t, X_m, E_m, W_K, W_V, heads=4) with X_t [6, 2, 16] and two "
              "memory frames X_m, E_m [12, 2, 16]")
    got = _tensor(key, _call(key, long_term_attention, X_t, X_m, E_m, W_K, W_V, heads,
                             called=called), "the output")

    def lt(q: Tensor, k: Tensor, v: Tensor, n_heads: int = heads) -> Tensor:
        return att.long_term_attention(q, k, v, n_heads)[0]

    expected = lt(W_K(X_t), W_K(X_m), W_V(X_m + E_m))
    _same_shape(key, got, expected, ("HW: the query frame's tokens", "B: batch", "C: channels"),
                "the output",
                lambda g, e: "One row per memory token: the queries come from X_t."
                if g[0] == X_m.shape[0] else None)
    Q = W_K(X_t)
    _diagnose(key, got, expected, [
        ("the identities are added after the value projection. The trained model adds them "
         "before: V = W_V(X_m + E_m) (the paper writes X_m W^V + ID; the official code, whose "
         "weights we load, projects the sum).",
         lambda: lt(Q, W_K(X_m), W_V(X_m) + E_m)),
        ("the values carry no identities: V = W_V(X_m + E_m) - without E_m nothing tells which "
         "object a memory token belongs to.",
         lambda: lt(Q, W_K(X_m), W_V(X_m))),
        ("the identities went into the keys too: only the values carry them.",
         lambda: lt(Q, W_K(X_m + E_m), W_V(X_m + E_m))),
        ("the memory's keys must be projected by the same W^K as the query: X_m W^K.",
         lambda: lt(Q, X_m, W_V(X_m + E_m))),
        ("the memory's keys must be projected by W^K (shared with the query), not W^V.",
         lambda: lt(Q, W_V(X_m), W_V(X_m + E_m))),
        ("the query must be projected too: X_t W^K.",
         lambda: lt(X_t, W_K(X_m), W_V(X_m + E_m))),
        ("this is single-head attention: split the channels into `heads` heads.",
         lambda: lt(Q, W_K(X_m), W_V(X_m + E_m), 1)),
        (f"each head must be scaled by 1/sqrt(d), d = C / heads = {dim // heads}; yours divides "
         f"by sqrt(C).",
         lambda: lt(Q / math.sqrt(heads), W_K(X_m), W_V(X_m + E_m))),
        ("only the first memory frame is attended: every query sees all T memory frames "
         "(X_m is [T*HW, B, C]).",
         lambda: lt(Q, W_K(X_m[:hw]), W_V(X_m[:hw] + E_m[:hw]))),
        ("only the last memory frame is attended: every query sees all T memory frames.",
         lambda: lt(Q, W_K(X_m[hw:]), W_V(X_m[hw:] + E_m[hw:]))),
    ])
    inputs = _with_grad(X_t, X_m, E_m)
    got = _call(key, long_term_attention, *inputs, W_K, W_V, heads, called=called)
    ref = _with_grad(X_t, X_m, E_m)
    _gradients_flow(key, got, lt(W_K(ref[0]), W_K(ref[1]), W_V(ref[1] + ref[2])),
                    list(zip(("X_t", "X_m", "E_m"), inputs, strict=True)), ref)


def _short_term(q: Tensor, k: Tensor, v: Tensor, rel_k: Tensor, rel_v: Tensor, heads: int,
                lam: int) -> Tensor:
    return att.short_term_attention(q, k, v, rel_k, rel_v, heads, (lam - 1) // 2)[0]


def _window_of(support: Tensor, w: int) -> str:
    tokens = support.nonzero().flatten().tolist()
    if not tokens:
        return "no token at all"
    rows = sorted({t // w for t in tokens})
    cols = sorted({t % w for t in tokens})
    return f"rows {rows[0]}..{rows[-1]} and columns {cols[0]}..{cols[-1]} ({len(tokens)} tokens)"


@_exercise(
    "short_term_attention", "short-term attention AttST", "Eq. 7", "03_lstt",
    "short_term_attention(Q, K, V, relative_logits, relative_values, heads: int, lam: int = 15) "
    "-> Tensor",
    hints=(
        "Query (y, x) attends to the lam x lam window of frame t-1 centred on (y, x): rows "
        "y-R..y+R and columns x-R..x+R, R = (lam - 1) // 2.",
        "F.unfold(F.pad(K, (R, R, R, R)), lam) gives every pixel its lam*lam neighbours: "
        "[B, C*lam*lam, h*w]; view it as [B, heads, d, lam*lam, h*w].",
        "Slots outside the frame are padding, not tokens: give them a logit of -inf (unfold a "
        "map of ones the same way to know which slots are inside).",
        "Slot s = (dy + R) * lam + (dx + R). Its logit for head hd is q.k / sqrt(d) plus "
        "relative_logits[:, hd * lam*lam + s] at the query's position; its value is "
        "V(neighbour) + relative_values[hd, :, s].",
        "Softmax over the slots, weight the values, and return the sequence layout "
        "[h*w, B, C] (token y * w + x).",
    ))
def _check_short_term(short_term_attention: Callable) -> None:
    key = "short_term_attention"
    name = EXERCISES[key].name

    def run(q, k, v, rel_k, rel_v, heads, lam, *, grad: bool = False):
        b, c, h, w = q.shape
        called = (f"short_term_attention(Q, K, V, relative_logits, relative_values, heads={heads}, "
                  f"lam={lam}) with Q, K, V [{b}, {c}, {h}, {w}], relative_logits "
                  f"{_shape(rel_k)}, relative_values {_shape(rel_v)}")
        out = _tensor(key, _call(key, short_term_attention, q, k, v, rel_k, rel_v, heads, lam,
                                 called=called), "the output")
        expected = _short_term(q, k, v, rel_k, rel_v, heads, lam)

        def shape_advice(g: tuple, e: tuple) -> str | None:
            if g == (b, c, h, w):
                return ("That is the map layout: return the sequence layout [h*w, B, C] "
                        "(token y * w + x), e.g. out.flatten(2).permute(2, 0, 1).")
            if len(g) == 3 and g[0] == h * w and g[1] == b and g[2] != c:
                return "One entry per window slot on the last axis: weight the values."
            return None

        _same_shape(key, out, expected, ("h*w: tokens y * w + x", "B: batch", "C: channels"),
                    "the output", shape_advice)
        return out, expected

    # 1. Which tokens does each query see? Q = K = 0 gives uniform weights over the window, and
    # values that are one-hot codes of their own position reveal it.
    h, w, lam, R = 5, 6, 3, 1
    zeros = torch.zeros(1, h * w, h, w)
    codes = torch.eye(h * w).view(1, h * w, h, w)
    out, expected = run(zeros, zeros, codes, torch.zeros(1, lam * lam, h, w),
                        torch.zeros(1, h * w, lam * lam), 1, lam)
    weights = out[:, 0]  # [query token, key token]
    wanted = expected[:, 0]
    if not _close(weights, wanted, atol=1e-5):
        sums = weights.sum(-1)
        for y, x in [(2, 3), (0, 0), (h - 1, w - 1), (0, 3)] + [(t // w, t % w) for t in range(h * w)]:
            p = y * w + x
            mine_support, true_support = weights[p] > 1e-6, wanted[p] > 1e-6
            if torch.equal(mine_support, true_support):
                continue
            yours, right = _window_of(mine_support, w), _window_of(true_support, w)
            if bool(mine_support.all()):
                raise Mistake(f"{name}: query ({y}, {x}) attends to every token of frame t-1 - that "
                              f"is long-term attention. Eq. 7 restricts it to the lam x lam window "
                              f"around (y, x): with lam = {lam}, {right}.")
            raise Mistake(f"{name}: the window is off. With lam = {lam}, query ({y}, {x}) must see "
                          f"{right} of frame t-1 (y-R..y+R, x-R..x+R with R = (lam-1)/2 = {R}); "
                          f"yours sees {yours}. A window off by one?")
        p = int((sums - 1).abs().argmax())
        if not torch.allclose(sums, torch.ones_like(sums), atol=1e-5):
            inside = int((wanted[p] > 0).sum())
            if bool((sums <= 1 + 1e-5).all()):
                raise Mistake(
                    f"{name}: near the border query ({p // w}, {p % w}) gives only "
                    f"{sums[p]:.3f} of its weight to the frame's tokens: the zero-padded slots "
                    f"outside the frame took part in the softmax. Give them a logit of -inf, so "
                    f"the {inside} slots inside share all the weight.")
            raise Mistake(f"{name}: query ({p // w}, {p % w})'s weights sum to {sums[p]:.3f}, not "
                          f"1: the softmax must run over the window's slots.")
        raise Mistake(f"{name}: with equal logits every slot inside the frame must get the same "
                      f"weight; yours do not.")

    # 2. Eq. 7 itself, several heads, no relative positions; then a window larger than the frame.
    def plain(b: int, c: int, h: int, w: int, heads: int, lam: int, seed: int) -> None:
        q, k, v = (_fixed(b, c, h, w, seed=seed + i) for i in range(3))
        rel_k, rel_v = torch.zeros(b, heads * lam * lam, h, w), torch.zeros(heads, c // heads, lam * lam)
        out, expected = run(q, k, v, rel_k, rel_v, heads, lam)
        _diagnose(key, out, expected, [
            ("the 1/sqrt(d) scaling is missing (d = C / heads, the channels of one head).",
             lambda: _short_term(q * math.sqrt(c // heads), k, v, rel_k, rel_v, heads, lam)),
            ("each head must be scaled by 1/sqrt(d), d = C / heads; yours divides by sqrt(C).",
             lambda: _short_term(q / math.sqrt(heads), k, v, rel_k, rel_v, heads, lam)),
            ("this is single-head attention: split the C channels into `heads` heads "
             "(view(B, heads, d, ...)).",
             lambda: _short_term(q, k, v, torch.zeros(b, lam * lam, h, w),
                                 torch.zeros(1, c, lam * lam), 1, lam)),
        ])

    plain(2, 8, 5, 6, heads=2, lam=3, seed=61)
    plain(1, 8, 4, 5, heads=2, lam=15, seed=64)  # the window is larger than the frame

    # 3. Relative positions: first the logits, then the values.
    b, c, h, w, heads, lam = 2, 8, 5, 6, 2, 3
    q, k, v = (_fixed(b, c, h, w, seed=70 + i) for i in range(3))
    rel_k = _fixed(b, heads * lam * lam, h, w, seed=74)
    no_rel_v = torch.zeros(heads, c // heads, lam * lam)
    slots = torch.arange(lam * lam).view(lam, lam)
    transposed = torch.cat([slots.t().flatten() + hd * lam * lam for hd in range(heads)])
    slot_major = torch.arange(heads * lam * lam).view(heads, lam * lam).t().flatten()
    out, expected = run(q, k, v, rel_k, no_rel_v, heads, lam)
    _diagnose(key, out, expected, [
        ("relative_logits are ignored: add relative_logits[:, hd * lam*lam + s] at the query's "
         "position to the logit of slot s (head hd) before the softmax.",
         lambda: _short_term(q, k, v, torch.zeros_like(rel_k), no_rel_v, heads, lam)),
        ("the relative logits must be added after the scaling: q.k / sqrt(d) + r, not "
         "(q.k + r) / sqrt(d).",
         lambda: _short_term(q, k, v, rel_k / math.sqrt(c // heads), no_rel_v, heads, lam)),
        ("the slots of relative_logits are read in the wrong order: slot s = (dy + R) * lam + "
         "(dx + R) - the row offset dy first.",
         lambda: _short_term(q, k, v, rel_k[:, transposed], no_rel_v, heads, lam)),
        ("relative_logits are grouped by head: head hd's slots are channels hd*lam*lam .. "
         "hd*lam*lam + lam*lam - 1.",
         lambda: _short_term(q, k, v, rel_k[:, slot_major], no_rel_v, heads, lam)),
    ], what="the values with relative position logits")
    rel_v = _fixed(heads, c // heads, lam * lam, seed=75)
    out, expected = run(q, k, v, rel_k, rel_v, heads, lam)
    _diagnose(key, out, expected, [
        ("relative_values are ignored: slot s's value is V(neighbour) + relative_values[hd, :, s].",
         lambda: _short_term(q, k, v, rel_k, no_rel_v, heads, lam)),
        ("the slots of relative_values are read in the wrong order: slot s = (dy + R) * lam + "
         "(dx + R).",
         lambda: _short_term(q, k, v, rel_k, rel_v[..., slots.t().flatten()], heads, lam)),
    ], what="the values with relative position values")
    inputs = _with_grad(q, k, v, rel_k, rel_v)
    got = _call(key, short_term_attention, *inputs, heads, lam, called="short_term_attention(...)")
    ref = _with_grad(q, k, v, rel_k, rel_v)
    _gradients_flow(key, got, _short_term(*ref, heads, lam),
                    list(zip(("Q", "K", "V", "relative_logits", "relative_values"), inputs,
                             strict=True)), ref)


# The sub-layers of an LSTT block in data-flow order, and what their input must be.
_BLOCK_STEPS: tuple[tuple[str, str], ...] = (
    ("norm1", "norm1 must get the block's input X: the block is pre-norm, its first step is "
              "norm1(X)."),
    ("self_attn.linear_Q", "self-attention: the queries are norm1(X) + pos (the position "
                           "embedding tells each token where it is)."),
    ("self_attn.linear_K", "self-attention: the keys are norm1(X) + pos, like the queries."),
    ("self_attn.linear_V", "self-attention: the values are norm1(X), without the position "
                           "embedding."),
    ("self_attn.projection", "the self-attention's merged heads go into self_attn.projection: "
                             "check your MultiheadAttention."),
    ("norm2", "norm2 must get X + SelfAtt(...): the residual connection around the "
              "self-attention."),
    ("linear_Q", "linear_Q (W^K, shared by query and memory) must project norm2 of the tokens "
                 "- the query frame's and each memory frame's."),
    ("linear_V", "linear_V (W^V) must project a memory frame's tokens plus its identity "
                 "embedding: W_V(X_m + E_m)."),
    ("short_term_attn.relative_emb_k", "the relative-position logits are computed from the "
                                       "query as a map: relative_emb_k(Q as [B, C, h, w])."),
    ("long_term_attn.projection", "the long-term attention (Eq. 6) goes into "
                                  "long_term_attn.projection: AttLT of T = norm2(X) over the "
                                  "memory, with linear_Q and linear_V, in att_heads heads."),
    ("short_term_attn.projection", "the short-term attention (Eq. 7) goes into "
                                   "short_term_attn.projection: over frame t-1's lam x lam "
                                   "window, with the relative-position logits and values."),
    ("norm3", "norm3 must get X + LongTerm + ShortTerm, each after its projection (one "
              "residual connection for both)."),
    ("linear1", "the feed-forward starts with linear1(norm3(...))."),
    ("activation.gn", "the hidden activation works on maps: GroupNorm of linear1's output as "
                      "[B, ffn_dim, h, w]."),
    ("activation.conv", "the depth-wise conv gets GELU(GroupNorm(...))."),
    ("linear2", "linear2 gets the conv's output back in sequence layout [HW, B, ffn_dim]."),
)


def _record_inputs(module: nn.Module, names: Sequence[str]) -> tuple[dict[str, list[Tensor]], list]:
    inputs: dict[str, list[Tensor]] = {name: [] for name in names}
    modules = dict(module.named_modules())
    handles = []
    for name in names:
        if name in modules:
            handles.append(modules[name].register_forward_pre_hook(
                lambda _m, args, name=name: inputs[name].append(args[0].detach().clone())))
    return inputs, handles


def _first_wrong_step(mine: dict[str, list[Tensor]],
                      expected: dict[str, list[tuple[Tensor, str | None]]], atol: float) -> str | None:
    """The first sub-layer (data-flow order) that never got an input it should have got.

    ``expected[name]``: the inputs the package gave that sub-layer, each with a message of its
    own or ``None`` (the sub-layer's message in :data:`_BLOCK_STEPS`).
    """
    for name, message in _BLOCK_STEPS:
        for wanted, own_message in expected.get(name, []):
            if not mine.get(name):
                return f"{name} is never called: {own_message or message}"
            if not any(_close(got, wanted, atol, 1e-3) for got in mine[name]):
                return f"{own_message or message}\n  ({name} was called with other inputs.)"
    return None


@_exercise(
    "LSTTBlock", "an LSTT block", "Fig. 2c", "03_lstt",
    "class LSTTBlock(nn.Module): forward(X, pos, size_2d, E=None, long_term_memory=None, "
    "short_term_memory=None) -> (X_out, X_memory)",
    hints=(
        "Three sub-layers, each pre-norm with a residual: X = X + SelfAtt(norm1(X)); then "
        "X = X + LongTerm + ShortTerm from norm2(X); then X = X + FeedForward(norm3(X)).",
        "Self-attention: queries and keys norm1(X) + pos, values norm1(X) - your "
        "MultiheadAttention.",
        "With T = norm2(X): a reference frame (E given) is its own memory, "
        "long_term_memory = short_term_memory = (T, E). Return T as the second output: it is "
        "what this frame leaves to the memory.",
        "Long-term: long_term_attn.projection(long_term_attention(T, X_m, E_m, linear_Q, linear_V, "
        "heads)). Short-term: queries Q = linear_Q(T), keys linear_Q(X_{t-1}), values "
        "linear_V(X_{t-1} + E_{t-1}), all as maps [B, C, h, w]; relative_logits = "
        "short_term_attn.relative_emb_k(Q map), relative_values = short_term_attn.relative_emb_v; "
        "then short_term_attn.projection.",
        "Feed-forward: linear1, then as a map [B, ffn_dim, h, w]: GELU(activation.gn(.)), "
        "activation.conv, back to [HW, B, ffn_dim], linear2.",
    ))
def _check_block(cls: type) -> None:
    key = "LSTTBlock"
    name = EXERCISES[key].name
    dim, heads, ffn, lam, (h, w), batch = 32, 4, 64, 5, (3, 4), 2
    made = f"{getattr(cls, '__name__', cls)}(dim=32, self_heads=4, att_heads=4, ffn_dim=64, lam=5)"
    mine = _call(key, cls, dim, heads, heads, ffn, lam, called=made)
    reference = _seeded_module(lambda: LSTTBlock(dim, heads, heads, ffn, (lam - 1) // 2), seed=81,
                               spread=0.2)
    _load_strict(key, mine, reference.state_dict(), "the package's LSTTBlock")
    mine.eval()
    hw = h * w
    X, pos, E = (_fixed(hw, batch, dim, seed=82 + i) for i in range(3))
    X_m, E_m = _fixed(2 * hw, batch, dim, seed=85), _fixed(2 * hw, batch, dim, seed=86)
    X_prev, E_prev = _fixed(hw, batch, dim, seed=87), _fixed(hw, batch, dim, seed=88)
    names = [n for n, _ in _BLOCK_STEPS]

    def package(reference_frame: bool):
        """The package block's output, memory tokens, and the inputs of its sub-layers."""
        if not reference_frame:
            long_mem = (reference.linear_Q(X_m), reference.memory_value(X_m, E_m))
            short_mem = (seq_to_map(reference.linear_Q(X_prev), (h, w)),
                         seq_to_map(reference.memory_value(X_prev, E_prev), (h, w)))
        inputs, handles = _record_inputs(reference, names)
        try:
            if reference_frame:
                out, memory, _ = reference(X, pos, (h, w), id_emb=E)
            else:
                out, memory, _ = reference(X, pos, (h, w), long_term_memory=long_mem,
                                           short_term_memory=short_mem)
        finally:
            for handle in handles:
                handle.remove()
        expected = {name: [(t, None) for t in ts] for name, ts in inputs.items()}
        if reference_frame:
            expected["linear_V"] = [(t, "a reference frame is its own memory: its values are "
                                        "linear_V(T + E), T = norm2(X) and E its identity "
                                        "embedding.") for t in inputs["linear_V"]]
        else:
            expected["linear_Q"] += [
                (X_m, "the long-term memory's keys are linear_Q(X_m): the same projection W^K as "
                      "the query (Eq. 6)."),
                (X_prev, "short-term attention's keys are linear_Q(X_{t-1}): frame t-1's tokens "
                         "(short_term_memory), not the long-term memory's (Eq. 7).")]
            expected["linear_V"] = [
                (X_m + E_m, "the long-term memory's values are linear_V(X_m + E_m): the memory "
                            "frames' tokens plus their own identity embedding."),
                (X_prev + E_prev, "short-term attention's values are linear_V(X_{t-1} + E_{t-1}): "
                                  "frame t-1's tokens plus frame t-1's identity embedding "
                                  "(short_term_memory), not the long-term memory's.")]
        return out, memory.value, expected

    for reference_frame in (True, False):
        case = ("a reference frame (E given: it is its own memory)" if reference_frame else
                "a frame propagated from two long-term memory frames and frame t-1")
        kwargs = dict(E=E) if reference_frame else dict(long_term_memory=(X_m, E_m),
                                                         short_term_memory=(X_prev, E_prev))
        called = (f"forward(X, pos, (3, 4), {', '.join(f'{k}=...' for k in kwargs)}) for {case}, "
                  f"X [12, 2, 32]")
        inputs, handles = _record_inputs(mine, names)
        try:
            result = _call(key, mine, X, pos, (h, w), **kwargs, called=called)
        finally:
            for handle in handles:
                handle.remove()
        if not isinstance(result, tuple | list) or len(result) != 2:
            raise Mistake(f"{name}: forward must return two tensors, (X_out, X_memory): the "
                          f"refined tokens and norm2 of the tokens after self-attention (what "
                          f"this frame leaves to the memory); yours returned "
                          f"{type(result).__name__}.")
        out, memory = (_tensor(key, r, what) for r, what in zip(result, ("X_out", "X_memory"),
                                                                   strict=True))
        expected, expected_memory, expected_inputs = package(reference_frame)
        axes = ("HW: tokens", "B: batch", "C: channels")
        _same_shape(key, out, expected, axes, "X_out")
        _same_shape(key, memory, expected_memory, axes, "X_memory")
        if not _close(out, expected, 1e-4, 1e-3):
            where = _first_wrong_step(inputs, expected_inputs, 1e-4)
            if where is None:
                where = ("every sub-layer got the right input, so the last step differs: "
                         "X_out = X + linear2(...) (the residual around the feed-forward).")
            raise Mistake(f"{name}: X_out is wrong for {case}.\n  First difference: {where}")
        if not _close(memory, expected_memory, 1e-4, 1e-3):
            raise Mistake(f"{name}: X_memory is wrong for {case}: it is norm2 of the tokens after "
                          f"the self-attention (X + SelfAtt), the T whose keys and values the "
                          f"memory holds.")
    my_X, ref_X = _with_grad(X, X)
    out = _call(key, mine, my_X, pos, (h, w), E=E, called="forward(X, pos, (3, 4), E=E)")[0]
    _gradients_flow(key, out, reference(ref_X, pos, (h, w), id_emb=E)[0], [("X", my_X)], [ref_X])
    out = _call(key, mine, X, pos, (h, w), E=E, called="forward(X, pos, (3, 4), E=E)")[0]
    parameters = list(mine.named_parameters())
    grads = torch.autograd.grad(out.sum(), [p for _, p in parameters], allow_unused=True)
    unused = [n for (n, _), g in zip(parameters, grads, strict=True) if g is None]
    if unused:
        raise Mistake(f"{name}: these parameters get no gradient, so your block does not use "
                      f"them: {', '.join(unused)}")


# --- 05 training -----------------------------------------------------------------------------

def _loss_inputs(seed: int):
    """Logits ``[2, 4, 6, 7]`` and labels with objects 0..2 (class 3 absent) and ignored pixels."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 6, 7, generator=generator) * 2
    labels = torch.randint(0, 3, (2, 6, 7), generator=generator)
    labels[0, 0, :3] = 255  # pixels to ignore (the official IGNORE_LABEL)
    return logits, labels


@_exercise(
    "bootstrapped_cross_entropy", "bootstrapped cross-entropy", "Sec. 5 loss", "05_training",
    "bootstrapped_cross_entropy(logits: Tensor, labels: Tensor, fraction: float) -> Tensor",
    hints=(
        "Per pixel: -log of the true class's softmax probability, F.cross_entropy(logits, "
        "labels, reduction='none') -> [B, H, W].",
        "Labels 255 mark pixels to ignore: pass ignore_index=255 (they count as loss 0).",
        "Per sample, keep the K = int(fraction * H * W) largest pixel losses "
        "(.flatten(1).topk(K, dim=1)) and average them: one loss per sample, [B].",
    ))
def _check_bootstrapped(fn: Callable) -> None:
    from .train import bootstrapped_cross_entropy

    key = "bootstrapped_cross_entropy"
    logits, labels = _loss_inputs(seed=91)
    fraction = 0.3  # 0.3 * 42 = 12.6: K = 12
    called = "bootstrapped_cross_entropy(logits, labels, 0.3) with logits [2, 4, 6, 7], labels [2, 6, 7]"
    got = _tensor(key, _call(key, fn, logits, labels, fraction, called=called,
                             explain=_explain_ignore), "the loss")
    expected = bootstrapped_cross_entropy(logits, labels, fraction)
    _same_shape(key, got, expected, ("B: one loss per sample",), "the loss",
                lambda g, e: "A single number: keep the hardest pixels of each sample and return "
                             "one loss per sample." if g == () else None)
    pixel = F.cross_entropy(logits, labels, ignore_index=255, reduction="none").flatten(1)

    def top(k: int, largest: bool = True) -> Tensor:
        return pixel.topk(k, dim=1, largest=largest).values.mean(1)

    _diagnose(key, got, expected, [
        ("every pixel is averaged: keep only the K = int(fraction * H * W) largest pixel losses "
         "of each sample - the hard pixels.", lambda: pixel.mean(1)),
        ("these are the easiest pixels: keep the K largest losses, not the smallest.",
         lambda: top(12, largest=False)),
        ("K is one too many: K = int(fraction * H * W), rounded down.", lambda: top(13)),
        ("K is one too few: K = int(fraction * H * W) = 12 here.", lambda: top(11)),
        ("the ignored pixels (label 255) must count as loss 0 (ignore_index=255), not be left "
         "out of the top-K.",
         lambda: torch.stack([pixel[b][labels.flatten(1)[b] != 255].topk(12).values.mean()
                              for b in range(2)])),
    ])
    inputs = _with_grad(logits)
    got = _call(key, fn, inputs[0], labels, fraction, called=called)
    ref = _with_grad(logits)
    _gradients_flow(key, got, bootstrapped_cross_entropy(ref[0], labels, fraction),
                    [("logits", inputs[0])], ref)


@_exercise(
    "aot_loss", "the training loss: 0.5 bootstrapped CE + 0.5 soft Jaccard", "Sec. 5 loss",
    "05_training",
    "aot_loss(logits: Tensor, labels: Tensor, fraction: float) -> Tensor",
    hints=(
        "Soft Jaccard per class c: p = softmax(logits, dim=1)[:, c], g = (labels == c); "
        "1 - sum(p g) / (sum(p g) + sum(p (1 - g)) + sum((1 - p) g) + 1e-6), sums over H, W.",
        "Pixels labelled 255 are ignored: multiply p and g by the valid mask (labels != 255).",
        "Average over the classes present in the sample's ground truth only (an absent class "
        "would add a constant 1) - per sample, [B].",
        "aot_loss = 0.5 * bootstrapped_cross_entropy(logits, labels, fraction) + 0.5 * jaccard.",
    ))
def _check_aot_loss(fn: Callable) -> None:
    from .train import bootstrapped_cross_entropy, soft_jaccard_loss, vos_loss

    key = "aot_loss"
    logits, labels = _loss_inputs(seed=95)
    fraction = 0.3
    called = "aot_loss(logits, labels, 0.3) with logits [2, 4, 6, 7], labels [2, 6, 7]"
    got = _tensor(key, _call(key, fn, logits, labels, fraction, called=called,
                             explain=_explain_ignore), "the loss")
    expected = vos_loss(logits, labels, fraction)
    _same_shape(key, got, expected, ("B: one loss per sample",), "the loss",
                lambda g, e: "A single number: return one loss per sample." if g == () else None)
    ce, jaccard = bootstrapped_cross_entropy(logits, labels, fraction), soft_jaccard_loss(logits, labels)
    valid = (labels != 255)[:, None].float()
    truth = F.one_hot(labels.clamp(max=3), 4).permute(0, 3, 1, 2).float() * valid
    probs = torch.softmax(logits, dim=1)

    def jaccard_of(p: Tensor, g: Tensor, present_only: bool = True, per_sample: bool = True) -> Tensor:
        dims = (2, 3) if per_sample else (0, 2, 3)
        inter, fp, fn_ = (p * g).sum(dims), (p * (1 - g)).sum(dims), ((1 - p) * g).sum(dims)
        per_class = 1 - inter / (inter + fp + fn_ + 1e-6)
        present = (g.sum(dims) > 0).float() if present_only else torch.ones_like(per_class)
        value = (per_class * present).sum(-1) / present.sum(-1)
        return value if per_sample else value.expand(2)

    _diagnose(key, got, expected, [
        ("the weights: the loss is 0.5 * CE + 0.5 * Jaccard.", lambda: ce + jaccard),
        ("the soft Jaccard part is missing: 0.5 * CE + 0.5 * (1 - soft IoU).", lambda: 0.5 * ce),
        ("the cross-entropy part is missing: 0.5 * bootstrapped CE + 0.5 * Jaccard.",
         lambda: 0.5 * jaccard),
        ("that is 0.5 * (soft IoU), not 0.5 * (1 - soft IoU): the loss must fall as the overlap "
         "grows.", lambda: 0.5 * ce + 0.5 * (1 - jaccard)),
        ("the Jaccard uses the logits: use probabilities, softmax(logits, dim=1).",
         lambda: 0.5 * ce + 0.5 * jaccard_of(logits * valid, truth)),
        ("the Jaccard averages over every class, absent ones too (each adds a constant 1): "
         "average over the classes present in the sample's ground truth.",
         lambda: 0.5 * ce + 0.5 * jaccard_of(probs * valid, truth, present_only=False)),
        ("the ignored pixels (label 255) count in the Jaccard: multiply the probabilities by "
         "the valid mask (labels != 255).",
         lambda: 0.5 * ce + 0.5 * jaccard_of(probs, truth)),
        ("the Jaccard sums over the whole batch: compute it per sample (sums over H and W).",
         lambda: 0.5 * ce + 0.5 * jaccard_of(probs * valid, truth, per_sample=False)),
    ])
    inputs = _with_grad(logits)
    got = _call(key, fn, inputs[0], labels, fraction, called=called)
    ref = _with_grad(logits)
    _gradients_flow(key, got, vos_loss(ref[0], labels, fraction), [("logits", inputs[0])], ref)


# --- your block in a trained model ---------------------------------------------------------------

class LearnerBlock(nn.Module):
    """A learner's LSTT block behind the interface :class:`aot_edu.lstt.LSTT` and the engine use.

    The learner's block keeps each memory frame as its normalised tokens and identity embedding
    ``(X_m, E_m)`` and projects them itself (Eq. 6-7 as written); the package stores projected
    keys and values. So here a frame's memory "key" is ``norm2`` of its tokens and its
    "value" is its identity embedding, and the engine, which only concatenates and reshapes
    memories, keeps them unchanged.
    """

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def memory_value(self, value: Tensor, id_emb: Tensor) -> Tensor:
        return id_emb

    def forward(self, x: Tensor, pos: Tensor, size_2d: tuple[int, int], id_emb: Tensor | None = None,
                long_term_memory: tuple[Tensor, Tensor] | None = None,
                short_term_memory: tuple[Tensor, Tensor] | None = None,
                need_weights: bool = False) -> tuple[Tensor, BlockMemory, None]:
        if need_weights:
            raise ValueError("a learner's block does not return attention maps")
        short = None if short_term_memory is None else tuple(map_to_seq(m) for m in short_term_memory)
        out, memory = self.block(x, pos, size_2d, id_emb, long_term_memory, short)
        return out, BlockMemory(key=memory, value=memory), None


def plug_in(model: nn.Module, block_class: type) -> nn.Module:
    """A copy of ``model`` whose LSTT blocks are ``block_class`` loaded with its trained weights.

    Each block is built as ``block_class(dim, self_heads, att_heads, ffn_dim, lam)`` and loaded
    with ``load_state_dict(strict=True)``: the learner's parameter names must be the trained
    model's. ``model`` is left as it was.
    """
    config = model.config
    if config.dilation != 1:
        raise ValueError("the exercise's short-term attention has no dilation")
    plugged = copy.deepcopy(model)
    for i, layer in enumerate(model.LSTT.layers):
        block = block_class(config.dim, config.self_heads, config.att_heads, config.ffn_dim,
                            2 * config.max_dis + 1)
        try:
            block.load_state_dict(layer.state_dict(), strict=True)
        except RuntimeError as error:
            raise ValueError(f"block {i} of {config.title} does not load into your "
                             f"{block_class.__name__}: {error}") from None
        block.to(next(layer.parameters()).device)
        plugged.LSTT.layers[i] = LearnerBlock(block.eval())
    return plugged.eval()


def exercise_keys(notebook: str | None = None) -> list[str]:
    """The exercises (of one notebook, e.g. ``"01_attention"``), in course order."""
    return [k for k, e in EXERCISES.items() if notebook is None or e.notebook == notebook]


def signature_of(key: str) -> str:
    """The signature the learner writes, as the exercise states it."""
    return _get(key).signature


__all__ = ["EXERCISES", "Exercise", "LearnerBlock", "Mistake", "NotWritten", "check",
           "exercise_keys", "hint", "load_solutions", "plug_in", "solution", "solutions_mode",
           "summary"]
