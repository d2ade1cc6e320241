"""What the checks share: fixed inputs, calling the learner's code, and mistakes explained in
the learner's words (which axis of which shape, a missing scale, a wrong softmax axis, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .framework import EXERCISES, Mistake, NotWritten

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
