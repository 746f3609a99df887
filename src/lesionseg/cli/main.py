"""The ``lesionseg`` console script: one subcommand per pipeline stage.

Each command module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
function taking the parsed arguments and returning an exit code. User mistakes (LesionsegError) and system
faults (OSError: permission, disk full, not a directory; MemoryError) print one line to stderr and exit
with 2, removing the output folder when the command created it and it holds no checkpoint; Ctrl-C exits
130 and SIGTERM 143, removing temporary files on the way; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

from lesionseg import __version__
from lesionseg.cli.parsing import EXIT_CODES, Parser
from lesionseg.errors import LesionsegError, os_error_line

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
    "compare",
    "evaluate",
    "report",
    "export",
]


def remove_unfinished(folder: Path | None) -> None:
    """After a user error or a system fault, the output folder this command created (it did not exist
    before) goes again, so that nothing half-written is left; one that holds a checkpoint stays (a long
    run resumes from it). Interrupts keep everything (``--resume``)."""
    if folder is not None and folder.is_dir() and not any(folder.rglob("*.pt")):
        shutil.rmtree(folder, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(  # its help formatter (defaults shown) and class pass to every subcommand's parser
        prog="lesionseg",
        epilog=EXIT_CODES,
        description="Brain-lesion segmentation in MRI: TS-CNN, class-balanced PixelNet, WMH U-Net ensemble.",
    )
    parser.add_argument("--version", action="version", version=f"lesionseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"lesionseg.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    previous = _exit_cleanly_on_sigterm()
    out = getattr(args, "out", None)
    created = out if isinstance(out, Path) and not out.exists() else None  # ours to remove on a failure
    try:
        return int(args.func(args) or 0)
    except LesionsegError as exc:
        remove_unfinished(created)
        print(f"lesionseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lesionseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly (Python docs' recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # permission, disk full, not a directory, ...: the system's words and the path
        remove_unfinished(created)
        print(f"lesionseg {args.command}: error: {os_error_line(exc)}", file=sys.stderr)
        return 2
    except MemoryError:
        remove_unfinished(created)
        hint = "try smaller inputs, a smaller batch or fewer threads"
        print(f"lesionseg {args.command}: error: out of memory ({hint})", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_cleanly_on_sigterm() -> signal.Handlers | None:
    """SIGTERM (kill, a job scheduler) raises SystemExit(143), so temporary files are removed on the way out
    as on any error. Returns the previous handler (None when not on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def terminate(signum: int, frame: object) -> None:
        print("lesionseg: terminated", file=sys.stderr)
        raise SystemExit(128 + signum)

    return signal.signal(signal.SIGTERM, terminate)


if __name__ == "__main__":
    sys.exit(main())
