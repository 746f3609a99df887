"""``lesionseg cv``: subject-wise k-fold cross-validation of a method."""

from __future__ import annotations

import argparse

from lesionseg.cli.options import add_training_options, load_manifest_under_root, member_configs


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cv",
        help="subject-wise cross-validation: train, predict held-out subjects, evaluate",
        description="Trains each fold on the other subjects, predicts the held-out subjects' whole volumes "
        "on their original grids, evaluates them, and writes metrics.csv, summary.json and table.md "
        "(TS-CNN Table 1 layout). More folds than subjects becomes leave-one-subject-out.",
    )
    add_training_options(parser)
    parser.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--only-fold", type=int, action="append", help="run only these folds (repeatable)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.evaluate.cv import run_cross_validation
    from lesionseg.nets.device import resolve_device

    configs = member_configs(args)
    resolve_device(configs[0].device)  # a one-line error for cuda without CUDA, before any work
    manifest = load_manifest_under_root(args.manifest, args.allow_outside_root)
    result = run_cross_validation(
        manifest,
        args.root,
        configs,
        args.folds,
        args.out,
        args.cache,
        args.splits,
        args.only_fold,
        progress=not args.quiet,
    )
    print((args.out / "table.md").read_text())
    print(
        f"{result.splits.scheme}, {len(result.splits.folds)} folds, {result.cpu_minutes:.1f} CPU minutes; "
        f"results in {args.out}"
    )
    return 0
