"""The ``aot-edu`` command line: it parses arguments and hands them to the package's functions.

Each subcommand is registered by one ``_add_<command>`` function listed in :data:`COMMANDS`;
it adds its parser and sets ``handler`` to a function taking the parsed arguments. The work
itself lives in the layers below (``aot_edu.model``, ``aot_edu.data``, ``aot_edu.evaluation``,
``aot_edu.training``, ``aot_edu.video``), never here, so everything the command does is also one
function call away in a notebook.

Start-up: building the parser reads only plain-data registries (variant names, the model zoo,
the dataset registry), so ``aot-edu --help`` does not import torch. The modules that need torch
are imported inside the handler that uses them, after parsing - for start-up time only: the
layer contract (``make lint``) allows this module to import every layer at the top.

    aot-edu download list
    aot-edu download checkpoint aotl [--stage PRE_YTB_DAV] [--dir DIR]
    aot-edu download dataset davis2017 [--part trainval] [--dir DIR]
    aot-edu segment (--video FILE | --frames DIR) --mask [FRAME:]PATH ... [--out DIR] [--overlay FILE]
                    (--weights PATH | --official) [--variant aotl] [--start S] [--end E] [--every N]
                    [--fps F] [--overwrite] [--max-long-term-frames N|none]
    aot-edu eval --dataset davis2017 [--split val] (--weights PATH | --official) [--variant aotl] [--out DIR]
    aot-edu train --config configs/course.toml [--set optim.steps=100 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from aot_edu import __version__, paths
from aot_edu.data import sources
from aot_edu.download import DownloadError
from aot_edu.model import zoo
from aot_edu.model.variants import LONG_VIDEO_MEMORY, VARIANTS

# --- download ------------------------------------------------------------------------------

def _download_checkpoint(args: argparse.Namespace) -> int:
    from aot_edu.model.weights import download_checkpoint  # torch: imported when used

    path = download_checkpoint(args.variant, args.stage, args.dir,
                               allow_unsupported=args.allow_unsupported,
                               progress=not args.quiet)
    print(path)
    return 0


def _download_dataset(args: argparse.Namespace) -> int:
    path = sources.download_dataset(args.name, args.dir, parts=args.part or None,
                            keep_archive=not args.remove_archive, progress=not args.quiet)
    print(path)
    return 0


def _download_list(args: argparse.Namespace) -> int:
    print(f"Official AOT checkpoints (saved in {paths.checkpoint_dir()}; set "
          "AOT_EDU_CHECKPOINTS or --dir to change):")
    print(zoo.describe_checkpoints())
    print(f"\nDatasets (saved in {paths.data_dir()}; set AOT_EDU_DATA or --dir to change):")
    print(sources.describe_datasets())
    return 0


def _add_download(subparsers) -> None:

    parser = subparsers.add_parser(
        "download", help="fetch official checkpoints and datasets (resumable, verified)",
        description="Fetch official AOT checkpoints and evaluation datasets. Downloads resume "
                    "after an interruption and are verified before they are kept.")
    what = parser.add_subparsers(dest="what", required=True, metavar="{checkpoint,dataset,list}")

    ckpt = what.add_parser("checkpoint", help="an official AOT checkpoint (Google Drive)")
    ckpt.add_argument("variant", choices=zoo.VARIANTS)
    ckpt.add_argument("--stage", default="PRE_YTB_DAV", choices=zoo.STAGES,
                      help="PRE_YTB_DAV: the final model (default); PRE: after pre-training "
                           "on static images")
    ckpt.add_argument("--dir", default=None,
                      help="folder to save in (default: $AOT_EDU_CHECKPOINTS, else checkpoints/ "
                           "in the project)")
    ckpt.add_argument("--allow-unsupported", action="store_true",
                      help="download a model aot-edu does not build (Swin-B)")
    ckpt.add_argument("--quiet", action="store_true", help="no progress bar")
    ckpt.set_defaults(handler=_download_checkpoint,
                      interrupted="run the same command again to resume the download")

    data = what.add_parser("dataset", help="an evaluation dataset (official sources)")
    data.add_argument("name", choices=[s.name for s in sources.downloadable_datasets()])
    data.add_argument("--part", action="append", default=None,
                      help="archive to fetch, repeatable (default: what evaluation needs; "
                           "`aot-edu download list` shows the parts)")
    data.add_argument("--dir", default=None,
                      help="data root (default: $AOT_EDU_DATA, else data/ in the project)")
    data.add_argument("--remove-archive", action="store_true",
                      help="delete each zip after it is unpacked")
    data.add_argument("--quiet", action="store_true", help="no progress bars")
    data.set_defaults(handler=_download_dataset,
                      interrupted="run the same command again to resume the download")

    listing = what.add_parser("list", help="show what can be downloaded and where it goes")
    listing.set_defaults(handler=_download_list)


# --- shared options ----------------------------------------------------------------------

def _checkpoint_path(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError(
            "an empty path; give the checkpoint file, or use --official for the official one")
    return value


def _add_weights_options(parser: argparse.ArgumentParser) -> None:
    """--weights PATH and --official, which exclude each other."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--weights", default=None, type=_checkpoint_path,
                       help="checkpoint file of that variant")
    group.add_argument("--official", action="store_true",
                       help="download (once) and use the official checkpoint of the variant")


