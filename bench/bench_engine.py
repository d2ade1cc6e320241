"""Inference speed and memory of the engine (issue: foundation, section 6).

Measures, on this machine (and on a GPU when one is present):

- frames per second at 480p for every variant (DAVIS 2016 ``dog`` from ``../shared`` when
  present, else a synthetic clip of the same size), 3 objects;
- time with 10 objects over time with 1 object (AOT's claim: about 1.0);
- peak memory (CPU: peak resident set size of a fresh process; GPU: peak allocated);
- the target case, AOT-T at 481x849 with 3 objects, against the same model run the way the
  official pure-PyTorch path runs it (short-term attention by unfolding 225 neighbours per
  pixel, NCHW convolutions, all 11 identity channels upsampled and arg-maxed), with a check
  that both give the same masks;
- where the time goes (encoder, LSTT, decoder, output, memory update);
- how the time grows with the frame size and with the long-term memory length.

Medians over frames after two warm-up frames; every ratio is measured within one run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aot_edu import build_model  # noqa: E402
from aot_edu.inference.engine import prepare_frame  # noqa: E402
from aot_edu.inference.session import InferenceSession  # noqa: E402
from aot_edu.paths import find_shared  # noqa: E402


def load_clip(frames: int, size: tuple[int, int] = (480, 854)) -> tuple[np.ndarray, np.ndarray, str]:
    """uint8 frames ``[T, H, W, 3]``, a foreground mask ``[H, W]`` and where they came from."""
    shared = find_shared(ROOT)
    dog = None if shared is None else shared / "datasets" / "DAVIS2016"
    if dog is not None and (dog / "JPEGImages" / "480p" / "dog").is_dir() and size == (480, 854):
        from aot_edu.data import list_frames, read_frames, read_mask

        paths = list_frames(dog / "JPEGImages" / "480p" / "dog")[:frames]
        mask = read_mask(dog / "Annotations" / "480p" / "dog" / "00000.png") > 0
        return read_frames(paths), mask, "DAVIS 2016 val `dog`"
    from aot_edu.data.synthetic import render_video

    video, labels = render_video(np.random.default_rng(0), num_frames=frames, size=size, num_objects=3)
    return video, labels[0] > 0, f"synthetic clip {size[0]}x{size[1]}"


def resize_clip(frames: np.ndarray, mask: np.ndarray, size: tuple[int, int]):
    """The clip and mask at another size (bilinear frames, nearest mask)."""
    video = torch.as_tensor(frames).permute(0, 3, 1, 2).float()
    video = F.interpolate(video, size=size, mode="bilinear", align_corners=False)
    video = video.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    resized = F.interpolate(torch.as_tensor(mask)[None, None].float(), size=size, mode="nearest")
    return video, resized[0, 0].numpy() > 0


def split_objects(foreground: np.ndarray, n: int) -> np.ndarray:
    """Split a foreground mask into ``n`` objects (vertical strips with equal pixel counts)."""
    ys, xs = np.nonzero(foreground)
    cuts = np.quantile(xs, np.linspace(0, 1, n + 1)[1:-1]) if n > 1 else np.array([])
    column_label = 1 + np.searchsorted(cuts, np.arange(foreground.shape[1]), side="left")
    return np.where(foreground, column_label[None, :], 0).astype(np.int64)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_frame_seconds(model, frames, labels, long_term_gap=None, official_style=False) -> list[float]:
    """Wall time of each propagated frame (propagate + feed back), warm-up frames excluded."""
    device = next(model.parameters()).device
    session = InferenceSession(model, long_term_gap=long_term_gap)
    times = []
    with torch.inference_mode():
        session.add_reference(frames[0], labels)
        for t in range(1, len(frames)):
            sync(device)
            start = time.perf_counter()
            if official_style:
                predicted = official_style_step(session, frames[t])
            else:
                predicted = session.propagate(frames[t]).labels
            session.update_memory(predicted)
            sync(device)
            times.append(time.perf_counter() - start)
    return times[2:] if len(times) > 3 else times


def official_style_step(session: InferenceSession, frame) -> torch.Tensor:
    """One frame the way the official evaluator finishes it: all 11 identity channels are
    upsampled to the frame size, then softmax and argmax over them."""
    session.step += 1
    enc = session._encode(frame)
    engine = session.engines[0]
    engine.propagate(enc)
    logits = engine.decode(enc, session.frame_size)  # all M + 1 channels
    return torch.softmax(logits, dim=1).argmax(dim=1)[0]


def as_official_style(model) -> None:
    """Literal short-term attention and NCHW (contiguous) convolution weights."""
    for block in model.LSTT.layers:
        block.short_term_attn.literal = True
    model.to(memory_format=torch.contiguous_format)


def stage_breakdown(model, frames, labels) -> dict[str, float]:
    """Median milliseconds per stage of one propagated frame."""
    device = next(model.parameters()).device
    session = InferenceSession(model)
    stages: dict[str, list[float]] = {}

    def timed(name, fn):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        stages.setdefault(name, []).append((time.perf_counter() - start) * 1e3)
        return out

    with torch.inference_mode():
        session.add_reference(frames[0], labels)
        engine = session.engines[0]
        n = session.num_objects
        for t in range(1, len(frames)):
            frame = torch.as_tensor(frames[t])
            image = timed("input (resize, normalise)", lambda f=frame: prepare_frame(f.to(device), session.input_size))
            enc = timed("encoder", lambda i=image: model.encode_image(i))
            session.step += 1
            session._enc, session._enc_step = enc, session.step
            out = timed("LSTT (all layers)", lambda e=enc: engine.propagate(e))
            logits = timed("decoder (FPN, 1/4)", lambda e=enc, o=out: model.decode(e, o))
            labels_t = timed(
                "output (upsample, softmax, argmax)",
                lambda lg=logits: torch.softmax(
                    F.interpolate(lg[:, : n + 1], session.frame_size, mode="bilinear", align_corners=True), 1
                ).max(1).indices[0],
            )
            timed("memory update (identity bank)", lambda lb=labels_t: session.update_memory(lb))
    return {k: statistics.median(v[2:] if len(v) > 3 else v) for k, v in stages.items()}


def peak_memory_mb(variant: str, objects: int, frames: int) -> float:
    """Peak memory of a fresh process segmenting the clip (CPU: RSS growth; GPU: allocated)."""
    code = f"""
