"""Dataset manifests: a JSON file close in spirit to nnU-Net's dataset.json.

```json
{
  "name": "open_ms_data",
  "description": "...", "licence": "CC-BY 4.0", "spacing_note": "...",
  "channel_names": ["FLAIR", "T1"],
  "labels": {"background": 0, "lesion": 1},
  "regions": {"WT": [1, 2, 3, 4]},
  "cases": [
    {"id": "patient07", "subject": "patient07",
     "images": {"FLAIR": "cross_sectional/.../FLAIR.nii.gz", "T1": "..."},
     "label": "cross_sectional/.../GOLD_STANDARD.nii.gz",
     "mask": null}
  ]
}
```
Every path is relative to a data root given on the command line. A path may instead be a slice-stack
spec ``{"slices": "glob", "exclude": "glob", "component": 1, "spacing": [1, 1, 1]}``; a label spec may
carry ``"value_map": {"255": 1}`` (applied on reading); a mask spec may carry ``"threshold": 0.5``.
Cases of one subject (longitudinal scans) share ``subject``; splits never separate them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_slice_stack, read_volume


@dataclass(frozen=True)
class ImageSpec:
    """Where one channel, label or mask of a case lives: a file, or a stack of 2D slices."""

    path: str | None = None
    slices: str | None = None
    exclude: str | None = None
    component: int | None = None
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    value_map: dict[int, int] = field(default_factory=dict)
    threshold: float | None = None

    @classmethod
    def parse(cls, raw: str | dict, where: str) -> ImageSpec:
        if isinstance(raw, str):
            return cls(path=raw)
        if not isinstance(raw, dict) or ("path" in raw) == ("slices" in raw):
            raise LesionsegError(f"{where}: expected a path or an object with 'path' or 'slices'")
        return cls(
            path=raw.get("path"),
            slices=raw.get("slices"),
            exclude=raw.get("exclude"),
            component=raw.get("component"),
            spacing=tuple(float(s) for s in raw.get("spacing", (1.0, 1.0, 1.0))),
            value_map={int(k): int(v) for k, v in raw.get("value_map", {}).items()},
            threshold=raw.get("threshold"),
        )

    def to_json(self) -> str | dict:
        if self.slices is None and not self.value_map and self.threshold is None:
            return self.path  # type: ignore[return-value]
        out: dict = {"path": self.path} if self.path else {"slices": self.slices}
        if self.exclude:
            out["exclude"] = self.exclude
        if self.component is not None:
            out["component"] = self.component
        if self.slices:
            out["spacing"] = list(self.spacing)
        if self.value_map:
            out["value_map"] = {str(k): v for k, v in self.value_map.items()}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out

    def describe(self) -> str:
        return self.path or str(self.slices)


@dataclass(frozen=True)
class Case:
    id: str
    subject: str
    images: dict[str, ImageSpec]
    label: ImageSpec | None = None
    mask: ImageSpec | None = None


@dataclass
class Manifest:
    name: str
    channel_names: list[str]
    labels: dict[str, int]
    cases: list[Case]
    regions: dict[str, list[int]] = field(default_factory=dict)
    description: str = ""
    licence: str = ""
    spacing_note: str = ""
    path: Path | None = None

    @property
    def label_values(self) -> set[int]:
        return set(self.labels.values())

    @property
    def num_classes(self) -> int:
        """Classes the network predicts: background + one per label (BraTS: 5)."""
        return len(self.labels)

    @property
    def subjects(self) -> list[str]:
        return sorted({c.subject for c in self.cases})

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise LesionsegError(f"no case {case_id!r} in manifest", self.path)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "licence": self.licence,
            "spacing_note": self.spacing_note,
            "channel_names": self.channel_names,
            "labels": self.labels,
            "regions": self.regions,
            "cases": [
                {
                    "id": c.id,
                    "subject": c.subject,
                    "images": {k: v.to_json() for k, v in c.images.items()},
                    "label": c.label.to_json() if c.label else None,
                    "mask": c.mask.to_json() if c.mask else None,
                }
                for c in self.cases
            ],
        }


def builtin_manifests() -> dict[str, Path]:
    """Manifests shipped with lesionseg for the sets in ../shared/data, by name."""
    folder = resources.files("lesionseg.data") / "manifests"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".json")}


def load_manifest(path_or_name: str | Path) -> Manifest:
    """Read a manifest file, or a built-in one by name (e.g. ``open_ms_data``)."""
    path = Path(path_or_name)
    if not path.exists():
        shipped = builtin_manifests()
        if str(path_or_name) in shipped:
            path = shipped[str(path_or_name)]
        else:
            names = ", ".join(sorted(shipped))
            raise LesionsegError(f"manifest not found (built-in manifests: {names})", path_or_name)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LesionsegError(f"cannot read manifest ({exc})", path) from exc
    return manifest_from_dict(raw, path)


def manifest_from_dict(raw: dict, path: Path | None = None) -> Manifest:
    try:
        channels = list(raw["channel_names"])
        labels = {str(k): int(v) for k, v in raw["labels"].items()}
        cases = []
        for i, rc in enumerate(raw["cases"]):
            images = {ch: ImageSpec.parse(rc["images"][ch], f"case {i} channel {ch}") for ch in channels}
            cases.append(
                Case(
                    id=str(rc["id"]),
                    subject=str(rc.get("subject", rc["id"])),
                    images=images,
                    label=ImageSpec.parse(rc["label"], f"case {i} label") if rc.get("label") else None,
                    mask=ImageSpec.parse(rc["mask"], f"case {i} mask") if rc.get("mask") else None,
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise LesionsegError(f"malformed manifest ({type(exc).__name__}: {exc})", path) from exc
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise LesionsegError("case ids are not unique", path)
    return Manifest(
        name=str(raw.get("name", path.stem if path else "dataset")),
        channel_names=channels,
        labels=labels,
        cases=cases,
        regions={str(k): [int(x) for x in v] for k, v in raw.get("regions", {}).items()},
        description=str(raw.get("description", "")),
        licence=str(raw.get("licence", "")),
        spacing_note=str(raw.get("spacing_note", "")),
        path=path,
    )


def save_manifest(manifest: Manifest, path: str | Path) -> Path:
    from lesionseg.io import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return Path(path)


@dataclass
class LoadedCase:
    """A case read from disk: channel volumes in manifest order, label and brain mask on the same grid."""

    case: Case
    images: list[Volume]
    label: Volume | None
    mask: Volume | None

    @property
    def reference(self) -> Volume:
        """The first channel: the grid every output of this case is written on."""
        return self.images[0]

    def image_array(self) -> np.ndarray:
        """(C, X, Y, Z) float32."""
        return np.stack([v.array for v in self.images]).astype(np.float32, copy=False)


def read_spec(spec: ImageSpec, root: Path, kind: str) -> Volume:
    """Read one spec relative to ``root``; labels get their value map, masks their threshold."""
    if spec.slices is not None:
        paths = sorted(root.glob(spec.slices))
        if spec.exclude:
            excluded = set(root.glob(spec.exclude))
            paths = [p for p in paths if p not in excluded]
        if not paths:
            raise LesionsegError("no slice files match", root / spec.slices)
        volume = read_slice_stack(paths, "label" if kind == "label" else "image", spec.component, spec.spacing)
    else:
        volume = read_volume(root / spec.path, "label" if kind == "label" else "image")
    if kind == "label" and spec.value_map:
        mapped = volume.array.copy()
        for src, dst in spec.value_map.items():
            mapped[volume.array == src] = dst
        volume = volume.with_array(mapped)
    if kind == "mask":
        threshold = 0.5 if spec.threshold is None else spec.threshold
        volume = volume.with_array((volume.array > threshold).astype(np.uint8), kind="label")
    return volume


def load_case(manifest: Manifest, case: Case, root: str | Path, with_label: bool = True) -> LoadedCase:
    """Read every file of ``case`` and check that channels, label and mask share one grid and that label
    values are among the manifest's labels."""
    root = Path(root)
    images = [read_spec(case.images[ch], root, "image") for ch in manifest.channel_names]
    reference = images[0]
    for ch, vol in zip(manifest.channel_names[1:], images[1:], strict=True):
        _check_same_grid(reference, vol, f"channel {ch}")
    label = read_spec(case.label, root, "label") if (with_label and case.label) else None
    if label is not None:
        _check_same_grid(reference, label, "label")
        extra = sorted(set(np.unique(label.array).tolist()) - manifest.label_values)
        if extra:
            raise LesionsegError(
                f"label values {extra} are not among the manifest's labels {sorted(manifest.label_values)}",
                label.source,
            )
    mask = read_spec(case.mask, root, "mask") if case.mask else None
    if mask is not None:
        _check_same_grid(reference, mask, "brain mask")
        if not mask.array.any():
            raise LesionsegError("brain mask is empty", mask.source)
    return LoadedCase(case, images, label, mask)


def _check_same_grid(reference: Volume, other: Volume, what: str) -> None:
    if reference.shape != other.shape:
        raise LesionsegError(
            f"{what} grid {other.shape} differs from {reference.source} grid {reference.shape}", other.source
        )
    if not np.allclose(reference.affine, other.affine, atol=1e-3):
        worst = float(np.abs(reference.affine - other.affine).max())
        raise LesionsegError(
            f"{what} affine differs from {reference.source} (max difference {worst:.4g} mm)", other.source
        )
