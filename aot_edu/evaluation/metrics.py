"""DAVIS metrics: region similarity J, boundary F-measure F and J&F, exactly as the official toolkit.

The AOT paper (Sec. 5) reports J&F on DAVIS with the official ``davis2017-evaluation`` toolkit
(davisvideochallenge/davis2017-evaluation, semi-supervised task); J and F are defined in the
DAVIS 2016 paper (Perazzi et al., CVPR 2016). This module gives the toolkit's numbers -- the
tests check them to 1e-6 against values produced by the toolkit itself and against a literal
re-implementation -- several times faster, and with clear errors instead of ``sys.exit``.

Conventions of the official toolkit (semi-supervised task), all followed here
---------------------------------------------------------------------------------
Masks and objects
  * A mask PNG is a label map: 0 background, ``k`` = object ``k``. The number of objects ``N`` of
    a sequence is the largest label of the **first** ground-truth frame, after label 255 is set
    to 0. Object ``k`` in any frame is the set of pixels equal to ``k``; labels above ``N`` in
    later ground-truth frames belong to no object.
  * Label 255 ("void") in the ground truth becomes background. The semi-supervised evaluation
    does **not** exclude void pixels (the toolkit passes no void mask there), so a prediction on
    a void pixel counts as a false positive, like anywhere else in the background. The per-frame
    functions below still accept an explicit ``void`` mask, as the toolkit's ``db_eval_iou`` and
    ``f_measure`` do.
  * Results: for each evaluated frame, ``<results>/<seq>/<frame>.png`` with the same stem as the
    ground-truth file. The number of result objects is the largest label found in the evaluated
    result frames (255 included). More objects than ``N`` is an error ("an index higher than the
    number of objects"); fewer is allowed: missing objects get an empty mask.
  * Reading: the toolkit takes raw PNG values. Here masks go through
    :func:`aot_edu.data.read_mask`, which also reads DAVIS 2016's 0/255 grayscale PNGs as object
    1 (the toolkit would see only void there and stop) and DAVIS-palette RGB PNGs; wherever the
    toolkit gives numbers, the numbers are the same.
  * Frames: the ground-truth PNGs of the sequence sorted by name. The first frame (given as input
    to the method) and the last frame (historical: some DAVIS 2016 methods gave no result for
    it) are not evaluated.

Region similarity J (``db_eval_iou``), Eq. of the DAVIS 2016 paper
  * ``J = |G ∩ P| / |G ∪ P|`` counted over non-void pixels; ``J = 1`` when the union is empty
    (empty ground truth and empty prediction).

Boundary F-measure F (``db_eval_boundary`` -> ``f_measure`` -> ``_seg2bmap``)
  * Boundary map of a binary mask ``S`` (after void pixels are set to 0): pixel ``(y, x)`` is a
    boundary pixel when ``S[y, x]`` differs from its right neighbour ``S[y, x+1]``, its lower
    neighbour ``S[y+1, x]`` or its lower-right neighbour ``S[y+1, x+1]``, where pixels outside
    the frame count as 0. Exceptions: in the last row only the right neighbour is compared, in the
    last column only the lower one, and the bottom-right pixel is never a boundary pixel. An edge
    between pixels is thus drawn on the pixel above or left of it, and edges along the frame
    border are never boundaries: a mask that fills the frame has no boundary at all.
  * Tolerance: ``r = ceil(bound_th * sqrt(H^2 + W^2))`` pixels with ``bound_th = 0.008`` (a
    value >= 1 is taken as ``r`` itself). 480p DAVIS (480 x 854): ``r = ceil(7.837) = 8``.
  * Each boundary is dilated with skimage's ``disk(r)`` (offsets with ``dy^2 + dx^2 <= r^2``,
    OpenCV ``dilate``: nothing comes from outside the frame). A predicted boundary pixel is a
    match when the dilated ground-truth boundary covers it, i.e. when some ground-truth boundary
    pixel lies within Euclidean distance ``r``; and vice versa for ground-truth pixels.
  * ``precision = matched predicted / all predicted boundary pixels``, ``recall = matched ground
    truth / all ground-truth boundary pixels``. No predicted boundary: P = 1, R = 0 (if the ground
    truth has one); no ground-truth boundary: P = 0, R = 1 (if the prediction has one); neither:
    P = R = 1, so an empty prediction of an empty object scores F = 1. ``F = 2PR / (P + R)``, 0
    when ``P + R = 0``.

Statistics of one object over its evaluated frames (``utils.db_statistics``)
  * Mean ``M = nanmean(values)``; recall ``O = nanmean(values > 0.5)``.
  * Decay ``D = nanmean(first bin) - nanmean(last bin)`` with 4 bins whose edges are
    ``round(linspace(1, n, 5) + 1e-10) - 1``: bin ``i`` spans indices ``edge[i] .. edge[i+1]``
    inclusive, so neighbouring bins share their edge frame (this is not ``np.array_split``).
    The toolkit stores the edges as ``uint8``: fine up to 255 evaluated frames (every DAVIS
    sequence has fewer), past that they overflow (NaN or wrong bins); here the true edges are used.

Averaging (``evaluation_method.py``)
  * ``J-Mean``, ``J-Recall``, ``J-Decay`` (and the same for F) are the plain means, over **all
    objects of all sequences**, of the per-object statistics: frames first, then objects, so a
    sequence with 3 objects weighs 3 times one with 1 object. ``J&F-Mean = (J-Mean + F-Mean) / 2``.
  * The toolkit's "per-sequence" table has one row per object named ``<seq>_<k>``.

What is faster here and why it is the same
------------------------------------------
The toolkit dilates both boundary maps of every object over the whole frame. Here the masks are
cropped to the window that can hold boundary pixels (their bounding box), and the dilation is
replaced by the equivalent question "is there a boundary pixel of the other map in row
``y + dy`` within ``|dx| <= floor(sqrt(r^2 - dy^2))``", asked only at boundary pixels and
answered with two lookups per ``dy`` in a table of power-of-two blocks (:func:`_matched`). The
integer counts are the same, hence bit-identical J and F. :func:`score_results_folder` also decodes
the PNGs in background threads while it scores (PIL releases the GIL while decoding).
"""

