"""``lesionseg compare``: lesion change between two studies of one patient, from the scans to the outputs.

1. Each study is prepared as ``segment`` prepares a case
   (:func:`lesionseg.preprocess.native.prepare_channels`: read, T1 registered to its FLAIR, optional
   deepbet skull-stripping).
2. Study 1's FLAIR is registered rigidly onto study 2's (Mattes mutual information, started from the
   images' centres of mass; skull-stripped images when stripping is on), and study 1's channels, brain mask
   and (given) lesion mask are resampled onto **study 2's native FLAIR grid**, the grid of every output.
3. Both studies are segmented on that grid by one model (or their masks are given).
4. The two FLAIRs are normalised jointly inside the joint brain mask and subtracted
   (:mod:`lesionseg.preprocess.subtraction`); lesions are matched and called (:mod:`lesionseg.infer.change`).
5. :func:`write_comparison` writes change.nii.gz, lesions.csv, summary.json, report.html (+ overlays/),
   and the two lesion masks and the subtraction image on study 2's grid; all or nothing.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lesionseg.config.change import ChangeOptions
from lesionseg.errors import LesionsegError
from lesionseg.infer.change import CHANGE_LABELS, LesionChange, change_counts, classify_change
from lesionseg.infer.files import InferenceOptions, load_predictor
from lesionseg.infer.predictor import Predictor
from lesionseg.io import Volume, atomic_output, read_volume, require_same_grid, write_volume

OUTPUT_FILES = (
    "change.nii.gz",
    "lesions.csv",
    "summary.json",
    "report.html",
    "mask_study1.nii.gz",
    "mask_study2.nii.gz",
    "subtraction.nii.gz",
)
OVERLAY_FOLDER = "overlays"
MAX_OVERLAYS = 60  # the report shows at most this many new / enlarging lesions (largest change first)
LESION_COLUMNS = [
    "lesion",
    "study",
    "group",
    "matched",
    "volume_study1_mm3",
    "volume_study2_mm3",
    "status",
    "changed_mm3",
    "subtraction_z",
    "i",
    "j",
    "k",
    "note",
]


@dataclass
class StudyComparison:
    """Everything on study 2's native FLAIR grid (its affine and header)."""

    change: Volume  # uint8: 0 none, 1 new, 2 enlarging, 3 shrinking or resolved
    mask1: Volume  # study-1 lesions (uint8 {0, 1})
    mask2: Volume  # study-2 lesions
    flair1: Volume  # study-1 FLAIR registered, jointly normalised
    flair2: Volume  # study-2 FLAIR, jointly normalised
    subtraction: Volume  # float32 z (study 2 - study 1)
    brain: Volume  # joint brain mask
    lesions: list[LesionChange]
    summary: dict = field(default_factory=dict)


def _pair(value: Sequence | None, what: str) -> tuple | None:
    if value is None:
        return None
    items = tuple(value)
    if len(items) != 2:
        raise LesionsegError(f"{what} takes two files (study 1, study 2), got {len(items)}")
    return items


def _require_files(paths: Sequence) -> None:
    for path in paths:
        if path is not None and not isinstance(path, Volume) and not Path(path).exists():
            raise LesionsegError("file not found", path)


def resolve_predictor(
    model: str | Path | Sequence[str | Path] | Predictor | None, inference: InferenceOptions, has_t1: bool
) -> Predictor:
    """The Predictor for both studies; a one-line error when it needs a channel that was not given."""
    if isinstance(model, Predictor):
        predictor = model
    else:
        models = None if model is None else [model] if isinstance(model, (str, Path)) else list(model)
        predictor = load_predictor(models, inference, ("FLAIR", "T1") if has_t1 else ("FLAIR",))
    names = predictor.channel_names
    if len(names) > 2 or (len(names) == 2 and not has_t1):
        source = predictor.members[0].source if predictor.members else None
        raise LesionsegError(
            f"the model takes {len(names)} channels ({', '.join(names)}); give --t1 STUDY1_T1 STUDY2_T1 "
            "or a FLAIR-only model (--model)",
            source,
        )
    return predictor


