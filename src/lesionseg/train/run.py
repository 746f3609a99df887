"""Train one network on the cases of given subjects: each member of a model that ``lesionseg train``,
``lesionseg.train`` and each CV fold train (:mod:`lesionseg.train.averaged`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from lesionseg.config import to_dict
from lesionseg.config.train import TrainConfig
from lesionseg.data.cache import PreprocessCache
from lesionseg.data.label_slices import labelled_slices
from lesionseg.data.manifest import Manifest
from lesionseg.io import atomic_output
from lesionseg.preprocess import PreprocessedCase
from lesionseg.train.distill import with_teacher_targets
from lesionseg.train.options import check_options
from lesionseg.train.trainer import Trainer, TrainResult


def preprocessed_cases(
    manifest: Manifest, root: str | Path, subjects: list[str], cfg: TrainConfig, cache: PreprocessCache
) -> list[PreprocessedCase]:
    """Every case of ``subjects``, preprocessed with ``cfg.preprocess`` (from the cache when present).

    A case with ``label_slices`` carries its labelled preprocessed slices in ``labelled_slices``, so that
    training and validation use only those slices as centre slices. Every case carries its ``subject``.
    """
    wanted = set(subjects)
    out = []
    for case in (c for c in manifest.cases if c.subject in wanted):
        pre = replace(cache.get(manifest, case, root, cfg.preprocess), subject=case.subject)
        if case.label_slices is not None:
            pre = replace(pre, labelled_slices=labelled_slices(case, pre.record))
        out.append(pre)
    return out


def train_model(
    cfg: TrainConfig,
    manifest: Manifest,
    root: str | Path,
    train_subjects: list[str],
    val_subjects: list[str],
    out_dir: str | Path,
    cache: PreprocessCache,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train ``cfg`` on ``train_subjects`` (validating on ``val_subjects``) and write into ``out_dir``:
    config.json (the resolved config), last.pt, best.pt, history.csv, loss_curve.png. One network; a
    model of several, averaged and calibrated, is :func:`lesionseg.train.averaged.train_averaged_model`.

    >>> import tempfile, pathlib
    >>> from lesionseg.config.train import resolve_train_config
    >>> from lesionseg.data.manifest import load_manifest
    >>> from lesionseg.phantom import write_phantom_dataset
    >>> work = pathlib.Path(tempfile.mkdtemp())
    >>> manifest = load_manifest(write_phantom_dataset(
    ...     work / "data", 2, seed=0, shape=(48, 56, 32), spacing=(3.0, 3.0, 4.0)))
    >>> cfg = resolve_train_config(
    ...     "lesion-unet", overrides=["steps=2", "budget_s=null", "evaluations=1", "width=4"])
    >>> result = train_model(cfg, manifest, work / "data", ["phantom_000"], ["phantom_001"], work / "run",
    ...     PreprocessCache(work / "cache"), progress=False)
    >>> result.best.is_file()
    True
    """
    check_options(cfg)  # before any preprocessing
    out = Path(out_dir)
    train_cases = preprocessed_cases(manifest, root, train_subjects, cfg, cache)  # bad data: nothing in out
    val_cases = preprocessed_cases(manifest, root, val_subjects, cfg, cache)
    if cfg.teacher is not None:  # the teacher's soft targets travel with the training slices
        train_cases = with_teacher_targets(train_cases, cfg.teacher, cfg.preprocess, cfg.device)
    extra = {
        "channel_names": manifest.channel_names,
        "labels": manifest.labels,
        "regions": manifest.regions,
        "train_subjects": sorted(train_subjects),
        "val_subjects": sorted(val_subjects),
        "dataset": manifest.name,
        "trained_with_mask_files": any(c.mask is not None for c in manifest.cases),
    }
    trainer = Trainer(
        cfg, train_cases, val_cases, sorted(manifest.label_values), len(manifest.channel_names), out, extra
    )
    # after the Trainer, which refuses a batch that cannot fit in memory: nothing is written before that
    out.mkdir(parents=True, exist_ok=True)
    if not (resume and (out / "last.pt").exists()):  # a resumed run keeps the config (and plan) it began with
        with atomic_output(out / "config.json") as tmp:
            tmp.write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
    return trainer.fit(resume=resume, progress=progress)
