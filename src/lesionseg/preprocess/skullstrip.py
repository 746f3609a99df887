"""Optional skull-stripping with deepbet (Fisch et al. 2024, MIT; its two TorchScript networks ship inside
its wheel, no download at run time): ``pip install 'lesionseg[skullstrip]'``.

deepbet is trained on T1-weighted images, so the brain mask is computed on the T1 (already on the FLAIR's
grid) and applied to every channel. HD-BET was considered and not used: its package downloads its weights
from Zenodo on first use.
"""

from __future__ import annotations

import time

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume

SKULLSTRIP_EXTRA = "pip install 'lesionseg[skullstrip]'"


def skullstrip_available() -> bool:
    """True when deepbet can be imported."""
    try:
        import deepbet  # noqa: F401
    except ImportError:
        return False
    return True


def require_skullstrip() -> None:
    """LesionsegError naming the missing extra unless deepbet is installed."""
    if not skullstrip_available():
        raise LesionsegError(f"--skull-strip needs the optional extra 'skullstrip' ({SKULLSTRIP_EXTRA})")


def brain_mask_deepbet(t1: Volume, device: str = "cpu", threshold: float = 0.5) -> tuple[Volume, dict]:
    """deepbet's brain mask of ``t1`` on its grid (uint8 {0, 1}) and a record for the sidecar."""
    require_skullstrip()
    import nibabel as nib
    from deepbet import BrainExtraction

    start = time.perf_counter()
    extractor = BrainExtraction(no_gpu=device == "cpu")
    image = nib.Nifti1Image(np.asarray(t1.array, dtype=np.float32), t1.affine)
    try:
        _, mask_image, tiv_ml = extractor.run(image, threshold=threshold)
    except AssertionError as exc:  # deepbet asserts when it finds no head
        raise LesionsegError(f"skull-stripping found no brain ({exc})", t1.source) from exc
    mask = (np.asarray(mask_image.dataobj) > 0).astype(np.uint8)
    if not mask.any():
        raise LesionsegError("skull-stripping found no brain", t1.source)
    record = {
        "step": "skull_strip",
        "tool": "deepbet",
        "version": _version("deepbet"),
        "on": str(t1.source) if t1.source else "T1",
        "threshold": threshold,
        "brain_ml": round(float(mask.sum()) * t1.voxel_volume_ml, 1),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return t1.with_array(mask, kind="label"), record


def apply_brain_mask(volume: Volume, mask: Volume) -> Volume:
    """``volume`` with every voxel outside ``mask`` set to 0."""
    return volume.with_array(np.where(mask.array > 0, volume.array, 0).astype(volume.array.dtype))


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
