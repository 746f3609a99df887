"""Write a phantom dataset: NIfTI volumes per case plus ``manifest.json`` (paths relative to the folder).

Layout: ``OUT/phantom_000/{flair,t1,lesion,brainmask}.nii.gz`` ... and ``OUT/manifest.json``; check it with
``lesionseg dataset check OUT/manifest.json --root OUT``. The whole folder is written under a temporary
name beside OUT and renamed at the end, so a failed or interrupted run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output, write_volume
from lesionseg.phantom.case import DEFAULT_SHAPE, DEFAULT_SPACING, make_phantom_case

MIN_SHAPE = (24, 24, 12)
FILES = {"FLAIR": "flair.nii.gz", "T1": "t1.nii.gz", "label": "lesion.nii.gz", "mask": "brainmask.nii.gz"}


def case_id(index: int) -> str:
    return f"phantom_{index:03d}"


def case_rng(seed: int, index: int) -> np.random.Generator:
    """Case ``index`` of a dataset drawn with ``seed``: independent of how many cases are drawn."""
    return np.random.default_rng([int(seed), int(index)])


def validate_phantom_args(
    out_dir: Path, n_cases: int, shape: Sequence[int], spacing: Sequence[float], overwrite: bool
) -> None:
    """Raise LesionsegError (naming ``out_dir``) before anything is written."""
    if n_cases < 1:
        raise LesionsegError(f"--cases must be at least 1, got {n_cases}", out_dir)
    if len(shape) != 3 or any(int(n) < m for n, m in zip(shape, MIN_SHAPE, strict=True)):
        raise LesionsegError(f"shape must be 3 sizes of at least {MIN_SHAPE}, got {tuple(shape)}", out_dir)
    if len(spacing) != 3 or not all(np.isfinite(s) and 0 < s <= 10 for s in spacing):
        raise LesionsegError(f"spacing must be 3 values in (0, 10] mm, got {tuple(spacing)}", out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise LesionsegError("output exists and is not a folder", out_dir)
        if any(out_dir.iterdir()):
            if not overwrite:
                raise LesionsegError(
                    "output folder is not empty (choose another or pass --overwrite)", out_dir
                )
            if not (out_dir / "manifest.json").is_file():
                raise LesionsegError("refusing to overwrite a folder that holds no manifest.json", out_dir)


def phantom_manifest(n_cases: int, seed: int, shape: Sequence[int], spacing: Sequence[float]) -> dict:
    shape_txt = "x".join(str(int(n)) for n in shape)
    spacing_txt = "x".join(f"{float(s):g}" for s in spacing)
    return {
        "name": "phantom",
        "description": (
            f"Procedural FLAIR/T1 brain phantom with known white-matter lesions, {n_cases} cases from "
            f"{n_cases} subjects, seed {seed} (lesionseg.phantom). Head: scalp, skull, CSF, cortical grey "
            "matter with sulci, white matter, deep grey matter, lateral and third ventricles; lesions "
            "periventricular, deep and punctate, hyperintense on FLAIR and hypointense on T1; bias field "
            "and Rician noise."
        ),
        "licence": "Generated data, no restrictions (CC0).",
        "spacing_note": (
            f"{shape_txt} voxels at {spacing_txt} mm; the affine is a slightly oblique LAS-like grid "
            "(up to 6 deg about x, 3 deg about y and z), different per case."
        ),
        "channel_names": ["FLAIR", "T1"],
        "labels": {"background": 0, "lesion": 1},
        "regions": {},
        "cases": [
            {
                "id": case_id(i),
                "subject": case_id(i),
                "images": {"FLAIR": f"{case_id(i)}/{FILES['FLAIR']}", "T1": f"{case_id(i)}/{FILES['T1']}"},
                "label": f"{case_id(i)}/{FILES['label']}",
                "mask": f"{case_id(i)}/{FILES['mask']}",
            }
            for i in range(n_cases)
        ],
    }


def write_phantom_dataset(
    out_dir: str | Path,
    n_cases: int,
    seed: int = 0,
    shape: Sequence[int] = DEFAULT_SHAPE,
    spacing: Sequence[float] = DEFAULT_SPACING,
    overwrite: bool = False,
    skull_stripped: bool = False,
) -> Path:
    """Draw ``n_cases`` phantom subjects and write them with their manifest; return the manifest's path.

    Deterministic: case i depends only on (seed, i, shape, spacing). With ``overwrite`` an existing
    phantom folder (one holding a manifest.json) is replaced; a non-empty folder is otherwise refused.
    ``skull_stripped``: the images are 0 outside the brain mask, as scans after brain extraction (the
    default keeps scalp, skull and the noisy background, as scans come from the scanner).
    """
    out_dir = Path(out_dir)
    validate_phantom_args(out_dir, n_cases, shape, spacing, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        for i in range(n_cases):
            case = make_phantom_case(case_rng(seed, i), shape, spacing)
            folder = staging / case_id(i)
            flair, t1 = case.flair, case.t1
            if skull_stripped:
                brain = case.brain_mask.array > 0
                flair, t1 = (
                    v.with_array(np.where(brain, v.array, 0).astype(v.array.dtype)) for v in (flair, t1)
                )
            write_volume(flair, folder / FILES["FLAIR"])
            write_volume(t1, folder / FILES["T1"])
            write_volume(case.label, folder / FILES["label"])
            write_volume(case.brain_mask, folder / FILES["mask"])
        with atomic_output(staging / "manifest.json") as tmp:
            tmp.write_text(json.dumps(phantom_manifest(n_cases, seed, shape, spacing), indent=2) + "\n")
        os.chmod(staging, 0o777 & ~_umask())
        _move_into_place(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir / "manifest.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``; an existing ``out_dir`` (empty, or an old phantom) is replaced."""
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-old-", dir=out_dir.parent))
        old.rmdir()
        os.replace(out_dir, old)
        os.replace(staging, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out_dir)
