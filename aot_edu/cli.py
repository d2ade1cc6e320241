"""The ``aot-edu`` command line: it parses arguments and hands them to the package's functions.

Each subcommand is registered by one ``_add_<command>`` function listed in :data:`COMMANDS`;
it adds its parser and sets ``handler`` to a function taking the parsed arguments. The work
itself lives in the modules (``download``, ``checkpoints``, ...), never here, so everything the
command does is also one function call away in a notebook.

    aot-edu download list
    aot-edu download checkpoint aotl [--stage PRE_YTB_DAV] [--dir DIR]
    aot-edu download dataset davis2017 [--part trainval] [--dir DIR]
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


# Other commands (segment, eval, train) add their own ``_add_<command>`` here.
COMMANDS: list[Callable[..., None]] = [_add_download]


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
