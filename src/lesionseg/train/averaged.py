"""The training road: ``lesionseg train``, ``lesionseg.train`` and each fold of ``cv`` train a model here.

A model is one network, or several (the members of an ensemble method, one network per seed) whose
probabilities are averaged; an average gets its own threshold and minimum lesion size, chosen on the
validation subjects (:func:`lesionseg.train.calibrate.calibrate_ensemble`).

- :func:`train_averaged_model`: train each member on given subjects, then calibrate the average.
- :func:`train_from_manifest`: the whole command: refuse an earlier run, choose the validation subjects
  (a fold of a split, or ``val_fraction`` of the subjects), train and calibrate.

Heavy imports (torch) are inside the functions, so that ``lesionseg --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lesionseg.config.train import TrainConfig, member_folder
from lesionseg.errors import LesionsegError

if TYPE_CHECKING:
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.manifest import Manifest
    from lesionseg.infer.predictor import Predictor
    from lesionseg.train.calibrate import Calibration
    from lesionseg.train.trainer import TrainResult


@dataclass
class AveragedModel:
    """What :func:`train_averaged_model` trained: per member its config, folder (``member_folder``; ""
    for a model of one network) and result; the members as one :class:`Predictor` (None where not
    built: ``calibrate`` False); the average's calibration (None: one network, or not calibrated)."""

    configs: list[TrainConfig]
    folders: list[str]
    results: list[TrainResult]
    predictor: Predictor | None
    calibration: Calibration | None
    out_dir: Path

    @property
    def checkpoints(self) -> list[Path]:
        return [result.best for result in self.results]


def train_averaged_model(  # noqa: PLR0913
    configs: Sequence[TrainConfig],
    manifest: Manifest,
    root: str | Path,
    train_subjects: Sequence[str],
    val_subjects: Sequence[str],
    out_dir: str | Path,
    cache: PreprocessCache,
    *,
    members_dir: str | Path | None = None,
    with_method: bool = False,
    resume: bool = False,
    calibrate: bool = True,
    progress: bool = True,
    on_member: Callable[[str, TrainConfig, TrainResult], None] | None = None,
) -> AveragedModel:
    """Train each of ``configs`` into ``members_dir/<member_folder>`` (default ``members_dir`` =
    ``out_dir``; ``with_method``: the folder names the method also for one method, as ``cv`` does), then,
    for several members whose config asks for it (``calibrate``) and with validation subjects, choose the
    average's threshold and minimum lesion size on ``val_subjects`` and write them to
    ``out_dir/ensemble_calibration.json``. ``calibrate`` False (a non-zero distributed rank): no
    predictor, no calibration. ``on_member(folder, cfg, result)`` is called after each member."""
    from lesionseg.infer.predictor import Predictor, load_members
    from lesionseg.train.calibrate import calibrate_ensemble
    from lesionseg.train.run import train_model

    configs = list(configs)
    out = Path(out_dir)
    members = Path(members_dir) if members_dir is not None else out
    folders = [member_folder(cfg, configs, with_method=with_method) for cfg in configs]
    results = []
    for cfg, folder in zip(configs, folders, strict=True):
        result = train_model(
            cfg,
            manifest,
            root,
            list(train_subjects),
            list(val_subjects),
            members / folder,
            cache,
            resume=resume,
            progress=progress,
        )
        results.append(result)
        if on_member is not None:
            on_member(folder, cfg, result)
    if not calibrate:
        return AveragedModel(configs, folders, results, None, None, out)
    predictor = Predictor(load_members([r.best for r in results]), bf16=configs[0].bf16)
    calibration = None
    if len(configs) > 1 and configs[0].calibrate and val_subjects:
        calibration = calibrate_ensemble(predictor, manifest, root, cache, list(val_subjects), out)
    return AveragedModel(configs, folders, results, predictor, calibration, out)


