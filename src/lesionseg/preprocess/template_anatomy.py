"""The template's lateral ventricles, cortex and posterior fossa (``template_regions``) on a subject's grid.

Two ways onto the subject's grid:

- ``space="mni"``: the subject is in MNI space already (e.g. registered with FSL ``flirt``): each voxel
  takes the region of the template voxel nearest to its world (RAS mm) position;
- ``space="native"``: the template T1 is registered affinely (12 parameters) onto the subject's image
  (FLAIR) with SimpleITK, from the alignment of the two images' centres of mass: Mattes mutual information
  (50 bins, 10 % of the voxels with a fixed seed (not 0: ITK reads 0 as "the wall clock"), one thread, so
  reruns agree), both images first
  averaged onto bins of about 3 mm, then two resolutions (shrink 2 and 1, smoothing 1 and 0 bins: 6 and
  3 mm), regular-step gradient descent; the regions are then resampled onto the subject's full grid
  (nearest neighbour).

The lateral ventricles are then fitted to the subject (:func:`refine_ventricles`): patients' ventricles
are often larger than the template's (atrophy), and a registration is off by a few mm.

Refused (None, and the lesion locations become ``unknown``): no template installed; a subject grid under
:data:`MIN_EXTENT_MM` along any axis (a crop or a tiny phantom holds no whole brain); a registration that
ITK refuses or whose scale leaves :data:`SCALE_RANGE` (a failed fit, not a head).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import ndimage

from lesionseg.io import Volume
from lesionseg.io.atlas import load_mni_template
from lesionseg.preprocess.register import to_sitk
from lesionseg.preprocess.template_regions import TemplateRegions, mni_regions

Space = Literal["native", "mni"]
MIN_EXTENT_MM = 100.0
SCALE_RANGE = (0.7, 1.4)
REGISTRATION_MM = 3.0  # both images are averaged onto bins of about 3 mm before registering
REACH_MM = 8.0  # how far the subject's ventricles may extend beyond the template's
DARK_FRACTION = 0.6  # CSF: darker than this fraction of the surrounding tissue's median
_BITS = {"ventricles": 1, "cortex": 2, "posterior_fossa": 4}


@dataclass(frozen=True)
class SubjectAnatomy:
    """Boolean maps on the subject's grid and how they got there (``"mni"`` or ``"registered"``)."""

    ventricles: np.ndarray
    cortex: np.ndarray
    posterior_fossa: np.ndarray
    method: str


def subject_anatomy(
    grid: Volume, image: Volume | None = None, space: Space = "native"
) -> SubjectAnatomy | None:
    """The template's structures on ``grid``'s voxels (``image``, on the same grid, is what the template is
    registered to in native space); None when they cannot be derived (module docstring)."""
    regions = mni_regions()
    if regions is None:
        return None
    if space == "mni":
        anatomy = _from_codes(_codes_by_world(regions, grid), "mni")
    else:
        if image is None or min(np.multiply(grid.shape[:3], grid.spacing)) < MIN_EXTENT_MM:
            return None
        codes = _codes_registered(regions, image)
        if codes is None:
            return None
        anatomy = _from_codes(codes, "registered")
    if image is None:
        return anatomy
    ventricles = refine_ventricles(anatomy.ventricles, image.array, image.spacing)
    return replace(anatomy, ventricles=ventricles)


def refine_ventricles(
    template: np.ndarray, image: np.ndarray, spacing: tuple[float, ...], reach_mm: float = REACH_MM
) -> np.ndarray:
    """The subject's lateral ventricles: voxels darker than :data:`DARK_FRACTION` of the median intensity
    of the tissue around the template's ventricles (the shell from 0 to ``reach_mm`` outside them: white
    and deep grey matter, where CSF is dark in FLAIR and T1), within ``reach_mm`` of the template's
    ventricles, in connected pieces that overlap them. The template's ventricles themselves when no such
    piece exists (an image whose CSF is not dark)."""
    if not template.any():
        return template
    around = ndimage.distance_transform_edt(~template, sampling=spacing) <= reach_mm
    shell = around & ~template
    if not shell.any():
        return template
    dark = (image < DARK_FRACTION * float(np.median(image[shell]))) & around
    pieces, _ = ndimage.label(dark)
    keep = np.unique(pieces[template & dark])
    refined = np.isin(pieces, keep[keep > 0])
    return refined if refined.any() else template


def _packed(regions: TemplateRegions) -> np.ndarray:
    codes = np.zeros(regions.ventricles.shape, dtype=np.uint8)
    for name, bit in _BITS.items():
        codes[getattr(regions, name)] |= bit
    return codes


def _from_codes(codes: np.ndarray, method: str) -> SubjectAnatomy:
    maps = {name: (codes & bit) > 0 for name, bit in _BITS.items()}
    return SubjectAnatomy(method=method, **maps)


def _codes_by_world(regions: TemplateRegions, grid: Volume) -> np.ndarray:
    """Region codes sampled at ``grid``'s voxel centres through both affines (nearest voxel; outside: 0)."""
    to_template = np.linalg.inv(regions.affine) @ grid.affine
    index = np.indices(grid.shape[:3], dtype=np.float32).reshape(3, -1)
    coords = to_template[:3, :3].astype(np.float32) @ index + to_template[:3, 3:4].astype(np.float32)
    codes = ndimage.map_coordinates(_packed(regions), coords, order=0, mode="constant", cval=0)
    return codes.reshape(grid.shape[:3]).astype(np.uint8)


def _codes_registered(regions: TemplateRegions, image: Volume, seed: int = 1) -> np.ndarray | None:
    """Region codes on ``image``'s grid after an affine registration of the template T1 onto it."""
    import SimpleITK as sitk

    fixed = _binned(to_sitk(image))
    moving = _binned_template()
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.1, seed)
    method.SetNumberOfThreads(1)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-3, numberOfIterations=100, relaxationFactor=0.5
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([2, 1])
    method.SetSmoothingSigmasPerLevel([1.0, 0.0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(initial, inPlace=True)
    try:
        method.Execute(fixed, moving)
    except RuntimeError:
        return None
    linear = np.asarray(initial.GetMatrix(), dtype=np.float64).reshape(3, 3)
    scales = np.linalg.svd(linear, compute_uv=False)
    if scales.min() < SCALE_RANGE[0] or scales.max() > SCALE_RANGE[1]:
        return None
    codes = to_sitk(Volume(_packed(regions).astype(np.float32), regions.affine, "label"))
    resampled = sitk.Resample(
        codes,
        to_sitk(image.with_array(np.zeros(image.shape[:3], np.float32))),
        initial,
        sitk.sitkNearestNeighbor,
        0.0,
        sitk.sitkUInt8,
    )
    return sitk.GetArrayFromImage(resampled).transpose(2, 1, 0).astype(np.uint8)


def _binned(image, mm: float = REGISTRATION_MM):  # noqa: ANN001, ANN202 - SimpleITK images
    """``image`` averaged over bins of about ``mm`` per axis (SimpleITK ``BinShrink``)."""
    import SimpleITK as sitk

    factors = [max(1, round(mm / s)) for s in image.GetSpacing()]
    return sitk.BinShrink(image, factors)


@lru_cache(maxsize=1)
def _binned_template():  # noqa: ANN202 - a SimpleITK image
    return _binned(to_sitk(load_mni_template().t1))  # type: ignore[union-attr]
