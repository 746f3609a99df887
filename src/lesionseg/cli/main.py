"""The ``lesionseg`` console script: one subcommand per pipeline stage.

Each command module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed arguments and returning an exit code. User mistakes (LesionsegError) print one
line to stderr and exit with 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lesionseg import __version__
from lesionseg.errors import LesionsegError

# Order is the order of `lesionseg --help`: the pipeline from data to report.
COMMAND_MODULES = [
    "demo",
    "phantom",
    "dataset",
    "preprocess",
    "train",
    "cv",
    "predict",
    "segment",
    "evaluate",
    "report",
    "export",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lesionseg",
        description="Brain-lesion segmentation in MRI: TS-CNN, class-balanced PixelNet, WMH U-Net ensemble.",
    )
    parser.add_argument("--version", action="version", version=f"lesionseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"lesionseg.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"lesionseg.cli.{name}":
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LesionsegError as exc:
        print(f"lesionseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lesionseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly (Python docs' recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
