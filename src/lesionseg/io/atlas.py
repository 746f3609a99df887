"""The MNI152 2009 template that ships inside nilearn's wheel, read offline.

nilearn (BSD-3-Clause) carries the ICBM 2009a nonlinear symmetric template at 1 mm (197 x 233 x 189, RAS,
origin at MNI 0, 0, 0): the T1 (skull-stripped, 0-255) and grey- and white-matter probability maps
(0-255) in ``nilearn/datasets/data/``. They are located with ``importlib.util.find_spec`` and read with
:func:`read_volume`, without importing nilearn (its import loads scikit-learn). Template licence: the
ICBM 2009 terms (Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal
Neurological Institute, McGill University; use, copy and distribution permitted with this notice).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lesionseg.io.readers import read_volume
from lesionseg.io.volume import Volume

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


@dataclass(frozen=True)
class MniTemplate:
    """The template's T1 and its grey- and white-matter probabilities (float32 in [0, 1]), one grid."""

    t1: Volume
    gm: Volume
    wm: Volume


def template_folder() -> Path | None:
    """nilearn's data folder holding the template files, or None when nilearn (or a file) is missing."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "datasets" / "data"
    return folder if all((folder / name).is_file() for name in TEMPLATE_FILES.values()) else None


@lru_cache(maxsize=1)
def load_mni_template() -> MniTemplate | None:
    """The template (read once per process), or None when nilearn's wheel is not installed."""
    folder = template_folder()
    if folder is None:
        return None
    vols = {key: read_volume(folder / name, "image") for key, name in TEMPLATE_FILES.items()}
    for key in ("gm", "wm"):
        vols[key] = vols[key].with_array((vols[key].array / 255.0).astype("float32"))
    return MniTemplate(**vols)
