"""The public Python API: ``lesionseg.segment``, ``lesionseg.evaluate``, ``lesionseg.train``.

Each function is the Python twin of a command: :func:`segment` of ``lesionseg segment`` (same mask, voxel
for voxel), :func:`evaluate` of one row of ``lesionseg evaluate``, :func:`train` of ``lesionseg train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_volume, require_same_grid

if TYPE_CHECKING:
    from lesionseg.infer.predictor import Predictor


def segment(
    flair: str | Path | Volume,
    t1: str | Path | Volume | None = None,
    *,
    model: str | Path | Sequence[str | Path] | Predictor | None = None,
    device: str = "auto",
    mask: str | Path | Volume | None = None,
) -> Volume:
    """Segment one case; returns the label Volume (uint8, 0/1 for a binary model) on the FLAIR's grid.

    ``flair``, ``t1``: file paths or :class:`lesionseg.Volume` s on one grid; a Volume must carry its real
    affine (the images are reoriented to RAS from it, so a made-up affine changes the mask).
    ``model``: None = the bundled FLAIR+T1 model (see ``lesionseg/models/MODEL_CARD.md``), a checkpoint
    path, several paths (an ensemble), or a :class:`lesionseg.Predictor`. ``device``: "auto" = CUDA when
    available. ``mask``: an optional brain mask on the same grid (default: derived from the images).
    The mask equals the one ``lesionseg segment FLAIR T1 -o OUT`` writes, voxel for voxel.

    >>> import lesionseg, tempfile, pathlib
    >>> from lesionseg.phantom import write_phantom_dataset
    >>> manifest = write_phantom_dataset(pathlib.Path(tempfile.mkdtemp()) / "data", 1, seed=0,
    ...     shape=(48, 56, 32), spacing=(3.0, 3.0, 4.0))
    >>> case = manifest.parent / "phantom_000"
    >>> labels = lesionseg.segment(case / "flair.nii.gz", case / "t1.nii.gz")
    >>> labels.kind, labels.shape == lesionseg.read_volume(case / "flair.nii.gz").shape
    ('label', True)
    """
    from lesionseg.infer.files import InferenceOptions, load_predictor, predict_channels
    from lesionseg.infer.predictor import Predictor

    if isinstance(model, Predictor):
        predictor = model
    else:
        models = None if model is None else [model] if isinstance(model, (str, Path)) else list(model)
        predictor = load_predictor(models, InferenceOptions(device=device))
    names = predictor.channel_names
    given = [flair] if t1 is None else [flair, t1]
    if len(given) != len(names):
        raise LesionsegError(
            f"the model takes {len(names)} channel(s) ({', '.join(names)}); {len(given)} given"
        )
    prediction, _ = predict_channels(predictor, dict(zip(names, given, strict=True)), mask)
    return prediction.label


def evaluate(
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
