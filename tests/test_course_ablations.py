"""The Table 3 ablations: every row is a valid configuration change, runs are recorded and
resumed, the table compares each row with its reference and its seeds' spread."""

from __future__ import annotations

import numpy as np
import pytest

from aot_edu.course import ablations as A
from aot_edu.training.config import model_config_of


@pytest.mark.parametrize("run", list(A.RUNS))
def test_every_run_is_the_base_configuration_with_its_changes(run):
    config = A.run_config(run, seed=1, root="runs/x")
    base = A.run_config("base", seed=1, root="runs/x")
    arch, ref = model_config_of(config), model_config_of(base)
    assert config.seed == 1 and config.run.output_dir == f"runs/x/{run}_s1"
    assert config.optim == base.optim and config.eval == base.eval  # same budget, same videos
    expected = {"m3": ("max_obj_num", 3), "m5": ("max_obj_num", 5), "m15": ("max_obj_num", 15),
                "m20": ("max_obj_num", 20), "m30": ("max_obj_num", 30), "w11": ("max_dis", 5),
                "w7": ("max_dis", 3), "no_short": ("short_term_frames", 0),
                "n2": ("short_term_frames", 2), "l1": ("lstt_layers", 1), "l2": ("lstt_layers", 2),
                "no_sine": ("sine_embedding", False), "no_rel": ("relative_embedding", False)}
    changed = {f for f in ("max_obj_num", "max_dis", "short_term_frames", "lstt_layers",
                           "sine_embedding", "relative_embedding") if getattr(arch, f) != getattr(ref, f)}
    if run in expected:
        field, value = expected[run]
        assert getattr(arch, field) == value and changed == {field}
    else:
        assert not changed
    # the M rows all learn a fresh bank (M = 10 too): they compare banks under one budget
    assert ("identity_bank" in config.model.reinit) == run.startswith("m")


def test_every_table_has_one_reference_and_runs_exist():
    for table in A.TABLES:
        rows = [r for r in A.ROWS if r.table == table]
        assert sum(r.reference for r in rows) == 1, table
    assert {r.run for r in A.ROWS} <= set(A.RUNS)
    assert set(A.BANK_RUNS) <= set(A.RUNS)


def test_table_rows_call_a_difference_within_the_spread_so():
    results = [{"run": "base", "seed": 0, "J&F": 0.80}, {"run": "base", "seed": 1, "J&F": 0.78},
               {"run": "w7", "seed": 0, "J&F": 0.70}, {"run": "w7", "seed": 1, "J&F": 0.72},
               {"run": "w11", "seed": 0, "J&F": 0.785}, {"run": "w11", "seed": 1, "J&F": 0.80}]
    rows = {r["run"]: r for r in A.table_rows(results) if r["table"] == "3b"}
    assert rows["w7"]["delta"] == pytest.approx(-0.08)
    assert rows["w7"]["beyond_spread"] is True
    assert rows["w11"]["delta"] == pytest.approx(0.0025)
    assert rows["w11"]["beyond_spread"] is False  # 0.0025 < spread 0.02: not a difference
    assert rows["no_short"]["ours"] is None and rows["no_short"]["delta"] is None  # not run
    assert rows["w7"]["paper_delta"] == pytest.approx(78.3 - 80.3)
    one_seed = {r["run"]: r for r in A.table_rows(results[:1] + results[2:3]) if r["table"] == "3b"}
    assert one_seed["w7"]["delta"] == pytest.approx(-0.10)
    assert one_seed["w7"]["beyond_spread"] is None  # one seed each: no spread to compare with


def test_bank_distance_is_zero_for_an_equidistant_bank():
    m = 5
    simplex = np.eye(m) - 1.0 / m  # centred one-hot vectors: a regular simplex
    v = simplex / np.linalg.norm(simplex, axis=1, keepdims=True)
    d = A.bank_distance(v @ v.T)
    assert d["equidistant"] == pytest.approx(-0.25)
    assert d["mean"] == pytest.approx(-0.25) and d["rms_gap"] == pytest.approx(0.0, abs=1e-9)
    near = v @ v.T
    near[0, 1] = near[1, 0] = 0.9
    assert A.bank_distance(near)["max"] == pytest.approx(0.9)
    assert A.bank_distance(near)["rms_gap"] > 0.3


def test_runs_are_recorded_and_not_repeated(tmp_path):
    """Two tiny runs (2 steps, 33x33) from the shipped model: scores, banks and curves land
    in the results folder; running again trains nothing."""
    base = A.run_config("base", 0).to_dict()
    base["data"].update(size=33, seq_len=3, num_videos=16)
    base["optim"].update(steps=2, batch_size=2)
    base["eval"].update(num_videos=2, num_frames=4)
    base["run"].update(progress=False)
    out = tmp_path / "results"
    rows = A.run_ablations(["base", "m5"], seeds=[0], root=tmp_path / "runs", base=base,
                           out_dir=out, progress=False)
    assert [(r["run"], r["seed"]) for r in rows] == [("base", 0), ("m5", 0)]
    results = A.read_results(out / "results.csv")
    assert {(r["run"], r["steps"]) for r in results} == {("base", 2), ("m5", 2)}
    assert all(0.0 <= r["J&F"] <= 1.0 for r in results)
    banks = A.read_banks(out / "banks.npz")
    assert banks["base_s0"].shape == (10, 10) and banks["m5_s0"].shape == (5, 5)
    np.testing.assert_allclose(np.diag(banks["m5_s0"]), 1.0, atol=1e-5)
    assert (out / "curves.csv").read_text().startswith("run,seed,step,loss")
    assert A.run_ablations(["base", "m5"], seeds=[0], root=tmp_path / "runs", base=base,
                           out_dir=out, progress=False) == []
