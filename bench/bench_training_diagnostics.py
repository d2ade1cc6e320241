"""Why AOT learns slowly from scratch on a CPU: two measurements behind notebook 05's summary.

1. *Matching needs features.* For query tokens inside an object, the share of a softmax over
   cosine similarities (temperature 20) that falls on the same object's tokens in the reference
   frame: with the random, calibrated encoder's 1/16 features (what the long-term attention
   starts from without ImageNet weights) against the plain mean colour of each 16 x 16 patch.
2. *Identities are learned slowly.* One fixed batch of static clips, trained with the recipe's
   loss and optimiser: objects keeping identity ``j`` (memorisable) against Eq. 3's fresh
   random identities every step (what training does).
3. *Decoding is slow too.* The LSTT replaced by a perfect one: the decoder is handed each
   frame's own identity embedding (Eq. 3 of its ground truth, fresh random identities) on top of
   the encoder's 1/16 map, and only the identity bank, the encoder projection and the decoder
   train, on the quick configuration's clips. Its IoU bounds what the whole model can reach at
   the same number of steps with this encoder and resolution.
4. *Errors compound.* Trained models' J frame by frame on their held-out videos: as tested,
   teacher-forced (the true previous mask as memory) and with objects that do not move; and
   their J&F with the long-term or the short-term attention removed (which memory they use).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from aot_edu.data import SyntheticVideos, collate
from aot_edu.evaluation.analysis import memory_ablation, model_predictor, teacher_forced_predictor
from aot_edu.inference.engine import mask_unused_identities, normalize
from aot_edu.model import AOT, get_config
from aot_edu.model.encoders import use_batch_statistics
from aot_edu.model.identity import (
    assign_identities,
    decode_identities,
    one_hot_labels,
    random_assignment,
)
from aot_edu.model.lstt import LSTTOutput, map_to_seq
from aot_edu.training import load_config, vos_loss
from aot_edu.training.clips import build_dataset
from aot_edu.training.initialization import (
    calibrate_frozen_batchnorm,
    calibrate_projection,
    official_initialization,
)
from aot_edu.training.losses import batch_iou, hard_mining_fraction
from aot_edu.training.step import sequence_loss

ROOT = Path(__file__).resolve().parents[1]
SIZE = 129
# trained runs of bench_training.py examined for drift and memory use: (run name, label)
TRAINED_RUNS = (("quick_cpu", "quick configuration"),
                ("trained_encoder_4x", "encoder trained, 4x the budget"),
                ("trained_encoder_8x", "encoder trained, 8x the budget"))
TEMPERATURE = 20.0


def _fresh_model(images: torch.Tensor) -> AOT:
    """AOT-T as the quick configuration starts: official initialisation, calibrated encoder."""
    torch.manual_seed(0)
    model = AOT(get_config("aott"))
    official_initialization(model)
    images = normalize(images).contiguous(memory_format=torch.channels_last)
    calibrate_frozen_batchnorm(model.encoder, images)
    calibrate_projection(model, images)
    return model


def _token_labels(labels: np.ndarray, grid: int, classes: int) -> torch.Tensor:
    one_hot = F.one_hot(torch.from_numpy(labels.astype(np.int64)), classes).permute(2, 0, 1)
    return F.interpolate(one_hot[None].float(), size=(grid, grid), mode="area")[0].argmax(0).flatten()


def matching_shares(num_videos: int) -> dict[str, float]:
    """Mean softmax share on the query's own object in the reference frame, per feature."""
    videos = SyntheticVideos(num_videos, 6, SIZE, 3, 0, seed=1000, motion=0.3)
    clips = [videos.video(i) for i in range(num_videos)]
    frames = torch.cat([torch.from_numpy(f).permute(0, 3, 1, 2) for f, _ in clips])
    model = _fresh_model(frames).eval()
    grid = (SIZE - 1) // 16 + 1
    shares: dict[str, list[float]] = {"uniform": [], "random encoder, 1/16 features": [],
                                      "mean colour of each 16x16 patch": []}
    with torch.no_grad():
        for f, labels in clips:
            x = normalize(torch.from_numpy(f).permute(0, 3, 1, 2))
            features = {"random encoder, 1/16 features": model.encode_image(x)[-1],
                        "mean colour of each 16x16 patch": F.adaptive_avg_pool2d(x, grid)}
            ref = _token_labels(labels[0], grid, 4)
            for name, feat in features.items():
                tokens = feat.flatten(2).transpose(1, 2)
                tokens = F.normalize(tokens - tokens.mean(1, keepdim=True), dim=-1)
                for t in range(1, len(f)):
                    current = _token_labels(labels[t], grid, 4)
                    weights = torch.softmax(TEMPERATURE * tokens[t] @ tokens[0].T, dim=1)
                    for q in torch.nonzero(current > 0).flatten():
                        same = ref == current[q]
                        shares[name].append(float(weights[q][same].sum()))
                        if name.startswith("random"):
                            shares["uniform"].append(float(same.float().mean()))
    return {k: float(np.mean(v)) for k, v in shares.items()}