from __future__ import annotations

import csv
import math
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import islice
from pathlib import Path

import numpy as np

from aot_edu.data.io import VOID_LABEL, read_mask

BOUND_TH = 0.008
RECALL_THRESHOLD = 0.5
DECAY_BINS = 4
GLOBAL_KEYS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")

__all__ = [
    "BOUND_TH",
    "GLOBAL_KEYS",
    "DavisEvaluation",
    "ObjectScores",
    "boundary_f_measure",
    "boundary_map",
    "boundary_radius",
    "score_results_folder",
    "score_sequence",
    "frame_scores",
    "jaccard",
    "statistics",
    "write_tables",
]


# --------------------------------------------------------------------------------------------
# Per-frame measures
# --------------------------------------------------------------------------------------------


def _as_mask(name: str, array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2-D mask [H, W], got shape {tuple(array.shape)}")
    return array.astype(bool, copy=False)


def _check_pair(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None):
    gt, pred = _as_mask("gt", gt), _as_mask("pred", pred)
    if gt.shape != pred.shape:
        raise ValueError(
            f"gt and pred differ in size: {gt.shape} vs {pred.shape}; resize the prediction "
            "to the ground-truth size (nearest neighbour) before scoring"
        )
    if void is not None:
        void = _as_mask("void", void)
        if void.shape != gt.shape:
            raise ValueError(f"void mask has shape {void.shape}, expected {gt.shape}")
    return gt, pred, void


def jaccard(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    """Region similarity J (Jaccard index) of one frame, the toolkit's ``db_eval_iou``.

    ``gt``, ``pred`` and ``void``: boolean masks ``[H, W]``. Void pixels are left out of both the
    intersection and the union; an empty union gives 1.
    """
    gt, pred, void = _check_pair(gt, pred, void)
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    inter = np.count_nonzero(gt & pred)
    union = np.count_nonzero(gt) + np.count_nonzero(pred) - inter
    return 1.0 if union == 0 else inter / union


def boundary_radius(shape: Sequence[int], bound_th: float = BOUND_TH) -> int:
    """Boundary tolerance in pixels: ``ceil(bound_th * diagonal)``, or ``bound_th`` if >= 1.

    480 x 854 (DAVIS 480p) gives 8; ``bound_th = 0`` asks for exact positions.
    """
    if bound_th >= 1:
        if bound_th != int(bound_th):
            raise ValueError(
                f"a pixel tolerance bound_th >= 1 must be a whole number, got {bound_th}"
            )
        return int(bound_th)
    if bound_th < 0:
        raise ValueError(f"bound_th must not be negative, got {bound_th}")
    # np.linalg.norm as in the toolkit, so that the ceil sees the very same float.
    return int(np.ceil(bound_th * np.linalg.norm(tuple(shape[:2]))))


def _window(masks: Sequence[np.ndarray]) -> tuple[list[np.ndarray], int, int, bool, bool] | None:
    """Crops of ``masks`` (bool ``[H, W]`` each) to the window that can hold boundary pixels.

    The window is the bounding box of all True pixels grown by one pixel up and left (a pixel
    is compared with its right and lower neighbours) and by one zero row and column below and
    right (beyond the box every mask is 0, and so is everything outside the frame in the
    toolkit's shifted copies). Returns the crops, the window's top-left corner and whether the
    box reaches the frame's last row / last column; ``None`` when all masks are empty.
    """
    union = masks[0]
    for mask in masks[1:]:
        union = union | mask
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1])
    cols = np.flatnonzero(union[y0 : y1 + 1].any(axis=0))
    x0, x1 = int(cols[0]), int(cols[-1])
    top, left = max(y0 - 1, 0), max(x0 - 1, 0)
    crops = []
    for mask in masks:
        crop = np.zeros((y1 - top + 2, x1 - left + 2), dtype=bool)
        crop[:-1, :-1] = mask[top : y1 + 1, left : x1 + 1]
        crops.append(crop)
    height, width = union.shape
    return crops, top, left, y1 == height - 1, x1 == width - 1


