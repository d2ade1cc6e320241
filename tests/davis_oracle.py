"""A slow, literal reference for the DAVIS metrics, used only to check ``aot_edu.evaluation.metrics``.

It follows the official davis2017-evaluation algorithm step by step on whole frames (boundary
map by shifted copies, dilation of the whole frame by every offset of the disk, counting), with
plain numpy and none of the shortcuts of the fast module. Written independently of
``aot_edu/metrics.py`` so that the two can catch each other's mistakes. Also holds the random
mask generator shared by the tests and the benchmark.
"""

from __future__ import annotations

import warnings

import numpy as np


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """Boundary map as the toolkit's ``_seg2bmap`` computes it, on the whole frame."""
    seg = np.asarray(seg).astype(bool)
    right = np.zeros_like(seg)
    below = np.zeros_like(seg)
    diagonal = np.zeros_like(seg)
    right[:, :-1] = seg[:, 1:]
    below[:-1, :] = seg[1:, :]
    diagonal[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ right) | (seg ^ below) | (seg ^ diagonal)
    bmap[-1, :] = seg[-1, :] ^ right[-1, :]
    bmap[:, -1] = seg[:, -1] ^ below[:, -1]
    bmap[-1, -1] = False
    return bmap


def disk(radius: int) -> np.ndarray:
    """skimage.morphology.disk: the offsets with dy^2 + dx^2 <= radius^2."""
    span = np.arange(-radius, radius + 1)
    y, x = np.meshgrid(span, span, indexing="ij")
    return y * y + x * x <= radius * radius


