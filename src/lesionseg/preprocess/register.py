"""Rigid co-registration of a channel (T1) onto the reference channel's (FLAIR's) grid.

Used only when the two grids differ: same-session scans are aligned in world coordinates already, so the
optimiser starts from the identity (rotation about the FLAIR's centre) and refines six rigid parameters by
Mattes mutual information (50 bins, 20 % of the voxels sampled with a fixed seed, so reruns agree), over
three resolutions (shrink 4, 2, 1; smoothing 2, 1, 0 voxels), with regular-step gradient descent on
physical-shift-scaled parameters. The moving image is then resampled linearly onto the reference grid
(outside its field of view: 0). The result carries the reference's affine and header.

A fit whose final metric is above ``WORST_ACCEPTED_METRIC`` is refused: the optimiser always stops
somewhere, and a T1 whose header is wrong (e.g. its affine scaled 1.5x) "registers" to a pose of 10-20
degrees and 20-45 mm at a metric of -0.16 to -0.20, where good fits reach -0.72 to -0.79 (measured on the
phantoms and on the raw FLAIR/T1 pairs of open_ms_data/longitudinal; docs/faults.md). A 1.1x
scale error already drops the phantom's fit to -0.52; the threshold of -0.4 sits between the two groups.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume
from lesionseg.io.readers import LPS_TO_RAS

# Negative Mattes mutual information (50 bins) after the last level: a fit above it is refused.
WORST_ACCEPTED_METRIC = -0.4


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
    reference: Volume, moving: Volume, seed: int = 1, centre_of_mass: bool = False
) -> tuple[object, RigidResult]:
    """The rigid transform (a SimpleITK Euler3DTransform mapping reference points into ``moving``) and its
    record. ``centre_of_mass``: start from the translation that aligns the two images' intensity centroids
    (scans of two sessions, whose world frames need not agree) instead of the identity. ``seed`` draws the
    metric's random sample of voxels; it must not be 0, which ITK reads as "seed from the wall clock" (two
    runs of one case then found different poses)."""
    import SimpleITK as sitk

    if seed == 0:
        raise ValueError("seed 0 makes ITK seed from the wall clock; give a positive seed")

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
    # One thread for every filter the registration runs (its pyramid's smoothing and shrinking too): with
    # more, ITK sums in a thread-dependent order and two runs of one case found poses 1e-6 mm apart.
    threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        method.Execute(fixed, mov)
    except RuntimeError as error:  # ITK refuses, e.g. a grid with fewer than 4 voxels along an axis
        raise LesionsegError(
            f"cannot register this image onto {reference.source or 'the reference image'} "
            f"({itk_reason(error)}); if the two are aligned already, skip registration (--no-register)",
            moving.source,
        ) from None
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
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


def register_rigid(reference: Volume, moving: Volume, seed: int = 1) -> tuple[Volume, RigidResult]:
    """``moving`` aligned to ``reference`` by a rigid transform, resampled onto the reference grid; a fit
    whose final metric shows no match is refused (:func:`check_fit`)."""
    transform, result = estimate_rigid(reference, moving, seed)
    check_fit(result, reference, moving)
    aligned = resample_rigid(moving.with_array(moving.array, kind="image"), reference, transform)
    return aligned, result


def check_fit(result: RigidResult, reference: Volume, moving: Volume) -> None:
    """LesionsegError naming the moving image when the registration's final metric shows no good fit."""
    if result.metric <= WORST_ACCEPTED_METRIC:
        return
    degrees = float(np.rad2deg(np.max(np.abs(result.angles_rad))))
    shift = float(np.linalg.norm(result.translation_mm))
    raise LesionsegError(
        f"registration onto {reference.source or 'the reference image'} fits badly (Mattes metric "
        f"{result.metric:.2f}, needs {WORST_ACCEPTED_METRIC:g} or lower; pose {degrees:.1f} degrees, "
        f"{shift:.0f} mm): check this image's header (voxel size, orientation); if the two are aligned "
        "already, skip registration (--no-register)",
        moving.source,
    )