def _window_boundary(crop: np.ndarray, last_row: bool, last_col: bool) -> np.ndarray:
    """``_seg2bmap`` on a window from :func:`_window`: bool ``[h, w]`` (the crop less its pad)."""
    seg = crop[:-1, :-1]
    right, below, diag = crop[:-1, 1:], crop[1:, :-1], crop[1:, 1:]
    bmap = (seg ^ right) | (seg ^ below) | (seg ^ diag)
    # The toolkit's special rules for the frame's last row and column (see module docstring).
    if last_row:
        bmap[-1, :] = seg[-1, :] ^ right[-1, :]
    if last_col:
        bmap[:, -1] = seg[:, -1] ^ below[:, -1]
    if last_row and last_col:
        bmap[-1, -1] = False
    return bmap


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundary map (bool ``[H, W]``) of a mask, the toolkit's ``_seg2bmap``."""
    mask = _as_mask("mask", mask)
    bmap = np.zeros(mask.shape, dtype=bool)
    window = _window([mask])
    if window is not None:
        (crop,), top, left, last_row, last_col = window
        inner = _window_boundary(crop, last_row, last_col)
        bmap[top : top + inner.shape[0], left : left + inner.shape[1]] = inner
    return bmap


@lru_cache(maxsize=8)
def _disk_rows(radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row ``dy`` of ``disk(radius)``, as ``[2r + 1, 1]`` arrays: ``dy``, the half width
    ``w = floor(sqrt(r^2 - dy^2))`` and the level ``k = floor(log2(2w + 1))`` of the largest
    power-of-two block that fits in the row's span ``2w + 1``."""
    dy = list(range(-radius, radius + 1))
    half = [math.isqrt(radius * radius - d * d) for d in dy]
    level = [(2 * w + 1).bit_length() - 1 for w in half]
    return tuple(np.array(values)[:, None] for values in (dy, half, level))


def _matched(bmap_a: np.ndarray, bmap_b: np.ndarray, radius: int) -> tuple[int, int]:
    """How many pixels of boundary map A have a pixel of B within ``radius``, and vice versa.

    Same count as the toolkit's "A times B dilated with ``disk(radius)``": a B pixel lies in the
    disk around ``(y, x)`` iff row ``y + dy`` of B has a pixel between ``x - w(dy)`` and
    ``x + w(dy)`` for some ``dy``. Each such span of ``2w + 1`` pixels is covered by two blocks
    of ``2^k <= 2w + 1`` pixels (one flush left, one flush right), and a table holds, for every
    pixel and ``k``, whether the block of ``2^k`` pixels starting there has an A pixel (bit 0) or
    a B pixel (bit 1) (a sparse table: level ``k`` is level ``k - 1`` OR itself shifted by
    ``2^(k-1)``). So every boundary pixel is answered for every ``dy`` with two lookups, and the
    work over the whole window is a few ORs.
    """
    height, width = bmap_a.shape
    stride = width + 2 * radius  # pad by the radius on all sides: spans never leave the array
    size = (height + 2 * radius) * stride
    dy, half, level = _disk_rows(radius)
    levels = int(level.max()) + 1
    left = level * size + dy * stride - half  # block flush with the span's left end
    right = left + 2 * half + 1 - (1 << level)  # block flush with its right end
    # One table for both maps: bit 0 says "A pixel in the block", bit 1 "B pixel".
    table = np.zeros((levels, height + 2 * radius, stride), dtype=np.uint8)
    inner = table[0, radius : radius + height, radius : radius + width]
    np.left_shift(bmap_b, 1, out=inner, dtype=np.uint8)
    inner |= bmap_a
    table = table.reshape(levels, size)
    for k in range(1, levels):
        step = 1 << (k - 1)
        np.bitwise_or(table[k - 1, :-step], table[k - 1, step:], out=table[k, :-step])
    table = table.ravel()
    counts = []
    for bmap, other_bit in ((bmap_a, 2), (bmap_b, 1)):
        flat = np.flatnonzero(bmap)
        base = flat + (flat // width) * (stride - width) + radius * stride + radius
        found = (table.take(base + left) | table.take(base + right)) & other_bit
        counts.append(int(np.count_nonzero(found.any(axis=0))))
    return counts[0], counts[1]


def _f_from_counts(n_pred: int, n_gt: int, pred_matched: int, gt_matched: int) -> float:
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision, recall = pred_matched / float(n_pred), gt_matched / float(n_gt)
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _pair_scores(gt: np.ndarray, pred: np.ndarray, radius: int) -> tuple[float, float]:
    """J and F of one object in one frame (bool ``[H, W]`` masks, void already removed)."""
    window = _window([gt, pred])
    if window is None:  # both empty: empty union, no boundaries
        return 1.0, 1.0
    (gt_crop, pred_crop), _, _, last_row, last_col = window
    inter = np.count_nonzero(gt_crop & pred_crop)
    union = np.count_nonzero(gt_crop | pred_crop)
    j = inter / union  # union > 0 here
    gt_bmap = _window_boundary(gt_crop, last_row, last_col)
    pred_bmap = _window_boundary(pred_crop, last_row, last_col)
    n_gt, n_pred = np.count_nonzero(gt_bmap), np.count_nonzero(pred_bmap)
    if n_gt and n_pred:
        pred_matched, gt_matched = _matched(pred_bmap, gt_bmap, radius)
    else:
        pred_matched = gt_matched = 0
    return j, _f_from_counts(n_pred, n_gt, pred_matched, gt_matched)


def boundary_f_measure(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = BOUND_TH
) -> float:
    """Boundary F-measure F of one frame, the toolkit's ``db_eval_boundary`` / ``f_measure``.

    ``gt``, ``pred`` and ``void``: boolean masks ``[H, W]``. Void pixels are set to background
    before the boundaries are taken. ``bound_th``: tolerance as a fraction of the frame diagonal
    (or in pixels if >= 1).
    """
    gt, pred, void = _check_pair(gt, pred, void)
    if void is not None:
        gt, pred = gt & ~void, pred & ~void
    return _pair_scores(gt, pred, boundary_radius(gt.shape, bound_th))[1]


def frame_scores(
    gt_labels: np.ndarray, pred_labels: np.ndarray, num_objects: int, bound_th: float = BOUND_TH
) -> tuple[np.ndarray, np.ndarray]:
    """J and F of objects ``1..num_objects`` in one frame of label maps (``[H, W]`` ints).

    Returns two float arrays ``[num_objects]``. Object ``k`` is ``labels == k`` in both maps;
    other labels (255 included) are background, as in the semi-supervised protocol.
    """
    gt_labels, pred_labels = np.asarray(gt_labels), np.asarray(pred_labels)
    if gt_labels.shape != pred_labels.shape or gt_labels.ndim != 2:
        raise ValueError(
            f"label maps must be 2-D and of one size, got {gt_labels.shape} and {pred_labels.shape}"
        )
    radius = boundary_radius(gt_labels.shape, bound_th)
    j = np.empty(num_objects)
    f = np.empty(num_objects)
    for index in range(num_objects):
        j[index], f[index] = _pair_scores(gt_labels == index + 1, pred_labels == index + 1, radius)
    return j, f


# --------------------------------------------------------------------------------------------
# Per-object statistics
# --------------------------------------------------------------------------------------------


def statistics(per_frame_values: Sequence[float] | np.ndarray) -> tuple[float, float, float]:
    """Mean, recall and decay of one object's per-frame J (or F), the toolkit's ``db_statistics``.

    ``per_frame_values``: ``[T]`` values of the evaluated frames in order. Recall is the share of
    frames above 0.5; decay is the mean of the first of 4 overlapping bins minus the mean of the
    last (see the module docstring for the bin edges).
    """
    values = np.asarray(per_frame_values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"per_frame_values must be 1-D, got shape {values.shape}")
    count = len(values)
    with warnings.catch_warnings():
        # All-NaN or empty input: numpy warns "Mean of empty slice"; the toolkit silences it too.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = float(np.nanmean(values))
        recall = float(np.nanmean(values > RECALL_THRESHOLD))
        edges = np.round(np.linspace(1, count, DECAY_BINS + 1) + 1e-10).astype(np.int64) - 1
        bins = [values[edges[i] : edges[i + 1] + 1] for i in range(DECAY_BINS)]
        decay = float(np.nanmean(bins[0]) - np.nanmean(bins[-1]))
    return mean, recall, decay


# --------------------------------------------------------------------------------------------
# Evaluation of sequences and data sets
# --------------------------------------------------------------------------------------------


@dataclass
class ObjectScores:
    """Per-frame J and F of one object over the evaluated frames of its sequence."""

    sequence: str
    object_id: int
    frames: tuple[str, ...]
    j: np.ndarray
    f: np.ndarray

    @property
    def name(self) -> str:
        """The toolkit's row name, ``<sequence>_<object id>``."""
        return f"{self.sequence}_{self.object_id}"

    def summary(self) -> dict[str, float]:
        jm, jr, jd = statistics(self.j)
        fm, fr, fd = statistics(self.f)
        return {
            "J&F-Mean": (jm + fm) / 2,
            "J-Mean": jm,
            "J-Recall": jr,
            "J-Decay": jd,
            "F-Mean": fm,
            "F-Recall": fr,
            "F-Decay": fd,
        }


@dataclass
class DavisEvaluation:
    """Result of :func:`score_results_folder`: per-frame scores of every object and the tables.

    ``evaluation["J&F-Mean"]`` (or any of :data:`GLOBAL_KEYS`) gives a global figure;
    ``per_object`` the toolkit's per-sequence table (rows ``<seq>_<k>``); ``per_sequence`` the
    mean over the objects of each sequence (a convenience, not a table of the toolkit).
    """

    objects: list[ObjectScores]
    sequences: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)

    @property
    def per_object(self) -> dict[str, dict[str, float]]:
        return {obj.name: obj.summary() for obj in self.objects}

    @property
    def global_metrics(self) -> dict[str, float]:
        """The toolkit's global table: means over all objects of all sequences."""
        rows = list(self.per_object.values())
        if not rows:
            return dict.fromkeys(GLOBAL_KEYS, math.nan)
        means = {key: float(np.mean([row[key] for row in rows])) for key in GLOBAL_KEYS[1:]}
        return {"J&F-Mean": (means["J-Mean"] + means["F-Mean"]) / 2.0, **means}

    @property
    def per_sequence(self) -> dict[str, dict[str, float]]:
        """J&F-Mean, J-Mean and F-Mean of each sequence, averaged over its objects."""
        table = {}
        for sequence in self.sequences:
            rows = [obj.summary() for obj in self.objects if obj.sequence == sequence]
            if not rows:
                continue
            jm = float(np.mean([row["J-Mean"] for row in rows]))
            fm = float(np.mean([row["F-Mean"] for row in rows]))
            table[sequence] = {"J&F-Mean": (jm + fm) / 2, "J-Mean": jm, "F-Mean": fm}
        return table

    def __getitem__(self, key: str) -> float:
        if key not in GLOBAL_KEYS:
            raise KeyError(f"unknown metric {key!r}; choose from {GLOBAL_KEYS}")
        return self.global_metrics[key]

    @classmethod
    def from_scores(
        cls,
        scores: Mapping[str, tuple[np.ndarray, np.ndarray]],
        frames: Mapping[str, Sequence[str]] | None = None,
    ) -> DavisEvaluation:
        """Build an evaluation from ``{sequence: (J [N, T], F [N, T])}`` (e.g. of :func:`score_sequence`)."""
        objects = []
        for sequence, (j, f) in scores.items():
            j, f = np.atleast_2d(j), np.atleast_2d(f)
            names = tuple(frames[sequence]) if frames else tuple(str(i) for i in range(j.shape[1]))
            for index in range(j.shape[0]):
                objects.append(ObjectScores(sequence, index + 1, names, j[index], f[index]))
        return cls(objects=objects, sequences=list(scores))

    def to_markdown(self, percent: bool = True) -> str:
        """Global and per-object tables as Markdown (percent with one decimal, as in papers)."""
        scale, digits = (100.0, 1) if percent else (1.0, 3)

        def cell(value: float) -> str:
            return "nan" if math.isnan(value) else f"{value * scale:.{digits}f}"

        glob = self.global_metrics
        lines = [
            "| " + " | ".join(GLOBAL_KEYS) + " |",
            "|" + "---:|" * len(GLOBAL_KEYS),
            "| " + " | ".join(cell(glob[key]) for key in GLOBAL_KEYS) + " |",
            "",
            "| Sequence | J-Mean | F-Mean |",
            "|---|---:|---:|",
        ]
        for name, row in self.per_object.items():
            lines.append(f"| {name} | {cell(row['J-Mean'])} | {cell(row['F-Mean'])} |")
        return "\n".join(lines) + "\n"


def write_tables(
    evaluation: DavisEvaluation, out_dir: str | Path, subset: str = "val"
) -> dict[str, Path]:
    """Write the toolkit's two CSV tables and a Markdown summary into ``out_dir``.

    Files (names and CSV columns as ``evaluation_method.py`` writes them, values with 3
    decimals): ``global_results-<subset>.csv``, ``per-sequence_results-<subset>.csv`` and
    ``results-<subset>.md``. Returns ``{"global": path, "per_sequence": path, "markdown": path}``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "global": out_dir / f"global_results-{subset}.csv",
        "per_sequence": out_dir / f"per-sequence_results-{subset}.csv",
        "markdown": out_dir / f"results-{subset}.md",
    }
    glob = evaluation.global_metrics
    with paths["global"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(GLOBAL_KEYS)
        writer.writerow([f"{glob[key]:.3f}" for key in GLOBAL_KEYS])
    with paths["per_sequence"].open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Sequence", "J-Mean", "F-Mean"])
        for name, row in evaluation.per_object.items():
            writer.writerow([name, f"{row['J-Mean']:.3f}", f"{row['F-Mean']:.3f}"])
    paths["markdown"].write_text(evaluation.to_markdown())
    return paths


def _num_objects(first_gt: np.ndarray) -> int:
    labels = first_gt[first_gt != VOID_LABEL]
    return int(labels.max()) if labels.size else 0


def _check_result_labels(pred: np.ndarray, num_objects: int, where: str) -> None:
    top = int(pred.max()) if pred.size else 0
    if top > num_objects:
        raise ValueError(
            f"{where}: label {top} in the result, but the sequence has {num_objects} object(s) "
            f"(labels 1..{num_objects} of its first ground-truth frame); the official toolkit "
            "stops here too ('an index higher than the number of objects'). Write only the "
            "object labels, and no 255."
        )


def score_sequence(
    gt_labels: Sequence[np.ndarray] | np.ndarray,
    pred_labels: Sequence[np.ndarray] | np.ndarray,
    bound_th: float = BOUND_TH,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of every object of one sequence, semi-supervised protocol.

    ``gt_labels``: all ``T`` ground-truth label maps ``[T, H, W]`` (first frame included);
    ``pred_labels``: predictions for the same ``T`` frames (the first and last are ignored, so
    they may be anything of the right size). Returns ``J, F`` of shape ``[N, T - 2]``.
    """
    if len(gt_labels) != len(pred_labels):
        raise ValueError(f"{len(gt_labels)} ground-truth frames but {len(pred_labels)} predictions")
    if len(gt_labels) < 3:
        raise ValueError(
            "the semi-supervised protocol needs at least 3 frames (first and last are not scored)"
        )
    num_objects = _num_objects(np.asarray(gt_labels[0]))
    j = np.zeros((num_objects, len(gt_labels) - 2))
    f = np.zeros_like(j)
    for t in range(1, len(gt_labels) - 1):
        pred = np.asarray(pred_labels[t])
        _check_result_labels(pred, num_objects, f"prediction of frame {t}")
        j[:, t - 1], f[:, t - 1] = frame_scores(gt_labels[t], pred, num_objects, bound_th)
    return j, f


def _list_sequences(gt_root: Path, sequences: Iterable[str] | None) -> list[str]:
    if not gt_root.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt_root}")
    if sequences is not None:
        names = [sequences] if isinstance(sequences, str) else list(sequences)
        missing = [name for name in names if not (gt_root / name).is_dir()]
        if missing:
            raise FileNotFoundError(f"no ground truth for sequence(s) {missing} in {gt_root}")
        return names
    names = sorted(p.name for p in gt_root.iterdir() if p.is_dir() and any(p.glob("*.png")))
    if not names:
        raise FileNotFoundError(
            f"{gt_root} holds no sequence folders with PNG masks; pass the folder that holds one "
            "sub-folder per sequence, e.g. DAVIS/Annotations/480p"
        )
    return names


