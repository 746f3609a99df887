"""lesionseg: brain-lesion segmentation in MRI (TS-CNN, class-balanced PixelNet, WMH U-Net ensemble).

The public API, imported lazily so that ``import lesionseg`` stays cheap (no torch until first use):

- :func:`segment` (FLAIR [+ T1] -> label Volume on the FLAIR's grid, the bundled model by default),
- :func:`compare` (lesion change between two studies of one patient, on study 2's grid),
- :func:`read_volume`, :func:`write_volume`, :class:`Volume` (array + affine + "image"/"label" kind),
- :func:`evaluate` (metrics of a predicted mask against a reference, in mm),
- :class:`Predictor` (one checkpoint or an ensemble), :func:`train` (as ``lesionseg train``),
- :func:`lesion_table` (one row per lesion of a mask, with its location; ``docs/lesion_table.md``).

>>> import lesionseg
>>> labels = lesionseg.segment("flair.nii.gz", "t1.nii.gz")  # doctest: +SKIP
>>> lesionseg.write_volume(labels, "mask.nii.gz")  # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "segment": "lesionseg.api",
    "compare": "lesionseg.api",
    "evaluate": "lesionseg.evaluate",  # the package, callable: runs evaluate.pair.evaluate_masks
    "train": "lesionseg.train",  # the package, callable: lesionseg.train(...) runs train.run.train_method
    "Volume": "lesionseg.io",
    "read_volume": "lesionseg.io",
    "write_volume": "lesionseg.io",
    "Predictor": "lesionseg.infer.predictor",
    "LesionsegError": "lesionseg.errors",
    "lesion_table": "lesionseg.report.lesion_table",  # one row per lesion, with its location
}
__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from lesionseg.api import compare as compare
    from lesionseg.api import segment as segment
    from lesionseg.errors import LesionsegError as LesionsegError
    from lesionseg.evaluate.pair import evaluate_masks as evaluate  # noqa: F401
    from lesionseg.infer.predictor import Predictor as Predictor
    from lesionseg.io import Volume as Volume
    from lesionseg.io import read_volume as read_volume
    from lesionseg.io import write_volume as write_volume
    from lesionseg.report.lesion_table import lesion_table as lesion_table
    from lesionseg.train.run import train_method as train  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in ("train", "evaluate"):  # the package itself, callable (see its __init__.py)
        return import_module(f"lesionseg.{name}")
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lesionseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