def fixed_batch_fit(random_identities: bool, steps: int) -> list[tuple[int, float]]:
    """IoU of the propagated frames while fitting one batch of 4 static 3-frame clips."""
    videos = SyntheticVideos(4, 3, 97, 3, 0, seed=0, motion=0.0, scale=1.3)
    batch = collate([videos[i] for i in range(4)])
    model = _fresh_model(batch["frames"].flatten(0, 1))
    for p in model.encoder.parameters():
        p.requires_grad_(False)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=4e-4, weight_decay=0.03)
    generator = torch.Generator().manual_seed(0)
    counts = batch["num_objects"].tolist()
    curve = []
    for step in range(1, steps + 1):
        assignment = random_assignment(4, 11, generator) if random_identities else None
        out = sequence_loss(model, batch["frames"], batch["masks"], counts, assignment,
                            use_prev_pred=False)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if step % 20 == 0 or step == steps:
            iou = batch_iou(out.predictions[:, 1:].flatten(0, 1), batch["masks"][:, 1:].flatten(0, 1),
                            [n for n in counts for _ in range(2)]).mean()
            curve.append((step, float(iou)))
    return curve


def perfect_matching_fit(steps: int, train_encoder: bool = False) -> list[tuple[int, float]]:
    """IoU (mean of the last 100 steps) of a decoder handed each frame's own identities.

    The quick configuration's clips (``configs/scratch_cpu.toml``: 97 x 97, 4 clips of 4 target
    frames per step); the LSTT output is replaced by the encoder's 1/16 map plus the frame's
    ground-truth identity embedding (Eq. 3, fresh random identities), i.e. what a perfect
    long/short-term attention would deliver at best. AdamW 4e-4 on the identity bank, encoder
    projection and decoder; the recipe's loss with the configuration's hard-pixel schedule.
    ``train_encoder``: the random encoder trains too, at the same rate, with batch statistics
    (the "encoder trained" runs of bench_training.py); else it stays frozen (the quick
    configuration).
    """
    config = load_config(ROOT / "configs" / "scratch_cpu.toml")
    dataset = build_dataset(config)
    model = _fresh_model(torch.cat([dataset[i]["frames"] for i in range(8)]))
    model.encoder.requires_grad_(train_encoder)
    use_batch_statistics(model.encoder, train_encoder)
    params = [*model.decoder.parameters(), *model.patch_wise_id_bank.parameters(),
              *model.encoder_projector.parameters(),
              *(model.encoder.parameters() if train_encoder else [])]
    optimizer = torch.optim.AdamW(params, lr=4e-4, weight_decay=0.03)
    generator = torch.Generator().manual_seed(0)
    identities = model.max_obj_num + 1
    clips = config.optim.batch_size
    ious, curve = [], []
    for step in range(steps):
        samples = [dataset[step * clips + i] for i in range(clips)]
        frames = torch.cat([s["frames"][1:] for s in samples]).contiguous(memory_format=torch.channels_last)
        labels = torch.cat([torch.as_tensor(s["masks"][1:]) for s in samples]).long()
        counts = [int(s["num_objects"]) for s in samples for _ in range(len(s["frames"]) - 1)]
        enc = model.encode_image(normalize(frames))  # a frozen encoder records no graph
        assignment = random_assignment(len(counts), identities, generator)
        id_emb = model.patch_wise_id_bank(assign_identities(one_hot_labels(labels, identities), assignment))
        logits = decode_identities(model.decode(enc, LSTTOutput([map_to_seq(enc[-1] + id_emb)], [])),
                                   assignment)
        logits = F.interpolate(mask_unused_identities(logits, counts), labels.shape[-2:],
                               mode="bilinear", align_corners=True)
        loss = vos_loss(logits, labels, hard_mining_fraction(step, config.optim.steps)).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        ious.append(float(batch_iou(logits.argmax(1), labels, counts).mean()))
        if (step + 1) % 100 == 0 or step + 1 == steps:
            curve.append((step + 1, float(np.mean(ious[-100:]))))
    return curve