def _read(path: Path, what: str) -> np.ndarray:
    try:
        return read_mask(path)
    except FileNotFoundError:
        raise
    except Exception as error:  # PIL raises several types for broken files
        raise ValueError(f"cannot read {what} {path}: {error}") from error


@dataclass
class _SequencePlan:
    name: str
    first: Path  # ground truth of the first frame: gives the number of objects
    frames: list[tuple[Path, Path]]  # (ground truth, result) of the evaluated frames


def _shorten(names: list[str], keep: int = 3) -> str:
    return ", ".join(names[:keep]) + (f" and {len(names) - keep} more" if len(names) > keep else "")


def _plan(gt_root: Path, results_root: Path, names: list[str]) -> list[_SequencePlan]:
    """File pairs of every evaluated frame; all missing results are reported before any work."""
    plans, absent_sequences, absent_frames = [], [], []
    for name in names:
        gt_files = sorted((gt_root / name).glob("*.png"))
        if len(gt_files) < 3:
            raise ValueError(
                f"{gt_root / name}: {len(gt_files)} annotated frame(s); the semi-supervised "
                "protocol scores frames 2..T-1 and needs at least 3"
            )
        result_dir = results_root / name
        pairs = [(gt, result_dir / gt.name) for gt in gt_files[1:-1]]
        if not result_dir.is_dir():
            absent_sequences.append(name)
        else:
            absent = [result.name for _, result in pairs if not result.is_file()]
            if absent:
                absent_frames.append(f"{result_dir}: {_shorten(absent)}")
        plans.append(_SequencePlan(name, gt_files[0], pairs))
    problems = []
    if absent_sequences:
        problems.append(
            f"no result folder in {results_root} for {len(absent_sequences)} of {len(names)} "
            f"sequences ({_shorten(absent_sequences)}); to evaluate a subset, pass "
            "sequences=[...] (for DAVIS: the names in ImageSets/<year>/val.txt)"
        )
    if absent_frames:
        problems.append(
            "missing result frames (a PNG named like the ground truth is needed for every frame "
            "but the first and the last):\n    " + "\n    ".join(absent_frames)
        )
    if problems:
        raise FileNotFoundError("\n  ".join(["cannot evaluate:", *problems]))
    return plans


