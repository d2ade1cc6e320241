"""The trainer: :func:`train` runs a configuration from its first step, or from the run
folder's last checkpoint, to a finished run (EMA weights, logs, curves, held-out scores).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from aot_edu import paths
from aot_edu.data import SyntheticVideos
from aot_edu.evaluation.analysis import score_model
from aot_edu.evaluation.benchmark import model_fingerprint
from aot_edu.inference.engine import normalize
from aot_edu.model import AOT
from aot_edu.model.encoders import freeze_stages, use_batch_statistics
from aot_edu.model.weights import load_weights

from .clips import ClipStream, build_dataset, make_loader, seed_of, step_assignment
from .config import ConfigError, TrainConfig, load_config, model_config_of
from .distributed import DistInfo, barrier, init_distributed
from .initialization import (
    REINIT_PARTS,
    calibrate_frozen_batchnorm,
    calibrate_projection,
    load_adapted_weights,
    load_encoder_weights,
    locality_prior,
    official_initialization,
    parse_parts,
    reinitialize,
    train_only,
)
from .logs import EVAL_FIELDS, LOG_FIELDS, append_csv, plot_history, truncate_csv
from .runs import (
    CHECKPOINT_FORMAT,
    TrainResult,
    atomic_save,
    check_run_dir,
    config_changes,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from .schedule import ModelEMA, ema_decay, param_groups
from .step import TrainingForward, plan_step, train_step


def eval_videos(config: TrainConfig):
    """The held-out synthetic videos of ``config.eval`` (their own seed: never trained on)."""
    e, d = config.eval, config.data
    return SyntheticVideos(e.num_videos, e.num_frames, e.size or d.size, e.num_objects,
                           e.num_distractors, seed=e.seed, motion=e.motion, noise=e.noise,
                           scale=e.scale)


def train(
    config: str | Path | Mapping | TrainConfig, overrides: Sequence[str] | Mapping = (),
    *, progress: bool | None = None,
) -> TrainResult:
    """Train AOT as ``config`` says; resume from the run folder's checkpoint if there is one.

    Args:
        config: a TOML file, a dict shaped like one, or a :class:`TrainConfig`.
        overrides: changes applied before validation (see :func:`load_config`).
        progress: show a progress bar (default: ``run.progress``).

    Under ``torchrun`` every process calls this; the batch is split over them (DDP). Files in
    ``run.output_dir``: ``checkpoint.pt`` (everything to continue), ``model_ema.pt`` (EMA
    weights), ``log.csv`` (one row per step), ``eval.csv``, ``curves.png``, ``config.json``,
    ``summary.json`` (when finished). A finished run returns its summary without training.
    """
    cfg = load_config(config, overrides)
    use_cuda = cfg.run.device == "cuda" or (cfg.run.device == "auto" and torch.cuda.is_available())
    info = init_distributed(use_cuda)
    threads = torch.get_num_threads()
    try:
        return _train(cfg, info, use_cuda, cfg.run.progress if progress is None else progress)
    finally:
        torch.set_num_threads(threads)  # run.threads applies to the run only
        if info.started_here:
            torch.distributed.destroy_process_group()


def _train(cfg: TrainConfig, info: DistInfo, use_cuda: bool, progress: bool) -> TrainResult:
    o, e = cfg.optim, cfg.eval
    run_dir = Path(cfg.run.output_dir)
    ckpt_path, ema_path = run_dir / "checkpoint.pt", run_dir / "model_ema.pt"
    log_path, eval_path = run_dir / "log.csv", run_dir / "eval.csv"
    device = torch.device(f"cuda:{info.local_rank}" if use_cuda else "cpu")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    elif info.enabled and not use_cuda:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))

    check_run_dir(run_dir)
    state = None
    if ckpt_path.is_file():
        if not cfg.run.resume:
            raise ConfigError(
                f"{run_dir} already holds a run (checkpoint.pt) and run.resume = false; choose "
                "another run.output_dir, or delete that folder to start over"
            )
        state = load_checkpoint(ckpt_path)
        diffs = config_changes(state["config"], cfg)
        if diffs:
            raise ConfigError(
                f"{run_dir} holds a run with another configuration ({'; '.join(diffs)}); "
                "resume it with its own settings, or set run.output_dir to a new folder"
            )
    start = int(state["step"]) if state else 0
    summary_path = run_dir / "summary.json"
    if start >= o.steps and summary_path.is_file():  # finished: nothing to build or train
        summary = json.loads(summary_path.read_text())
        return TrainResult(cfg, run_dir, start, summary["train_time"], summary["metrics"], start)

    model_config = model_config_of(cfg)
    torch.manual_seed(seed_of(cfg.seed, 0))  # the initial weights
    model = AOT(model_config, pretrained_encoder=cfg.model.pretrained_encoder and state is None)
    official_initialization(model)
    if cfg.model.init_weights and state is None:
        if cfg.model.init_adapt:
            load_adapted_weights(model, cfg.model.init_weights)
        else:
            load_weights(model, cfg.model.init_weights)
        torch.manual_seed(seed_of(cfg.seed, 0))  # the fresh parts' weights, as from scratch
        reinitialize(model, parse_parts(cfg.model.reinit, REINIT_PARTS))
    elif state is None:
        if cfg.model.init_encoder:
            load_encoder_weights(model, cfg.model.init_encoder)
        locality_prior(model, cfg.model.locality_prior)
    dataset = build_dataset(cfg)
    if (cfg.model.calibrate and state is None and not cfg.model.init_weights
            and not cfg.model.init_encoder and not cfg.model.pretrained_encoder):
        clips = [dataset[i]["frames"] for i in range(min(len(dataset), 8))]
        images = normalize(torch.cat(clips)).contiguous(memory_format=torch.channels_last)
        calibrate_frozen_batchnorm(model.encoder, images)
        calibrate_projection(model, images)
    freeze_stages(model.encoder, cfg.model.freeze_at)
    if cfg.model.batch_statistics:
        use_batch_statistics(model.encoder)
    if not cfg.model.train_encoder:
        model.encoder.requires_grad_(False)
    if cfg.model.train_only:
        train_only(model, parse_parts(cfg.model.train_only))
    model.LSTT.mask_token.requires_grad_(False)  # in the official state dict, unused by AOT
    model.to(device).train()
    forward: nn.Module = TrainingForward(model)
    if info.enabled:
        forward = nn.parallel.DistributedDataParallel(
            forward, device_ids=[info.local_rank] if use_cuda else None,
            find_unused_parameters=True,
        )
    optimizer = torch.optim.AdamW(param_groups(model, o.weight_decay), lr=o.lr,
                                  weight_decay=o.weight_decay)
    amp = o.amp and use_cuda
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    ema = ModelEMA(model, ema_decay(o.steps, o.ema_ratio))
    elapsed = 0.0
    if state:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        ema.load_state_dict(state["ema"])
        elapsed = float(state["elapsed"])
        rngs = state["rng"]
        if info.rank < len(rngs):
            set_rng_state(rngs[info.rank])

    if info.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        paths.atomic_write_text(run_dir / "config.json", json.dumps(cfg.to_dict(), indent=2))
        truncate_csv(log_path, LOG_FIELDS, start)
        truncate_csv(eval_path, EVAL_FIELDS, start)

    long_term_gap = model_config.long_term_gap_train
    videos = eval_videos(cfg) if e.num_videos else None
    eval_model = AOT(model_config).to(device).eval() if (videos is not None and info.main) else None

    def score_held_out(step: int) -> dict:
        ema.copy_to(eval_model)
        scores = score_model(eval_model, videos, progress=progress)
        append_csv(eval_path, EVAL_FIELDS, {"step": step, **scores})
        return scores

    def save(step: int, now: float) -> None:
        rngs = [rng_state()]
        if info.enabled:
            rngs = [None] * info.world_size
            torch.distributed.all_gather_object(rngs, rng_state())
        if info.main:
            position = step * o.batch_size
            atomic_save({
                "format": CHECKPOINT_FORMAT, "variant": model_config.name,
                "state_dict": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "step": step, "elapsed": now, "rng": rngs, "config": cfg.to_dict(),
                "data_position": {"samples": position, "epoch": position // len(dataset)},
            }, ckpt_path)
            atomic_save({"state_dict": ema.shadow, "step": step, "variant": model_config.name},
                        ema_path)
        barrier(info)

    stream = ClipStream(len(dataset), o.batch_size, o.accumulation_steps, info.rank,
                        info.world_size, cfg.seed, start, o.steps)
    batches = iter(make_loader(dataset, stream, cfg.data.num_workers, pin_memory=use_cuda))
    bar = tqdm(total=o.steps, initial=start, desc=cfg.name, unit="step",
               disable=not (progress and info.main), dynamic_ncols=True)
    session_start = time.perf_counter()
    eval_time = 0.0
    for step in range(start, o.steps):
        plan = plan_step(step, cfg)
        micro = [next(batches) for _ in range(o.accumulation_steps)]
        slots = [i * info.world_size + info.rank for i in range(o.accumulation_steps)]
        assignments = [step_assignment(cfg, step, slot, len(mb["num_objects"]))
                       for slot, mb in zip(slots, micro, strict=True)]
        stats = train_step(forward, optimizer, scaler, micro, assignments, plan,
                           min_lr=o.min_lr, encoder_ratio=o.encoder_lr_ratio,
                           clip_grad_norm=o.clip_grad_norm, long_term_gap=long_term_gap, amp=amp,
                           seeds=[seed_of(cfg.seed, step, slot, 2) for slot in slots],
                           identity_separation=o.identity_separation,
                           identity_margin=o.identity_margin)
        ema.update(model)
        if info.enabled:  # log the mean over processes
            values = torch.tensor([stats["loss"], stats["iou"], *stats["frame_losses"]],
                                  dtype=torch.float64, device=device)
            torch.distributed.all_reduce(values)
            values = (values / info.world_size).tolist()
            stats["loss"], stats["iou"], stats["frame_losses"] = values[0], values[1], values[2:]
        done = step + 1
        now = elapsed + time.perf_counter() - session_start - eval_time
        if info.main:
            append_csv(log_path, LOG_FIELDS, {
                "step": done, "loss": f"{stats['loss']:.6f}",
                "loss_ref": f"{stats['frame_losses'][0]:.6f}",
                "loss_frames": f"{float(np.mean(stats['frame_losses'][1:])):.6f}",
                "iou": f"{stats['iou']:.6f}", "lr": f"{plan.lr:.6e}",
                "encoder_lr": f"{plan.encoder_lr:.6e}", "top_k": f"{plan.fraction:.4f}",
                "aux_weight": f"{plan.aux_weight:.4f}", "feedback": int(plan.use_prev_pred),
                "grad_norm": f"{stats['grad_norm']:.4f}", "time": f"{now:.2f}",
            })
        bar.update(1)
        bar.set_postfix(loss=f"{stats['loss']:.3f}", iou=f"{stats['iou']:.2f}", refresh=False)
        if done % cfg.run.checkpoint_every == 0 or done == o.steps:
            save(done, now)
        if videos is not None and e.every and done % e.every == 0 and done < o.steps:
            tick = time.perf_counter()
            if info.main:
                scores = score_held_out(done)
                bar.write(f"step {done}: held-out J&F {scores['J&F']:.3f}")
            barrier(info)
            eval_time += time.perf_counter() - tick
    bar.close()
    train_time = elapsed + time.perf_counter() - session_start - eval_time

    mine = model_fingerprint(model)
    prints = [mine]
    if info.enabled:
        prints = [None] * info.world_size
        torch.distributed.all_gather_object(prints, mine)
    if len(set(prints)) != 1:
        raise RuntimeError(f"the processes ended with different weights ({prints}); DDP lost sync")
    metrics: dict = {}
    if info.main:
        if state is not None and start >= o.steps:
            ema.load_state_dict(state["ema"])
        if videos is not None:
            metrics = score_held_out(o.steps)
        plot_history(run_dir, title=f"{cfg.name} ({model_config.title})").savefig(
            run_dir / "curves.png", dpi=110)
        paths.atomic_write_text(summary_path, json.dumps(
            {"name": cfg.name, "step": o.steps, "train_time": train_time, "metrics": metrics,
             "world_size": info.world_size, "threads": torch.get_num_threads(),
             "device": str(device), "fingerprints": prints},
            indent=2))
    barrier(info)
    return TrainResult(cfg, run_dir, o.steps, train_time, metrics, start if state else None)
