"""Training loop, budget and schedule, calibration, checkpoints written (cross-validation: evaluate.cv).

``lesionseg.train`` is also the public function ``lesionseg.train(manifest, root, out_dir, ...)``: once any
of this package's modules is imported, Python binds the name ``lesionseg.train`` to this package, so the
package itself is callable and runs :func:`lesionseg.train.run.train_method`.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableTrainPackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from lesionseg.train.run import train_method

        return train_method(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableTrainPackage
