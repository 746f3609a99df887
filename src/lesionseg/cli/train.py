"""``lesionseg train``: train one model (or each member of an ensemble method, or one network per seed of
``--seeds``: all averaged as one model, ``predict --model OUT``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from lesionseg.cli.options import add_training_options, load_manifest_under_root, member_configs
from lesionseg.config.train import member_folder

if TYPE_CHECKING:
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.manifest import Manifest


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
    import numpy as np

    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.splits import load_splits, make_splits
    from lesionseg.errors import LesionsegError
    from lesionseg.nets.device import resolve_device
    from lesionseg.train import distributed
    from lesionseg.train.run import train_model

    configs = member_configs(args)
    resolve_device(configs[0].device)  # a one-line error for cuda without CUDA, before any work
    earlier = earlier_run_files(args.out)
    if earlier and not (args.resume or args.overwrite):
        raise LesionsegError(
            "holds the checkpoints of an earlier run; pass --resume to continue it or --overwrite to "
            "replace it",
            earlier[0].parent,
        )
    if args.resume and not any(path.name == "last.pt" for path in earlier):
        raise LesionsegError("--resume: no checkpoint (last.pt) of an earlier run here to continue", args.out)
    if args.overwrite and not args.resume:
        for path in earlier:
            path.unlink()
    distributed.init_from_environment()
    manifest = load_manifest_under_root(args.manifest, args.allow_outside_root)
    cache = PreprocessCache(args.cache or args.out / "cache")
    cfg0 = configs[0]
    if args.fold is not None or args.splits:
        splits = (
            load_splits(args.splits, manifest.subjects)
            if args.splits
            else make_splits(manifest.subjects, args.folds, cfg0.seed, None, cfg0.val_fraction)
        )
        fold_index = 0 if args.fold is None else args.fold
        if not 0 <= fold_index < len(splits.folds):
            raise LesionsegError(
                f"--fold {fold_index} is not a fold of the split ({len(splits.folds)} folds)"
            )
        fold = splits.folds[fold_index]
        train_subjects, val_subjects = fold.train, fold.val
    else:  # every subject, val_fraction of them held out for validation
        subjects = manifest.subjects
        rng = np.random.default_rng(cfg0.seed)
        n_val = max(1, round(cfg0.val_fraction * len(subjects))) if len(subjects) > 1 else 0
        val_subjects = sorted(rng.permutation(subjects)[:n_val].tolist())
        train_subjects = [s for s in subjects if s not in val_subjects]
    rank, _ = distributed.rank_and_world()
    checkpoints = []
    for cfg in configs:
        out = args.out / member_folder(cfg, configs)
        result = train_model(
            cfg,
            manifest,
            args.root,
            train_subjects,
            val_subjects,
            out,
            cache,
            resume=args.resume,
            progress=not args.quiet,
        )
        checkpoints.append(result.best)
        if rank == 0:
            best = max((h["val_dice"] for h in result.history), default=float("nan"))
            print(
                f"{member_folder(cfg, configs) or cfg.method}: {len(result.history)} epochs "
                f"({result.stopped_by}); best validation Dice "
                f"{best:.4f}; the model to predict with ({cfg.checkpoint} checkpoint): {result.best}"
            )
    if rank == 0 and len(configs) > 1 and cfg0.calibrate and val_subjects:
        calibrate_trained_ensemble(checkpoints, manifest, args.root, cache, val_subjects, args.out, cfg0.bf16)
    distributed.shutdown()
    return 0


def earlier_run_files(out: Path) -> list[Path]:
    """What an earlier ``train`` left in OUT: its checkpoints, in OUT itself (one network) or in the
    sub-folders ``train`` names for seeds and members (``seed_1``, ``wmh-dice``, ``wmh-dice_seed_1``; any
    other folder is not ours), and an averaged model's calibration. A new run of another shape (one network
    where there were three, or the reverse) must not mix with them."""
    from lesionseg.config.train import is_member_folder
    from lesionseg.infer.ensemble_file import ENSEMBLE_FILE

    if not out.is_dir():
        return []
    folders = [out, *sorted(p for p in out.iterdir() if p.is_dir() and is_member_folder(p.name))]
    names = ("best.pt", "last.pt")
    found = [folder / name for folder in folders for name in names if (folder / name).is_file()]
    return found + ([out / ENSEMBLE_FILE] if (out / ENSEMBLE_FILE).is_file() else [])


def calibrate_trained_ensemble(  # noqa: PLR0913
    checkpoints: list[Path],
    manifest: Manifest,
    root: Path,
    cache: PreprocessCache,
    val_subjects: list[str],
    out: Path,
    bf16: bool,
) -> None:
    """The ensemble's own threshold and minimum size, chosen on the validation subjects from the averaged
    members and saved in OUT (``lesionseg predict --model OUT`` or the same members use them)."""
    from lesionseg.evaluate.ensemble_calibration import calibrate_ensemble
    from lesionseg.infer.predictor import Predictor, load_members

    predictor = Predictor(load_members(checkpoints), bf16=bf16)
    calibrate_ensemble(predictor, manifest, root, cache, list(val_subjects), out)
    print(
        f"ensemble: threshold {predictor.threshold:g}, minimum lesion {predictor.min_lesion_mm3:g} mm3 "
        f"(chosen on the validation subjects; saved in {out})"
    )
