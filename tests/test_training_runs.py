"""Training runs: configs, the clip stream, atomic checkpoints, exact resume, DDP, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import aot_edu
from aot_edu.cli import main as cli_main
from aot_edu.training import (
    ConfigError,
    TrainConfig,
    load_config,
    retire_outdated_run,
    run_differences,
    train,
)
from aot_edu.training.clips import ClipStream
from aot_edu.training.runs import atomic_save, load_checkpoint, rng_state, set_rng_state

ROOT = Path(__file__).resolve().parents[1]

# A run small enough for a test: AOT-T on 33x33 synthetic clips of 3 frames, batch 2.
TINY = """
name = "tiny"
seed = 0
[model]
variant = "aott"
droppath = 0.1
[data]
size = 33
seq_len = 3
num_videos = 40
num_objects = [1, 2]
[optim]
steps = {steps}
batch_size = 2
accumulation_steps = {accumulation}
[eval]
num_videos = {eval_videos}
num_frames = 4
num_objects = [1, 2]
[run]
output_dir = "{out}"
checkpoint_every = {every}
threads = 1
progress = false
"""


def tiny_config(tmp_path: Path, name: str = "run", steps: int = 4, every: int = 2,
                accumulation: int = 1, eval_videos: int = 0) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(TINY.format(steps=steps, every=every, accumulation=accumulation,
                                eval_videos=eval_videos, out=(tmp_path / name).as_posix()))
    return path


def _run(command: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a command in its own process group; on timeout kill the whole group (torchrun's
    workers included), so that a hung test leaves nothing running."""
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    return subprocess.CompletedProcess(command, process.returncode, out, err)


def _env() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


# --- configuration -----------------------------------------------------------------------------


def test_repository_configs_load(tmp_path):
    """Every committed configuration is valid; without check_paths its data folders and initial
    weights need not exist yet (course.toml starts from course_pre.toml's run)."""
    paths = sorted((ROOT / "configs").glob("*.toml"))
    assert {"course_pre.toml", "course.toml", "course_long.toml", "course_fine.toml", "quick_cpu.toml",
            "static_colab.toml"} <= {p.name for p in paths}
    for path in paths:
        config = load_config(path, check_paths=False)
        assert isinstance(config, TrainConfig) and config.name
    missing = (tmp_path / "runs" / "course_pre" / "model_ema.pt").as_posix()
    with pytest.raises(ConfigError, match="model.init_weights: file .*model_ema.pt not found"):
        load_config(ROOT / "configs" / "course.toml", {"model.init_weights": missing})