def _trained_model(run_dir: Path):
    """``(stored config dict, TrainConfig, EMA model)`` of the finished run in ``run_dir``
    (``bench_training.py`` makes it), or ``None`` when it is not there."""
    import json

    from aot_edu.model import build_model

    if not (run_dir / "summary.json").is_file():
        return None
    stored = json.loads((run_dir / "config.json").read_text())
    config = load_config(stored)
    return stored, config, build_model(config.model.variant, weights=run_dir / "model_ema.pt")


def per_frame_j(stored: dict, config, model: AOT) -> dict[str, list[float]]:
    """Mean J of every scored frame (1 .. T-2) over a trained run's held-out videos
    (:func:`_trained_model`), three ways: as tested (each frame read from the model's own
    previous prediction), teacher-forced (from the true previous mask), and as tested on the
    same videos with objects that do not move (``eval.motion = 0``)."""
    from aot_edu.evaluation.metrics import score_sequence
    from aot_edu.training import eval_videos

    held_out = eval_videos(config)
    runs = {
        "own predictions (as tested)": (held_out, False),
        "true previous mask (teacher forcing)": (held_out, True),
        "own predictions, objects not moving": (
            eval_videos(load_config(stored, {"eval.motion": 0.0})), False),
    }
    curves = {}
    for name, (videos, forced) in runs.items():
        rows = []
        for i in range(len(videos)):
            frames, labels = videos.video(i)
            masks = (teacher_forced_predictor(model) if forced else model_predictor(model))(
                frames, labels)
            j, _ = score_sequence(labels, masks)
            rows.append(np.nanmean(j, axis=0))  # [objects, frames] -> per frame
        curves[name] = [float(x) for x in np.mean(rows, axis=0)]
    return curves


def attention_ablation(config, model: AOT) -> dict[str, float]:
    """Held-out J&F of a trained run with each memory removed (:func:`aot_edu.evaluation.analysis.memory_ablation`)."""
    from aot_edu.training import eval_videos

    return memory_ablation(model, eval_videos(config))


