"""An averaged model's own threshold and minimum lesion size (WMH thesis section 2.4, the "empirical
threshold"), chosen on labelled validation subjects for ``lesionseg train``/``cv`` ensembles and the
benchmarks, and saved beside the members (:mod:`lesionseg.infer.ensemble_file`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from lesionseg.data.cache import PreprocessCache
from lesionseg.data.label_slices import labelled_slices
from lesionseg.data.manifest import Case, Manifest
from lesionseg.evaluate.labelled_slices import only_labelled_slices
from lesionseg.infer.ensemble_file import write_ensemble_calibration
from lesionseg.infer.predictor import Predictor
from lesionseg.infer.slicewise import foreground_probability
from lesionseg.preprocess import PreprocessedCase
from lesionseg.train.calibrate import Calibration, calibrate_cases


def calibrate_ensemble(
    predictor: Predictor,
    manifest: Manifest,
    root: str | Path,
    cache: PreprocessCache,
    val_subjects: list[str],
    fold_dir: Path,
) -> Calibration | None:
    """The ensemble's "empirical threshold" (WMH thesis section 2.4), with the minimum lesion size, chosen
    on the fold's validation subjects from the members' averaged probabilities (train/calibrate.py's
    rule, never the test fold); set on ``predictor`` and written to ``fold_dir/ensemble_calibration.json``
    (with the members, so that ``lesionseg predict`` uses it for them: ``infer/ensemble_file.py``).
    Each member's own saved threshold was chosen for that member alone, so it is not the ensemble's.
    Returns the calibration, or None (multi-class members, or no labelled validation case)."""
    if len(predictor.members[0].label_values) > 2:
        return None

    def labelled_only(case: Case) -> PreprocessedCase:
        pre = cache.get(manifest, case, root, predictor.preprocess_config)
        if case.label_slices is not None:
            pre = only_labelled_slices(pre, labelled_slices(case, pre.record))
        return pre

    result = calibrate_cases(
        (labelled_only(c) for c in manifest.cases if c.subject in val_subjects),
        lambda pre: foreground_probability(predictor.predict_preprocessed(pre)[1]),
    )
    if result is None:
        return None
    predictor.threshold, predictor.min_lesion_mm3 = result.threshold, result.min_lesion_mm3
    write_ensemble_calibration(fold_dir, [m.source for m in predictor.members], asdict(result))
    return result