def _read_masks(masks: tuple, flairs: tuple) -> list[Volume]:
    """The two given lesion masks, each checked against its own FLAIR's grid (before any heavy work)."""
    given = [read_volume(m, "label") for m in masks]
    for i, (mask, flair) in enumerate(zip(given, flairs, strict=True)):
        require_same_grid(read_volume(flair), mask, f"study-{i + 1} mask")
    return given


def _prepare_study(flair, t1, names: list[str], skull_strip: bool | str, device: str):  # noqa: ANN001, ANN202
    """(model channels on the FLAIR's grid, brain mask, steps) for one study."""
    from lesionseg.preprocess.brainmask import derive_brain_mask
    from lesionseg.preprocess.native import prepare_channels

    channels = {names[0]: flair}
    order = list(names)
    if t1 is not None:
        t1_name = names[1] if len(names) > 1 else "T1"
        channels[t1_name] = t1
        order = [*names] if len(names) > 1 else [names[0], "T1"]
    images, brain, steps = prepare_channels(channels, order, True, skull_strip, device)
    if brain is None:
        array = derive_brain_mask(images[0].array[None].astype(np.float32), "otsu", images[0].source)
        brain = images[0].with_array(array, kind="label")
        steps.append({"step": "brain_mask", "mode": "otsu (for the joint normalisation only)"})
    return images[: len(names)], brain, steps


@dataclass
class AlignedStudies:
    """Both studies on study 2's native FLAIR grid: the model's channels, brain masks, the jointly normalised
    FLAIRs and their subtraction z image, and the registration that put study 1 there."""

    images1: list[Volume]
    images2: list[Volume]
    brain1: Volume
    brain2: Volume
    joint: np.ndarray  # bool (X, Y, Z): both brain masks
    norm1: np.ndarray
    norm2: np.ndarray
    z: np.ndarray
    transform: object  # SimpleITK Euler3DTransform, study-2 points -> study 1
    registration: dict
    steps: dict


def align_studies(
    flair1: str | Path,
    flair2: str | Path,
    t1: Sequence[str | Path] | None,
    names: Sequence[str],
    skull_strip: bool | str = "auto",
    device: str = "cpu",
) -> AlignedStudies:
    """Prepare both studies (``names``: the model's channel order), register study 1 onto study 2, resample
    it there, normalise both FLAIRs jointly and subtract them."""
    from lesionseg.preprocess.register import estimate_rigid, resample_rigid
    from lesionseg.preprocess.subtraction import joint_normalise, subtraction_z

    names = list(names)
    images1, brain1, steps1 = _prepare_study(flair1, t1[0] if t1 else None, names, skull_strip, device)
    images2, brain2, steps2 = _prepare_study(flair2, t1[1] if t1 else None, names, skull_strip, device)
    fixed = images2[0]
    transform, rigid = estimate_rigid(fixed, images1[0], centre_of_mass=True)
    images1 = [resample_rigid(v, fixed, transform) for v in images1]
    brain1 = resample_rigid(brain1, fixed, transform)
    joint = (brain1.array > 0) & (brain2.array > 0)
    if not joint.any():
        raise LesionsegError("the two studies do not overlap after registration", flair1)
    norm1, norm2 = joint_normalise(images1[0].array, fixed.array, joint)
    z = subtraction_z(norm1, norm2, joint)
    return AlignedStudies(
        images1,
        images2,
        brain1,
        brain2,
        joint,
        norm1,
        norm2,
        z,
        transform,
        _registration_record(rigid, transform),
        {"study1": steps1, "study2": steps2},
    )


def _stripped_brain(brain: Volume, steps: list[dict]) -> Volume | None:
    """The skull-stripping mask as the model's brain mask; None (the model derives its own, as ``segment``
    does) when no skull was stripped."""
    return brain if any(step.get("step") == "skull_strip" for step in steps) else None