def _require_weights(args: argparse.Namespace) -> None:
    if args.weights is None and not args.official:
        raise ValueError("give --weights PATH (a checkpoint) or --official (download the "
                         f"official {args.variant} checkpoint); random weights segment nothing")


def resolve_device(name: str | None) -> str:
    """``--device``: ``None`` -> cuda when present, else cpu; anything else is checked here,
    so that a wrong name or a missing GPU is a one-line message before any work starts."""
    import torch

    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {name!r} is not a device name; use cpu, cuda or cuda:N "
                         "(or leave --device out: cuda when present, else cpu)") from None
    if device.type == "cpu":
        return "cpu"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available here (no NVIDIA GPU or "
                             "driver, or a CPU-only PyTorch build); use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s), "
                             f"cuda:0..cuda:{count - 1}")
        return str(device)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"--device {name}: Apple's MPS backend is not available here; "
                             "use --device cpu")
        return "mps"
    raise ValueError(f"--device {name}: aot-edu runs on cpu or cuda (mps on Apple silicon)")


# --- segment -------------------------------------------------------------------------------

def _mask_option(value: str) -> tuple[int | None, str]:
    """``--mask [FRAME:]PATH``: ``48:newcomer.png`` is frame 48's mask; a bare path is the
    first segmented frame's."""
    head, sep, tail = value.partition(":")
    if sep and head.strip().isdigit():
        if not tail.strip():
            raise argparse.ArgumentTypeError(f"{value!r}: give a file after the frame number, "
                                             "e.g. 48:newcomer.png")
        return int(head), tail
    if not value.strip():
        raise argparse.ArgumentTypeError("an empty path; give a mask PNG, e.g. first.png or "
                                         "48:newcomer.png")
    return None, value


def _long_term_bound(value: str) -> int | str | None:
    """``--max-long-term-frames``: N >= 1, ``none`` (unbounded) or ``auto`` (the default)."""
    if value.strip().lower() in ("none", "auto"):
        return None if value.strip().lower() == "none" else "auto"
    try:
        return _positive_int(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1 or 'none' "
                                         "(unbounded)") from None


def _fps(value: str) -> float:
    try:
        fps = float(value)
    except ValueError:
        fps = 0.0
    if not 0 < fps < 1000:
        raise argparse.ArgumentTypeError(f"{value!r} is not a frame rate (frames per second, "
                                         "e.g. 25 or 29.97)")
    return fps


