"""Measurements of a trained AOT on held-out videos, for the course model's card, its tests,
the notebooks and the benchmarks.

- the trackers a model must beat, and the bound of its token grid: :func:`copy_first_mask`,
  :func:`grid_oracle`;
- scores: :func:`score_videos` (the DAVIS evaluation object of :mod:`.metrics` over the
  videos), :func:`global_scores`,
  :func:`video_scores` (J&F per video), :func:`score_model`;
- drift: :func:`per_frame_j` (J at every frame index, as tested or teacher-forced);
- which memory the model uses: :func:`memory_ablation` (J&F with the long- or short-term
  attention of every LSTT block removed, Eq. 6 / Eq. 7, using :func:`attention_removed`);
- identification against post-ensemble (Fig. 3, Eq. 1): :func:`compare_strategies`;
- an object reappearing after an occlusion (Fig. 7): :func:`reappearance_frames`,
  :func:`occlusion_attention`;
- the identity bank (Fig. 4): :func:`cosine_similarity_matrix`, :func:`similarity_stats` and
  :func:`identity_bank_stats` against the equidistant ``-1/(M-1)``;
- attention per layer (Fig. 6): :func:`attention_entropy_per_layer`.

``videos`` everywhere is anything with ``len()`` and ``video(i) -> (frames uint8 [T, H, W, 3],
labels uint8 [T, H, W])`` (e.g. :class:`aot_edu.data.SyntheticVideos`); a *predictor* is a
function ``(frames, labels) -> masks [T, H, W]`` that may read ``labels[0]`` only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from aot_edu.inference.attention_maps import (
    AttentionRecord,
    attention_entropy,
    attention_views,
    record_attention,
    uniform_entropy,
)
from aot_edu.inference.post_ensemble import make_session
from aot_edu.inference.session import InferenceSession, segment
from aot_edu.model import AOT

from .metrics import DavisEvaluation, jaccard, score_sequence

Predictor = Callable[[np.ndarray, np.ndarray], np.ndarray]


# --- baselines ---------------------------------------------------------------------------------

def copy_first_mask(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The trivial tracker: every frame gets the first mask. What tracking has to beat."""
    return np.repeat(labels[:1], len(labels), axis=0)


