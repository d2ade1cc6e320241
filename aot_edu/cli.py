"""The ``aot-edu`` command line: it parses arguments and hands them to the package's functions.

Each subcommand is registered by one ``_add_<command>`` function listed in :data:`COMMANDS`;
it adds its parser and sets ``handler`` to a function taking the parsed arguments. The work
itself lives in the modules (``download``, ``checkpoints``, ...), never here, so everything the
command does is also one function call away in a notebook.

    aot-edu download list
    aot-edu download checkpoint aotl [--stage PRE_YTB_DAV] [--dir DIR]
    aot-edu download dataset davis2017 [--part trainval] [--dir DIR]
    aot-edu segment --frames DIR --mask FIRST.png --out DIR (--weights PATH | --official) [--variant aotl]
"""

from __future__ import annotations

import argparse
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


# Other commands (eval, train) add their own ``_add_<command>`` here.
COMMANDS: list[Callable[..., None]] = [_add_download, _add_segment]


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
    except (DownloadError, CheckpointError, ValueError) as error:
        print(f"aot-edu: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aot-edu: interrupted; run the same command again to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