def _segment(args: argparse.Namespace) -> int:
    # torch: imported when used
    from aot_edu.model.weights import build_model, download_checkpoint
    from aot_edu.video import log_to_stderr, plan_video

    _require_weights(args)
    masks: dict[int | None, str] = {}
    for frame, path in args.mask:
        if frame in masks:
            which = "the first frame" if frame is None else f"frame {frame}"
            raise ValueError(f"two masks for {which} ({masks[frame]} and {path}); give one "
                             "(later masks as --mask FRAME:PATH)")
        masks[frame] = path
    # Everything the user gave is checked before any download, model or frame decoding.
    job = plan_video(args.video or args.frames, masks, out=args.out, overlay=args.overlay,
                     start=args.start, end=args.end, every=args.every, fps=args.fps,
                     overwrite=args.overwrite, option_prefix="--")
    device = resolve_device(args.device)
    weights = args.weights or download_checkpoint(args.variant, progress=not args.quiet)
    model = build_model(args.variant, weights=weights, device=device)

    expected = job.expected_frames()
    of = f" of {expected}" if expected else ""
    try:
        result = job.run(model, long_term_gap=args.long_term_gap,
                         max_long_term_frames=args.max_long_term_frames,
                         progress=not args.quiet, log=log_to_stderr)
    except KeyboardInterrupt:
        written = (f"writing {job.written}{of} masks to {job.out}" if job.out is not None
                   else f"{job.overlay_frames}{of} frames")
        overlay = (f"; {job.overlay} holds the {job.overlay_frames} frames segmented"
                   if job.overlay is not None and job.out is not None else "")
        print(f"aot-edu: interrupted after {written}{overlay}. AOT needs the memory of every "
              "earlier frame, so a rerun starts again from the first frame: run the same "
              "command with --overwrite.", file=sys.stderr)
        return 130
    except BaseException:
        if job.written and not job.told_kept:
            print(f"aot-edu: {job.written}{of} masks were written to {job.out} before the "
                  "error below", file=sys.stderr)
        raise
    objects = len(result.entry_frames)
    wrote = []
    if result.out is not None:
        wrote.append(f"wrote {result.masks_written} mask{'' if result.masks_written == 1 else 's'} "
                     f"({objects} object{'' if objects == 1 else 's'}) to {result.out}")
    if result.overlay is not None:
        wrote.append(f"overlay {result.overlay} ({result.frames} frame"
                     f"{'' if result.frames == 1 else 's'}"
                     f"{'' if result.out is not None else f', {objects} object' + ('' if objects == 1 else 's')})")
    print("; ".join(wrote))
    later = {}
    for label, frame in result.entry_frames.items():
        later.setdefault(frame, []).append(label)
    if len(later) > 1:
        print("objects by first mask: " + "; ".join(
            f"{', '.join(map(str, labels))} from frame {frame}" for frame, labels in sorted(later.items())))
    return 0


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number >= 1")
    return number


def _add_memory_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--long-term-gap", type=_positive_int, default=None,
                        help="frames between long-term memory updates (default: the variant's)")
    parser.add_argument("--max-long-term-frames", type=_positive_int, default=None,
                        help="bound the long-term memory to this many frames, the first frame "
                             "included (default: unbounded, as the official code; AOT-L's "
                             "memory grows by a frame every 5 and fills GPU memory on long "
                             "videos)")


