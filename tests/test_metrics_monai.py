"""Independent check of lesionseg.metrics against MONAI's metrics on random masks, anisotropic spacing.

Definitions compared (MONAI 1.3+):
- DSC, IoU: ``compute_dice`` / ``compute_iou`` with ``ignore_empty=False`` (MONAI's BraTS-style convention:
  empty reference and empty prediction -> 1, empty reference and non-empty prediction -> 0), as ours.
- sensitivity, specificity, precision: ``get_confusion_matrix`` + ``compute_confusion_matrix_metric``.
- HD, HD95, ASSD: ``compute_hausdorff_distance`` (``percentile=95``: max of the two directed percentiles)
  and ``compute_average_surface_distance(symmetric=True)``, both on voxel edges (``get_mask_edges``), the
  surfaces we use. Both are exact Euclidean nearest-surface distances (MONAI: KD-tree or EDT; ours: EDT);
  the only differences are MONAI's float32 results, hence the 1e-4 relative tolerance.
- Where definitions differ, on empty masks: MONAI returns NaN/inf distances (with a warning) for an empty
  reference or prediction and 0 for HD when both are empty, and its sensitivity is NaN when the reference is
  empty; ours: NaN for one empty mask, 0 mm and 1 for both empty. The random masks here are never empty;
  the empty conventions are tested in test_metrics.py.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage

from lesionseg.metrics import binary_case_metrics

monai_metrics = pytest.importorskip("monai.metrics")
torch = pytest.importorskip("torch")

N_CASES = 30


def random_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
    """Two smooth random blob masks (some touch the grid border) and an anisotropic spacing."""
    shape = tuple(int(s) for s in rng.integers(10, 28, size=3))
    spacing = tuple(float(s) for s in rng.uniform(0.4, 4.0, size=3))

    def blob() -> np.ndarray:
        field = ndimage.gaussian_filter(rng.normal(size=shape), sigma=rng.uniform(0.8, 2.0))
        return field > np.quantile(field, rng.uniform(0.75, 0.98))

    ref = blob()
    pred = blob() if rng.random() < 0.5 else ndimage.binary_dilation(ref, iterations=int(rng.integers(1, 3)))
    return pred, ref, spacing


def monai_values(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> dict[str, float]:
    p = torch.as_tensor(pred[None, None].astype(np.float32))
    r = torch.as_tensor(ref[None, None].astype(np.float32))
    cm = monai_metrics.get_confusion_matrix(p, r, include_background=True)
    out = {
        "dsc": monai_metrics.compute_dice(p, r, include_background=True, ignore_empty=False),
        "iou": monai_metrics.compute_iou(p, r, include_background=True, ignore_empty=False),
        "hd": monai_metrics.compute_hausdorff_distance(p, r, include_background=True, spacing=spacing),
        "hd95": monai_metrics.compute_hausdorff_distance(
            p, r, include_background=True, spacing=spacing, percentile=95
        ),
        "assd": monai_metrics.compute_average_surface_distance(
            p, r, include_background=True, symmetric=True, spacing=spacing
        ),
    }
    for name in ("sensitivity", "specificity", "precision"):
        out[name] = monai_metrics.compute_confusion_matrix_metric(name, cm)
    return {k: float(v.reshape(-1)[0]) for k, v in out.items()}


def test_against_monai_on_random_masks() -> None:
    rng = np.random.default_rng(20240611)
    worst = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(N_CASES):
            pred, ref, spacing = random_pair(rng)
            ours = binary_case_metrics(pred, ref, spacing)
            theirs = monai_values(pred, ref, spacing)
            for name, value in theirs.items():
                if name in ("hd", "hd95", "assd"):
                    np.testing.assert_allclose(ours[name], value, rtol=1e-4, atol=1e-5, err_msg=name)
                else:
                    np.testing.assert_allclose(ours[name], value, rtol=0, atol=1e-6, err_msg=name)
                worst[name] = max(worst.get(name, 0.0), abs(ours[name] - value))
    assert set(worst) == {"dsc", "iou", "sensitivity", "specificity", "precision", "hd", "hd95", "assd"}


def test_against_monai_2d() -> None:
    """2D masks (TS-CNN slices) with anisotropic pixels."""
    rng = np.random.default_rng(7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5):
            field = ndimage.gaussian_filter(rng.normal(size=(40, 33)), 1.5)
            ref = field > 0.1
            pred = ndimage.binary_erosion(ref) | (ndimage.gaussian_filter(rng.normal(size=(40, 33)), 2) > 0.3)
            spacing = (0.6, 1.7)
            ours = binary_case_metrics(pred, ref, spacing)
            p = torch.as_tensor(pred[None, None].astype(np.float32))
            r = torch.as_tensor(ref[None, None].astype(np.float32))
            hd95 = monai_metrics.compute_hausdorff_distance(p, r, True, spacing=spacing, percentile=95)
            assert ours["hd95"] == pytest.approx(float(hd95), rel=1e-4)