def test_real_data_configs_name_the_missing_folder(tmp_path):
    davis = sorted((ROOT / "configs").glob("*davis*.toml"))
    assert davis, "the Colab DAVIS config is missing"
    with pytest.raises(ConfigError, match="davis2017 folder .* does not exist.*download dataset"):
        load_config(davis[0], {"data.root": str(tmp_path / "nowhere"), "model.init_weights": ""})
    with pytest.raises(ConfigError, match="download checkpoint aott --stage PRE"):
        load_config(davis[0], {"model.init_weights": str(tmp_path / "AOTT_PRE.pth")})
    with pytest.raises(ConfigError, match=r"`aot-edu download dataset youtubevos2019 --part "
                                          r"train`"):  # a command that exists
        load_config(tiny_config(tmp_path), {"data.dataset": "youtubevos",
                                            "data.root": str(tmp_path / "nowhere")})


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"optim": {"stpes": 10}}, r"unknown key in \[optim\]: 'stpes' \(did you mean 'steps'\?\)"),
        ({"optimizer": {}}, r"unknown key 'optimizer' \(did you mean 'optim'\?\)"),
        ({"optim": {"steps": "ten"}}, "optim.steps must be an integer"),
        ({"optim": {"lr": True}}, "optim.lr must be a number"),
        ({"run": {"resume": 1}}, "run.resume must be true or false"),
        ({"model": {"variant": "aotx"}}, "unknown AOT variant 'aotx'"),
        ({"data": {"size": 96}}, r"data.size must be 16k \+ 1 \(e.g. 97\)"),
        ({"data": {"dataset": "davis"}}, r"did you mean 'davis2017'"),
        ({"data": {"num_objects": [3, 1]}}, "min <= max"),
        ({"data": {"num_objects": [1, 11]}}, "at most M = 10"),
        ({"optim": {"batch_size": 6, "accumulation_steps": 4}}, "divisible"),
        ({"optim": {"min_lr": 1e-3, "lr": 1e-4}}, "must not exceed"),
        ({"optim": {"top_k_percent": 0}}, r"\(0, 1\]"),
        ({"model": {"init_weights": "/nonexistent.pth"}}, "not found"),
        ({"model": {"init_encoder": "/nonexistent.pth"}}, "model.init_encoder: file .* not found"),
        ({"model": {"init_encoder": __file__, "init_weights": __file__}}, "exclusive"),
        ({"model": {"locality_prior": -1.0}}, r"model.locality_prior must be >= 0"),
        ({"model": {"batch_statistics": True, "train_encoder": False}},
         r"model.batch_statistics = true needs model.train_encoder = true"),
        ({"model": {"reinit": "decoder, encoder"}}, r"model.reinit: unknown part\(s\) 'encoder'"),
        ({"model": {"train_only": "lstt,heads"}}, r"model.train_only: unknown part\(s\) 'heads'"),
        ({"model": {"reinit": "decoder"}}, r"model.reinit re-initialises parts of model.init_weights"),
        ({"model": {"train_only": "encoder", "train_encoder": False}},
         r"model.train_only names the encoder but model.train_encoder = false"),
        ({"model": {"train_only": "decoder", "batch_statistics": True}},
         r"model.batch_statistics = true needs the encoder to learn"),
        ({"optim": {"identity_separation": -1.0}}, r"optim.identity_separation must be >= 0"),
        ({"optim": {"identity_margin": 1.0}}, r"optim.identity_margin must be in \[-1, 1\)"),
        ({"data": "big"}, r"\[data\] must be a table"),
        # the reviewer's cases: accepted and trained on, or failed late without the key
        ({"data": {"motion": -5.0}}, r"data.motion must be >= 0, got -5.0"),
        ({"data": {"noise": -1.0}}, r"data.noise must be >= 0, got -1.0"),
        ({"data": {"scale": 0.0}}, r"data.scale must be > 0, got 0.0"),
        ({"eval": {"motion": -1.0}}, r"eval.motion must be >= 0"),
        ({"eval": {"noise": float("nan")}}, r"eval.noise must be >= 0, got nan"),
        ({"eval": {"scale": -2.0}}, r"eval.scale must be > 0"),
        ({"optim": {"lr": float("inf")}}, r"optim.lr must be > 0, got inf"),
        ({"data": {"num_objects": [0, 2]}}, r"data.num_objects min must be >= 1"),
        ({"eval": {"num_objects": [0, 0]}}, r"eval.num_objects min must be >= 1"),
        ({"eval": {"num_objects": [3, 300]}}, r"eval.num_objects max must be <= 254"),
        ({"seed": -1}, r"seed must be >= 0"),
        ({"eval": {"seed": -3}}, r"eval.seed must be >= 0"),
        ({"data": {"max_gap": -1}}, r"data.max_gap must be >= 0"),
        ({"data": {"repeat": -1}}, r"data.repeat must be >= 0"),
        ({"data": {"merge_prob": 1.5}}, r"data.merge_prob must be <= 1"),
        # the Table 3 architecture options
        ({"model": {"window": 8}}, r"model.window is the side of the short-term window, an odd number"),
        ({"model": {"short_term_frames": -1}}, r"model.short_term_frames must be >= 0"),
        ({"model": {"short_term_frames": 0, "window": 7}}, r"short_term_frames = 0 removes short-term"),
        ({"model": {"relative_embedding": False, "locality_prior": 2.0}},
         r"model.locality_prior sets the short-term relative-position biases"),
        ({"model": {"init_adapt": True}}, r"model.init_adapt adapts model.init_weights"),
        ({"model": {"identities": 1}, "data": {"num_objects": [1, 2]}}, "at most M = 1 objects"),
    ],
)
def test_bad_configs_are_refused_before_training(changes, message):
    with pytest.raises(ConfigError, match=message):
        load_config(changes)


def test_held_out_videos_may_hold_more_objects_than_one_aot_trains_on():
    # eval.num_objects above M is not the data.num_objects error: inference splits the objects
    # into groups of M (the official evaluator's way), so held-out videos can test that.
    config = load_config({"eval": {"num_objects": [12, 12]}})
    assert config.eval.num_objects == (12, 12)
    with pytest.raises(ConfigError, match="data.num_objects max is 12"):
        load_config({"data": {"num_objects": [12, 12]}})


