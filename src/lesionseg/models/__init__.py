"""The bundled pretrained model (weights shipped inside the package; see MODEL_CARD.md): a folder of three
networks (``seed_<s>/best.pt``) and their average's calibration (``ensemble_calibration.json``), which
``predict --model`` takes as one model (``lesionseg.infer.ensemble_file``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from lesionseg.errors import LesionsegError

BUNDLED_MODEL = "wmh_ms_flair_t1"


def bundled_model_path() -> Path:
    """Folder of the bundled FLAIR+T1 lesion model; LesionsegError when the package was built without it."""
    path = Path(str(resources.files("lesionseg.models") / BUNDLED_MODEL))
    if not path.is_dir():
        raise LesionsegError("the bundled model is missing from this installation", path)
    return path