def grid_oracle(labels: np.ndarray, stride: int = 16) -> np.ndarray:
    """The ground truth seen on a grid of ``1/stride`` (area-averaged one-hot), upsampled
    bilinearly and arg-maxed: ``[T, H, W]`` labels.

    ``stride = 16``: AOT's token grid, the best a prediction right only per token can do;
    ``stride = 4``: the decoder's output grid, the best any prediction of AOT's decoder can do.
    """
    truth = torch.from_numpy(np.asarray(labels).astype(np.int64))
    one_hot = F.one_hot(truth, int(truth.max()) + 1).permute(0, 3, 1, 2).float()
    h, w = truth.shape[1:]
    size = ((h - 1) // stride + 1, (w - 1) // stride + 1)
    grid = F.interpolate(one_hot, size=size, mode="area")
    up = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
    return up.argmax(1).numpy()


def token_grid_oracle(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """:func:`grid_oracle` at AOT's token stride (16) as a predictor (it reads the truth of
    every frame: a bound, not a tracker)."""
    return grid_oracle(labels, 16)


def model_predictor(model: AOT, **segment_kwargs) -> Predictor:
    """The predictor of ``model``: :func:`aot_edu.segment` from the first mask."""

    def predict(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return np.asarray(segment(frames, labels[0], model, **segment_kwargs).masks)

    return predict


def teacher_forced_predictor(model: AOT) -> Predictor:
    """``model`` segmenting as :func:`aot_edu.segment` does, but with the true previous mask as
    its short-term memory instead of its own prediction (teacher forcing): how good each step
    is when errors cannot compound."""

    def predict(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
        session = InferenceSession(model)
        masks = [labels[0]]
        with torch.inference_mode():
            session.add_reference(frames[0], labels[0])
            for t in range(1, len(frames)):
                masks.append(np.asarray(session.propagate(frames[t]).labels))
                session.update_memory(labels[t])
        return np.stack(masks)

    return predict


# --- scores -------------------------------------------------------------------------------------

def score_videos(videos, predict: Predictor, progress: bool = False) -> DavisEvaluation:
    """Score ``predict`` on every video with the DAVIS semi-supervised protocol
    (:func:`~aot_edu.evaluation.metrics.score_sequence`: first and last frames excluded).

    Returns the DAVIS evaluation object (:class:`~aot_edu.evaluation.metrics.DavisEvaluation`)
    with every object's per-frame J and F; videos are named ``video000``, ``video001``, ...
    """
    indices = range(len(videos))
    if progress:
        indices = tqdm(indices, desc="evaluate", unit="video", leave=False)
    scores = {}
    for i in indices:
        frames, labels = videos.video(i)
        scores[f"video{i:03d}"] = score_sequence(labels, predict(frames, labels))
    return DavisEvaluation.from_scores(scores)


def global_scores(evaluation: DavisEvaluation) -> dict:
    """The global figures of :func:`score_videos`' result, as the DAVIS tables give them:
    ``J&F``, ``J``, ``F`` (means over all objects of all videos), ``videos``, ``objects``."""
    glob = evaluation.global_metrics
    return {"J&F": glob["J&F-Mean"], "J": glob["J-Mean"], "F": glob["F-Mean"],
            "videos": len(evaluation.sequences), "objects": len(evaluation.objects)}


def video_scores(evaluation: DavisEvaluation) -> list[float]:
    """J&F of every video (mean over its objects) of :func:`score_videos`' result."""
    return [row["J&F-Mean"] for row in evaluation.per_sequence.values()]


def score_model(model: AOT, videos, progress: bool = False) -> dict:
    """Segment every video from its first mask (:func:`aot_edu.segment`) and score it
    (:func:`score_videos`); the global figures of :func:`global_scores`."""
    return global_scores(score_videos(videos, model_predictor(model), progress))


def per_frame_j(videos, predict: Predictor) -> np.ndarray:
    """Mean J at every frame index ``1..T-1`` (all objects of all videos; the last frame
    included, unlike the DAVIS protocol): ``[T - 1]``. A tracker that drifts falls along it."""
    rows = []
    for i in range(len(videos)):
        frames, labels = videos.video(i)
        masks = predict(frames, labels)
        n = int(labels[0].max())
        rows.append([[jaccard(labels[t] == k, masks[t] == k) for k in range(1, n + 1)]
                     for t in range(1, len(labels))])
    # videos differ in object count: average objects first within a frame, pooled over videos
    lengths = {len(r) for r in rows}
    if len(lengths) != 1:
        raise ValueError(f"per_frame_j needs videos of one length, got lengths {sorted(lengths)}")
    return np.array([np.mean(np.concatenate([r[t] for r in rows])) for t in range(lengths.pop())])


# --- which memory the model uses ------------------------------------------------------------------

MEMORY_ABLATIONS = ("nothing removed", "long-term attention removed", "short-term attention removed")


@contextmanager
def attention_removed(model: AOT, which: str | None) -> Iterator[None]:
    """Inside the ``with`` block, the output of every LSTT block's long-term attention
    (``which="long"``, Eq. 6) or short-term attention (``"short"``, Eq. 7) is zero on every
    propagated frame; the reference frame runs unchanged. ``None`` removes nothing."""
    if which not in (None, "long", "short"):
        raise ValueError(f"which must be None, 'long' or 'short', got {which!r}")
    if which == "short" and model.config.short_term_frames == 0:
        raise ValueError("this model has no short-term attention to remove (short_term_frames = 0)")
    state = {"propagating": False}

    def note_frame(block, args):  # LSTTBlock(x, pos, size_2d, id_emb, ...): no id_emb = propagated
        state["propagating"] = args[3] is None

    def remove(module, args, output):
        if state["propagating"]:
            return (torch.zeros_like(output[0]), *output[1:])

    handles = []
    if which is not None:
        for block in model.LSTT.layers:
            attention = block.long_term_attn if which == "long" else block.short_term_attn
            handles += [block.register_forward_pre_hook(note_frame),
                        attention.register_forward_hook(remove)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def memory_ablation(model: AOT, videos) -> dict[str, float]:
    """Held-out J&F with nothing removed, and with the output of every LSTT block's long-term
    (Eq. 6) or short-term (Eq. 7) attention set to zero on every propagated frame (the
    reference frame runs unchanged): how much the model relies on each memory."""
    scores = {}
    for label, removed in zip(MEMORY_ABLATIONS, (None, "long", "short"), strict=True):
        with attention_removed(model, removed):
            scores[label] = score_model(model, videos)["J&F"]
    return scores


# --- identification against post-ensemble (Fig. 3, Eq. 1) -----------------------------------------

def strategy_predictor(model: AOT, strategy: str = "identification") -> Predictor:
    """The predictor of ``model`` run with a multi-object ``strategy`` of
    :data:`aot_edu.inference.post_ensemble.STRATEGIES`: ``identification`` (AOT: every object in one pass,
    Eq. 3-5) or ``post_ensemble_sequential`` / ``post_ensemble_parallel`` (one 1-object problem
    per object, merged by soft aggregation, Eq. 1). The predictor's ``seconds`` list gets the
    mean time per propagated frame (propagate + memory update) of every video it segments."""
    seconds: list[float] = []

    def predict(frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
        session = make_session(strategy, model)
        masks = [np.asarray(labels[0])]
        was_training = model.training
        model.eval()
        try:
            with torch.inference_mode():
                session.add_reference(frames[0], labels[0])
                start = time.perf_counter()
                for t in range(1, len(frames)):
                    predicted = session.propagate(frames[t]).labels
                    session.update_memory(predicted)
                    masks.append(predicted.cpu().numpy())
                seconds.append((time.perf_counter() - start) / max(1, len(frames) - 1))
        finally:
            model.train(was_training)
        return np.stack(masks)

    predict.seconds = seconds
    return predict


def compare_strategies(
    model: AOT, videos, strategies: Sequence[str] = ("identification", "post_ensemble_sequential"),
) -> dict[str, dict]:
    """Segment every video with each strategy (Fig. 3: identification against post-ensemble)
    and score it with the DAVIS protocol (:func:`score_videos`).

    The strategies take turns video by video (in alternating order, so a busy machine slows
    them alike). Returns ``{strategy: {"J&F", "J", "F", "videos", "objects", "ms_per_frame",
    "per_video_jf"}}``: :func:`global_scores`, the median over videos of the mean time per
    propagated frame, and the J&F of every video.
    """
    predictors = {s: strategy_predictor(model, s) for s in strategies}
    scores: dict[str, dict] = {s: {} for s in strategies}
    for i in range(len(videos)):
        frames, labels = videos.video(i)
        order = list(strategies) if i % 2 == 0 else list(reversed(strategies))
        for strategy in order:
            scores[strategy][f"video{i:03d}"] = score_sequence(labels, predictors[strategy](frames, labels))
    evaluations = {s: DavisEvaluation.from_scores(scores[s]) for s in strategies}
    return {
        s: {**global_scores(evaluations[s]), "ms_per_frame": 1000.0 * float(np.median(predictors[s].seconds)),
            "per_video_jf": video_scores(evaluations[s])}
        for s in strategies
    }


# --- an object reappearing after an occlusion (Fig. 7) --------------------------------------------

def reappearance_frames(labels: np.ndarray, object_id: int = 1) -> list[int]:
    """Frames ``t`` where ``object_id`` is visible in ``labels [T, H, W]`` and was not at
    ``t - 1``: the moments when only a memory older than ``t - 1`` can say where it is."""
    visible = [(np.asarray(frame) == object_id).any() for frame in labels]
    return [t for t in range(1, len(visible)) if visible[t] and not visible[t - 1]]


def occlusion_attention(record: AttentionRecord, frame: int, object_id: int = 1) -> dict:
    """Paper Fig. 7 in numbers: what the long-term (Eq. 6) and the short-term (Eq. 7) attention
    of every LSTT layer carry about ``object_id`` to a query token on it, at ``frame``.

    The query is the token whose 17x17 patch holds most of the object in the ground truth of
    ``frame`` (the record needs ``ground_truth``). For each layer (mean over heads), the value
    is the object's share of what the attention carries to the query, ``(A Y)[object]`` of
    :func:`aot_edu.inference.attention_maps.attention_views`: the attention weight the query puts on the object's
    tokens, ``Y`` being the masks held in memory - the given mask of frame 0 (long-term, the
    only memory frame of AOT-T/S/B at test time) and the model's own prediction of frame
    ``t - 1`` (short-term). ``chance_*`` is the same share under uniform attention.

    Returns ``{"frame", "query", "long": [layers], "short": [layers], "chance_long",
    "chance_short"}`` (floats in ``[0, 1]``).
    """
    if record.ground_truth is None:
        raise ValueError("occlusion_attention needs a record with ground_truth (record_attention(..., ground_truth=labels))")
    fraction = record.token_labels(frame, ground_truth=True)[object_id]
    if float(fraction.max()) == 0:
        raise ValueError(f"object {object_id} is not visible in frame {frame}")
    h, w = record.token_size
    index = int(fraction.flatten().argmax())
    query = (index // w, index % w)
    long, short = [], []
    for layer in range(record.num_layers):
        views = attention_views(record, frame, layer, query)
        long.append(float(views["long_carried"][object_id][query]))
        short.append(float(views["short_carried"][object_id][query]))
    memory = record.long_term_frames[frame - 1]
    chance_long = float(np.mean([record.token_labels(f)[object_id].mean() for f in memory]))
    offsets = np.arange(-record.max_dis, record.max_dis + 1) * record.dilation
    rows, cols = query[0] + offsets, query[1] + offsets  # the 15x15 window, clipped to the frame
    rows, cols = rows[(rows >= 0) & (rows < h)], cols[(cols >= 0) & (cols < w)]
    previous = record.token_labels(frame - 1)[object_id].numpy()
    chance_short = float(previous[np.ix_(rows, cols)].mean())
    return {"frame": frame, "query": query, "long": long, "short": short,
            "chance_long": chance_long, "chance_short": chance_short}


# --- identity bank and attention --------------------------------------------------------------------

def cosine_similarity_matrix(vectors) -> Tensor:
    """``[K, C]`` -> ``[K, K]``: cosine similarity of every pair of rows."""
    v = torch.as_tensor(vectors).detach().float().cpu()
    if v.dim() != 2:
        raise ValueError(f"vectors must be [K, C], got shape {tuple(v.shape)}")
    v = F.normalize(v, dim=1)
    return v @ v.t()


def similarity_stats(vectors, include_background: bool = False) -> dict[str, float]:
    """Off-diagonal cosine similarity of a bank's identities: ``{"mean", "max", "min"}``."""
    v = torch.as_tensor(vectors).detach().float().cpu()
    sim = cosine_similarity_matrix(v if include_background else v[1:]).numpy()
    off = sim[~np.eye(len(sim), dtype=bool)]
    return {"mean": float(off.mean()), "max": float(off.max()), "min": float(off.min())}


def identity_bank_stats(model: AOT) -> dict[str, float]:
    """Off-diagonal cosine similarity of the ``M`` object identities (Fig. 4): ``mean``, ``max``,
    ``min``, and ``equidistant = -1/(M-1)``, the cosine of every pair of ``M`` vectors spread
    as far apart as possible (a regular simplex)."""
    vectors = model.patch_wise_id_bank.identity_vectors()
    stats = similarity_stats(vectors)
    m = vectors.shape[0] - 1
    return {**stats, "equidistant": -1.0 / (m - 1)}


def attention_entropy_per_layer(model: AOT, videos, num_videos: int = 4) -> dict[str, list[float]]:
    """Mean entropy (nats) of the long- and short-term attention rows of every LSTT layer
    (Fig. 6: later layers attend more sharply), over the propagated frames of the first
    ``num_videos`` videos, with the entropy of uniform attention beside it."""
    long_rows, short_rows, long_uniform, short_uniform = [], [], [], []
    for i in range(min(num_videos, len(videos))):
        frames, labels = videos.video(i)
        record = record_attention(model, frames, labels[0], ground_truth=labels)
        long_rows.append(attention_entropy(record, "long_term"))
        short_rows.append(attention_entropy(record, "short_term"))
        long_uniform.append(uniform_entropy(record, "long_term"))
        short_uniform.append(uniform_entropy(record, "short_term"))
    return {
        "long_term": [float(x) for x in np.concatenate(long_rows).mean(0)],
        "short_term": [float(x) for x in np.concatenate(short_rows).mean(0)],
        "long_term_uniform": float(np.concatenate(long_uniform).mean()),
        "short_term_uniform": float(np.concatenate(short_uniform).mean()),
    }