def test_overrides_and_defaults():
    config = load_config({}, ["optim.steps=12", "run.output_dir='x/y'", "data.num_objects=3",
                              "model.variant=aots"])
    assert config.optim.steps == 12 and config.run.output_dir == "x/y"
    assert config.data.num_objects == (3, 3) and config.model.variant == "aots"
    # the defaults are the official main-training recipe
    assert (config.optim.lr, config.optim.weight_decay, config.optim.batch_size) == (2e-4, 0.07, 16)
    assert (config.optim.top_k_percent, config.optim.ema_ratio, config.model.droppath) == (0.15, 0.1, 0.1)
    with pytest.raises(ConfigError, match="section.key=value"):
        load_config({}, ["steps"])
    assert config.replace(optim={"steps": 3}).optim.steps == 3
    with pytest.raises(ConfigError):
        config.replace(optim={"steps": 0})


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim\nsteps = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_history_plot_and_log_reading(tmp_path):
    from aot_edu.training import plot_history, read_log
    from aot_edu.training.logs import LOG_FIELDS

    rows = [{"step": s, "loss": 1.0 / s, "loss_ref": 0.5, "loss_frames": 0.5, "iou": 0.1 * s,
             "lr": 1e-4, "encoder_lr": 1e-5, "top_k": 1.0, "aux_weight": 1.0, "feedback": 0,
             "grad_norm": 1.0, "time": s} for s in range(1, 6)]
    import csv

    with open(tmp_path / "log.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "eval.csv").write_text("step,J&F,J,F,videos,objects\n5,0.5,0.4,0.6,2,5\n")
    log = read_log(tmp_path / "log.csv")
    assert [r["step"] for r in log] == [1, 2, 3, 4, 5] and log[1]["loss"] == 0.5
    figure = plot_history(tmp_path, title="t")
    assert len(figure.axes) == 3
    assert len(figure.axes[1].lines) == 2  # training IoU and held-out J&F
    assert read_log(tmp_path / "missing.csv") == []


# --- the clip stream -------------------------------------------------------------------------------


def test_clip_stream_splits_each_global_batch_and_resumes_exactly():
    def stream(rank, world, accumulation, start=0):
        return ClipStream(10, 4, accumulation, rank, world, seed=7, start_step=start, total_steps=6)

    single = list(stream(0, 1, 1))
    assert len(single) == 6 and all(len(b) == 4 for b in single)
    # every epoch (10 samples) is a permutation of the dataset
    flat = [item for batch in single for item in batch]
    assert sorted(i for e, i in flat if e == 0) == list(range(10))
    assert sorted(i for e, i in flat if e == 1) == list(range(10))
    assert [i for e, i in flat if e == 0] != [i for e, i in flat if e == 1]
    # 2 processes x 2 micro-batches of 1 cover each global batch in order: slot = micro * 2 + rank
    parts = {(r, m): b for r in (0, 1) for m, b in zip((0, 1) * 6, stream(r, 2, 2), strict=True)}
    rebuilt = [parts[(0, 0)] + parts[(1, 0)] + parts[(0, 1)] + parts[(1, 1)]]
    assert rebuilt[0] == single[5]  # (the dict kept the last step's micro-batches)
    # starting at step 3 gives exactly the tail of the uninterrupted stream
    assert list(stream(0, 1, 1, start=3)) == single[3:]
    with pytest.raises(ConfigError, match="divisible by processes x accumulation"):
        ClipStream(10, 4, 3, 0, 1, 0, 0, 5)


# --- checkpoint files ------------------------------------------------------------------------------


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "state.pt"
    atomic_save({"step": 1, "w": torch.ones(2)}, path)
    with pytest.raises(Exception):  # noqa: B017 - any pickling error
        atomic_save({"step": 2, "bad": lambda: None}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]  # no temporary file left


def test_rng_states_survive_a_weights_only_round_trip(tmp_path):
    import random

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    atomic_save({"rng": rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


# --- whole runs ------------------------------------------------------------------------------------


def test_a_run_writes_everything_and_its_weights_load_for_segmentation(tmp_path):
    result = train(tiny_config(tmp_path, steps=3, every=2, eval_videos=2))
    run = result.run_dir
    for name in ("checkpoint.pt", "model_ema.pt", "log.csv", "eval.csv", "curves.png",
                 "config.json", "summary.json"):
        assert (run / name).is_file(), name
    rows = result.history()
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in rows)
    state = load_checkpoint(result.checkpoint)
    assert state["step"] == 3 and set(state["rng"][0]) >= {"python", "numpy", "torch"}
    assert {"state_dict", "ema", "optimizer", "scaler", "data_position"} <= set(state)
    assert 0.0 <= result.metrics["J&F"] <= 1.0 and result.metrics["videos"] == 2
    # both files load strictly with the official key layout and segment a video
    from aot_edu.data import SyntheticVideos

    frames, labels = SyntheticVideos(1, 3, 33, num_objects=2, seed=99).video(0)
    for weights in (result.weights, result.checkpoint):
        model = aot_edu.build_model("aott", weights=weights)
        masks = aot_edu.segment(frames, labels[0], model).masks
        assert masks.shape == labels.shape
    ema = torch.load(result.weights, weights_only=True)["state_dict"]
    assert all(torch.equal(ema[k], state["ema"]["shadow"][k]) for k in ema)
    # a finished run answers from its summary without training again
    again = train(tiny_config(tmp_path, steps=3, every=2, eval_videos=2))
    assert again.metrics == result.metrics and again.resumed_from == 3
    assert [r["step"] for r in again.history()] == [1, 2, 3]


def test_a_run_refuses_to_overwrite_or_mix_configurations(tmp_path):
    config = tiny_config(tmp_path, steps=2, every=2)
    train(config)
    with pytest.raises(ConfigError, match="run.resume = false"):
        train(config, ["run.resume=false"])
    with pytest.raises(ConfigError, match=r"another configuration \(optim.lr"):
        train(config, ["optim.lr=1e-3"])
    # what differs is also available before training (the course model uses it)
    loaded = load_config(config)
    assert run_differences(loaded.run.output_dir, loaded) == []
    assert run_differences(loaded.run.output_dir, loaded.replace(optim={"lr": 1e-3})) == [
        f"optim.lr: {loaded.optim.lr!r} -> 0.001"]
    assert run_differences(tmp_path / "nothing-here", loaded) == []
    # a key the stored configuration predates counts with its default: no difference
    state = load_checkpoint(loaded.run.output_dir + "/checkpoint.pt")
    del state["config"]["model"]["locality_prior"]
    torch.save(state, loaded.run.output_dir + "/checkpoint.pt")
    assert run_differences(loaded.run.output_dir, loaded) == []
    # a run of another configuration is kept aside (renamed), not mixed in or deleted
    newer = loaded.replace(optim={"lr": 1e-3})
    assert retire_outdated_run(loaded.run.output_dir, loaded) is None
    kept = retire_outdated_run(loaded.run.output_dir, newer)
    assert kept.name.startswith("run-outdated-") and (kept / "checkpoint.pt").is_file()
    assert not Path(loaded.run.output_dir).exists()
    assert train(newer).step == 2


def test_a_damaged_checkpoint_gets_a_one_line_error_and_the_run_is_kept(tmp_path, capsys):
    config = tiny_config(tmp_path, steps=2, every=2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "log.csv").write_text("step,loss\n1,0.5\n")
    (run / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut short by a failed copy")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ConfigError, match=r"cannot read the training checkpoint .*damaged.*"
                                          r"Restore the file.*run.output_dir to a new folder"):
        train(config)
    assert cli_main(["train", "--config", str(config), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aot-edu: error: cannot read the training checkpoint")
    assert "Traceback" not in err and ".." not in err
    torch.save({"step": 1}, run / "checkpoint.pt")  # readable, but not a training checkpoint
    before["checkpoint.pt"] = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match="not an aot-edu training checkpoint"):
        train(config)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing lost


def test_a_folder_of_other_files_is_not_taken_for_a_run(tmp_path, capsys):
    config = tiny_config(tmp_path, steps=2, every=2)
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.csv").write_text("my own log\n")
    with pytest.raises(ConfigError, match=r"run.output_dir .* is not empty .*log.csv.* holds no "
                                          r"aot-edu run .*new or empty folder"):
        train(config)
    assert cli_main(["train", "--config", str(config), "--quiet"]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in run.iterdir()] == ["log.csv"]
    assert (run / "log.csv").read_text() == "my own log\n"
    with pytest.raises(ConfigError, match="is a file"):
        train(config, [f'run.output_dir="{(run / "log.csv").as_posix()}"'])


def test_sigkill_then_restart_continues_to_the_same_weights(tmp_path):
    """Kill a CLI run with SIGKILL after its first checkpoint; the restart resumes there and
    ends with exactly the weights of an uninterrupted run."""
    steps, every = 9, 3
    killed = tiny_config(tmp_path, "killed", steps=steps, every=every)
    command = [sys.executable, "-m", "aot_edu.cli", "train", "--config", str(killed), "--quiet"]
    process = subprocess.Popen(command, env=_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    checkpoint = tmp_path / "killed" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    saved = load_checkpoint(checkpoint)["step"]
    assert every <= saved < steps
    logged = len((tmp_path / "killed" / "log.csv").read_text().splitlines()) - 1
    assert logged >= saved  # the log may run ahead of the checkpoint; the restart trims it

    finished = _run(command)
    assert finished.returncode == 0, finished.stderr
    resumed = load_checkpoint(checkpoint)
    assert resumed["step"] == steps
    steps_logged = [int(line.split(",")[0])
                    for line in (tmp_path / "killed" / "log.csv").read_text().splitlines()[1:]]
    assert steps_logged == list(range(1, steps + 1))

    straight = train(tiny_config(tmp_path, "straight", steps=steps, every=every))
    reference = load_checkpoint(straight.checkpoint)
    for key, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    for key, value in reference["ema"]["shadow"].items():
        assert torch.equal(resumed["ema"]["shadow"][key], value), key


def test_two_gloo_processes_stay_in_sync_and_equal_accumulation(tmp_path):
    """torchrun, 2 CPU processes (gloo), 1 micro-batch each == 1 process, 2 accumulated."""
    config = tiny_config(tmp_path, "ddp", steps=3, every=3)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               "--standalone", "-m", "aot_edu.cli", "train", "--config", str(config),
               "--quiet", "--set", "model.droppath=0.0"]
    done = _run(command)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2
    assert len(summary["fingerprints"]) == 2 and len(set(summary["fingerprints"])) == 1

    single = train(tiny_config(tmp_path, "acc", steps=3, every=3, accumulation=2),
                   ["model.droppath=0.0"])
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")["state_dict"]
    acc = load_checkpoint(single.checkpoint)["state_dict"]
    for key in acc:
        assert torch.allclose(ddp[key], acc[key], atol=1e-5, rtol=1e-4), key


def test_cli_train_command(tmp_path, capsys):
    config = tiny_config(tmp_path, "cli", steps=2, every=2)
    assert cli_main(["train", "--config", str(config), "--quiet", "--set", "optim.lr=3e-4"]) == 0
    out = capsys.readouterr().out
    assert "run folder" in out and "model_ema.pt" in out
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["optim"]["lr"] == 3e-4
    assert cli_main(["train", "--config", str(config), "--set", "optim.stepz=3"]) == 1
    assert "did you mean 'steps'" in capsys.readouterr().err


def test_synthetic_images_and_gapped_videos_train(tmp_path):
    """The course model's two data sources run through the trainer."""
    for name, changes in (("pre", {"data.dataset": "synthetic_images", "data.merge_prob": 0.0}),
                          ("main", {"data.max_gap": 2})):
        result = train(tiny_config(tmp_path, name, steps=2), changes)
        assert result.step == 2 and np.isfinite([r["loss"] for r in result.history()]).all()


def test_init_encoder_starts_from_another_variants_encoder(tmp_path):
    """model.init_encoder: AOT-T's encoder and projection from AOT-B weights, the rest fresh."""
    torch.manual_seed(5)
    source = aot_edu.build_model("aotb")
    torch.save({"state_dict": source.state_dict()}, tmp_path / "aotb.pt")
    config = load_config(tiny_config(tmp_path, steps=1), {"model.init_encoder": str(tmp_path / "aotb.pt"),
                                                          "model.train_encoder": False})
    from aot_edu.training.initialization import ENCODER_KEYS, load_encoder_weights

    model = aot_edu.build_model("aott")
    assert load_encoder_weights(model, tmp_path / "aotb.pt") == len(
        [k for k in model.state_dict() if k.startswith(ENCODER_KEYS)])
    for key, value in model.state_dict().items():
        if key.startswith(ENCODER_KEYS):
            torch.testing.assert_close(value, source.state_dict()[key])
    result = train(config)
    trained = torch.load(result.weights, weights_only=True)["state_dict"]
    # frozen: the encoder weights are still AOT-B's after training
    torch.testing.assert_close(trained["encoder.features.0.0.weight"],
                               source.state_dict()["encoder.features.0.0.weight"])
    from aot_edu.model import CheckpointError

    torch.save({"state_dict": {"LSTT.x": torch.zeros(1)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="has no AOT-T encoder"):
        load_encoder_weights(model, tmp_path / "other.pt")


def test_reinit_and_train_only_train_a_fresh_decoder_on_trained_weights(tmp_path):
    """model.reinit = "decoder" gives the decoder new weights (those of a newly built model,
    norms and biases included); model.train_only = "decoder" keeps every other weight as loaded."""
    torch.manual_seed(5)
    source = aot_edu.build_model("aott")
    with torch.no_grad():
        for p in source.decoder.parameters():
            p.add_(0.5)  # "trained": far from any fresh initialisation
    torch.save({"state_dict": source.state_dict()}, tmp_path / "aott.pt")
    config = load_config(tiny_config(tmp_path, steps=2), {
        "model.init_weights": str(tmp_path / "aott.pt"), "model.reinit": "decoder",
        "model.train_only": "decoder", "model.calibrate": False})
    result = train(config)
    trained = torch.load(result.weights, weights_only=True)["state_dict"]
    before = source.state_dict()
    for key, value in trained.items():
        if key.startswith("decoder."):
            if value.is_floating_point() and value.numel() > 1:
                assert not torch.allclose(value, before[key], atol=0.2), key  # fresh
        else:
            torch.testing.assert_close(value, before[key], msg=key)  # loaded, never trained
    # a new GroupNorm (weight 1 as built, moved a little by two steps), not the loaded 1.5
    assert trained["decoder.conv_in.gn.weight"].mean().item() == pytest.approx(1.0, abs=0.05)


def test_table3_options_build_the_changed_architecture_and_adapt_trained_weights(tmp_path):
    """[model] identities / window / lstt_blocks / short_term_frames / sine_embedding /
    relative_embedding give the run its changed AOT; init_adapt starts it from weights of the
    full one: same shapes copied, the window cropped at its centre, leading blocks kept."""
    from aot_edu.training.config import model_config_of
    from aot_edu.training.initialization import load_adapted_weights

    torch.manual_seed(3)
    source = aot_edu.build_model("aots")
    torch.save({"state_dict": source.state_dict()}, tmp_path / "aots.pt")
    config = load_config(tiny_config(tmp_path, steps=2), {
        "model.variant": "aots", "model.init_weights": str(tmp_path / "aots.pt"),
        "model.init_adapt": True, "model.window": 11, "model.lstt_blocks": 1,
        "model.short_term_frames": 2, "model.sine_embedding": False, "model.calibrate": False,
        "model.identities": 4})
    arch = model_config_of(config)
    assert (arch.max_dis, arch.lstt_layers, arch.short_term_frames, arch.max_obj_num) == (5, 1, 2, 4)
    assert not arch.sine_embedding and arch.relative_embedding

    model = aot_edu.build_model(arch)
    report = load_adapted_weights(model, tmp_path / "aots.pt")
    assert "LSTT.layers.0.short_term_attn.relative_emb_v" in report["cropped"]
    assert "decoder.conv_in.conv.weight" in report["sliced"]
    assert any(k.startswith("LSTT.layers.1.") for k in report["unused"])
    assert not report["fresh"]
    full = source.state_dict()["LSTT.layers.0.short_term_attn.relative_emb_v"].view(8, 32, 15, 15)
    torch.testing.assert_close(
        model.state_dict()["LSTT.layers.0.short_term_attn.relative_emb_v"].view(8, 32, 11, 11),
        full[..., 2:13, 2:13])  # the same offsets -5..5 keep the same terms
    bias = source.state_dict()["LSTT.layers.0.short_term_attn.relative_emb_k.bias"].view(8, 15, 15)
    torch.testing.assert_close(
        model.state_dict()["LSTT.layers.0.short_term_attn.relative_emb_k.bias"].view(8, 11, 11),
        bias[:, 2:13, 2:13])

    result = train(config)  # two steps with the changed model, then load it back
    assert result.step == 2
    loaded = result.load_model()
    assert loaded.config.max_dis == 5 and len(loaded.LSTT.layers) == 1
    assert loaded.decoder.conv_out.out_channels == 5
