"""Other tools' dataset layouts, read into what lesionseg already understands.

- **nnU-Net v2 raw dataset** (a folder with ``dataset.json``, ``imagesTr/CASE_0000.nii.gz`` one file per
  channel, ``labelsTr/CASE.nii.gz``) -> a :class:`~lesionseg.data.manifest.Manifest` whose paths are
  relative to that folder (give it as ``--root``). Each case is its own subject (nnU-Net has no subjects).
  ``channel_names`` and ``labels`` come from dataset.json; region-based labels (lists) are refused.
- **BIDS root** (``sub-*/[ses-*/]anat/*_FLAIR.nii.gz`` with ``*_T1w.nii.gz`` of the same subject, session
  and other entities; an optional ``*_desc-brain_mask.nii.gz``) -> :class:`BidsCase` per FLAIR, with the
  derivatives-style place of its outputs (``sub-01/ses-1/anat/sub-01_ses-1``) for
  :data:`BIDS_OUTPUT_SUFFIXES`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from lesionseg.errors import LesionsegError

NNUNET_DATASET_JSON = "dataset.json"
_NNUNET_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")

BIDS_CHANNEL_SUFFIXES = {"FLAIR": "FLAIR", "T1": "T1w", "T2": "T2w"}  # model channel (any case) -> BIDS
BIDS_MASK_SUFFIX = "desc-brain_mask"
BIDS_OUTPUT_SUFFIXES = {
    "label": "_space-orig_desc-lesion_mask.nii.gz",
    "probability": "_space-orig_label-lesion_probseg.nii.gz",
    "uncertainty": "_space-orig_label-lesion_desc-std_probseg.nii.gz",
    "sidecar": "_space-orig_desc-lesion_mask.json",
}
_NIFTI = re.compile(r"\.nii(\.gz)?$")


def is_nnunet_raw(folder: Path) -> bool:
    """True for a folder holding nnU-Net v2's dataset.json and imagesTr/."""
    return folder.is_dir() and (folder / NNUNET_DATASET_JSON).is_file() and (folder / "imagesTr").is_dir()


def nnunet_manifest_dict(folder: Path) -> dict:
    """The manifest (as JSON-ready dict, paths relative to ``folder``) of an nnU-Net v2 raw dataset."""
    path = folder / NNUNET_DATASET_JSON
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        channels = {int(k): str(v) for k, v in raw["channel_names"].items()}
        labels = raw["labels"]
        ending = str(raw.get("file_ending", ".nii.gz"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LesionsegError(f"cannot read nnU-Net dataset.json ({exc})", path) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LesionsegError(f"malformed nnU-Net dataset.json ({type(exc).__name__}: {exc})", path) from exc
    if not isinstance(labels, dict):
        raise LesionsegError("malformed nnU-Net dataset.json ('labels' must map names to values)", path)
    if not all(isinstance(v, int) for v in labels.values()):
        raise LesionsegError(
            "nnU-Net region-based labels (lists) are not supported; give integer labels", path
        )
    if sorted(channels) != list(range(len(channels))) or not channels:
        raise LesionsegError("nnU-Net channel_names must be numbered 0, 1, ...", path)
    ids: set[str] = set()
    for image in (folder / "imagesTr").iterdir():
        match = (
            _NNUNET_CHANNEL.match(image.name.removesuffix(ending)) if image.name.endswith(ending) else None
        )
        if match:
            ids.add(match.group("case"))
    labels_dir = folder / "labelsTr"
    if labels_dir.is_dir():
        ids.update(p.name.removesuffix(ending) for p in labels_dir.iterdir() if p.name.endswith(ending))
    if not ids:
        raise LesionsegError(f"no cases in imagesTr (expected CASE_0000{ending})", folder)
    names = [channels[i] for i in range(len(channels))]
    cases = [
        {
            "id": case,
            "subject": case,
            "images": {name: f"imagesTr/{case}_{i:04d}{ending}" for i, name in enumerate(names)},
            "label": f"labelsTr/{case}{ending}" if labels_dir.is_dir() else None,
            "mask": None,
        }
        for case in sorted(ids)
    ]
    return {
        "name": str(raw.get("name", folder.name)),
        "description": str(raw.get("description", "nnU-Net v2 raw dataset")),
        "licence": str(raw.get("licence", raw.get("license", ""))),
        "channel_names": names,
        "labels": {str(k): int(v) for k, v in labels.items()},
        "cases": cases,
    }


@dataclass
class BidsCase:
    """One FLAIR of a BIDS root with its other channels; ``output_prefix`` is where its outputs go,
    relative to the output folder, without the suffix (``sub-01/ses-1/anat/sub-01_ses-1``)."""

    id: str
    channels: dict[str, Path]
    mask: Path | None
    output_prefix: Path
    problems: list[str] = field(default_factory=list)


def is_bids_root(folder: Path) -> bool:
    """True for a folder with at least one ``sub-*`` folder."""
    return folder.is_dir() and any(p.is_dir() and p.name.startswith("sub-") for p in folder.iterdir())


def bids_cases(root: Path, channel_names: list[str]) -> list[BidsCase]:
    """Every ``*_FLAIR.nii[.gz]`` under ``sub-*/[ses-*/]anat/`` with the model's other channels found by
    the same entities (``T1`` -> ``*_T1w``); a FLAIR missing one is kept with a problem noted."""
    suffixes = {name: BIDS_CHANNEL_SUFFIXES.get(name.upper(), name) for name in channel_names}
    first = channel_names[0]
    anat_dirs = sorted(root.glob("sub-*/anat")) + sorted(root.glob("sub-*/ses-*/anat"))
    cases = []
    for anat in anat_dirs:
        for image in sorted(anat.iterdir()):
            entities = _entities_before(image.name, suffixes[first])
            if entities is None:
                continue
            channels = {first: image}
            for name in channel_names[1:]:
                other = _find(anat, entities, suffixes[name])
                if other is not None:
                    channels[name] = other
            mask = _find(anat, entities, BIDS_MASK_SUFFIX)
            case = BidsCase(entities, channels, mask, anat.relative_to(root) / entities)
            missing = [name for name in channel_names if name not in channels]
            if missing:
                wanted = ", ".join(f"{entities}_{suffixes[m]}.nii.gz" for m in missing)
                case.problems.append(f"missing channel(s) {', '.join(missing)} (expected {wanted})")
            cases.append(case)
    if not cases:
        raise LesionsegError(
            f"no BIDS input found (expected sub-*/[ses-*/]anat/*_{suffixes[first]}.nii.gz)", root
        )
    return cases


def _entities_before(name: str, suffix: str) -> str | None:
    """'sub-01_ses-1_FLAIR.nii.gz', 'FLAIR' -> 'sub-01_ses-1'; None when the name has another suffix."""
    match = _NIFTI.search(name)
    if not match:
        return None
    stem = name[: match.start()]
    entities, sep, last = stem.rpartition("_")
    return entities if sep and last == suffix and entities.startswith("sub-") else None


def _find(anat: Path, entities: str, suffix: str) -> Path | None:
    for ext in (".nii.gz", ".nii"):
        candidate = anat / f"{entities}_{suffix}{ext}"
        if candidate.is_file():
            return candidate
    return None
