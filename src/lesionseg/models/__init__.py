"""The bundled pretrained model (weights shipped inside the package; see MODEL_CARD.md)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lesionseg.errors import LesionsegError

BUNDLED_MODEL = "wmh_ms_flair_t1.pt"


def bundled_model_path() -> Path:
    """Path of the bundled FLAIR+T1 lesion model; LesionsegError when the package was built without it."""
    path = Path(str(resources.files("lesionseg.models") / BUNDLED_MODEL))
    if not path.is_file():
        raise LesionsegError("the bundled model is missing from this installation", path)
    return path
