"""The ensemble's own threshold and minimum lesion size, saved beside its members.

``lesionseg train`` and ``lesionseg cv`` choose them on the validation subjects from the members' averaged
probabilities (WMH thesis section 2.4, the "empirical threshold") and write ``ensemble_calibration.json``
into the folder that holds one sub-folder per member. ``lesionseg predict`` uses them when it is given
exactly those members (``--model`` repeated), or that folder (``--model OUT``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output

ENSEMBLE_FILE = "ensemble_calibration.json"


def write_ensemble_calibration(folder: Path, members: Sequence[str | Path], values: dict) -> Path:
    """``values`` (threshold, min_lesion_mm3, ...) with the member checkpoints, relative to ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = [os.path.relpath(Path(m).resolve(), folder.resolve()) for m in members]
    path = folder / ENSEMBLE_FILE
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps({**values, "members": listed}, indent=2) + "\n")
    return path


def read_ensemble_file(path: Path) -> dict:
    """The saved calibration; a one-line error naming the file when it is not what we wrote."""
    try:
        data = json.loads(path.read_text())
        members = [str(m) for m in data["members"]]
        values = {"threshold": float(data["threshold"]), "min_lesion_mm3": float(data["min_lesion_mm3"])}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise LesionsegError(f"not a readable ensemble calibration ({error})", path) from None
    if not (0.0 < values["threshold"] < 1.0 and values["min_lesion_mm3"] >= 0.0 and members):
        raise LesionsegError("ensemble calibration holds out-of-range values or no members", path)
    return {**values, "members": [(path.parent / m).resolve() for m in members]}


def expand_model_folders(models: Sequence[str | Path]) -> list[Path]:
    """A folder given as a model stands for what was trained into it: the members listed in its
    ensemble_calibration.json, else its best.pt. Files are kept as they are."""
    paths: list[Path] = []
    for model in map(Path, models):
        if not model.is_dir():
            paths.append(model)
        elif (model / ENSEMBLE_FILE).is_file():
            paths += members_inside(model / ENSEMBLE_FILE)
        elif (model / "best.pt").is_file():
            paths.append(model / "best.pt")
        else:
            raise LesionsegError(f"folder holds neither best.pt nor {ENSEMBLE_FILE}", model)
    return paths


def members_inside(path: Path) -> list[Path]:
    """The members an ensemble file lists, each of which must lie inside its model folder: a folder given
    as a model reads nothing from elsewhere (``../../x.pt``, ``/abs/x.pt``, a link out)."""
    folder = path.parent.resolve()
    members = read_ensemble_file(path)["members"]
    for member in members:
        if not member.is_relative_to(folder):
            raise LesionsegError(
                f"ensemble calibration lists member {member} outside its model folder {folder}; refused "
                "(give the member checkpoints as --model files instead)",
                path,
            )
    return members


def saved_ensemble_calibration(members: Sequence[str | Path]) -> tuple[float, float] | None:
    """(threshold, min_lesion_mm3) saved for exactly these members together, or None (a single model,
    members from different runs, or an ensemble trained without calibration)."""
    if len(members) < 2:
        return None
    resolved = sorted(Path(m).resolve() for m in members)
    folders = {p.parent.parent for p in resolved}
    if len(folders) != 1 or not (folder := folders.pop() / ENSEMBLE_FILE).is_file():
        return None
    saved = read_ensemble_file(folder)
    if sorted(saved["members"]) != resolved:
        return None
    return saved["threshold"], saved["min_lesion_mm3"]
