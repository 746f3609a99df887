"""The per-lesion table of a mask file or Volume, with locations from the registered MNI template, and its
CSV beside the mask (``<stem>.lesions.csv`` beside ``<stem>.nii.gz``).

:func:`lesion_table` is the public ``lesionseg.lesion_table``; ``predict``/``segment`` (through
``infer.files.predict_files``) and ``evaluate`` write its CSV with :func:`write_lesion_table`. Columns and
location rules: :mod:`lesionseg.metrics.lesion_table` and ``docs/lesion_table.md``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, atomic_output, read_volume, require_same_grid
from lesionseg.metrics.lesion_table import LesionAnatomy, LesionTable
from lesionseg.metrics.lesion_table import lesion_table as table_of_arrays
from lesionseg.preprocess.template_anatomy import Space, subject_anatomy

TABLE_SUFFIX = ".lesions.csv"


def lesion_table(
    mask: str | Path | Volume,
    probability: str | Path | Volume | None = None,
    image: str | Path | Volume | None = None,
    spread: str | Path | Volume | None = None,
    space: Space = "native",
) -> LesionTable:
    """One row per lesion of ``mask`` (non-zero = lesion): ``.rows`` (dicts, ready for JSON) and
    ``.labels`` (lesion k has value k). Maps given (``probability``, ``spread``, ``image``) must share the
    mask's grid. Locations: ``space="mni"`` when the mask is in MNI space (the template is used as it is),
    else the template is registered onto ``image`` (the FLAIR); without an image they are ``unknown``."""
    mask_vol = _volume(mask, "label")
    maps = {
        name: _volume(item, "image") if item is not None else None
        for name, item in (("probability", probability), ("image", image), ("spread", spread))
    }
    for name, vol in maps.items():
        if vol is not None:
            require_same_grid(mask_vol, vol, name)
    anatomy = None
    if np.any(mask_vol.array):  # an empty mask needs no registration
        found = subject_anatomy(mask_vol, maps["image"], space)
        if found is not None:
            anatomy = LesionAnatomy(found.ventricles, found.cortex, found.posterior_fossa)
    return table_of_arrays(
        mask_vol.array,
        mask_vol.affine,
        None if maps["probability"] is None else maps["probability"].array,
        None if maps["spread"] is None else maps["spread"].array,
        anatomy,
    )


def lesion_table_path(mask: str | Path) -> Path:
    """``<stem>.lesions.csv`` beside ``<stem>.nii.gz`` (or ``.nii``, ``.mha``, ``.nrrd``)."""
    mask = Path(mask)
    name = mask.name
    for ext in (".nii.gz", ".nii", ".mha", ".nrrd"):
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    return mask.with_name(name + TABLE_SUFFIX)


def write_lesion_table(path: str | Path, table: LesionTable) -> Path:
    """The table as CSV, atomically: a header row (also when there is no lesion), numbers rounded to
    4 decimals, NaN as ``nan``."""
    with atomic_output(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow([_cell(row.get(column)) for column in table.columns])
    return Path(path)


def read_lesion_table(path: str | Path) -> list[dict]:
    """Rows of a lesion CSV, numbers parsed (``location`` kept as text)."""
    with Path(path).open(newline="") as handle:
        return [
            {
                k: v if k == "location" else (int(v) if v.lstrip("-").isdigit() else float(v))
                for k, v in r.items()
            }
            for r in csv.DictReader(handle)
        ]


def _cell(value: object) -> object:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else round(value, 4)
    return "" if value is None else value


def _volume(item: str | Path | Volume, kind: str) -> Volume:
    if isinstance(item, Volume):
        return item
    if isinstance(item, (str, Path)):
        return read_volume(item, kind)  # type: ignore[arg-type]
    raise LesionsegError(f"expected a file path or a lesionseg.Volume, got {type(item).__name__}")
