"""The bundled pretrained models (weights shipped inside the package; see MODEL_CARD.md), one per input:
each a folder of networks (``*/best.pt``) and their average's calibration (``ensemble_calibration.json``),
which ``predict --model`` takes as one model (``lesionseg.infer.ensemble_file``).

- ``ms_flair``: FLAIR alone, trained on the three MS sites (``ms_three_sites``);
- ``wmh_ms_flair_t1``: FLAIR + T1, trained on open_ms_data and mslesseg.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from lesionseg.errors import LesionsegError

BUNDLED_MODEL = "wmh_ms_flair_t1"  # FLAIR + T1
BUNDLED_FLAIR_MODEL = "ms_flair"  # FLAIR alone
BUNDLED_BY_CHANNELS = {("FLAIR", "T1"): BUNDLED_MODEL, ("FLAIR",): BUNDLED_FLAIR_MODEL}


def bundled_model_path(channels: Sequence[str] = ("FLAIR", "T1")) -> Path:
    """Folder of the bundled model for these input channels (FLAIR + T1, or FLAIR alone); LesionsegError
    when there is none for them or the package was built without it."""
    name = BUNDLED_BY_CHANNELS.get(tuple(c.upper() for c in channels))
    if name is None:
        raise LesionsegError(
            f"no bundled model takes {' + '.join(channels)} (bundled: FLAIR + T1, FLAIR alone); give --model"
        )
    path = Path(str(resources.files("lesionseg.models") / name))
    if not path.is_dir():
        raise LesionsegError(
            f"the bundled {' + '.join(channels)} model is missing from this installation", path
        )
    return path
