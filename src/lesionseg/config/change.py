"""The rules of ``lesionseg compare`` that call a lesion change (stdlib only: the CLI reads the defaults)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ChangeOptions:
    """The rules that call a change, with their defaults (see docs/compare.md; chosen a priori, not on the
    benchmark data)."""

    min_new_mm3: float = 15.0  # a new (or resolved) lesion holds at least this
    min_change_fraction: float = 0.5  # enlarging / shrinking: change of at least 50 % of the study-1 volume
    min_change_mm3: float = 30.0  # ... and of at least this many mm^3
    min_subtraction_z: float | None = 1.5  # mean subtraction z of the changed voxels; None: no check

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """ValueError for a negative size or fraction."""
        for name in ("min_new_mm3", "min_change_fraction", "min_change_mm3"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