def segment_studies(
    predictor: Predictor, aligned: AlignedStudies, skull_strip: bool | str = "auto"
) -> tuple[Volume, Volume]:
    """Both lesion masks on study 2's grid, by one model (skull-stripping masks as brain masks)."""
    mask1 = predictor.predict(aligned.images1, _stripped_brain(aligned.brain1, aligned.steps["study1"])).label
    mask2 = predictor.predict(aligned.images2, _stripped_brain(aligned.brain2, aligned.steps["study2"])).label
    return mask1, mask2


def change_from_masks(
    aligned: AlignedStudies, mask1: np.ndarray, mask2: np.ndarray, options: ChangeOptions
) -> StudyComparison:
    """The change map and lesion table from two lesion masks on study 2's grid (no summary yet)."""
    fixed = aligned.images2[0]
    change, lesions = classify_change(mask1 > 0, mask2 > 0, fixed.spacing, aligned.z, options)
    return StudyComparison(
        change=fixed.with_array(change, kind="label"),
        mask1=fixed.with_array((mask1 > 0).astype(np.uint8), kind="label"),
        mask2=fixed.with_array((mask2 > 0).astype(np.uint8), kind="label"),
        flair1=fixed.with_array(aligned.norm1, kind="image"),
        flair2=fixed.with_array(aligned.norm2, kind="image"),
        subtraction=fixed.with_array(aligned.z, kind="image"),
        brain=fixed.with_array(aligned.joint.astype(np.uint8), kind="label"),
        lesions=lesions,
    )


def compare_studies(
    flair1: str | Path,
    flair2: str | Path,
    *,
    t1: Sequence[str | Path] | None = None,
    masks: Sequence[str | Path] | None = None,
    model: str | Path | Sequence[str | Path] | Predictor | None = None,
    skull_strip: bool | str = "auto",
    options: ChangeOptions | None = None,
    inference: InferenceOptions | None = None,
) -> StudyComparison:
    """Compare two studies of one patient; see the module docstring for the steps.

    ``t1``: (study-1 T1, study-2 T1) or None; ``masks``: (study-1 mask on its FLAIR's grid, study-2 mask on
    its FLAIR's grid) instead of segmenting; ``model``: as :func:`lesionseg.segment` (None: the bundled
    model); ``options``: the change rules (:class:`ChangeOptions`).
    """
    from lesionseg.preprocess.register import resample_rigid

    options = options or ChangeOptions()
    try:
        options.check()
    except ValueError as exc:
        raise LesionsegError(str(exc)) from None
    inference = inference or InferenceOptions()
    t1 = _pair(t1, "--t1")
    masks = _pair(masks, "--masks")
    _require_files([flair1, flair2, *(t1 or ()), *(masks or ())])
    given = _read_masks(masks, (flair1, flair2)) if masks is not None else None
    predictor = None if masks is not None else resolve_predictor(model, inference, t1 is not None)
    names = predictor.channel_names if predictor is not None else ["FLAIR"]
    device = "cpu" if predictor is None else str(getattr(predictor, "device", "cpu"))
    aligned = align_studies(flair1, flair2, t1, names, skull_strip, device)
    fixed = aligned.images2[0]
    if given is not None:
        study1 = given[0].with_array((given[0].array > 0).astype(np.uint8))
        mask1 = resample_rigid(study1, fixed, aligned.transform).array
        mask2 = given[1].array
    else:
        mask1, mask2 = (m.array for m in segment_studies(predictor, aligned, skull_strip))
    result = change_from_masks(aligned, mask1, mask2, options)
    result.summary = _summary(result, flair1, flair2, t1, masks, predictor, skull_strip, options)
    result.summary["registration"] = aligned.registration
    result.summary["steps"] = aligned.steps
    return result


def _registration_record(rigid, transform) -> dict:  # noqa: ANN001
    record = rigid.to_dict()
    return {
        "method": "rigid (Euler 3D), Mattes mutual information, started from the centres of mass",
        "moving": "study 1 FLAIR",
        "fixed": "study 2 FLAIR (its native grid is the grid of every output)",
        "convention": "ITK: maps study-2 points (LPS mm) into study 1",
        "angles_deg": [round(math.degrees(a), 3) for a in record.pop("angles_rad")],
        "translation_mm": [round(t, 3) for t in record.pop("translation_mm")],
        "centre_mm": [round(c, 3) for c in transform.GetCenter()],
        **record,
    }


