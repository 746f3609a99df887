"""Scoring: a pair of masks (:mod:`.pair`), a folder of predictions against a manifest's references
(:mod:`.folder`, ``lesionseg evaluate``), subject-wise cross-validation (:mod:`.cv`, ``lesionseg cv``; it
trains through :mod:`lesionseg.train`), an averaged model's calibration on validation
(:mod:`.ensemble_calibration`) and labelled-slice scoring (:mod:`.labelled_slices`). Every form
returns metric rows that :mod:`lesionseg.report` renders.

``lesionseg.evaluate`` is also the public function ``lesionseg.evaluate(pred, ref, spacing=None)``: once
any of this package's modules is imported, Python binds the name ``lesionseg.evaluate`` to this package, so
the package itself is callable and runs :func:`lesionseg.evaluate.pair.evaluate_masks` (as
``lesionseg.train``).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableEvaluatePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from lesionseg.evaluate.pair import evaluate_masks

        return evaluate_masks(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableEvaluatePackage
