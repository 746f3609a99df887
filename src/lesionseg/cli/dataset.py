"""``lesionseg dataset``: inspect and validate datasets described by manifests.

- ``dataset check MANIFEST --root DIR [--json OUT]`` (MANIFEST may be an nnU-Net v2 raw dataset folder, whose
  root defaults to itself): read every case, print a per-case table and a totals
  line on stdout, one line per failing case on stderr; exit 1 if any case failed.
- ``dataset list``: the built-in manifests (for the sets in ../shared/data).
"""

from __future__ import annotations

import argparse
import json
import sys

from lesionseg.cli.options import add_outside_root_option
from lesionseg.errors import LesionsegError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dataset", help="validate and summarise a dataset manifest")
    commands = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    check = commands.add_parser("check", help="read every case, check grids and labels, summarise lesions")
    check.add_argument(
        "manifest",
        help="manifest JSON file, folder holding manifest.json, nnU-Net v2 raw dataset folder, or a "
        "built-in name",
    )
    check.add_argument(
        "--root",
        help="data folder the manifest's paths are relative to (default for an nnU-Net folder: that folder)",
    )
    check.add_argument("--json", dest="json_out", default=None, help="also write the summary as JSON here")
    add_outside_root_option(check)
    check.set_defaults(func=run_check)

    listing = commands.add_parser("list", help="list the built-in manifests")
    listing.set_defaults(func=run_list)


def run_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from lesionseg.cli.options import load_manifest_under_root
    from lesionseg.data.check import check_dataset, format_report
    from lesionseg.data.layouts import is_nnunet_raw
    from lesionseg.io import atomic_output

    manifest = load_manifest_under_root(args.manifest, args.allow_outside_root)
    if args.root is None:
        if not is_nnunet_raw(Path(args.manifest)):
            raise LesionsegError("--root is required (the folder the manifest's paths are relative to)")
        args.root = args.manifest
    report = check_dataset(manifest, args.root)
    print(f"{manifest.name}: {len(manifest.cases)} case(s) under {args.root}")
    for line in format_report(report):
        print(line)
    for case in report.failed:
        print(f"lesionseg dataset check: case {case.id} failed: {case.error}", file=sys.stderr)
    if args.json_out:
        with atomic_output(args.json_out) as tmp:
            tmp.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 1 if report.failed else 0


def run_list(args: argparse.Namespace) -> int:
    from lesionseg.data.check import plural
    from lesionseg.data.manifest import builtin_manifests, load_manifest

    for name, path in sorted(builtin_manifests().items()):
        m = load_manifest(path)
        counts = f"{plural(len(m.cases), 'case')} / {plural(len(m.subjects), 'subject')}"
        print(f"{name}: {counts}, channels {', '.join(m.channel_names)}")
    return 0
