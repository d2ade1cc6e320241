"""Post-ensemble: the multi-object strategy AOT replaces (paper Sec. 3, Eq. 1, Fig. 1a and 1c).

Before AOT, matching-based VOS networks (STM, CFBI, ...) decoded one positive object at a time.
With ``N`` objects they ran the single-object network ``N`` times and merged the results:

    Y' = A(F(I^t, I^m, Y^m_1), ..., F(I^t, I^m, Y^m_N))            (Eq. 1)

where ``A`` is an ensemble function such as the *soft aggregation* of STM. AOT's identification
mechanism instead embeds all objects into one identity embedding and runs the network **once**
per frame, whatever ``N`` (up to ``M = 10``). Fig. 1c compares the two: the post-ensemble's time
and memory grow linearly with ``N``, AOT's stay flat.

:class:`PostEnsembleSession` runs the *same* AOT network the post-ensemble way: every object is
its own 1-object problem (identity 1 only, its own memories), and the per-object probabilities
are merged with the soft aggregation the official code uses between object groups
(background = product of the objects' backgrounds). It is an :class:`InferenceSession` whose
object groups hold one object each, so every other detail (input size, memories, new objects,
outputs) is the identification path's.

:func:`efficiency_curve` measures both strategies side by side (interleaved frame by frame, so
that a busy machine slows both alike) for 1..10 objects; ``bench/bench_multiobject.py`` and the
course notebooks call it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .engine import MAX_LONG_EDGE, InferenceSession, prepare_frame
from .model import AOT

__all__ = [
    "STRATEGIES",
    "EfficiencyRow",
    "PostEnsembleSession",
    "efficiency_curve",
    "make_session",
    "memory_bytes",
]

STRATEGIES = ("identification", "post_ensemble", "post_ensemble_literal")


class PostEnsembleSession(InferenceSession):
    """Segment a video object by object and merge with soft aggregation (Eq. 1).

    Same interface as :class:`~aot_edu.engine.InferenceSession` (``add_reference``,
    ``propagate``, ``update_memory``; internal labels ``0..N``). Each object gets its own
    :class:`~aot_edu.engine.AOTEngine` with one identity, hence its own long- and short-term
    memories: ``N`` times the LSTT, decoder and memory of one object.

    Args:
        repeat_encoder: ``False`` (default): the frame is encoded once and every object's pass
            reuses the features, the cheapest post-ensemble. ``True``: Eq. 1 taken literally -
            the network ``F``, image encoder included, runs once per object. The encoder is
            deterministic, so the extra passes give the same features (and the same masks); they
            only cost time, which is what this option is for (timing experiments).
    """

    def __init__(
        self, model: AOT, long_term_gap: int | None = None, max_long_term_frames: int | None = None,
        max_long_edge: int = MAX_LONG_EDGE, repeat_encoder: bool = False,
    ) -> None:
        super().__init__(model, long_term_gap, max_long_term_frames, max_long_edge)
        self.group_size = 1  # one object per engine: a 1-object problem each
        self.repeat_encoder = repeat_encoder

    def propagate(self, frame, need_weights: bool = False):
        if self.repeat_encoder and len(self.engines) > 1:
            image = prepare_frame(torch.as_tensor(frame).to(self.device), self.input_size)
            for _ in range(len(self.engines) - 1):
                self.model.encode_image(image)  # objects 2..N: F runs again on the same frame
        return super().propagate(frame, need_weights)


def make_session(
    strategy: str, model: AOT, long_term_gap: int | None = None,
    max_long_term_frames: int | None = None,
) -> InferenceSession:
    """An inference session for ``strategy``: ``identification`` (AOT), ``post_ensemble``
    (Eq. 1, shared image encoder) or ``post_ensemble_literal`` (Eq. 1, encoder per object)."""
    if strategy == "identification":
        return InferenceSession(model, long_term_gap, max_long_term_frames)
    if strategy in ("post_ensemble", "post_ensemble_literal"):
        return PostEnsembleSession(model, long_term_gap, max_long_term_frames,
                                   repeat_encoder=strategy == "post_ensemble_literal")
    raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")


def memory_bytes(session: InferenceSession) -> int:
    """Bytes of the memories a session holds between frames: every engine's long-term and
    short-term keys and values (the memory that grows with ``N`` under post-ensemble)."""
    total = 0
    for engine in session.engines:
        for key, value in engine.long_term or []:
            total += key.nbytes + value.nbytes
        for layer in engine.short_term_queue:
            for key, value in layer:
                total += key.nbytes + value.nbytes
    return total


@dataclass(frozen=True)
class EfficiencyRow:
    """One strategy at one object count (medians over the measured frames)."""

    strategy: str
    objects: int
    ms_per_frame: float  # propagate + feed the mask back, the official evaluator's timed span
    frames: int  # frames measured
    memory_mb: float  # memories held after the last frame (memory_bytes), MiB
    peak_mb: float | None  # CUDA only: peak allocated during a frame above what was allocated before

    @property
    def fps(self) -> float:
        return 1000.0 / self.ms_per_frame


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def efficiency_curve(
    model: AOT,
    frames: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    object_counts: Iterable[int] = range(1, 11),
    strategies: Sequence[str] = ("identification", "post_ensemble"),
    warmup: int = 1,
    progress: bool = False,
) -> list[EfficiencyRow]:
    """Time and memory per frame of each strategy for each number of objects (Fig. 1c).

    Args:
        model: the network (its weights do not change the cost).
        frames: uint8 ``[T, H, W, 3]``; frame 0 is the reference, frames ``1 + warmup ..`` are
            measured.
        labels: first-frame labels ``[H, W]`` with objects ``1..K``; the run with ``n`` objects
            keeps objects ``1..n`` (the others become background), so ``K >= max(object_counts)``.
        object_counts: the ``n`` to measure.
        strategies: names from :data:`STRATEGIES`.
        warmup: propagated frames not measured (the first calls allocate and tune kernels).

    The strategies take turns on every frame (in alternating order), so a machine that is busy
    with other work slows them alike; each row is the median over the measured frames.
    """
    frames = torch.as_tensor(frames)
    labels = torch.as_tensor(labels).long()
    counts = list(object_counts)
    available = int(labels.max())
    if not counts or min(counts) < 1 or max(counts) > available:
        raise ValueError(
            f"object_counts must lie in 1..{available} (the objects of the given labels), "
            f"got {counts}"
        )
    if frames.dim() != 4 or frames.shape[0] < 2 + warmup:
        raise ValueError(f"need uint8 frames [T, H, W, 3] with T >= {2 + warmup}, got "
                         f"{tuple(frames.shape)}")
    for strategy in strategies:
        make_session(strategy, model)  # validates the names before any work
    device = next(model.parameters()).device
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(counts) * (frames.shape[0] - 1), desc="efficiency", unit="frame")
    rows = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for n in counts:
                first = torch.where(labels <= n, labels, 0)
                sessions = {s: make_session(s, model) for s in strategies}
                times: dict[str, list[float]] = {s: [] for s in strategies}
                peaks: dict[str, list[float]] = {s: [] for s in strategies}
                for session in sessions.values():
                    session.add_reference(frames[0], first)
                for t in range(1, frames.shape[0]):
                    order = list(strategies) if t % 2 else list(reversed(strategies))
                    for strategy in order:
                        session = sessions[strategy]
                        _sync(device)
                        if device.type == "cuda":
                            torch.cuda.reset_peak_memory_stats(device)
                            before = torch.cuda.memory_allocated(device)
                        start = time.perf_counter()
                        session.update_memory(session.propagate(frames[t]).labels)
                        _sync(device)
                        if t > warmup:
                            times[strategy].append(time.perf_counter() - start)
                            if device.type == "cuda":
                                peak = torch.cuda.max_memory_allocated(device) - before
                                peaks[strategy].append(peak / 2**20)
                    if bar is not None:
                        bar.update()
                for strategy in strategies:
                    rows.append(EfficiencyRow(
                        strategy=strategy,
                        objects=n,
                        ms_per_frame=1000.0 * statistics.median(times[strategy]),
                        frames=len(times[strategy]),
                        memory_mb=memory_bytes(sessions[strategy]) / 2**20,
                        peak_mb=statistics.median(peaks[strategy]) if peaks[strategy] else None,
                    ))
                del sessions
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    return rows
