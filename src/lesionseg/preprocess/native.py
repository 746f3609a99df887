"""Scans as they come from the scanner -> channels on the FLAIR's grid, ready for the predictor.

Steps, each recorded (a dict per step, for the output's JSON sidecar):
1. read every channel (NIfTI, MetaImage, NRRD, or a DICOM series folder); a constant image (all voxels
   equal, e.g. all zero) is refused: there is nothing to segment.
2. ``register``: a channel whose grid differs from the reference (first) channel's is registered rigidly
   onto it (:mod:`lesionseg.preprocess.register`); channels already on its grid are left alone.
3. ``skull_strip``: "auto" (default) strips a scan found to have skull (:func:`skullstrip.has_skull`),
   "on" always, "off" never: a brain mask from deepbet on the T1 (else the reference), applied to every
   channel and returned as the brain mask (:mod:`lesionseg.preprocess.skullstrip`).
Everything returned is on the reference channel's grid with its affine and header, so the mask predicted
from it is written on the FLAIR's native grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_volume
from lesionseg.preprocess.limits import check_geometry


def read_channel(path: str | Path | Volume, name: str) -> tuple[Volume, dict]:
    """One channel (a file, or a Volume taken as it is) and its 'read' record; LesionsegError for a
    constant image."""
    if isinstance(path, Volume):
        volume = path
    elif isinstance(path, (str, Path)):
        volume = read_volume(Path(path))
    else:
        raise TypeError(
            f"expected a file path or a lesionseg.Volume, got {type(path).__name__}: an array alone has no "
            "affine, and the orientation it gives decides the mask (wrap it as Volume(array, affine))"
        )
    source = volume.source if isinstance(path, Volume) else Path(path)
    check_geometry(volume, source)
    low, high = (float(volume.array.min()), float(volume.array.max())) if volume.array.size else (0.0, 0.0)
    if low == high:
        raise LesionsegError(f"{name} image is constant (every voxel {low:g}): nothing to segment", source)
    if source is None:
        fmt = "volume"
    else:
        fmt = "dicom" if Path(source).is_dir() else Path(source).name.split(".", 1)[-1].lower()
    return volume, {
        "step": "read",
        "channel": name,
        "file": str(source) if source is not None else "a Volume in memory",
        "format": fmt,
        "shape": list(volume.shape),
    }


def prepare_channels(
    channels: Mapping[str, str | Path | Volume],
    channel_names: Sequence[str],
    register: bool = True,
    skull_strip: bool | str = "auto",
    device: str = "cpu",
) -> tuple[list[Volume], Volume | None, list[dict]]:
    """(channels in ``channel_names`` order on the first one's grid, brain mask from skull-stripping or
    None, the steps applied)."""
    missing = [name for name in channel_names if name not in channels]
    if missing:
        raise LesionsegError(f"the model needs channel(s) {', '.join(missing)} (have {', '.join(channels)})")
    mode = {True: "on", False: "off"}.get(skull_strip, skull_strip)  # type: ignore[call-overload]
    if mode == "on":
        from lesionseg.preprocess.skullstrip import require_skullstrip

        require_skullstrip()  # before any reading: a missing extra is the user's first thing to fix
    steps: list[dict] = []
    images = []
    for name in channel_names:
        volume, record = read_channel(channels[name], name)
        images.append(volume)
        steps.append(record)
    reference = images[0]
    for i, name in enumerate(channel_names[1:], start=1):
        if reference.same_grid(images[i]):
            continue
        if not register:
            raise LesionsegError(
                f"channel {name} is not on the grid of "
                f"{_named(channels[channel_names[0]], channel_names[0])} (registration is off)",
                _named(channels[name], name),
            )
        from lesionseg.preprocess.register import register_rigid

        images[i], result = register_rigid(reference, images[i])
        steps.append(
            {
                "step": "register",
                "channel": name,
                "onto": channel_names[0],
                "method": "rigid (Euler 3D), Mattes mutual information",
                **result.to_dict(),
            }
        )
    from lesionseg.preprocess.skullstrip import should_strip, strip_skull

    mask = None
    strip, decision = should_strip(mode, reference)
    steps.append(decision)
    if strip:
        images, mask, record = strip_skull(images, list(channel_names), device)
        steps.append(record)
    return images, mask, steps


def brain_fraction_inside(label: np.ndarray, mask: Volume) -> float:
    """Fraction of the predicted lesion voxels inside the brain mask (1.0 for an empty prediction)."""
    lesion = label > 0
    return 1.0 if not lesion.any() else float(np.logical_and(lesion, mask.array > 0).sum() / lesion.sum())


def _named(item: str | Path | Volume, name: str) -> str | Path:
    """A channel as a message names it: its file, or the Volume's source."""
    if isinstance(item, Volume):
        return item.source or f"the {name} Volume"
    return item