def choose_subjects(
    manifest: Manifest,
    cfg: TrainConfig,
    fold: int | None = None,
    folds: int = 5,
    splits: str | Path | None = None,
) -> tuple[list[str], list[str]]:
    """(training, validation) subjects: fold ``fold`` of a subject-wise split (read from ``splits``, or
    ``folds`` folds drawn with ``cfg.seed``) when either is given; otherwise every subject, with
    ``cfg.val_fraction`` of them (at least one, drawn with ``cfg.seed``) held out for validation."""
    import numpy as np

    from lesionseg.data.splits import load_splits, make_splits

    if fold is not None or splits:
        split = (
            load_splits(splits, manifest.subjects)
            if splits
            else make_splits(manifest.subjects, folds, cfg.seed, None, cfg.val_fraction)
        )
        index = 0 if fold is None else fold
        if not 0 <= index < len(split.folds):
            raise LesionsegError(f"--fold {index} is not a fold of the split ({len(split.folds)} folds)")
        return list(split.folds[index].train), list(split.folds[index].val)
    subjects = manifest.subjects
    rng = np.random.default_rng(cfg.seed)
    n_val = max(1, round(cfg.val_fraction * len(subjects))) if len(subjects) > 1 else 0
    val_subjects = sorted(rng.permutation(subjects)[:n_val].tolist())
    return [s for s in subjects if s not in val_subjects], val_subjects


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


def train_from_manifest(  # noqa: PLR0913
    configs: Sequence[TrainConfig],
    manifest: str | Path,
    root: str | Path,
    out_dir: str | Path,
    *,
    fold: int | None = None,
    folds: int = 5,
    splits: str | Path | None = None,
    cache: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    allow_outside_root: bool = False,
    progress: bool = True,
    on_member: Callable[[str, TrainConfig, TrainResult], None] | None = None,
) -> AveragedModel:
    """``lesionseg train`` (and ``lesionseg.train``) once the members' configs are resolved
    (``config.train.resolve_member_configs``): refuse an earlier run in ``out_dir`` unless ``resume``
    (continue it) or ``overwrite`` (delete its checkpoints), choose the subjects (:func:`choose_subjects`,
    with the first member's seed), train each member into ``out_dir/<member_folder>`` and calibrate their
    average (:func:`train_averaged_model`; on rank 0 only under torchrun). ``cache``: the preprocessing
    cache (default ``out_dir/cache``). A manifest whose files lie outside ``root`` is refused unless
    ``allow_outside_root``; ``resume`` with no last.pt to continue is refused."""
    from lesionseg.data.cache import PreprocessCache
    from lesionseg.data.manifest import load_manifest, require_inside_root
    from lesionseg.nets.device import resolve_device
    from lesionseg.train import distributed
    from lesionseg.train.options import check_options

    configs = list(configs)
    for cfg in configs:
        check_options(cfg)  # unknown network/loss options: a one-line error before any preprocessing
    resolve_device(configs[0].device)  # a one-line error for cuda without CUDA, before any work
    out = Path(out_dir)
    earlier = earlier_run_files(out)
    if earlier and not (resume or overwrite):
        raise LesionsegError(
            "holds the checkpoints of an earlier run; pass --resume to continue it or --overwrite to "
            "replace it",
            earlier[0].parent,
        )
    if resume and not any(path.name == "last.pt" for path in earlier):
        raise LesionsegError("--resume: no checkpoint (last.pt) of an earlier run here to continue", out)
    if overwrite and not resume:
        for path in earlier:
            path.unlink()
    distributed.init_from_environment()
    loaded = load_manifest(manifest)
    if not allow_outside_root:
        require_inside_root(loaded)
    preprocess_cache = PreprocessCache(cache or out / "cache")
    train_subjects, val_subjects = choose_subjects(loaded, configs[0], fold, folds, splits)
    rank, _ = distributed.rank_and_world()
    model = train_averaged_model(
        configs,
        loaded,
        root,
        train_subjects,
        val_subjects,
        out,
        preprocess_cache,
        resume=resume,
        calibrate=rank == 0,
        progress=progress,
        on_member=on_member if rank == 0 else None,
    )
    distributed.shutdown()
    return model
