"""Procedural FLAIR/T1 brain phantom with known lesion and brain masks (no downloads, deterministic).

``make_phantom_case(rng, shape, spacing) -> PhantomCase`` draws one subject; ``write_phantom_dataset``
writes N of them with a manifest. Default grid: 96 x 112 x 64 voxels at 1.5 x 1.5 x 2.0 mm (144 x 168 x
128 mm field of view), slightly oblique LAS-like affine. See anatomy.py, lesions.py and case.py for the model.
"""

from lesionseg.phantom.case import DEFAULT_SHAPE, DEFAULT_SPACING, PhantomCase, make_phantom_case
from lesionseg.phantom.dataset import write_phantom_dataset

__all__ = ["DEFAULT_SHAPE", "DEFAULT_SPACING", "PhantomCase", "make_phantom_case", "write_phantom_dataset"]
