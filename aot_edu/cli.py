"""The ``aot-edu`` command line: it parses arguments and hands them to the package's functions.

Each subcommand is registered by one ``_add_<command>`` function listed in :data:`COMMANDS`;
it adds its parser and sets ``handler`` to a function taking the parsed arguments. The work
itself lives in the modules (``download``, ``checkpoints``, ...), never here, so everything the
command does is also one function call away in a notebook.

    aot-edu download list
    aot-edu download checkpoint aotl [--stage PRE_YTB_DAV] [--dir DIR]
    aot-edu download dataset davis2017 [--part trainval] [--dir DIR]
    aot-edu segment --frames DIR --mask FIRST.png --out DIR (--weights PATH | --official) [--variant aotl]
    aot-edu eval --dataset davis2017 [--split val] (--weights PATH | --official) [--variant aotl] [--out DIR]
    aot-edu train --config configs/quick_cpu.toml [--set optim.steps=100 ...]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__

# --- download ------------------------------------------------------------------------------

def _download_checkpoint(args: argparse.Namespace) -> int:
    from .checkpoints import download_checkpoint

    path = download_checkpoint(args.variant, args.stage, args.dir,
                               allow_unsupported=args.allow_unsupported,
                               progress=not args.quiet)
    print(path)
    return 0


def _download_dataset(args: argparse.Namespace) -> int:
    from .download import download_dataset

    path = download_dataset(args.name, args.dir, parts=args.part or None,
                            keep_archive=not args.remove_archive, progress=not args.quiet)
    print(path)
    return 0


def _download_list(args: argparse.Namespace) -> int:
    from .checkpoints import describe_checkpoints
    from .course import get_settings
    from .download import describe_datasets

    settings = get_settings()
    print(f"Official AOT checkpoints (saved in {settings.checkpoint_dir}; set "
          "AOT_EDU_CHECKPOINTS or --dir to change):")
    print(describe_checkpoints())
    print(f"\nDatasets (saved in {settings.data_dir}; set AOT_EDU_DATA or --dir to change):")
    print(describe_datasets())
    return 0


def _add_download(subparsers) -> None:
    from .checkpoints import STAGES, VARIANTS
    from .download import DATASETS

    parser = subparsers.add_parser(
        "download", help="fetch official checkpoints and datasets (resumable, verified)",
        description="Fetch official AOT checkpoints and evaluation datasets. Downloads resume "
                    "after an interruption and are verified before they are kept.")
    what = parser.add_subparsers(dest="what", required=True, metavar="{checkpoint,dataset,list}")

    ckpt = what.add_parser("checkpoint", help="an official AOT checkpoint (Google Drive)")
    ckpt.add_argument("variant", choices=VARIANTS)
    ckpt.add_argument("--stage", default="PRE_YTB_DAV", choices=STAGES,
                      help="PRE_YTB_DAV: the final model (default); PRE: after pre-training "
                           "on static images")
    ckpt.add_argument("--dir", default=None,
                      help="folder to save in (default: $AOT_EDU_CHECKPOINTS, else checkpoints/ "
                           "in the project)")
    ckpt.add_argument("--allow-unsupported", action="store_true",
                      help="download a model aot-edu does not build (Swin-B)")
    ckpt.add_argument("--quiet", action="store_true", help="no progress bar")
    ckpt.set_defaults(handler=_download_checkpoint)

    data = what.add_parser("dataset", help="an evaluation dataset (official sources)")
    data.add_argument("name", choices=[s.name for s in DATASETS])
    data.add_argument("--part", action="append", default=None,
                      help="archive to fetch, repeatable (default: what evaluation needs; "
                           "`aot-edu download list` shows the parts)")
    data.add_argument("--dir", default=None,
                      help="data root (default: $AOT_EDU_DATA, else data/ in the project)")
    data.add_argument("--remove-archive", action="store_true",
                      help="delete each zip after it is unpacked")
    data.add_argument("--quiet", action="store_true", help="no progress bars")
    data.set_defaults(handler=_download_dataset)

    listing = what.add_parser("list", help="show what can be downloaded and where it goes")
    listing.set_defaults(handler=_download_list)


# --- segment -------------------------------------------------------------------------------

def _segment(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from .checkpoints import download_checkpoint
    from .data import list_frames, read_frames, read_mask, write_mask
    from .engine import segment
    from .model import build_model

    if args.weights is None and not args.official:
        raise ValueError("give --weights PATH (a checkpoint) or --official (download the "
                         f"official {args.variant} checkpoint); random weights segment nothing")
    paths = list_frames(args.frames)
    if not paths:
        raise ValueError(f"no .jpg/.png frames in {args.frames}")
    weights = args.weights or download_checkpoint(args.variant, progress=not args.quiet)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args.variant, weights=weights, device=device)
    result = segment(read_frames(paths), read_mask(args.mask).astype("int64"), model,
                     long_term_gap=args.long_term_gap, progress=not args.quiet)
    out = Path(args.out)
    for path, mask in zip(paths, result.masks, strict=True):
        write_mask(out / f"{path.stem}.png", mask)
    print(f"wrote {len(paths)} masks ({len(result.labels)} objects) to {out}")
    return 0


def _add_segment(subparsers) -> None:
    from .model import VARIANTS

    parser = subparsers.add_parser(
        "segment", help="segment the objects of a first-frame mask through a folder of frames",
        description="Semi-supervised video object segmentation of your own video: a folder of "
                    "frames (sorted by name) and the mask of the first frame (a palette or "
                    "grayscale PNG whose values are object labels). Writes one palette PNG per "
                    "frame, same names, same label values.")
    parser.add_argument("--frames", required=True, help="folder of .jpg/.png frames")
    parser.add_argument("--mask", required=True, help="label PNG of the first frame")
    parser.add_argument("--out", required=True, help="folder for the predicted masks")
    parser.add_argument("--variant", default="aotl", choices=list(VARIANTS))
    parser.add_argument("--weights", default=None, help="checkpoint file of that variant")
    parser.add_argument("--official", action="store_true",
                        help="download (once) and use the official checkpoint of the variant")
    parser.add_argument("--long-term-gap", type=int, default=None,
                        help="frames between long-term memory updates (default: the variant's)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_segment)


# --- eval ----------------------------------------------------------------------------------

def _eval(args: argparse.Namespace) -> int:
    import torch

    from .checkpoints import download_checkpoint
    from .course import get_settings
    from .evaluate import BENCHMARKS, evaluate
    from .model import build_model

    if args.weights is None and not args.official:
        raise ValueError("give --weights PATH (a checkpoint) or --official (download the "
                         f"official {args.variant} checkpoint); random weights segment nothing")
    split = args.split or BENCHMARKS[args.dataset].default_split
    out = args.out or get_settings().root / "results" / f"{args.dataset}-{split}-{args.variant}"
    weights = args.weights or download_checkpoint(args.variant, progress=not args.quiet)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model(args.variant, weights=weights, device=device)
    report = evaluate(
        args.dataset, split, model, out, data_root=args.data_root, sequences=args.sequences,
        long_term_gap=args.long_term_gap, all_frames=args.all_frames, resume=not args.restart,
        metrics=not args.no_metrics, weights=str(weights), progress=not args.quiet,
    )
    glob = report.global_metrics()
    score = (f"J&F {100 * glob['J&F-Mean']:.1f} (J {100 * glob['J-Mean']:.1f}, "
             f"F {100 * glob['F-Mean']:.1f}), " if glob else "")
    print(f"{report.dataset}: {len(report.sequences)} sequences, {score}"
          f"{report.fps:.2f} frames/s on {report.device}")
    if report.submission is not None:
        print(f"submission: {report.submission}")
    print(f"tables: {report.tables['markdown']}, {report.tables['csv']}")
    return 0


def _add_eval(subparsers) -> None:
    from .evaluate import BENCHMARKS
    from .model import VARIANTS

    parser = subparsers.add_parser(
        "eval", help="evaluate a model on DAVIS or YouTube-VOS (results, J&F, FPS; resumable)",
        description="Run AOT over a benchmark split as the official evaluator does; write the "
                    "result PNGs (<out>/<sequence>/<frame>.png), J&F (DAVIS) or the submission "
                    "zip (YouTube-VOS), the speed, and results.md / results.csv. Run the same "
                    "command again after an interruption: finished sequences are skipped.")
    parser.add_argument("--dataset", required=True, choices=list(BENCHMARKS))
    parser.add_argument("--split", default=None,
                        help="val (DAVIS, default) or valid (YouTube-VOS, default)")
    parser.add_argument("--variant", default="aotl", choices=list(VARIANTS))
    parser.add_argument("--weights", default=None, help="checkpoint file of that variant")
    parser.add_argument("--official", action="store_true",
                        help="download (once) and use the official checkpoint of the variant")
    parser.add_argument("--out", default=None,
                        help="output folder (default: results/<dataset>-<split>-<variant>)")
    parser.add_argument("--data-root", default=None,
                        help="dataset folder (default: where `aot-edu download dataset` puts it, "
                             "under $AOT_EDU_DATA or data/)")
    parser.add_argument("--sequences", nargs="+", default=None, help="only these sequences")
    parser.add_argument("--long-term-gap", type=int, default=None,
                        help="frames between long-term memory updates (default: the variant's)")
    parser.add_argument("--all-frames", action="store_true",
                        help="YouTube-VOS: run on every frame (valid_all_frames)")
    parser.add_argument("--restart", action="store_true",
                        help="redo every sequence instead of resuming")
    parser.add_argument("--no-metrics", action="store_true", help="write results only, no J&F")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_eval)


# --- train ---------------------------------------------------------------------------------

def _train(args: argparse.Namespace) -> int:
    from .train import train

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
    parser.set_defaults(handler=_train)


# A new command adds its ``_add_<command>`` here.
COMMANDS: list[Callable[..., None]] = [_add_download, _add_segment, _add_eval, _add_train]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aot-edu",
        description="aot-edu: Associating Objects with Transformers (AOT), reproduced for "
                    "learning.")
    parser.add_argument("--version", action="version", version=f"aot-edu {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aot-edu`` console script; returns the exit status."""
    from .checkpoints import CheckpointError
    from .download import DownloadError

    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (DownloadError, CheckpointError, ValueError, FileNotFoundError) as error:
        print(f"aot-edu: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aot-edu: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