import json, resource, sys, torch
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'bench')!r})

def peak_mb():
    # VmHWM belongs to this process image; ru_maxrss also counts the parent's peak before exec
    try:
        for line in open('/proc/self/status'):
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

torch.set_num_threads({torch.get_num_threads()})
import bench_engine as b
frames, fg, _ = b.load_clip({frames})
labels = b.split_objects(fg, {objects})
device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
model = b.build_model({variant!r}, device=device)
base = peak_mb()
if device.type == 'cuda':
    torch.cuda.reset_peak_memory_stats()
b.per_frame_seconds(model, frames, labels)
if device.type == 'cuda':
    print(json.dumps(torch.cuda.max_memory_allocated() / 2**20))
else:
    print(json.dumps(peak_mb() - base))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def run(quick: bool) -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n_frames = 5 if quick else 12
    frames, foreground, source = load_clip(n_frames)
    three = split_objects(foreground, 3)
    variants = ["aott"] if quick else ["aott", "aots", "aotb", "aotl", "r50_aotl"]
    torch.manual_seed(0)
    models = {v: build_model(v, device=device) for v in variants}
    hw = frames.shape[1:3]
    where = f"{device.type.upper()}" + (
        f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else f", {torch.get_num_threads()} threads"
    )
    out = [
        "## Inference engine (`bench_engine.py`)",
        "",
        f"{where}; clip: {source}, {frames.shape[0]} frames of {hw[0]}x{hw[1]} (the model runs at "
        "481x849, the official size rule); weights random (speed does not depend on them); "
        "medians over frames after 2 warm-up frames. 3 objects = the foreground split into 3 "
        "vertical strips (DAVIS 2016 has one object per sequence).",
        "",
    ]

    # 1. every variant, 3 objects; 10 vs 1 object
    rows = []
    for name, model in models.items():
        t3 = statistics.median(per_frame_seconds(model, frames, three))
        t1 = statistics.median(per_frame_seconds(model, frames, split_objects(foreground, 1)))
        t10 = statistics.median(per_frame_seconds(model, frames, split_objects(foreground, 10)))
        mem = peak_memory_mb(name, 3, n_frames) if not quick else float("nan")
        rows.append([
            model.config.title, f"{t3:.3f}", f"{1 / t3:.2f}", f"{t10 / t1:.2f}",
            "-" if quick else f"{mem:.0f}",
        ])
    out += [
        "### Speed per variant (480p, 3 objects)",
        "",
        table(["variant", "s / frame", "frames / s", "time 10 obj / 1 obj", "peak memory MB"], rows),
        "",
        "Peak memory: in a fresh process with the model already built, how far the peak resident "
        "set (VmHWM) rises while it segments the clip: activations and memories, not weights." if device.type == "cpu" else "Peak memory: torch.cuda.max_memory_allocated.",
        "",
    ]

    # 2. the target: AOT-T, 3 objects, ours vs the official pure-PyTorch formulation
    ours_model = models["aott"]
    ours = per_frame_seconds(ours_model, frames, three)
    official_model = build_model("aott", device=device)
    official_model.load_state_dict(ours_model.state_dict())
    as_official_style(official_model)
    official = per_frame_seconds(official_model, frames, three, official_style=True)
    with torch.inference_mode():
        from aot_edu import segment

        a = segment(frames, three, ours_model).masks
    b = segment(frames, three, official_model).masks
    agree = float((a == b).mean())
    out += [
        "### Target: AOT-T at 481x849, 3 objects",
        "",
        table(
            ["path", "s / frame", "frames / s"],
            [
                ["aot-edu", f"{statistics.median(ours):.3f}", f"{1 / statistics.median(ours):.2f}"],
                ["official formulation (literal unfold attention, NCHW, 11-channel output)",
                 f"{statistics.median(official):.3f}", f"{1 / statistics.median(official):.2f}"],
            ],
        ),
        "",
        f"Speed-up: {statistics.median(official) / statistics.median(ours):.2f}x; masks of the two "
        f"paths agree on {agree:.4%} of pixels. Target: at most 0.6 s per frame on the 2-core CPU "
        "(the official implementation's pure-PyTorch path takes about 1.2 s there).",
        "",
    ]

    # 3. where the time goes
    stages = stage_breakdown(ours_model, frames, three)
    total = sum(stages.values())
    out += [
        "### Where the time goes (AOT-T, 481x849, 3 objects)",
        "",
        table(["stage", "ms", "share"], [[k, f"{v:.1f}", f"{v / total:.0%}"] for k, v in stages.items()]),
        "",
    ]

    # 4. growth with frame size and memory length
    if not quick:
        rows = []
        for size in [(240, 427), (360, 640), (480, 854), (720, 1280)]:
            clip, fg = resize_clip(frames[:6], foreground, size)
            t = statistics.median(per_frame_seconds(ours_model, clip, split_objects(fg, 3)))
            session = InferenceSession(ours_model)
            session.add_reference(clip[0], split_objects(fg, 3))
            h, w = session.input_size
            tokens = ((h - 1) // 16 + 1) * ((w - 1) // 16 + 1)
            rows.append([f"{size[0]}x{size[1]}", f"{h}x{w}", str(tokens), f"{t:.3f}"])
        out += [
            "### Cost against frame size (AOT-T, 3 objects)",
            "",
            table(["frame", "model input", "tokens (1/16 grid)", "s / frame"], rows),
            "",
        ]
        long_frames, long_fg, _ = load_clip(42)
        aotl = models["aotl"]
        session = InferenceSession(aotl, long_term_gap=1)
        per_length = {}
        with torch.inference_mode():
            session.add_reference(long_frames[0], split_objects(long_fg, 3))
            for t in range(1, len(long_frames)):
                start = time.perf_counter()
                session.update_memory(session.propagate(long_frames[t]).labels)
                per_length[session.engines[0].long_term_frames] = time.perf_counter() - start
        rows = [[str(n), f"{per_length[n]:.3f}"] for n in (2, 5, 10, 20, 41) if n in per_length]
        out += [
            "### Cost against long-term memory length (AOT-L, 3 objects, a memory frame every frame)",
            "",
            table(["long-term memory frames", "s / frame"], rows),
            "",
            "The long-term attention is linear in the number of memory frames; everything else is "
            "constant. The official AOT-L memory grows without bound (a frame every 5), so long "
            "videos slow down and fill memory; `segment(..., max_long_term_frames=N)` bounds it.",
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("AOT_EDU_BENCH_THREADS", "2")))
    print(run(quick="--quick" in sys.argv))
