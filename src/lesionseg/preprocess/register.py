"""Rigid co-registration of a channel (T1) onto the reference channel's (FLAIR's) grid.

Used only when the two grids differ: same-session scans are aligned in world coordinates already, so the
optimiser starts from the identity (rotation about the FLAIR's centre) and refines six rigid parameters by
Mattes mutual information (50 bins, 20 % of the voxels sampled with a fixed seed, so reruns agree), over
three resolutions (shrink 4, 2, 1; smoothing 2, 1, 0 voxels), with regular-step gradient descent on
physical-shift-scaled parameters. The moving image is then resampled linearly onto the reference grid
(outside its field of view: 0). The result carries the reference's affine and header.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume
from lesionseg.io.readers import LPS_TO_RAS


@dataclass(frozen=True)
class RigidResult:
    """What the registration found: Euler angles (radians, about x, y, z in LPS) and translation (mm),
    of the transform that maps reference (fixed) points into the moving image; the final metric value
    (negative mutual information: lower is better) and the optimiser's stopping reason."""

    angles_rad: tuple[float, float, float]
    translation_mm: tuple[float, float, float]
    metric: float
    iterations: int
    stop: str

    def to_dict(self) -> dict:
        return asdict(self)


def to_sitk(volume: Volume):  # noqa: ANN201 - SimpleITK image
    """A Volume as a float32 SimpleITK image (LPS physical space)."""
    import SimpleITK as sitk

    affine_lps = LPS_TO_RAS @ volume.affine
    spacing = np.linalg.norm(affine_lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(volume.array.astype(np.float32).transpose(2, 1, 0)))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(d) for d in (affine_lps[:3, :3] / spacing).ravel()])
    image.SetOrigin([float(o) for o in affine_lps[:3, 3]])
    return image


def itk_reason(error: RuntimeError) -> str:
    """The sentence ITK ends its exception text with (its text otherwise spans several lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = lines[-1] if lines else "registration failed"
    return last.split("): ", 1)[-1].rstrip(".")


def estimate_rigid(
    reference: Volume, moving: Volume, seed: int = 0, centre_of_mass: bool = False
) -> tuple[object, RigidResult]:
    """The rigid transform (a SimpleITK Euler3DTransform mapping reference points into ``moving``) and its
    record. ``centre_of_mass``: start from the translation that aligns the two images' intensity centroids
    (scans of two sessions, whose world frames need not agree) instead of the identity."""
    import SimpleITK as sitk

    fixed, mov = to_sitk(reference), to_sitk(moving)
    transform = sitk.Euler3DTransform()
    if centre_of_mass:
        transform = sitk.CenteredTransformInitializer(
            fixed, mov, transform, sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    else:
        centre = np.asarray(reference.shape, dtype=np.float64) / 2.0
        transform.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint([float(c) for c in centre]))
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=50)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(0.2, seed)
    method.SetNumberOfThreads(1)  # ITK's threaded metric sums in a thread-dependent order: one thread agrees
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=2.0, minStep=1e-4, numberOfIterations=200, relaxationFactor=0.5
    )
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1])
    method.SetSmoothingSigmasPerLevel([2, 1, 0])
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    method.SetInitialTransform(transform, inPlace=True)
    try:
        method.Execute(fixed, mov)
    except RuntimeError as error:  # ITK refuses, e.g. a grid with fewer than 4 voxels along an axis
        raise LesionsegError(
            f"cannot register this image onto {reference.source or 'the reference image'} "
            f"({itk_reason(error)}); if the two are aligned already, skip registration (--no-register)",
            moving.source,
        ) from None
    params = transform.GetParameters()
    result = RigidResult(
        angles_rad=tuple(float(p) for p in params[:3]),
        translation_mm=tuple(float(p) for p in params[3:]),
        metric=float(method.GetMetricValue()),
        iterations=int(method.GetOptimizerIteration()),
        stop=method.GetOptimizerStopConditionDescription().strip()[:200],
    )
    return transform, result


def resample_rigid(moving: Volume, reference: Volume, transform: object) -> Volume:
    """``moving`` resampled onto ``reference``'s grid through ``transform`` (reference -> moving points):
    linearly for an image, nearest neighbour for a label map; 0 outside its field of view."""
    import SimpleITK as sitk

    label = moving.kind == "label"
    interpolator = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    resampled = sitk.Resample(
        to_sitk(moving), to_sitk(reference), transform, interpolator, 0.0, sitk.sitkFloat32
    )
    array = sitk.GetArrayFromImage(resampled).transpose(2, 1, 0)
    array = np.rint(array).astype(moving.array.dtype) if label else array.astype(np.float32)
    return Volume(array, reference.affine.copy(), moving.kind, reference.header, moving.source)


def register_rigid(reference: Volume, moving: Volume, seed: int = 0) -> tuple[Volume, RigidResult]:
    """``moving`` aligned to ``reference`` by a rigid transform, resampled onto the reference grid."""
    transform, result = estimate_rigid(reference, moving, seed)
    aligned = resample_rigid(moving.with_array(moving.array, kind="image"), reference, transform)
    return aligned, result