def _add_segment(subparsers) -> None:
    parser = subparsers.add_parser(
        "segment", help="segment the objects of your masks through a video file or frame folder",
        description="Semi-supervised video object segmentation of your own video: a video file "
                    "(decoded frame by frame: .mp4 .mov .webm .avi .mkv ...) or a folder of "
                    "frames (natural order: frame2 before frame10; hidden files skipped), and "
                    "the mask of the first frame (a palette or grayscale PNG whose values are "
                    "object labels; not JPEG, not anti-aliased), with more masks for objects "
                    "that appear later. Writes one palette PNG per frame (--out) and/or a video "
                    "of the frames with the masks painted on (--overlay), each frame as soon as "
                    "it is predicted; memory does not grow with the video.",
        epilog="Frame numbers count from 0 at the start of the file (for a folder: positions "
               "in it); times are seconds (4.5s) or minutes:seconds (1:02.5). Example: "
               "aot-edu segment --video clip.mp4 --mask 0:first.png --mask 48:newcomer.png "
               "--overlay clip_aot.mp4 --official")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--video", help="a video file (PyAV decodes it: nothing to install)")
    source.add_argument("--frames", help="a folder of .jpg/.png frames")
    parser.add_argument("--mask", required=True, action="append", type=_mask_option,
                        metavar="[FRAME:]PATH",
                        help="label PNG of the first frame segmented; repeat as FRAME:PATH for "
                             "objects that appear later (e.g. --mask 0:first.png --mask "
                             "48:newcomer.png): their labels are tracked from that frame on")
    parser.add_argument("--out", default=None,
                        help="folder for the predicted mask PNGs (not the frames' or a mask's)")
    parser.add_argument("--overlay", default=None, metavar="FILE",
                        help="write the frames with coloured, outlined masks and a legend of "
                             "object ids: .mp4, .webm, .mov, .mkv, or .gif (short clips)")
    parser.add_argument("--start", default=None,
                        help="first frame to segment: a frame number (120) or a time (4.5s, "
                             "1:02.5); default: the first")
    parser.add_argument("--end", default=None,
                        help="stop before this frame number or time (exclusive); default: the end")
    parser.add_argument("--every", type=_positive_int, default=1, metavar="N",
                        help="segment every N-th frame from --start (default 1: all)")
    parser.add_argument("--fps", type=_fps, default=None,
                        help="frame rate of the overlay (default: the video's own timing; "
                             "a frame folder: 24)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace masks or an overlay left by an earlier run (otherwise "
                             "refused; the inputs are never overwritten)")
    parser.add_argument("--variant", default="aotl", choices=list(VARIANTS))
    _add_weights_options(parser)
    parser.add_argument("--long-term-gap", type=_positive_int, default=None,
                        help="frames between long-term memory updates (default: the variant's)")
    parser.add_argument("--max-long-term-frames", type=_long_term_bound, default="auto",
                        metavar="N",
                        help=f"bound the long-term memory to N frames, the first included; "
                             f"'none': unbounded, as the official code. Default: "
                             f"{LONG_VIDEO_MEMORY} when the video is long enough for the memory "
                             f"to grow past it (AOT-L adds a frame every 5), which the output "
                             "states; else unbounded")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_segment, interrupted="no mask was written yet")


# --- eval ----------------------------------------------------------------------------------

def _eval(args: argparse.Namespace) -> int:
    # torch: imported when used
    from aot_edu.data.datasets import open_dataset
    from aot_edu.evaluation.benchmark import check_output_folder, run_benchmark
    from aot_edu.model.weights import build_model, download_checkpoint

    _require_weights(args)
    split = args.split or sources.get_dataset(args.dataset).eval_split
    out = Path(args.out or paths.results_dir() / f"{args.dataset}-{split}-{args.variant}")
    device = resolve_device(args.device)
    # the dataset and the output folder are checked before a checkpoint is downloaded
    reader = open_dataset(args.dataset, split, args.data_root, args.all_frames)
    check_output_folder(out, reader)
    weights = args.weights or download_checkpoint(args.variant, progress=not args.quiet)
    model = build_model(args.variant, weights=weights, device=device)
    report = run_benchmark(
        reader, split, model, out, sequences=args.sequences,
        long_term_gap=args.long_term_gap, max_long_term_frames=args.max_long_term_frames,
        all_frames=args.all_frames, resume=not args.restart,
        metrics=not args.no_metrics, weights=str(weights), progress=not args.quiet,
    )
    glob = report.global_metrics()
    score = (f"J&F {100 * glob['J&F-Mean']:.1f} (J {100 * glob['J-Mean']:.1f}, "
             f"F {100 * glob['F-Mean']:.1f}), " if glob else "")
    print(f"{report.dataset}: {len(report.sequences)} sequences, {score}"
          f"{report.fps:.2f} frames/s on {report.device}")
    for note in report.notes:
        print(f"note: {note}")
    if report.submission is not None:
        print(f"submission: {report.submission}")
    print(f"tables: {report.tables['markdown']}, {report.tables['csv']}")
    return 0