def _read_pair(gt_file: Path, result_file: Path) -> tuple[np.ndarray, np.ndarray]:
    return _read(gt_file, "ground-truth mask"), _read(result_file, "result mask")


def _prefetched(pool: ThreadPoolExecutor | None, jobs: Iterable[tuple], ahead: int) -> Iterator:
    """Results of ``job[0](*job[1:])`` in order, computed up to ``ahead`` jobs in advance."""
    if pool is None:
        for fn, *args in jobs:
            yield fn(*args)
        return
    jobs = iter(jobs)
    pending = deque(pool.submit(*job) for job in islice(jobs, ahead))
    try:
        while pending:
            future = pending.popleft()
            job = next(jobs, None)
            if job is not None:
                pending.append(pool.submit(*job))
            yield future.result()
    finally:
        for future in pending:
            future.cancel()


def score_results_folder(
    gt_root: str | Path,
    results_root: str | Path,
    sequences: Iterable[str] | None = None,
    progress: bool = False,
    read_threads: int = 2,
) -> DavisEvaluation:
    """Evaluate result masks against DAVIS ground truth, semi-supervised protocol.

    ``gt_root``: ``<gt_root>/<seq>/<frame>.png`` (e.g. ``DAVIS/Annotations/480p``; DAVIS 2017
    palette PNGs and DAVIS 2016 0/255 PNGs are both read). ``results_root``: the same layout,
    one label-map PNG per evaluated frame, at ground-truth size. ``sequences``: names to evaluate
    (default: every sequence folder of ``gt_root``). ``read_threads``: PNGs are decoded in that
    many background threads while the main thread scores (0: read in the main thread).

    Returns a :class:`DavisEvaluation`; its ``timing`` holds ``total_s``, ``score_s`` (main
    thread scoring) and ``read_wait_s`` (main thread waiting for PNGs).
    """
    total_start = time.perf_counter()
    gt_root, results_root = Path(gt_root), Path(results_root)
    names = _list_sequences(gt_root, sequences)
    if not results_root.is_dir():
        raise FileNotFoundError(f"results folder not found: {results_root}")
    plans = _plan(gt_root, results_root, names)
    jobs = []
    for plan in plans:
        jobs.append((_read, plan.first, "ground-truth mask"))
        jobs.extend((_read_pair, gt, result) for gt, result in plan.frames)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(plan.frames) for plan in plans), desc="J&F", unit="frame")
    objects: list[ObjectScores] = []
    score_s = wait_s = 0.0
    pool = (
        ThreadPoolExecutor(read_threads, thread_name_prefix="read_mask")
        if read_threads > 0
        else None
    )
    try:
        stream = _prefetched(pool, jobs, ahead=4 * max(read_threads, 1))
        for plan in plans:
            start = time.perf_counter()
            num_objects = _num_objects(next(stream))
            wait_s += time.perf_counter() - start
            j = np.zeros((num_objects, len(plan.frames)))
            f = np.zeros_like(j)
            for t, (_, result_file) in enumerate(plan.frames):
                start = time.perf_counter()
                gt, pred = next(stream)
                middle = time.perf_counter()
                if pred.shape != gt.shape:
                    raise ValueError(
                        f"{result_file}: result is {pred.shape[1]}x{pred.shape[0]} (W x H) but the "
                        f"ground truth is {gt.shape[1]}x{gt.shape[0]}; save results at ground-truth size"
                    )
                _check_result_labels(pred, num_objects, str(result_file))
                j[:, t], f[:, t] = frame_scores(gt, pred, num_objects)
                wait_s += middle - start
                score_s += time.perf_counter() - middle
                if bar is not None:
                    bar.update()
            frames = tuple(gt.stem for gt, _ in plan.frames)
            objects.extend(
                ObjectScores(plan.name, k + 1, frames, j[k], f[k]) for k in range(num_objects)
            )
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    timing = {
        "total_s": time.perf_counter() - total_start,
        "score_s": score_s,
        "read_wait_s": wait_s,
    }
    return DavisEvaluation(objects=objects, sequences=names, timing=timing)
