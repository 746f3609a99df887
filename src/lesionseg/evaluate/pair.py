"""One predicted mask against one reference mask: the public ``lesionseg.evaluate``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_volume, require_same_grid


def evaluate_masks(
    pred: str | Path | Volume | np.ndarray,
    ref: str | Path | Volume | np.ndarray,
    spacing: Sequence[float] | None = None,
) -> dict[str, float | int]:
    """Every metric of a predicted mask against a reference mask (voxels > 0 are lesion).

    Paths and Volumes must share one grid and take their spacing from the affine; plain arrays need
    ``spacing`` (mm per axis). Distances (``hd``, ``hd95``, ``assd``) are in mm, volumes in ml; the
    keys and the empty-mask conventions are those of :mod:`lesionseg.metrics`.

    >>> import numpy as np, lesionseg
    >>> ref = np.zeros((8, 8, 8), bool); ref[2:6, 2:6, 2:6] = True
    >>> pred = np.roll(ref, 1, axis=0)
    >>> m = lesionseg.evaluate(pred, ref, spacing=(2.0, 1.0, 1.0))
    >>> round(m["dsc"], 3), m["hd"]
    (0.75, 2.0)
    """
    from lesionseg.metrics.case import binary_case_metrics

    pred_v, ref_v = _mask(pred, "prediction"), _mask(ref, "reference")
    if isinstance(pred_v, Volume) and isinstance(ref_v, Volume):
        require_same_grid(ref_v, pred_v, "prediction")
        if spacing is None:
            spacing = ref_v.spacing
    if spacing is None:
        raise LesionsegError("give spacing= (mm per axis) when evaluating plain arrays")
    pred_a = pred_v.array if isinstance(pred_v, Volume) else pred_v
    ref_a = ref_v.array if isinstance(ref_v, Volume) else ref_v
    if pred_a.shape != ref_a.shape:
        raise LesionsegError(f"prediction shape {pred_a.shape} differs from reference shape {ref_a.shape}")
    return binary_case_metrics(pred_a > 0, ref_a > 0, spacing)


def _mask(item: str | Path | Volume | np.ndarray, what: str) -> Volume | np.ndarray:
    if isinstance(item, Volume):
        return item
    if isinstance(item, (str, Path)):
        return read_volume(item, "label")
    if isinstance(item, np.ndarray):
        return item
    raise TypeError(f"{what}: expected a path, a Volume or a numpy array, got {type(item).__name__}")