def _summary(result, flair1, flair2, t1, masks, predictor, skull_strip, options) -> dict:  # noqa: ANN001
    from lesionseg import __version__

    voxel_ml = result.change.voxel_volume_ml
    counts = change_counts(result.lesions)
    return {
        "lesionseg_version": __version__,
        "inputs": {
            "study1_flair": str(flair1),
            "study2_flair": str(flair2),
            **({"study1_t1": str(t1[0]), "study2_t1": str(t1[1])} if t1 else {}),
            **({"study1_mask": str(masks[0]), "study2_mask": str(masks[1])} if masks else {}),
        },
        "segmentation": "given masks"
        if predictor is None
        else {"models": [m.source for m in predictor.members], "threshold": predictor.threshold},
        "skull_strip": skull_strip,
        "grid": {
            "of": "study 2 FLAIR",
            "shape": list(result.change.shape),
            "spacing_mm": result.change.spacing,
        },
        "counts": counts,
        "lesions_study1": sum(1 for lesion in result.lesions if lesion.study == 1),
        "lesions_study2": sum(1 for lesion in result.lesions if lesion.study == 2),
        "lesion_volume_ml": {
            "study1": round(float(result.mask1.array.sum()) * voxel_ml, 3),
            "study2": round(float(result.mask2.array.sum()) * voxel_ml, 3),
        },
        "change_volume_ml": {
            CHANGE_LABELS[code]: round(float((result.change.array == code).sum()) * voxel_ml, 3)
            for code in (1, 2, 3)
        },
        "change_labels": {str(k): v for k, v in CHANGE_LABELS.items()},
        "options": options.to_dict(),
    }


def check_outputs(out_dir: str | Path, overwrite: bool = False) -> None:
    """LesionsegError when ``out_dir`` is a file, or holds an output of an earlier run (unless overwrite)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LesionsegError("output must be a folder", out)
    existing = [out / name for name in (*OUTPUT_FILES, OVERLAY_FOLDER) if (out / name).exists()]
    if existing and not overwrite:
        raise LesionsegError("output exists (use --overwrite to replace it)", existing[0])


def write_comparison(result: StudyComparison, out_dir: str | Path, overwrite: bool = False) -> list[Path]:
    """Write every output into ``out_dir``, each atomically; on any failure the ones written go again."""
    from lesionseg.report.change_report import save_lesion_overlays, write_change_report

    out = Path(out_dir)
    check_outputs(out, overwrite)
    written: list[Path] = []
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, volume in (
            ("change.nii.gz", result.change),
            ("mask_study1.nii.gz", result.mask1),
            ("mask_study2.nii.gz", result.mask2),
            ("subtraction.nii.gz", result.subtraction),
        ):
            written.append(write_volume(volume, out / name, reference=result.change))
        rows = [lesion.row() for lesion in result.lesions]
        with atomic_output(out / "lesions.csv") as tmp, tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=LESION_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        written.append(out / "lesions.csv")
        with atomic_output(out / "summary.json") as tmp:
            tmp.write_text(json.dumps(result.summary, indent=2) + "\n")
        written.append(out / "summary.json")
        if (out / OVERLAY_FOLDER).is_dir():
            shutil.rmtree(out / OVERLAY_FOLDER)
        figures = save_lesion_overlays(
            out / OVERLAY_FOLDER,
            (result.flair1.array, result.flair2.array),
            (result.mask1.array, result.mask2.array),
            result.change.array,
            result.change.affine,
            rows,
            MAX_OVERLAYS,
        )
        written.append(out / OVERLAY_FOLDER)
        written.append(write_change_report(out, result.summary, rows, figures))
    except BaseException:
        for path in written:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return written
