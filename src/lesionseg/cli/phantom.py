"""``lesionseg phantom --out OUT --cases N``: a procedural FLAIR/T1 phantom dataset with its manifest."""

from __future__ import annotations

import argparse

from lesionseg.cli.parsing import deprecated_positional, resolve_deprecated


def register(subparsers: argparse._SubParsersAction) -> None:
    from lesionseg.phantom.case import DEFAULT_SHAPE, DEFAULT_SPACING

    parser = subparsers.add_parser(
        "phantom",
        help="write a synthetic FLAIR/T1 dataset with known lesions (no download)",
        description=(
            "Write OUT/phantom_NNN/{flair,t1,lesion,brainmask}.nii.gz and OUT/manifest.json (paths relative "
            "to OUT). Deterministic for a given seed, shape and spacing. Nothing is left behind on failure."
        ),
    )
    deprecated_positional(
        parser, "out", "--out", "OUT", "output folder (must not exist or be empty, unless --overwrite)"
    )
    parser.add_argument("--cases", type=int, default=8, help="number of cases, one subject each (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--shape",
        type=int,
        nargs=3,
        metavar=("X", "Y", "Z"),
        default=list(DEFAULT_SHAPE),
        help=f"grid size in voxels (default {' '.join(map(str, DEFAULT_SHAPE))})",
    )
    parser.add_argument(
        "--spacing",
        type=float,
        nargs=3,
        metavar=("SX", "SY", "SZ"),
        default=list(DEFAULT_SPACING),
        help=f"voxel size in mm (default {' '.join(map(str, DEFAULT_SPACING))})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing phantom folder")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.phantom import write_phantom_dataset

    resolve_deprecated(args, "out", "--out")

    manifest = write_phantom_dataset(
        args.out, args.cases, seed=args.seed, shape=args.shape, spacing=args.spacing, overwrite=args.overwrite
    )
    print(f"wrote {args.cases} phantom cases and {manifest}")
    print(f"check them with: lesionseg dataset check {manifest} --root {manifest.parent}")
    return 0
