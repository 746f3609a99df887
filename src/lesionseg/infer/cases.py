"""Find the cases to predict: a folder of BIDS-like files (sub-X_FLAIR.nii.gz, sub-X_T1.nii.gz), a
manifest, or channels given by name."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from lesionseg.errors import LesionsegError

IMAGE_SUFFIX = re.compile(r"\.(nii\.gz|nii|mha|mhd|nrrd)$", re.IGNORECASE)


@dataclass
class InputCase:
    id: str
    channels: dict[str, Path]  # channel name -> file
    mask: Path | None = None
    problems: list[str] = field(default_factory=list)


def cases_in_folder(folder: Path, channel_names: list[str]) -> list[InputCase]:
    """Group files named ``<case>_<CHANNEL>.<ext>`` (channel matched case-insensitively; an optional
    ``<case>_brainmask`` is the brain mask). A case missing a channel is kept with a problem noted."""
    if not folder.is_dir():
        raise LesionsegError("input folder not found", folder)
    wanted = {c.lower(): c for c in channel_names}
    found: dict[str, InputCase] = {}
    for path in sorted(folder.iterdir()):
        match = IMAGE_SUFFIX.search(path.name)
        if not match or not path.is_file():
            continue
        stem = path.name[: match.start()]
        case_id, sep, channel = stem.rpartition("_")
        if not sep:
            continue
        case = found.setdefault(case_id, InputCase(case_id, {}))
        if channel.lower() in wanted:
            case.channels[wanted[channel.lower()]] = path
        elif channel.lower() in ("brainmask", "mask"):
            case.mask = path
    cases = [c for c in found.values() if c.channels]
    if not cases:
        names = ", ".join(f"<case>_{c}.nii.gz" for c in channel_names)
        raise LesionsegError(f"no input files found (expected names like {names})", folder)
    for case in cases:
        missing = [c for c in channel_names if c not in case.channels]
        if missing:
            case.problems.append(f"missing channel(s) {', '.join(missing)}")
    return cases
