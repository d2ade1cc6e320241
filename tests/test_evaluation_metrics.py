"""DAVIS metrics: hand-derived cases, a literal oracle, and numbers from the official toolkit.

``tests/data/davis_official_scores.json`` holds values produced by running the official
davis2017-evaluation code (see its ``provenance`` field); ``davis_oracle.py`` is a slow,
literal re-implementation of that code written for these tests.
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import davis_oracle as oracle
import numpy as np
import pytest
from PIL import Image

from aot_edu.data import read_mask, write_mask
from aot_edu.evaluation import metrics
from conftest import require_shared

OFFICIAL = json.loads((Path(__file__).parent / "data" / "davis_official_scores.json").read_text())
EXACT = 1e-9  # the brief asks for 1e-6; the integer counts make the numbers bit-identical


def square(shape, rows, cols):
    mask = np.zeros(shape, dtype=bool)
    mask[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True
    return mask


# ------------------------------------------------------------------------------------------
# Hand-derived cases
# ------------------------------------------------------------------------------------------


def test_square_against_shifted_square():
    # 5x5 squares, the prediction shifted 2 columns right: overlap 5x3.
    gt = square((20, 20), (5, 9), (5, 9))
    pred = square((20, 20), (5, 9), (7, 11))
    assert metrics.jaccard(gt, pred) == pytest.approx(15 / 35, abs=1e-15)
    # The boundary of a k x k square at rows/cols a..a+k-1 is the ring of the (k+1) x (k+1)
    # square at a-1..a+k-1 (edges are drawn on the pixel above / left of them): 20 pixels.
    ring = square((20, 20), (4, 9), (4, 9)) & ~square((20, 20), (5, 8), (5, 8))
    assert np.array_equal(metrics.boundary_map(gt), ring)
    # Tolerance 1 pixel (a plus-shaped disk): of the predicted ring (rows 4..9, cols 6..11)
    # rows 4 and 9 match at cols 6..10 (5 + 5), the left column only next to rows 4 and 9
    # (2), the right column not at all: 12 of 20. The gt ring is the mirror image: 12 of 20.
    assert metrics.boundary_f_measure(gt, pred, bound_th=1) == pytest.approx(0.6, abs=1e-15)
    # Tolerance 2: every pixel of each ring is within 2 of the other ring.
    assert metrics.boundary_f_measure(gt, pred, bound_th=2) == 1.0
    # Tolerance 0: only shared pixels, rows 4 and 9 at cols 6..9: 8 of 20 each way.
    assert metrics.boundary_f_measure(gt, pred, bound_th=0) == pytest.approx(0.4, abs=1e-15)


def test_single_pixels_two_apart():
    gt = np.zeros((12, 12), dtype=bool)
    pred = np.zeros((12, 12), dtype=bool)
    gt[5, 5], pred[5, 7] = True, True
    assert metrics.jaccard(gt, pred) == 0.0
    # Rings {4,5} x {4,5} and {4,5} x {6,7}: column 6 touches column 5, column 7 does not.
    assert metrics.boundary_f_measure(gt, pred, bound_th=1) == 0.5


def test_void_pixels_are_left_out():
    gt = square((20, 20), (5, 9), (5, 9))
    pred = square((20, 20), (5, 9), (7, 11))
    void = np.zeros((20, 20), dtype=bool)
    void[:, 10:12] = True  # the prediction's part outside the ground truth
    assert metrics.jaccard(gt, pred, void) == pytest.approx(15 / 25, abs=1e-15)
    # Prediction becomes cols 7..9: ring rows 4..9 x cols 6..9 (16 px), 14 within 1 of the gt
    # ring (all but (6,6), (7,6)); gt ring: 14 of 20 within 1 (not (4,4), (9,4), (5..8,4)).
    precision, recall = 14 / 16, 14 / 20
    expected = 2 * precision * recall / (precision + recall)
    assert metrics.boundary_f_measure(gt, pred, void, bound_th=1) == pytest.approx(
        expected, abs=1e-15
    )


def test_empty_masks():
    empty = np.zeros((30, 40), dtype=bool)
    blob = square((30, 40), (10, 20), (10, 25))
    assert (metrics.jaccard(empty, empty), metrics.boundary_f_measure(empty, empty)) == (1.0, 1.0)
    # No predicted boundary: P = 1, R = 0; no ground-truth boundary: P = 0, R = 1; F = 0.
    assert (metrics.jaccard(blob, empty), metrics.boundary_f_measure(blob, empty)) == (0.0, 0.0)
    assert (metrics.jaccard(empty, blob), metrics.boundary_f_measure(empty, blob)) == (0.0, 0.0)


def test_frame_border_is_never_a_boundary():
    full = np.ones((3, 3), dtype=bool)
    assert not metrics.boundary_map(full).any()
    # So a frame-filling object against an empty prediction: J = 0 but F = 1 (no boundaries).
    assert metrics.jaccard(full, ~full) == 0.0
    assert metrics.boundary_f_measure(full, ~full) == 1.0
    left, right = np.zeros((4, 4), dtype=bool), np.zeros((4, 4), dtype=bool)
    left[:, 0], right[:, 3] = True, True
    # Only the inner edge is a boundary, drawn on the pixel left of it.
    assert np.array_equal(np.flatnonzero(metrics.boundary_map(left).any(axis=0)), [0])
    assert np.array_equal(np.flatnonzero(metrics.boundary_map(right).any(axis=0)), [2])
    assert metrics.boundary_map(left).sum() == metrics.boundary_map(right).sum() == 4


def test_boundary_radius():
    assert metrics.boundary_radius((480, 854)) == 8  # ceil(0.008 * 979.6)
    assert metrics.boundary_radius((1080, 1920)) == 18
    assert metrics.boundary_radius((20, 20)) == 1
    assert metrics.boundary_radius((480, 854), bound_th=3) == 3
    assert metrics.boundary_radius((480, 854), bound_th=0) == 0
    with pytest.raises(ValueError, match="whole number"):
        metrics.boundary_radius((480, 854), bound_th=2.5)


def test_statistics_on_designed_sequences():
    # 8 frames: bin edges round(linspace(1, 8, 5) + 1e-10) - 1 = 0, 2, 4, 5, 7.
    mean, recall, decay = metrics.statistics([1, 1, 1, 1, 0.2, 0.2, 0.2, 0.2])
    assert (mean, recall) == (pytest.approx(0.6), 0.5)
    assert decay == pytest.approx(1 - 0.2)
    # Bins share their edge frames: first bin frames 0..2, last 5..7 (np.array_split would
    # give 0..1 and 6..7, a decay of -0.6).
    assert metrics.statistics(np.arange(8) / 10)[2] == pytest.approx(0.1 - 0.6)
    assert metrics.statistics([0.5, 0.51])[1] == 0.5  # recall counts values strictly above 0.5
    mean, recall, decay = metrics.statistics([np.nan, 1.0, 0.0])
    assert mean == 0.5 and recall == pytest.approx(1 / 3)  # NaN left out of the mean, not recall
    assert decay == 1.0  # first bin [nan, 1] -> 1, last bin [0]


def test_statistics_match_official():
    for case in OFFICIAL["statistics"]["cases"]:
        ours = metrics.statistics(np.array(case["values"], dtype=float))
        assert np.allclose(ours, case["mean_recall_decay"], atol=EXACT, equal_nan=True), case["n"]
        assert np.allclose(ours, oracle.db_statistics(case["values"]), atol=EXACT, equal_nan=True)


# ------------------------------------------------------------------------------------------
# The fast implementation against the literal oracle and the official values
# ------------------------------------------------------------------------------------------


def test_fast_equals_literal_oracle_on_random_masks():
    for gt, pred, void, bound_th in oracle.random_cases(seed=1, count=800):
        keep = True if void is None else ~void
        assert np.array_equal(metrics.boundary_map(gt & keep), oracle.seg2bmap(gt & keep))
        assert abs(metrics.jaccard(gt, pred, void) - oracle.iou(gt, pred, void)) <= EXACT
        fast = metrics.boundary_f_measure(gt, pred, void, bound_th)
        assert abs(fast - oracle.f_measure(gt, pred, void, bound_th)) <= EXACT, (gt.shape, bound_th)
        exact = metrics.boundary_f_measure(gt, pred, bound_th=0)  # radius 0: same pixels only
        assert abs(exact - oracle.f_measure(gt, pred, bound_th=0)) <= EXACT


def test_fast_equals_official_on_random_masks():
    cases = oracle.random_cases(seed=0, count=len(OFFICIAL["random_cases"]["j_f"]))
    for (gt, pred, void, bound_th), (j, f) in zip(
        cases, OFFICIAL["random_cases"]["j_f"], strict=True
    ):
        assert abs(metrics.jaccard(gt, pred, void) - j) <= EXACT
        assert abs(metrics.boundary_f_measure(gt, pred, void, bound_th) - f) <= EXACT


def test_frame_scores_of_label_maps_equal_oracle():
    rng = np.random.default_rng(3)
    for _ in range(40):
        shape = (int(rng.integers(20, 90)), int(rng.integers(20, 120)))
        gt = np.zeros(shape, dtype=np.uint8)
        pred = np.zeros(shape, dtype=np.uint8)
        for label in (1, 2, 3):
            gt[oracle.random_mask(rng, shape)] = label
            pred[oracle.random_mask(rng, shape)] = label
        gt[oracle.random_mask(rng, shape) & (rng.random(shape) < 0.3)] = 255
        j, f = metrics.frame_scores(gt, pred, 3)
        for k in range(3):
            assert abs(j[k] - oracle.iou(gt == k + 1, pred == k + 1)) <= EXACT
            assert abs(f[k] - oracle.f_measure(gt == k + 1, pred == k + 1)) <= EXACT


# ------------------------------------------------------------------------------------------
# The protocol on DAVIS-2017-like sequences, against the official toolkit
# ------------------------------------------------------------------------------------------


def write_sequences(root: Path, sequences: dict, which: int) -> Path:
    for name, maps in sequences.items():
        for t, labels in enumerate(maps[which]):
            write_mask(root / name / f"{t:05d}.png", labels)
    return root


def check_against_official(evaluation: metrics.DavisEvaluation, expected: dict) -> None:
    for key, value in expected["global"].items():
        assert abs(evaluation[key] - value) <= EXACT, key
    per_object = evaluation.per_object
    assert list(per_object) == list(expected["per_object_j_f_mean"])
    for name, (j_mean, f_mean) in expected["per_object_j_f_mean"].items():
        assert abs(per_object[name]["J-Mean"] - j_mean) <= EXACT, name
        assert abs(per_object[name]["F-Mean"] - f_mean) <= EXACT, name


def test_synthetic_davis2017_matches_official(tmp_path):
    """Several objects, void, fewer result objects, a late label > N, an object leaving."""
    sequences = oracle.synthetic_davis(seed=0)
    gt_root = write_sequences(tmp_path / "gt", sequences, 0)
    results = write_sequences(tmp_path / "results", sequences, 1)
    expected = OFFICIAL["synthetic_davis2017"]
    evaluation = metrics.score_results_folder(gt_root, results, sequences=list(sequences), progress=True)
    check_against_official(evaluation, expected)
    # The same through the in-memory path, and per frame against the oracle.
    scores = {name: metrics.score_sequence(gt, pred) for name, (gt, pred) in sequences.items()}
    check_against_official(metrics.DavisEvaluation.from_scores(scores), expected)
    for name, (gt, pred) in sequences.items():
        j, f = oracle.sequence_scores(gt, pred)
        assert np.abs(scores[name][0] - j).max(initial=0) <= EXACT
        assert np.abs(scores[name][1] - f).max(initial=0) <= EXACT


def test_protocol_conventions(tmp_path):
    shape = (40, 60)
    blob = square(shape, (10, 25), (10, 35)).astype(np.uint8)
    first = blob * 1
    first[0:5, 0:5] = 2  # two objects
    gts = [first, blob * 1, blob * 1, first]
    gts[1][0:5, 0:5] = 255  # void where object 2 was: background for the semi-supervised task
    preds = [np.full(shape, 7, np.uint8), blob * 1, blob * 1, np.full(shape, 9, np.uint8)]
    preds[1][0:5, 0:5] = 1  # prediction on the void region counts as a false positive
    j, f = metrics.score_sequence(gts, preds)
    assert j.shape == (2, 2)  # N from the first frame, first and last frame not scored
    assert j[0, 0] == pytest.approx(416 / (416 + 25)) and j[0, 1] == 1.0  # blob: 16 x 26 px
    assert j[1].tolist() == [1.0, 1.0] and f[1].tolist() == [1.0, 1.0]  # absent in gt and result
    with pytest.raises(ValueError, match="label 3 in the result"):
        metrics.score_sequence(gts, [preds[0], blob * 3, blob, preds[3]])
    with pytest.raises(ValueError, match="label 255"):
        metrics.score_sequence(gts, [preds[0], blob * 255, blob, preds[3]])
    # A later ground-truth label above N is no object; an object the result never uses
    # (fewer result objects) scores as an empty prediction.
    late = first.copy()
    late[30:, 50:] = 5
    j, f = metrics.score_sequence([first, late, late], [first, blob, blob])
    assert j[:, 0].tolist() == [1.0, 0.0]


def test_evaluate_davis_errors(tmp_path):
    gt_root, results = tmp_path / "gt", tmp_path / "results"
    frames = [square((30, 40), (5, 15), (5, 20 + t)).astype(np.uint8) for t in range(5)]
    for t, labels in enumerate(frames):
        write_mask(gt_root / "seq" / f"{t:05d}.png", labels)
    results.mkdir()
    with pytest.raises(
        FileNotFoundError, match=r"no result folder .* for 1 of 1 sequences \(seq\)"
    ):
        metrics.score_results_folder(gt_root, results)
    (results / "seq").mkdir()
    with pytest.raises(FileNotFoundError, match="00001.png, 00002.png, 00003.png"):
        metrics.score_results_folder(gt_root, results)
    for t in (1, 2, 3):  # first and last frames are not needed
        write_mask(results / "seq" / f"{t:05d}.png", frames[t])
    assert metrics.score_results_folder(gt_root, results)["J&F-Mean"] == 1.0
    write_mask(results / "seq" / "00000.png", np.full((30, 40), 9, np.uint8))  # ignored
    assert metrics.score_results_folder(gt_root, results, read_threads=0)["J-Mean"] == 1.0
    write_mask(results / "seq" / "00002.png", np.zeros((30, 41), np.uint8))
    with pytest.raises(ValueError, match="result is 41x30 .* ground truth is 40x30"):
        metrics.score_results_folder(gt_root, results)
    (results / "seq" / "00002.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read result mask"):
        metrics.score_results_folder(gt_root, results)
    with pytest.raises(FileNotFoundError, match="no ground truth for sequence"):
        metrics.score_results_folder(gt_root, results, sequences=["nope"])
    with pytest.raises(FileNotFoundError, match="one sub-folder per sequence"):
        metrics.score_results_folder(tmp_path, results)
    for t in (2, 3, 4):
        (gt_root / "seq" / f"{t:05d}.png").unlink()
    with pytest.raises(ValueError, match="needs at least 3"):
        metrics.score_results_folder(gt_root, results)


def test_write_tables(tmp_path):
    sequences = oracle.synthetic_davis(seed=0)
    scores = {name: metrics.score_sequence(gt, pred) for name, (gt, pred) in sequences.items()}
    evaluation = metrics.DavisEvaluation.from_scores(scores)
    paths = metrics.write_tables(evaluation, tmp_path / "tables")
    rows = list(csv.reader(paths["global"].open()))
    assert rows[0] == list(metrics.GLOBAL_KEYS)
    assert [float(v) for v in rows[1]] == [round(evaluation[k], 3) for k in metrics.GLOBAL_KEYS]
    rows = list(csv.reader(paths["per_sequence"].open()))
    assert rows[0] == ["Sequence", "J-Mean", "F-Mean"]
    assert (
        [row[0] for row in rows[1:]]
        == list(evaluation.per_object)
        == [f"{name}_{k + 1}" for name, (j, _) in scores.items() for k in range(len(j))]
    )
    markdown = paths["markdown"].read_text()
    assert f"| {100 * evaluation['J&F-Mean']:.1f} |" in markdown and "| void_2 |" in markdown
    # Per-sequence means average that sequence's objects; the global mean averages all objects.
    per_sequence = evaluation.per_sequence
    assert per_sequence["two-objects"]["J-Mean"] == pytest.approx(
        np.mean([evaluation.per_object[f"two-objects_{k}"]["J-Mean"] for k in (1, 2)])
    )


# ------------------------------------------------------------------------------------------
# DAVIS 2016 validation (from ../shared): first-frame-copy baseline
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def davis2016():
    root = require_shared("datasets", "DAVIS2016", "Annotations", "480p")
    names = Path(root.parents[1], "ImageSets", "2016", "val.txt").read_text().split()
    with ThreadPoolExecutor(2) as pool:  # PIL decodes without the GIL
        return root, {
            name: list(pool.map(read_mask, sorted((root / name).glob("*.png")))) for name in names
        }


def test_davis2016_first_frame_copy_matches_official(davis2016):
    _, sequences = davis2016
    assert sum(len(maps) - 2 for maps in sequences.values()) == 1336
    scores = {
        name: metrics.score_sequence(maps, [maps[0]] * len(maps))
        for name, maps in sequences.items()
    }
    evaluation = metrics.DavisEvaluation.from_scores(scores)
    check_against_official(evaluation, OFFICIAL["davis2016_first_frame_copy"])
    # The global table is the mean over the 20 objects, and J&F the mean of J and F.
    glob, rows = evaluation.global_metrics, list(evaluation.per_object.values())
    assert len(rows) == 20
    for key in metrics.GLOBAL_KEYS[1:]:
        assert glob[key] == pytest.approx(np.mean([row[key] for row in rows]), abs=1e-12)
    assert glob["J&F-Mean"] == pytest.approx((glob["J-Mean"] + glob["F-Mean"]) / 2, abs=1e-12)
    assert 0.25 < glob["J&F-Mean"] < 0.26  # 25.5: a first-frame copy is a weak baseline


def test_davis2016_fast_equals_oracle_on_sampled_frames(davis2016):
    _, sequences = davis2016
    for maps in sequences.values():
        for t in (1, len(maps) // 2, len(maps) - 2):
            gt, pred = maps[t] == 1, maps[0] == 1
            j, f = metrics.frame_scores(maps[t], maps[0], 1)
            assert abs(j[0] - oracle.iou(gt, pred)) <= EXACT
            assert abs(f[0] - oracle.f_measure(gt, pred)) <= EXACT


def test_evaluate_davis_on_davis2016_layout(davis2016, tmp_path):
    """0/255 grayscale ground truth read from disk, palette results written by write_mask."""
    root, sequences = davis2016
    names = ["car-shadow", "motocross-jump"]
    for name in names:
        for path in sorted((root / name).glob("*.png")):
            write_mask(tmp_path / name / path.name, sequences[name][0])
        with Image.open(path) as image:
            assert image.mode == "L"
    evaluation = metrics.score_results_folder(root, tmp_path, sequences=names)
    expected = OFFICIAL["davis2016_first_frame_copy"]["per_object_j_f_mean"]
    for name in names:
        row = evaluation.per_object[f"{name}_1"]
        assert abs(row["J-Mean"] - expected[f"{name}_1"][0]) <= EXACT
        assert abs(row["F-Mean"] - expected[f"{name}_1"][1]) <= EXACT
    assert set(evaluation.timing) == {"total_s", "score_s", "read_wait_s"}
    assert evaluation.timing["total_s"] >= evaluation.timing["score_s"] > 0
