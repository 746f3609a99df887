"""``lesionseg train``: train one model (or each member of an ensemble method, or one network per seed of
``--seeds``: all averaged as one model, ``predict --model OUT``)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from lesionseg.cli.options import add_training_options, member_configs
from lesionseg.train.averaged import earlier_run_files  # noqa: F401 (tests and scripts read it here)

if TYPE_CHECKING:
    from lesionseg.config.train import TrainConfig
    from lesionseg.train.trainer import TrainResult


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a manifest's subjects",
        description="Train one model. With --fold k, trains on fold k's training subjects of a subject-wise "
        "split (generated with --folds, or read from --splits); otherwise on every subject, holding out "
        "val_fraction of them for validation. Runs under torchrun for DistributedDataParallel.",
    )
    add_training_options(parser)
    parser.add_argument("--fold", type=int, help="train fold k of the split")
    parser.add_argument("--folds", type=int, default=5, help="number of folds when generating a split")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt exactly")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the checkpoints of an earlier run in OUT"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lesionseg.train.averaged import train_from_manifest

    def report(folder: str, cfg: TrainConfig, result: TrainResult) -> None:
        best = max((h["val_dice"] for h in result.history), default=float("nan"))
        print(
            f"{folder or cfg.method}: {len(result.history)} epochs ({result.stopped_by}); best validation "
            f"Dice {best:.4f}; the model to predict with ({cfg.checkpoint} checkpoint): {result.best}"
        )

    model = train_from_manifest(
        member_configs(args),
        args.manifest,
        args.root,
        args.out,
        fold=args.fold,
        folds=args.folds,
        splits=args.splits,
        cache=args.cache,
        resume=args.resume,
        overwrite=args.overwrite,
        allow_outside_root=args.allow_outside_root,
        progress=not args.quiet,
        on_member=report,
    )
    if model.calibration is not None:
        chosen = model.calibration
        print(
            f"ensemble: threshold {chosen.threshold:g}, minimum lesion {chosen.min_lesion_mm3:g} mm3 "
            f"(chosen on the validation subjects; saved in {args.out})"
        )
    return 0
