"""Post-ensemble: the multi-object strategy AOT replaces (paper Sec. 3, Eq. 1, Fig. 1a and 1c).

Before AOT, matching-based VOS networks (STM, CFBI, ...) decoded one positive object at a time.
With ``N`` objects they ran the single-object network ``N`` times and merged the results:

    Y' = A(F(I^t, I^m, Y^m_1), ..., F(I^t, I^m, Y^m_N))            (Eq. 1)

where ``A`` is an ensemble function such as the *soft aggregation* of STM. AOT's identification
mechanism instead embeds all objects into one identity embedding and runs the network **once**
per frame, whatever ``N`` (up to ``M = 10``). Fig. 1c compares the two: the post-ensemble's time
and memory grow with ``N``, AOT's stay flat.

Two sessions here run the *same* AOT network the post-ensemble way - every object a 1-object
problem (identity 1 only, its own memories), the per-object probabilities merged with the soft
aggregation the official code uses between object groups (background = product of the objects'
backgrounds, then ``logit`` of the clamped probabilities):

- :class:`PostEnsembleSession` (``post_ensemble_sequential``): objects one after another. An
  :class:`~aot_edu.inference.session.InferenceSession` whose object groups hold one object each, so every
  other detail (input size, memories, objects that appear later, outputs) is the identification
  path's. Time grows ``N``-fold; memory only by the ``N`` sets of memories it holds.
- :class:`ParallelPostEnsembleSession` (``post_ensemble_parallel``): the ``N`` problems as one
  batch of ``N`` - "separately yet in parallel" (paper Sec. 1), as CFBI-style methods run. Its
  activations and memories are ``N`` times one object's.

Both encode each frame once and share the features between the objects (the encoder does not
see the masks); Eq. 1 taken literally would also repeat the encoder per object.

:func:`efficiency_curve` measures strategies side by side (interleaved frame by frame, so that a
busy machine slows them alike) for 1..10 objects; ``bench/bench_multiobject.py`` and the course
notebooks call it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from aot_edu.model import AOT
from aot_edu.model.identity import one_hot_labels

from .engine import AOTEngine, official_input_size, resize_labels, soft_aggregation, synchronize
from .session import FrameResult, InferenceSession

__all__ = [
    "STRATEGIES",
    "EfficiencyRow",
    "ParallelPostEnsembleSession",
    "PostEnsembleSession",
    "efficiency_curve",
    "make_session",
    "memory_bytes",
]

STRATEGIES = ("identification", "post_ensemble_parallel", "post_ensemble_sequential")


class PostEnsembleSession(InferenceSession):
    """Segment a video object by object and merge with soft aggregation (Eq. 1), sequentially.

    Same interface as :class:`~aot_edu.inference.session.InferenceSession` (``add_reference``,
    ``propagate``, ``update_memory``; internal labels ``0..N``). Each object gets its own
    :class:`~aot_edu.inference.engine.AOTEngine` with one identity, hence its own long- and short-term
    memories: ``N`` passes of the LSTT and decoder per frame, ``N`` sets of memories.
    """

    def __init__(
        self, model: AOT, long_term_gap: int | None = None, max_long_term_frames: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(model, long_term_gap, max_long_term_frames, **kwargs)
        self.group_size = 1  # one object per engine: a 1-object problem each


class ParallelPostEnsembleSession(InferenceSession):
    """Eq. 1 with the ``N`` 1-object problems run in parallel, as one batch of ``N``.

    Sample ``k`` of the batch holds object ``k`` alone (identity 1); the frame's encoding is
    shared (expanded to the batch). Probabilities are merged with :func:`soft_aggregation`.
    All objects must be in the first mask (objects appearing later are not supported here; use
    :class:`PostEnsembleSession`).
    """

    def _batch(self, enc: list[Tensor]) -> list[Tensor]:
        return [e.expand(self.num_objects, *e.shape[1:]) for e in enc]

    def _object_one_hot(self, labels_in: Tensor) -> Tensor:
        """Input-size labels ``[1, h, w]`` -> ``[N, M+1, h, w]``: sample ``k`` = object ``k+1``."""
        objects = torch.arange(1, self.num_objects + 1, device=labels_in.device)[:, None, None]
        return one_hot_labels((labels_in == objects).long(), self.group_size + 1)

    def add_reference(self, frame, labels, need_weights: bool = False) -> None:
        if self.engines:
            raise NotImplementedError(
                "ParallelPostEnsembleSession takes the first frame's objects only; for objects "
                "that appear later use PostEnsembleSession (one engine per object)"
            )
        frame = torch.as_tensor(frame)
        labels = torch.as_tensor(labels, device=self.device).long()
        self.frame_size = tuple(frame.shape[:2])
        self.input_size = official_input_size(
            *self.frame_size, self.max_long_edge, align_corners=self.model.config.align_corners
        )
        self.step = 0
        self.num_objects = int(labels.max())
        if self.num_objects < 1:
            raise ValueError("the first mask has no object (labels 1..N)")
        engine = AOTEngine(self.model, self.long_term_gap, self.model.config.short_term_skip,
                           self.max_long_term_frames)
        one_hot = self._object_one_hot(resize_labels(labels[None], self.input_size))
        engine.add_reference_frame(self._batch(self._encode(frame)), one_hot,
                                   [1] * self.num_objects, step=0, need_weights=need_weights)
        self.engines = [engine]

    def propagate(self, frame, need_weights: bool = False) -> FrameResult:
        if not self.engines:
            raise RuntimeError("call add_reference with the first frame and its mask first")
        frame = torch.as_tensor(frame)
        if tuple(frame.shape[:2]) != self.frame_size:
            raise ValueError(f"frame is {tuple(frame.shape[:2])}, the video is {self.frame_size}")
        self.step += 1
        enc = self._batch(self._encode(frame))
        engine = self.engines[0]
        out = engine.propagate(enc, need_weights)
        probs = torch.softmax(engine.decode(enc, self.frame_size, channels=2), dim=1)  # [N, 2]
        logits = soft_aggregation(probs[None, :, 0], probs[None, :, 1])
        probs = torch.softmax(logits, dim=1)
        attention = [out.attention] if need_weights else None
        return FrameResult(logits, probs, probs.max(dim=1).indices[0], attention)

    def update_memory(self, labels) -> None:
        labels = torch.as_tensor(labels, device=self.device).long()
        labels_in = resize_labels(labels[None], self.input_size)
        self.engines[0].update_memory(self._object_one_hot(labels_in))


def make_session(
    strategy: str, model: AOT, long_term_gap: int | None = None,
    max_long_term_frames: int | None = None,
) -> InferenceSession:
    """An inference session for ``strategy`` (see :data:`STRATEGIES`): ``identification``
    (AOT), ``post_ensemble_parallel`` or ``post_ensemble_sequential`` (Eq. 1)."""
    sessions = {
        "identification": InferenceSession,
        "post_ensemble_parallel": ParallelPostEnsembleSession,
        "post_ensemble_sequential": PostEnsembleSession,
    }
    if strategy not in sessions:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGIES)}")
    return sessions[strategy](model, long_term_gap, max_long_term_frames)


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


def efficiency_curve(
    model: AOT,
    frames: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    object_counts: Iterable[int] = range(1, 11),
    strategies: Sequence[str] = STRATEGIES,
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
                        synchronize(device)
                        if device.type == "cuda":
                            torch.cuda.reset_peak_memory_stats(device)
                            before = torch.cuda.memory_allocated(device)
                        start = time.perf_counter()
                        session.update_memory(session.propagate(frames[t]).labels)
                        synchronize(device)
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
