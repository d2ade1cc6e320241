"""Benchmark evaluation: run AOT over DAVIS / YouTube-VOS, write the official result layout, score.

:func:`run_benchmark` is what ``aot-edu eval`` runs. For every sequence of a split it

1. segments the video with :class:`~aot_edu.inference.session.InferenceSession` frame by frame, following
   the official AOT evaluator (yoxu515/aot-benchmark, ``networks/managers/evaluator.py``):

   - frame 0 carries the given mask; its result PNG is that mask (the official code copies it);
   - on a later frame with an annotation (YouTube-VOS: objects that first appear there) the
     frame is first propagated, the argmax of its prediction is taken, the annotation's
     non-zero pixels are pasted over it (so the new objects enter; the number of objects
     becomes the largest label), and this merged map is both the frame's result and a new
     reference frame of every object group's memory (``add_reference``, which also feeds it
     back as the short-term memory);
   - DAVIS 2016 merges all objects of a mask into one (label ``> 0``), as the official
     ``DAVIS_Test(year=2016)`` does;

2. writes one palette PNG per output frame, ``<out>/<sequence>/<frame>.png``, with the
   dataset's original object ids (:meth:`~aot_edu.data.VideoSequence.save_prediction`): the
   layout the DAVIS toolkit and the YouTube-VOS server read;
3. marks the sequence finished (an atomically written marker, after its last PNG), so that an
   interrupted run started again skips finished sequences and redoes a half-written one;
4. scores DAVIS with :func:`aot_edu.evaluation.metrics.score_results_folder` (J, F, J&F) or packs YouTube-VOS
   into the zip the CodaLab server expects (``Annotations/<video>/<frame>.png`` for the frames
   listed in ``meta.json``), and writes ``results.md`` and ``results.csv``.

Speed is reported as the official evaluator does: model time per propagated frame (propagate +
memory update, the given first frame excluded; CUDA synchronised), frames per second = frames /
seconds over the whole split.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from aot_edu import paths
from aot_edu.data.datasets import DAVIS, VideoSequence, YouTubeVOS, open_dataset
from aot_edu.data.io import (
    FILE_BROWSER_FILES,
    VOID_LABEL,
    check_writable_folder,
    frame_sizes_agree,
    read_mask,
    write_mask,
)
from aot_edu.inference.engine import synchronize
from aot_edu.inference.session import InferenceSession
from aot_edu.model import AOT

from .metrics import score_results_folder, write_tables

__all__ = [
    "EvaluationReport",
    "PredictedFrame",
    "SequenceRecord",
    "run_benchmark",
    "pack_submission",
    "predict_sequence",
    "write_report",
]

PROGRESS_DIR = ".aot-edu"  # inside the output folder: run description and finished markers


# --- one sequence ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PredictedFrame:
    """One frame of :func:`predict_sequence`."""

    index: int
    name: str
    labels: np.ndarray  # uint8 [H, W], re-indexed labels 0..N (the sequence's numbering)
    seconds: float | None  # model time; None on frame 0, whose mask is given
    new_objects: tuple[int, ...]  # labels whose first mask is on this frame


def _given_labels(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    # Void (255) is not an object: the method is given objects only.
    labels = torch.as_tensor(np.asarray(mask), device=device).long()
    return torch.where(labels == VOID_LABEL, 0, labels)


def predict_sequence(
    sequence: VideoSequence,
    model: AOT,
    *,
    long_term_gap: int | None = None,
    max_long_term_frames: int | None = None,
) -> Iterator[PredictedFrame]:
    """Segment ``sequence`` frame by frame, as the official evaluator does (module docstring).

    Yields a :class:`PredictedFrame` per frame, in order, lazily (one frame in memory at a
    time). New objects on later annotated frames join the memory as reference frames.
    Call under ``torch.inference_mode()`` with the model in eval mode (:func:`run_benchmark` does).
    """
    session = InferenceSession(model, long_term_gap, max_long_term_frames)
    device = session.device
    frames = iter(sequence)
    first = next(frames)
    if first.mask is None:
        raise ValueError(f"sequence {sequence.name!r}: frame 0 has no given mask")
    labels = _given_labels(first.mask, device)
    session.add_reference(first.image, labels)
    yield PredictedFrame(0, first.name, labels.to(torch.uint8).cpu().numpy(), None,
                         first.new_objects)
    for frame in frames:
        synchronize(device)
        start = time.perf_counter()
        labels = session.propagate(frame.image).labels
        if frame.mask is not None:
            # Official order: paste the annotation over the argmax, then the merged map becomes
            # a reference frame (add_reference feeds it back as short-term memory too).
            given = _given_labels(frame.mask, device)
            labels = torch.where(given > 0, given, labels)
            session.add_reference(frame.image, labels)
        else:
            session.update_memory(labels)
        synchronize(device)
        seconds = time.perf_counter() - start
        yield PredictedFrame(frame.index, frame.name, labels.to(torch.uint8).cpu().numpy(),
                             seconds, frame.new_objects)


# --- records and tables ---------------------------------------------------------------------

@dataclass
class SequenceRecord:
    """What the run did on one sequence."""

    name: str
    objects: int
    frames: int  # propagated (timed) frames
    seconds: float  # model time of those frames
    outputs: int  # result PNGs written
    resumed: bool = False  # finished by an earlier run, skipped this time

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.nan


@dataclass
class EvaluationReport:
    """Result of :func:`run_benchmark`."""

    dataset: str  # e.g. "davis2017-val"
    variant: str  # e.g. "AOT-T"
    weights: str
    device: str
    out: Path
    sequences: list[SequenceRecord]
    metrics: object | None = None  # aot_edu.evaluation.metrics.DavisEvaluation when scored
    submission: Path | None = None  # YouTube-VOS zip
    notes: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.sequences)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.sequences)

    @property
    def fps(self) -> float:
        """Propagated frames per second of model time over the whole split."""
        return self.frames / self.seconds if self.seconds > 0 else math.nan

    def global_metrics(self) -> dict[str, float]:
        return dict(self.metrics.global_metrics) if self.metrics is not None else {}

    def to_markdown(self) -> str:
        """The report as Markdown (what ``results.md`` holds)."""
        glob = self.global_metrics()
        per_seq = self.metrics.per_sequence if self.metrics is not None else {}

        def pct(value: float | None) -> str:
            return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}"

        resumed = sum(r.resumed for r in self.sequences)
        lines = [
            f"# Evaluation: {self.dataset}, {self.variant}",
            "",
            f"- weights: {self.weights}",
            f"- device: {self.device}",
            f"- sequences: {len(self.sequences)}"
            + (f" ({resumed} finished by an earlier run)" if resumed else ""),
            f"- speed: {self.fps:.2f} frames/s over {self.frames} propagated frames "
            "(model time per frame: propagate + memory update; the given first frame excluded)",
        ]
        if self.submission is not None:
            lines.append(f"- submission: `{self.submission.name}` (upload it to the evaluation "
                         "server; YouTube-VOS scores are computed there)")
        lines += [f"- note: {note}" for note in self.notes]
        lines += ["", "| J&F | J | F | FPS |", "|---:|---:|---:|---:|",
                  f"| {pct(glob.get('J&F-Mean'))} | {pct(glob.get('J-Mean'))} | "
                  f"{pct(glob.get('F-Mean'))} | {self.fps:.2f} |", ""]
        lines += ["| sequence | objects | frames | FPS | J&F | J | F |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in self.sequences:
            row = per_seq.get(r.name, {})
            lines.append(
                f"| {r.name} | {r.objects} | {r.frames} | {r.fps:.2f} | "
                f"{pct(row.get('J&F-Mean'))} | {pct(row.get('J-Mean'))} | {pct(row.get('F-Mean'))} |"
            )
        return "\n".join(lines) + "\n"


def write_report(report: EvaluationReport) -> dict[str, Path]:
    """Write ``results.md`` and ``results.csv`` into ``report.out`` (and, when DAVIS was scored,
    the official toolkit's ``global_results-<split>.csv`` / ``per-sequence_results-<split>.csv``).

    ``results.csv``: one row per sequence (objects, frames, seconds, fps, J&F/J/F-Mean over its
    objects) and a last row ``ALL`` with the totals and the global means (over all objects).
    """
    out = report.out
    files = {"markdown": out / "results.md", "csv": out / "results.csv"}
    paths.atomic_write_text(files["markdown"], report.to_markdown())
    glob = report.global_metrics()
    per_seq = report.metrics.per_sequence if report.metrics is not None else {}
    header = ["sequence", "objects", "frames", "seconds", "fps", "J&F-Mean", "J-Mean", "F-Mean"]

    def num(value: float | None, digits: int) -> str:
        return "" if value is None or math.isnan(value) else f"{value:.{digits}f}"

    rows = [header]
    for r in report.sequences:
        m = per_seq.get(r.name, {})
        rows.append([r.name, str(r.objects), str(r.frames), num(r.seconds, 3), num(r.fps, 2),
                     num(m.get("J&F-Mean"), 4), num(m.get("J-Mean"), 4), num(m.get("F-Mean"), 4)])
    rows.append(["ALL", str(sum(r.objects for r in report.sequences)), str(report.frames),
                 num(report.seconds, 3), num(report.fps, 2), num(glob.get("J&F-Mean"), 4),
                 num(glob.get("J-Mean"), 4), num(glob.get("F-Mean"), 4)])
    with paths.atomic_write(files["csv"], "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    if report.metrics is not None:
        split = report.dataset.split("-", 1)[-1]
        official = write_tables(report.metrics, out, subset=split)
        files.update({f"official_{k}": v for k, v in official.items() if k != "markdown"})
        # write_tables also writes results-<split>.md; the report's results.md includes it
        files["official_markdown"] = official["markdown"]
    report.tables = files
    return files


# --- resuming -------------------------------------------------------------------------------

def model_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of the model's state dict (names, shapes, dtypes and bytes): which weights ran."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(data.shape)}:{data.dtype};".encode())
        digest.update(data.view(-1).view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def _marker(out: Path, name: str) -> Path:
    return out / PROGRESS_DIR / "done" / f"{name}.json"


def _damage(path: Path, size: tuple[int, int]) -> str | None:
    """What is wrong with a result PNG an earlier run wrote (``None``: nothing): it must be a
    whole palette PNG of the frame size ``(H, W)``, as :func:`~aot_edu.data.write_mask` writes."""
    try:
        with Image.open(path) as image:
            if image.mode != "P":
                return f"is a {image.mode} image, not the palette PNG aot-edu writes"
            if image.size != (size[1], size[0]):
                return (f"is {image.size[0]}x{image.size[1]} (WxH), not the frame size "
                        f"{size[1]}x{size[0]}")
            image.load()  # decodes every pixel: finds a truncated file
    except UnidentifiedImageError:
        return "is not a PNG image"
    except OSError as error:
        return f"could not be read ({error})"
    return None


def _finished(out: Path, sequence: VideoSequence) -> tuple[SequenceRecord | None, str | None]:
    """The record of a sequence an earlier run finished, if its marker and all its PNGs are
    there and whole; else ``(None, why it is redone)`` (``why`` is ``None`` when the sequence
    was simply not finished, or its marker is unreadable)."""
    marker = _marker(out, sequence.name)
    if not marker.is_file():
        return None, None
    paths = [sequence.output_path(out, i) for i in sequence.output_frames]
    if not all(path.is_file() for path in paths):
        return None, None  # PNGs were removed since: redo
    size = frame_sizes_agree(sequence.frame_paths[:1])
    for path in paths:
        problem = _damage(path, size)
        if problem is not None:
            return None, f"result {path} {problem}: sequence {sequence.name} was redone"
    try:
        data = json.loads(marker.read_text())
        return SequenceRecord(**{**data, "resumed": True}), None
    except (ValueError, TypeError):
        return None, None  # unreadable marker: redo the sequence


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_output_folder(out: Path, reader: DAVIS | YouTubeVOS) -> None:
    """Refuse an output folder whose writing could destroy or mix with files that are not ours.

    Result PNGs are ``<out>/<sequence>/<frame>.png``: the very layout of the dataset's
    annotations. An ``out`` equal to, inside, or holding the dataset folder would overwrite the
    ground truth with the predictions (which then score J&F 100). A non-empty folder that no
    earlier run wrote (no ``.aot-edu/run.json``) may hold the user's own files of the same names.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {out} is a file; give a folder (`out`, `--out`) instead")
    check_writable_folder(out, "output folder (`out`, `--out`)")
    target = out.resolve()
    # most specific first, so that the message names the folder at stake
    for what, folder in (("annotation folder", reader.label_root),
                         ("frame folder", reader.image_root), ("folder", reader.root)):
        folder = Path(folder).resolve()
        if _inside(target, folder) or _inside(folder, target):
            where = ("is" if target == folder else
                     "is inside" if _inside(target, folder) else "contains")
            raise ValueError(
                f"output folder {out} {where} the dataset's {what} {folder}: the result PNGs "
                "(<out>/<sequence>/<frame>.png) would overwrite or mix with the dataset's own "
                "files, e.g. its ground-truth annotations. Choose an output folder outside the "
                "dataset (`out`, `--out`), e.g. leave out --out for results/<dataset>-<split>-"
                "<variant>."
            )
    if out.is_dir() and not (out / PROGRESS_DIR / "run.json").is_file():
        entries = [p.name for p in out.iterdir() if p.name not in FILE_BROWSER_FILES]
        if entries:
            raise ValueError(
                f"output folder {out} is not empty ({len(entries)} entries, e.g. "
                f"{', '.join(sorted(entries)[:3])}) and holds no earlier aot-edu results (no "
                f"{PROGRESS_DIR}/run.json); results written there could overwrite your files. "
                "Give a new or empty output folder (`out`, `--out`), or, if these files may go, "
                "remove them first."
            )


def _check_run(out: Path, run: dict, resume: bool) -> None:
    """Refuse to mix results of different runs in one folder; start a new run description."""
    path = out / PROGRESS_DIR / "run.json"
    if resume and path.is_file():
        try:
            before = json.loads(path.read_text())
        except ValueError:
            before = None
        if before != run:
            differ = sorted(k for k in set(run) | set(before or {})
                            if (before or {}).get(k) != run.get(k))
            raise ValueError(
                f"{out} holds results of another run (different {', '.join(differ)}); "
                "resuming would mix them. Choose another output folder, or restart the run "
                "(resume=False, `--restart`) to redo every sequence there."
            )
        return
    done = out / PROGRESS_DIR / "done"
    if done.is_dir():
        for marker in done.glob("*.json"):
            marker.unlink()
    paths.atomic_write_text(path, json.dumps(run, indent=2, sort_keys=True))


# --- ground truth and submission --------------------------------------------------------------

def _davis2016_ground_truth(reader: DAVIS, names: list[str], out: Path) -> Path:
    """The ground-truth folder to score DAVIS 2016 against.

    A DAVIS 2016 download has one object per mask (0/255 PNGs) and is used as it is. The DAVIS
    2017 folder (which the official AOT code evaluates DAVIS 2016 from) has the 2016 sequences
    annotated with several objects: their union is the DAVIS 2016 object, so merged copies are
    written under ``<out>/.aot-edu/davis2016_ground_truth``.
    """
    sequences = [reader.sequence(n) for n in names]
    first = [read_mask(s.annotations[0]) for s in sequences]
    if all(int(np.where(m == VOID_LABEL, 0, m).max()) <= 1 for m in first):
        return reader.label_root
    target = out / PROGRESS_DIR / "davis2016_ground_truth"
    for sequence in sequences:
        for path in sequence.annotations.values():
            merged = target / sequence.name / path.name
            if not merged.is_file():
                labels = read_mask(path)
                write_mask(merged, np.where(labels == VOID_LABEL, VOID_LABEL, labels > 0))
    return target


def pack_submission(out: str | Path, reader: YouTubeVOS, sequences: Iterable[VideoSequence],
                    zip_path: str | Path) -> Path:
    """Zip ``<out>/<video>/<frame>.png`` as ``Annotations/<video>/<frame>.png`` for the frames the
    YouTube-VOS server expects (those listed in ``meta.json``); written atomically."""
    out, zip_path = Path(out), Path(zip_path)
    with paths.atomic_write(zip_path, "wb") as handle, \
            zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for sequence in sequences:
            for index in sequence.output_frames:
                path = sequence.output_path(out, index)
                if not path.is_file():
                    raise FileNotFoundError(f"result {path} is missing; run the evaluation again "
                                            "to finish that video before packing")
                archive.write(path, f"Annotations/{sequence.name}/{path.name}")
    return zip_path


# --- the runner -----------------------------------------------------------------------------

def run_benchmark(
    dataset: str | DAVIS | YouTubeVOS,
    split: str | None,
    model: AOT,
    out: str | Path,
    *,
    data_root: str | Path | None = None,
    sequences: Iterable[str] | None = None,
    long_term_gap: int | None = None,
    max_long_term_frames: int | None = None,
    all_frames: bool = False,
    resume: bool = True,
    metrics: bool = True,
    weights: str | None = None,
    progress: bool = True,
) -> EvaluationReport:
    """Evaluate ``model`` on a benchmark split; results, scores and tables go to ``out``.

    Args:
        dataset: ``davis2017``, ``davis2016``, ``youtubevos2019``, ``youtubevos2018``, or a
            :class:`~aot_edu.data.DAVIS` / :class:`~aot_edu.data.YouTubeVOS` reader.
        split: ``val`` (DAVIS) / ``valid`` (YouTube-VOS); ``None`` = that default. Ignored when
            ``dataset`` is a reader.
        model: an AOT model (:func:`aot_edu.build_model`), on the device to run on.
        out: output folder: ``<out>/<sequence>/<frame>.png``, ``results.md``, ``results.csv``
            (+ the DAVIS toolkit's CSVs, or the YouTube-VOS submission zip).
        data_root: the dataset folder (default: :func:`aot_edu.data.sources.dataset_folder`).
        sequences: names to run (default: the whole split).
        long_term_gap, max_long_term_frames: memory settings (default: the variant's official).
        all_frames: YouTube-VOS: run on every frame (``valid_all_frames``), output the listed ones.
        resume: skip sequences an earlier run with the same settings finished (``False``: redo).
        metrics: compute J&F when the split has ground truth (DAVIS train/val).
        weights: how to name the weights in the report (e.g. the checkpoint path).
        progress: tqdm progress bar over frames.
    """
    reader = dataset if isinstance(dataset, (DAVIS, YouTubeVOS)) else open_dataset(
        dataset, split, data_root, all_frames)
    names = list(reader.names) if sequences is None else (
        [sequences] if isinstance(sequences, str) else list(sequences))
    unknown = [n for n in names if n not in reader.names]
    if unknown:
        raise ValueError(f"{reader.tag} has no sequence(s) {unknown[:5]}; e.g. {reader.names[:5]}")
    if not names:
        raise ValueError("no sequences to evaluate")
    seqs = [reader.sequence(n) for n in names]
    without = [s for s in seqs if not s.has_frames]
    if without:
        raise FileNotFoundError(
            f"{len(without)} of {len(seqs)} sequences have no frame images in {reader.root} "
            f"(e.g. {', '.join(s.name for s in without[:3])}); evaluate the others with "
            "sequences=[...] (`--sequences`), or, for the full dataset, "
            f"{without[0].download_hint}"
        )
    out = Path(out)
    check_output_folder(out, reader)
    out.mkdir(parents=True, exist_ok=True)
    fingerprint = model_fingerprint(model)
    config = model.config
    gap = config.long_term_gap_test if long_term_gap is None else int(long_term_gap)
    _check_run(out, {"dataset": reader.tag, "variant": config.name, "weights_sha256": fingerprint,
                     "long_term_gap": gap, "max_long_term_frames": max_long_term_frames}, resume)
    device = next(model.parameters()).device
    finished, redone = {}, []
    for sequence in seqs:
        finished[sequence.name], why = _finished(out, sequence)
        if why is not None:
            redone.append(why)
    todo = [s for s in seqs if finished[s.name] is None]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(s.num_frames for s in todo), desc=f"eval {reader.tag}", unit="frame")
    records = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for sequence in seqs:
                if finished[sequence.name] is not None:
                    records.append(finished[sequence.name])
                    continue
                outputs = set(sequence.output_frames)
                timed, seconds = 0, 0.0
                for pred in predict_sequence(sequence, model, long_term_gap=gap,
                                             max_long_term_frames=max_long_term_frames):
                    if pred.index in outputs:
                        sequence.save_prediction(out, pred.index, pred.labels)
                    if pred.seconds is not None:
                        timed, seconds = timed + 1, seconds + pred.seconds
                    if bar is not None:
                        bar.update()
                        if seconds > 0:
                            bar.set_postfix(seq=sequence.name, fps=f"{timed / seconds:.2f}")
                record = SequenceRecord(sequence.name, sequence.num_objects, timed, seconds,
                                        len(outputs))
                # written after the last PNG: a sequence without marker is redone next time
                fields = {k: v for k, v in asdict(record).items() if k != "resumed"}
                paths.atomic_write_text(_marker(out, sequence.name), json.dumps(fields))
                records.append(record)
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()

    report = EvaluationReport(
        dataset=reader.tag, variant=config.title, device=str(device), out=out, sequences=records,
        weights=weights or f"weights sha256 {fingerprint[:12]}", notes=redone,
    )
    if isinstance(reader, DAVIS):
        dense = all(len(s.annotations) == s.num_frames for s in seqs)
        if metrics and dense:
            gt_root = (_davis2016_ground_truth(reader, names, out) if reader.year == 2016
                       else reader.label_root)
            report.metrics = score_results_folder(gt_root, out, sequences=names, progress=progress)
        elif metrics:
            report.notes.append(f"{reader.tag} has no ground truth for every frame: J&F is "
                                "computed by the challenge server")
    else:
        report.submission = pack_submission(out, reader, seqs, out / f"{reader.tag}_submission.zip")
        if sequences is not None and len(names) < len(reader.names):
            report.notes.append(f"the zip holds {len(names)} of {len(reader.names)} videos; the "
                                "server expects all of them")
    write_report(report)
    return report
