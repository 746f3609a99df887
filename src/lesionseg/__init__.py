"""lesionseg: brain-lesion segmentation in MRI (TS-CNN, class-balanced PixelNet, WMH U-Net ensemble).

The public API, imported lazily so that ``import lesionseg`` stays cheap (no torch until first use):

- :func:`segment` (FLAIR [+ T1] -> label Volume on the FLAIR's grid, the bundled model by default),
- :func:`compare` (lesion change between two studies of one patient, on study 2's grid),
- :func:`read_volume`, :func:`write_volume`, :class:`Volume` (array + affine + "image"/"label" kind),
- :func:`evaluate` (metrics of a predicted mask against a reference, in mm),
- :class:`Predictor` (one checkpoint or an ensemble), :func:`train` (as ``lesionseg train``),
- :func:`lesion_table` (one row per lesion of a mask, with its location; ``docs/lesion_table.md``).

``segment``, ``evaluate`` and ``train`` are plain functions of :mod:`lesionseg.api`.

>>> import lesionseg
>>> labels = lesionseg.segment("flair.nii.gz", "t1.nii.gz")  # doctest: +SKIP
>>> lesionseg.write_volume(labels, "mask.nii.gz")  # doctest: +SKIP
"""

from __future__ import annotations

import sys
import types
from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "segment": "lesionseg.api",
    "compare": "lesionseg.api",
    "evaluate": "lesionseg.api",
    "train": "lesionseg.api",
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
    from lesionseg.api import evaluate as evaluate
    from lesionseg.api import segment as segment
    from lesionseg.api import train as train
    from lesionseg.errors import LesionsegError as LesionsegError
    from lesionseg.infer.predictor import Predictor as Predictor
    from lesionseg.io import Volume as Volume
    from lesionseg.io import read_volume as read_volume
    from lesionseg.io import write_volume as write_volume
    from lesionseg.report.lesion_table import lesion_table as lesion_table


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lesionseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


# The functions ``train`` and ``evaluate`` share their names with the packages ``lesionseg.train`` and
# ``lesionseg.evaluate``. Importing a module of either package (``import lesionseg.train.run``) makes Python
# bind the package to that name here, in place of the function. So that ``lesionseg.train(...)`` still runs
# the function and ``lesionseg.train.run`` still names the module, such a package, when bound here, calls
# the function of lesionseg.api (nothing in the packages knows of this: no floor imports the public API).
_PUBLIC_FUNCTION_PACKAGES = ("train", "evaluate")


class _PublicFunctionPackage(types.ModuleType):
    """A package of ours whose name is also a function of :mod:`lesionseg.api`: calling it calls that."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        function = getattr(import_module("lesionseg.api"), self.__name__.rpartition(".")[2])
        return function(*args, **kwargs)


class _Lesionseg(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PUBLIC_FUNCTION_PACKAGES and isinstance(value, types.ModuleType):
            value.__class__ = _PublicFunctionPackage
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Lesionseg
