"""PreprocessConfig: which preprocessing steps run, and with which parameters. Presets are values.

The steps, in the order they run (see ``lesionseg.preprocess``):

1. ``reorient``: to the closest canonical RAS orientation (a permutation and flips; exact). Afterwards the
   last axis (Z) is the axial slice axis.
2. ``target_spacing``: resample to this (x, y, z) spacing in mm (linear for images, nearest for labels);
   None (default) keeps the native grid. Not exactly invertible.
3. ``skull_strip`` (before the steps above, on the native grid; manifest cases without a brain-mask file
   only): "auto" strips a scan found to have skull (foreground above 2.3 L,
   ``lesionseg.preprocess.skullstrip.has_skull``) with deepbet, "on" always, "off" never; the deepbet mask is
   then the brain mask.
4. ``brain_mask``: "file" uses the manifest's mask and falls back to "nonzero" when the case has none;
   "nonzero" keeps voxels that differ from the background value (the most common value on the volume's
   border, per channel, so negative backgrounds of z-scored images count as background) in any channel;
   "otsu" thresholds the first channel with Otsu's method; "none" uses the whole volume. Derived masks
   get their holes filled and keep only the largest connected component.
5. ``n4``: N4 bias-field correction (fit on the image shrunk by ``n4_shrink``, ``n4_iterations`` per
   fitting level, inside the brain mask; the log bias field is then applied at full resolution).
   Off by default: every shared data set is already N4-corrected (open_ms_data) or holds quantitative or
   normalised maps (ADC, z-scored BraTS) that N4 would distort. The "raw" preset turns it on.
6. ``normalize``: "zscore" per channel inside the brain mask (0 outside), or "none".
7. ``crop_margin``: crop to the brain's bounding box grown by this many voxels per axis (x, y, z).
8. ``target_size``: pad in-plane (x, y) to this size; a larger brain box is first shrunk in-plane (one
   scale for both axes, linear for images, nearest for labels), which is not exactly invertible. Padding
   (with 0, the z-scored background) is the default and the normal case (all three papers use 256x256).
   None: no padding. Z is cropped, never padded, so cases keep their own number of slices.

Only reorientation, crop and pad are exactly invertible; ``PreprocessRecord.exact`` says whether a case
went through resampling or an in-plane resize.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from lesionseg.errors import LesionsegError

BrainMaskMode = Literal["file", "nonzero", "otsu", "none"]
NormalizeMode = Literal["zscore", "none"]
SkullStripMode = Literal["auto", "on", "off"]


@dataclass(frozen=True)
class PreprocessConfig:
    """Preprocessing parameters; every field is recorded with the preprocessed case."""

    reorient: bool = True
    target_spacing: tuple[float, float, float] | None = None
    brain_mask: BrainMaskMode = "file"
    n4: bool = False
    n4_shrink: int = 4
    n4_iterations: tuple[int, ...] = (50, 50, 30, 20)
    normalize: NormalizeMode = "zscore"
    crop_margin: tuple[int, int, int] = (4, 4, 2)
    target_size: tuple[int, int] | None = (256, 256)
    skull_strip: SkullStripMode = "auto"

    def __post_init__(self) -> None:
        if self.skull_strip not in ("auto", "on", "off"):
            raise LesionsegError(f"skull_strip must be auto, on or off, got {self.skull_strip!r}")
        if self.target_spacing is not None and min(self.target_spacing) <= 0:
            raise LesionsegError(f"target_spacing must be positive, got {self.target_spacing}")
        if self.n4_shrink < 1:
            raise LesionsegError(f"n4_shrink must be >= 1, got {self.n4_shrink}")
        if not self.n4_iterations or min(self.n4_iterations) < 1:
            raise LesionsegError(f"n4_iterations must be positive integers, got {self.n4_iterations}")
        if min(self.crop_margin) < 0:
            raise LesionsegError(f"crop_margin must be >= 0, got {self.crop_margin}")
        if self.target_size is not None and min(self.target_size) < 1:
            raise LesionsegError(f"target_size must be positive, got {self.target_size}")


PREPROCESS_PRESETS: dict[str, PreprocessConfig] = {
    # Already bias-corrected, skull-stripped sets (all of ../shared/data).
    "default": PreprocessConfig(),
    # Scanner images: N4 on, brain mask by Otsu when no mask file is given.
    "raw": PreprocessConfig(n4=True, brain_mask="otsu"),
}


def preprocess_preset(name: str) -> PreprocessConfig:
    """A preset by name; LesionsegError listing the valid names otherwise."""
    if name not in PREPROCESS_PRESETS:
        raise LesionsegError(f"unknown preprocess preset {name!r} (valid: {', '.join(PREPROCESS_PRESETS)})")
    return replace(PREPROCESS_PRESETS[name])
