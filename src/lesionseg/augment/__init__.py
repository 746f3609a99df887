"""Random 2D transforms: a parameter sampler per paper plus one deterministic twin that applies them.

Every augmentation is ``apply_affine_2d(image, label, params)`` with ``params`` drawn by
``sample_tscnn_params`` (TS-CNN row E, as the authors' code) or ``sample_wmh_params`` (WMH thesis
section 2.3), so it can be logged and replayed (TorchIO's habit). Labels are resampled with nearest
neighbour only, so no label value is ever invented.
"""

from lesionseg.augment.affine import (
    AffineParams,
    apply_affine_2d,
    sample_lesion_params,
    sample_tscnn_params,
    sample_wmh_params,
)
from lesionseg.augment.intensity import (
    LESION_CONTRAST_RANGE,
    IntensityParams,
    apply_intensity,
    drop_modalities,
    reduce_lesion_contrast,
    sample_intensity_params,
)

__all__ = [
    "LESION_CONTRAST_RANGE",
    "AffineParams",
    "IntensityParams",
    "apply_affine_2d",
    "apply_intensity",
    "drop_modalities",
    "reduce_lesion_contrast",
    "sample_intensity_params",
    "sample_lesion_params",
    "sample_tscnn_params",
    "sample_wmh_params",
]
