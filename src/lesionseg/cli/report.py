"""``lesionseg report DIR``: rebuild the summaries, plots and HTML report of an evaluation folder.

Reads ``DIR/metrics.csv`` (edit it, or add a ``fold`` column, and rebuild), keeps the title and inputs of
``DIR/summary.json`` when present, finds the overlays in ``DIR/overlays/``, and rewrites ``summary.json``,
``summary.md``, the box plots and ``report.html``.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="(re)build the HTML report of an evaluation folder",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("dir", type=Path, help="folder written by `lesionseg evaluate`")
    parser.add_argument("--title", default=None, help="report title (default: the one in summary.json)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.errors import LesionsegError
    from lesionseg.report.evaluation import overlay_files, read_json, write_evaluation_outputs
    from lesionseg.report.tables import read_metrics_csv

    if not args.dir.is_dir():
        raise LesionsegError("evaluation folder not found", args.dir)
    rows = read_metrics_csv(args.dir / "metrics.csv")
    if not rows:
        raise LesionsegError("metrics table has no rows", args.dir / "metrics.csv")
    previous = read_json(args.dir / "summary.json") if (args.dir / "summary.json").exists() else {}
    title = args.title or previous.get("title") or f"Evaluation in {args.dir}"
    paths = write_evaluation_outputs(
        args.dir,
        rows,
        title,
        previous.get("inputs") or {},
        overlay_files(args.dir),
        previous.get("skipped_cases") or [],
        write_csv=False,
        provenance=previous.get("provenance") or None,
    )
    print(f"wrote {paths['report.html']}")
    return 0