def run(quick: bool = False) -> str:
    torch.set_num_threads(2)
    start = time.perf_counter()
    shares = matching_shares(2 if quick else 8)
    steps = 20 if quick else 300
    fits = {"identity j kept": fixed_batch_fit(False, steps),
            "fresh random identities (Eq. 3)": fixed_batch_fit(True, steps)}
    marks = sorted({s for curve in fits.values() for s, _ in curve if s in (20, 80, 160, 300)})
    perfect = {"frozen random encoder": perfect_matching_fit(4 if quick else 600),
               "encoder trained, batch statistics": perfect_matching_fit(4 if quick else 600, True)}
    suffix = "_smoke" if quick else ""
    trained = {label: found for name, label in TRAINED_RUNS
               if (found := _trained_model(ROOT / "runs" / "bench" / f"{name}{suffix}"))}
    drift = {label: per_frame_j(*found) for label, found in trained.items()}
    frames = max((len(c) for curves in drift.values() for c in curves.values()), default=0)
    ablation = {label: attention_ablation(*found[1:]) for label, found in trained.items()}
    ablation_columns = list(next(iter(ablation.values()))) if ablation else []
    lines = [
        "## Why training from scratch is slow (`bench_training_diagnostics.py`)",
        "",
        f"Matching: {SIZE}x{SIZE} synthetic clips (3 objects, motion 0.3); for every query token "
        "inside an object, the share of a softmax over cosine similarities (temperature "
        f"{TEMPERATURE:g}) that lands on the same object's tokens of the reference frame.",
        "",
        "| features | share on the right object |",
        "|---|---:|",
        *[f"| {name} | {value:.3f} |" for name, value in shares.items()],
        "",
        "Identities: one fixed batch of 4 static 3-frame clips (97x97, 3 objects), AOT-T from "
        "the quick configuration's start (random calibrated encoder, frozen), AdamW 4e-4, the "
        "recipe's loss with ground-truth memory. IoU of the propagated frames:",
        "",
        "| identities | " + " | ".join(f"step {s}" for s in marks) + " |",
        "|---|" + "---:|" * len(marks),
        *[f"| {name} | " + " | ".join(f"{dict(curve)[s]:.2f}" for s in marks) + " |"
          for name, curve in fits.items()],
        "",
        "Decoding: the LSTT replaced by a perfect one (the decoder gets every frame's own "
        "ground-truth identity embedding with fresh random identities, plus the 1/16 encoder "
        "map); identity bank, encoder projection and decoder trained on the quick "
        "configuration's clips (97x97, 16 target frames per step), AdamW 4e-4, with the "
        "random encoder frozen or trained along (all stages, same rate, BatchNorm on batch "
        "statistics, as in the *encoder trained* runs of *Training on a CPU*). Training IoU (mean over the last 100 "
        "steps) - a ceiling for the whole model at the same step:",
        "",
        "| encoder | " + " | ".join(f"step {s}" for s, _ in next(iter(perfect.values()))) + " |",
        "|---|" + "---:|" * len(next(iter(perfect.values()))),
        *[f"| {name} | " + " | ".join(f"{v:.2f}" for _, v in curve) + " |"
          for name, curve in perfect.items()],
        "",
        *(["Drift: trained models of `bench_training.py` (EMA weights) on their held-out "
           "videos, mean J of each scored frame. As tested, frame 1 is propagated from the "
           "given mask and every later one from the model's own previous prediction; "
           "teacher-forced, every frame gets the true previous mask as its short-term memory "
           "(what each step can do when the errors before it are undone); the last row of each "
           "model plays the same videos with objects that do not move (motion 0):",
           "",
           "| model | memory | " + " | ".join(f"frame {t}" for t in range(1, frames + 1))
           + " | mean |",
           "|---|---|" + "---:|" * (frames + 1),
           *[f"| {model} | {name} | " + " | ".join(f"{v:.2f}" for v in curve)
             + f" | {np.mean(curve):.3f} |"
             for model, curves in drift.items() for name, curve in curves.items()],
           "",
           "Which memory the trained models use: held-out J&F with the output of the "
           "long-term attention (to the reference frame) or of the short-term attention (to "
           "frame t-1, 15x15 window with a learned relative-position term) set to zero in "
           "every LSTT block, on every propagated frame:",
           "",
           "| model | " + " | ".join(ablation_columns) + " |",
           "|---|" + "---:|" * len(ablation_columns),
           *[f"| {model} | " + " | ".join(f"{scores[c]:.3f}" for c in ablation_columns) + " |"
             for model, scores in ablation.items()],
           ""] if drift else
          ["(Drift: no trained runs in `runs/bench`; run `bench_training.py` first.)", ""]),
        f"({time.perf_counter() - start:.0f} s on this machine.)",
    ]
    return "\n".join(lines)