def _add_eval(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate a model on DAVIS or YouTube-VOS (results, J&F, FPS; resumable)",
        description="Run AOT over a benchmark split as the official evaluator does; write the "
                    "result PNGs (<out>/<sequence>/<frame>.png), J&F (DAVIS) or the submission "
                    "zip (YouTube-VOS), the speed, and results.md / results.csv. Run the same "
                    "command again after an interruption: finished sequences are skipped.")
    parser.add_argument("--dataset", required=True, choices=[s.name for s in sources.DATASETS])
    parser.add_argument("--split", default=None,
                        help="val (DAVIS, default) or valid (YouTube-VOS, default)")
    parser.add_argument("--variant", default="aotl", choices=list(VARIANTS))
    _add_weights_options(parser)
    parser.add_argument("--out", default=None,
                        help="output folder (default: results/<dataset>-<split>-<variant>)")
    parser.add_argument("--data-root", default=None,
                        help="dataset folder (default: where `aot-edu download dataset` puts it, "
                             "under $AOT_EDU_DATA or data/)")
    parser.add_argument("--sequences", nargs="+", default=None, help="only these sequences")
    _add_memory_options(parser)
    parser.add_argument("--all-frames", action="store_true",
                        help="YouTube-VOS: run on every frame (valid_all_frames)")
    parser.add_argument("--restart", action="store_true",
                        help="redo every sequence instead of resuming")
    parser.add_argument("--no-metrics", action="store_true", help="write results only, no J&F")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_eval, interrupted="run the same command again to resume: "
                                                   "finished sequences are skipped")


# --- train ---------------------------------------------------------------------------------

def _train(args: argparse.Namespace) -> int:
    from aot_edu.training import train  # torch: imported when used

    result = train(args.config, args.set, progress=False if args.quiet else None)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {result.run_dir}  (steps: {result.step}, training time: "
              f"{result.train_time / 60:.1f} min)")
        if result.metrics:
            scores = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()
                               if k in ("J&F", "J", "F"))
            print(f"held-out: {scores}")
        print(f"EMA weights: {result.weights}")
    return 0


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train AOT from a TOML config (resumes where a run stopped)",
        description="Train AOT with the paper's recipe. Configs are TOML files (see configs/); "
                    "running the same command again resumes from the last checkpoint. Under "
                    "torchrun the batch is split over the processes (DDP).")
    parser.add_argument("--config", required=True, help="the run's TOML file")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (TOML syntax), e.g. --set optim.steps=100; "
                             "repeatable")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_train, interrupted="run the same command again to resume from "
                                                    "the last saved checkpoint")


# A new command adds its ``_add_<command>`` here.
COMMANDS: list[Callable[..., None]] = [_add_download, _add_segment, _add_eval, _add_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aot-edu",
        description="aot-edu: Associating Objects with Transformers (AOT), reproduced for "
                    "learning.",
        epilog="Errors in what you gave (files, options, downloads) are reported in one line; "
               "--debug (or AOT_EDU_DEBUG=1) shows their traceback. Unexpected errors always "
               "show it: please report them.")
    parser.add_argument("--version", action="version", version=f"aot-edu {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of every error")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aot-edu`` console script; returns the exit status.

    Expected errors (bad input, missing files, failed downloads, wrong checkpoints) become
    one-line messages; any other exception keeps its traceback, as do all with ``--debug`` or
    ``AOT_EDU_DEBUG=1``.
    """

    args = build_parser().parse_args(argv)
    debug = args.debug or os.environ.get("AOT_EDU_DEBUG", "") not in ("", "0")
    try:
        return int(args.handler(args) or 0)
    except (DownloadError, zoo.CheckpointError, ValueError, OSError) as error:
        if debug:
            raise
        print(f"aot-edu: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = getattr(args, "interrupted", None)
        print(f"aot-edu: interrupted{'; ' + hint if hint else ''}.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