def dilate(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Binary dilation as cv2.dilate with a centred kernel: nothing comes from outside the frame."""
    radius = kernel.shape[0] // 2
    height, width = image.shape
    padded = np.zeros((height + 2 * radius, width + 2 * radius), dtype=bool)
    padded[radius : radius + height, radius : radius + width] = image
    out = np.zeros_like(image, dtype=bool)
    for dy, dx in zip(*np.nonzero(kernel), strict=True):
        out |= padded[dy : dy + height, dx : dx + width]
    return out


def radius_of(shape: tuple[int, int], bound_th: float) -> int:
    return int(bound_th) if bound_th >= 1 else int(np.ceil(bound_th * np.linalg.norm(shape)))


def iou(gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None) -> float:
    gt, pred = gt.astype(bool), pred.astype(bool)
    keep = np.ones_like(gt) if void is None else ~void.astype(bool)
    inter = np.sum(gt & pred & keep)
    union = np.sum((gt | pred) & keep)
    return 1.0 if union == 0 else inter / union


def f_measure(
    gt: np.ndarray, pred: np.ndarray, void: np.ndarray | None = None, bound_th: float = 0.008
) -> float:
    keep = np.ones(gt.shape, dtype=bool) if void is None else ~void.astype(bool)
    gt_b = seg2bmap(gt.astype(bool) & keep)
    pred_b = seg2bmap(pred.astype(bool) & keep)
    kernel = disk(radius_of(gt.shape, bound_th))
    gt_dil, pred_dil = dilate(gt_b, kernel), dilate(pred_b, kernel)
    n_pred, n_gt = int(pred_b.sum()), int(gt_b.sum())
    if n_pred == 0 and n_gt > 0:
        precision, recall = 1.0, 0.0
    elif n_pred > 0 and n_gt == 0:
        precision, recall = 0.0, 1.0
    elif n_pred == 0 and n_gt == 0:
        precision, recall = 1.0, 1.0
    else:
        precision = np.sum(pred_b & gt_dil) / float(n_pred)
        recall = np.sum(gt_b & pred_dil) / float(n_gt)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def db_statistics(values: np.ndarray) -> tuple[float, float, float]:
    """Mean, recall, decay as the toolkit's ``utils.db_statistics`` (uint8 bin edges included)."""
    values = np.asarray(values, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)  # all-NaN bins, as the toolkit
        mean = np.nanmean(values)
        recall = np.nanmean(values > 0.5)
        edges = (np.round(np.linspace(1, len(values), 5) + 1e-10) - 1).astype(np.uint8)
        bins = [values[edges[i] : edges[i + 1] + 1] for i in range(4)]
        return float(mean), float(recall), float(np.nanmean(bins[0]) - np.nanmean(bins[3]))


def sequence_scores(
    gt_labels: list[np.ndarray], pred_labels: list[np.ndarray], bound_th: float = 0.008
):
    """Per-object, per-frame J and F ``[N, T - 2]`` of one sequence, the toolkit's way."""
    first = gt_labels[0].copy()
    first[first == 255] = 0
    n_objects = int(first.max())
    j = np.zeros((n_objects, len(gt_labels) - 2))
    f = np.zeros_like(j)
    for t in range(1, len(gt_labels) - 1):
        gt = np.where(gt_labels[t] == 255, 0, gt_labels[t])
        for k in range(n_objects):
            j[k, t - 1] = iou(gt == k + 1, pred_labels[t] == k + 1)
            f[k, t - 1] = f_measure(gt == k + 1, pred_labels[t] == k + 1, bound_th=bound_th)
    return j, f


# ------------------------------------------------------------------------------------------
# Random masks: blobs, thin lines, single pixels, masks on the frame border, empty masks.
# ------------------------------------------------------------------------------------------


def random_mask(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    height, width = shape
    kind = rng.integers(0, 7)
    mask = np.zeros(shape, dtype=bool)
    if kind == 0:  # empty
        return mask
    if kind == 1:  # a few pixels
        count = int(rng.integers(1, 4))
        mask[rng.integers(0, height, count), rng.integers(0, width, count)] = True
        return mask
    if kind == 2:  # thin lines, often along the frame border
        for _ in range(int(rng.integers(1, 4))):
            if rng.random() < 0.5:
                row = int(rng.choice([0, height - 1, rng.integers(0, height)]))
                x0, x1 = sorted(rng.integers(0, width, 2))
                mask[row, x0 : x1 + 1] = True
            else:
                col = int(rng.choice([0, width - 1, rng.integers(0, width)]))
                y0, y1 = sorted(rng.integers(0, height, 2))
                mask[y0 : y1 + 1, col] = True
        return mask
    if kind == 3:  # full frame or nearly
        mask[:] = True
        if rng.random() < 0.5:
            mask[rng.integers(0, height), :] = False
        return mask
    # blobs: unions of ellipses and rectangles, some crossing the border; noise on top
    y, x = np.mgrid[0:height, 0:width]
    for _ in range(int(rng.integers(1, 5))):
        cy, cx = rng.uniform(-0.2, 1.2) * height, rng.uniform(-0.2, 1.2) * width
        ry, rx = rng.uniform(0.5, 0.5 * height + 1), rng.uniform(0.5, 0.5 * width + 1)
        if rng.random() < 0.5:
            mask |= ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1
        else:
            mask |= (np.abs(y - cy) <= ry) & (np.abs(x - cx) <= rx)
    if kind == 6:
        mask ^= rng.random(shape) < 0.05
    return mask


def random_pair(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A ground truth and a prediction: unrelated, or the ground truth moved and perturbed."""
    gt = random_mask(rng, shape)
    if rng.random() < 0.4:
        return gt, random_mask(rng, shape)
    dy, dx = rng.integers(-4, 5, 2)
    pred = np.roll(gt, (int(dy), int(dx)), axis=(0, 1))
    if rng.random() < 0.5:
        pred ^= rng.random(shape) < 0.02
    return gt, pred


def random_cases(seed: int = 0, count: int = 300):
    """``count`` cases ``(gt, pred, void, bound_th)`` of odd and even sizes and tolerances."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        shape = (int(rng.integers(1, 48)), int(rng.integers(1, 64)))
        gt, pred = random_pair(rng, shape)
        void = random_mask(rng, shape) if rng.random() < 0.2 else None
        bound_th = float(rng.choice([0.008, 0.02, 0.05, 1.0, 2.0, 3.0, 5.0]))
        cases.append((gt, pred, void, bound_th))
    return cases


def synthetic_davis(seed: int = 0) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """Small DAVIS-2017-like sequences ``{name: (gt label maps, result label maps)}``.

    They exercise the protocol's corner cases: several objects, an object that leaves the frame,
    void (255) in the ground truth, a later ground-truth label above the first frame's count,
    results that never use the last object, and odd frame sizes (tolerances 1 to 4 pixels).
    """
    rng = np.random.default_rng(seed)
    sequences = {}
    specs = [
        ("two-objects", (120, 200), 2, 9, {}),
        ("fewer-in-results", (97, 131), 3, 7, {"drop_last_object": True}),
        ("void", (150, 260), 2, 8, {"void": True}),
        ("late-label", (61, 93), 2, 6, {"late_label": True}),
        ("leaves-frame", (240, 427), 1, 10, {"leaves": True}),
    ]
    for name, shape, n_objects, n_frames, options in specs:
        height, width = shape
        y, x = np.mgrid[0:height, 0:width]
        centres = rng.uniform(0.2, 0.8, (n_objects, 2)) * shape
        radii = rng.uniform(0.08, 0.25, (n_objects, 2)) * shape
        velocity = rng.uniform(-0.04, 0.04, (n_objects, 2)) * shape
        if options.get("leaves"):
            velocity[0] = (0.0, 0.15 * width)
        gts, results = [], []
        for t in range(n_frames):
            gt = np.zeros(shape, dtype=np.uint8)
            pred = np.zeros(shape, dtype=np.uint8)
            for k in range(n_objects):
                cy, cx = centres[k] + t * velocity[k]
                gt[((y - cy) / radii[k, 0]) ** 2 + ((x - cx) / radii[k, 1]) ** 2 <= 1] = k + 1
                if options.get("drop_last_object") and k == n_objects - 1:
                    continue
                jitter = rng.normal(0, 0.05, 2) * radii[k] + rng.normal(0, 1.5, 2)
                scale = rng.uniform(0.85, 1.15, 2) * radii[k]
                inside = ((y - cy - jitter[0]) / scale[0]) ** 2 + (
                    (x - cx - jitter[1]) / scale[1]
                ) ** 2 <= 1
                pred[inside] = k + 1
            if options.get("void"):
                edge = (np.abs(gt.astype(int) - np.roll(gt, 2, axis=1)) > 0) & (gt == 0)
                gt[edge] = 255
                gt[: height // 8, : width // 5] = 255
            if options.get("late_label") and t >= 2:
                gt[-10:, -10:] = n_objects + 2
                pred[-6:, -6:] = 1
            used = n_objects - 1 if options.get("drop_last_object") else n_objects
            pred[rng.random(shape) < 0.002] = rng.integers(1, used + 1)
            gts.append(gt)
            results.append(pred)
        sequences[name] = (gts, results)
    return sequences
