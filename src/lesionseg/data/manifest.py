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

A case may carry ``"label_slices": [1]``: the axial slice indices (along the third axis of the case's
image grid, i.e. in the stack's file order) that carry a reference label; absent means every slice. The
other slices are unlabelled context (TS-CNN's neighbours t-1 and t+1), not "no lesion": training draws
centre slices and evaluation scores slices among ``label_slices`` only. The label spec of such a case may
then hold just those slices (e.g. one PNG path; a single PNG/TIFF ``path`` is read as a stack of one
slice): ``load_case`` places them, in order, at ``label_slices`` of the image grid, zeros elsewhere.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from lesionseg.errors import LesionsegError
from lesionseg.io import Volume, read_slice_stack, read_volume, require_same_grid
from lesionseg.io.readers import image_format


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
    resample: bool = False  # "resample": "world": on another grid than the image; resampled onto it

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
            resample=_parse_resample(raw.get("resample"), where),
        )

    def to_json(self) -> str | dict:
        default_spacing = self.spacing == (1.0, 1.0, 1.0)
        plain = self.component is None and default_spacing  # nothing a one-slice path file would need
        if (
            self.slices is None
            and not self.value_map
            and self.threshold is None
            and plain
            and not self.resample
        ):
            return self.path  # type: ignore[return-value]
        out: dict = {"path": self.path} if self.path else {"slices": self.slices}
        if self.exclude:
            out["exclude"] = self.exclude
        if self.component is not None:
            out["component"] = self.component
        if self.slices or not default_spacing:
            out["spacing"] = list(self.spacing)
        if self.value_map:
            out["value_map"] = {str(k): v for k, v in self.value_map.items()}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.resample:
            out["resample"] = "world"
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
    label_slices: tuple[int, ...] | None = None  # slices with a reference label (None: all)
    site: str | None = None  # acquisition site / scanner: leave-one-site-out splits group by it


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
                | ({} if c.label_slices is None else {"label_slices": list(c.label_slices)})
                | ({} if c.site is None else {"site": c.site})
                for c in self.cases
            ],
        }


def builtin_manifests() -> dict[str, Path]:
    """Manifests shipped with lesionseg for the sets in ../shared/data, by name."""
    folder = resources.files("lesionseg.data") / "manifests"
    return {Path(str(p)).stem: Path(str(p)) for p in folder.iterdir() if str(p).endswith(".json")}


def load_manifest(path_or_name: str | Path) -> Manifest:
    """Read a manifest file, a folder holding ``manifest.json`` (e.g. a phantom), an nnU-Net v2 raw dataset
    folder (``dataset.json`` + ``imagesTr/``; paths relative to it), or a built-in manifest by name (e.g.
    ``open_ms_data``; a folder of that name without a manifest.json does not hide it)."""
    from lesionseg.data.layouts import is_nnunet_raw, nnunet_manifest_dict

    path = Path(path_or_name)
    if is_nnunet_raw(path) and not (path / "manifest.json").is_file():  # nnU-Net v2 raw dataset folder
        return manifest_from_dict(nnunet_manifest_dict(path), path / "dataset.json")
    if path.is_dir() and (path / "manifest.json").is_file():
        path = path / "manifest.json"
    if not path.is_file():
        shipped = builtin_manifests()
        if str(path_or_name) in shipped:
            path = shipped[str(path_or_name)]
        else:
            names = ", ".join(sorted(shipped))
            raise LesionsegError(f"manifest not found (built-in manifests: {names})", path_or_name)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
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
                    label_slices=_parse_label_slices(rc.get("label_slices"), f"case {i}"),
                    site=None if rc.get("site") is None else str(rc["site"]),
                )
            )
        regions = {str(k): [int(x) for x in v] for k, v in raw.get("regions", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise LesionsegError(f"malformed manifest ({type(exc).__name__}: {exc})", path) from exc
    except LesionsegError as exc:  # a bad image spec: name the manifest file
        raise LesionsegError(f"malformed manifest ({exc.problem})", path) from exc
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise LesionsegError("case ids are not unique", path)
    return Manifest(
        name=str(raw.get("name", path.stem if path else "dataset")),
        channel_names=channels,
        labels=labels,
        cases=cases,
        regions=regions,
        description=str(raw.get("description", "")),
        licence=str(raw.get("licence", "")),
        spacing_note=str(raw.get("spacing_note", "")),
        path=path,
    )


def _parse_resample(raw: object, where: str) -> bool:
    """``resample``: absent or "world" (resample onto the image grid through both affines)."""
    if raw is None:
        return False
    if raw != "world":
        raise LesionsegError(f'{where}: "resample" must be "world", got {raw!r}')
    return True


def _parse_label_slices(raw: object, where: str) -> tuple[int, ...] | None:
    """``label_slices``: None, or a non-empty list of distinct slice indices >= 0, kept sorted."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not raw or not all(isinstance(z, int) and z >= 0 for z in raw):
        raise LesionsegError(f"{where}: label_slices must be a non-empty list of slice indices >= 0")
    if len(set(raw)) != len(raw):
        raise LesionsegError(f"{where}: label_slices has repeated indices {raw}")
    return tuple(sorted(raw))


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


def escapes_root(text: str) -> bool:
    """True for a manifest path that does not stay under the data root: absolute, or out through '..'."""
    normal = os.path.normpath(text)
    return Path(text).is_absolute() or normal == ".." or normal.startswith(".." + os.sep)


def require_inside_root(manifest: Manifest) -> None:
    """LesionsegError naming the manifest when a case's file (channel, label, mask, slice pattern) lies
    outside the data root (``../../x``, ``/etc/x``): a manifest from elsewhere reads only under ``--root``
    unless the user says otherwise (``--allow-outside-root``)."""
    for case in manifest.cases:
        roles = [(f"channel {ch}", spec) for ch, spec in case.images.items()]
        for role, spec in [*roles, ("label", case.label), ("brain mask", case.mask)]:
            for text in (spec.path, spec.slices, spec.exclude) if spec is not None else ():
                if text and escapes_root(str(text)):
                    raise LesionsegError(
                        f"case {case.id!r}: {role} path {str(text)[:80]!r} lies outside --root (absolute or "
                        "through '..'); pass --allow-outside-root to read it",
                        manifest.path or manifest.name,
                    )


def read_spec(spec: ImageSpec, root: Path, kind: str) -> Volume:
    """Read one spec relative to ``root``; labels get their value map, masks their threshold.

    A ``path`` to one PNG/TIFF file is read as a stack of one slice (``spec.spacing``, ``spec.component``).
    """
    volume_kind = "label" if kind == "label" else "image"
    if spec.slices is not None:
        paths = sorted(root.glob(spec.slices))
        if spec.exclude:
            excluded = set(root.glob(spec.exclude))
            paths = [p for p in paths if p not in excluded]
        if not paths:
            raise LesionsegError("no slice files match", root / spec.slices)
        volume = read_slice_stack(paths, volume_kind, spec.component, spec.spacing)
    elif image_format(spec.path) == "slice":
        volume = read_slice_stack([root / spec.path], volume_kind, spec.component, spec.spacing)
    else:
        volume = read_volume(root / spec.path, volume_kind)
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
        require_same_grid(reference, vol, f"channel {ch}")
    label = read_spec(case.label, root, "label") if (with_label and case.label) else None
    if label is not None and case.label_slices is not None:
        label = place_label_slices(label, reference, case.label_slices)
    if label is not None and case.label.resample:
        label = onto_reference_grid(label, reference)
    if label is not None:
        require_same_grid(reference, label, "label")
        extra = sorted(set(np.unique(label.array).tolist()) - manifest.label_values)
        if extra:
            raise LesionsegError(
                f"label values {extra} are not among the manifest's labels {sorted(manifest.label_values)}",
                label.source,
            )
    mask = read_spec(case.mask, root, "mask") if case.mask else None
    if mask is not None and case.mask.resample:
        mask = onto_reference_grid(mask, reference)
    if mask is not None:
        require_same_grid(reference, mask, "brain mask")
        if not mask.array.any():
            raise LesionsegError("brain mask is empty", mask.source)
    return LoadedCase(case, images, label, mask)


def onto_reference_grid(volume: Volume, reference: Volume) -> Volume:
    """``volume`` (a label or mask on another grid, e.g. a rater's mask on the MPRAGE grid) resampled onto
    ``reference``'s grid through world coordinates (:func:`lesionseg.preprocess.geometry.resample_to_grid`).
    Refused when the two grids do not overlap in the world: the affines cannot both be right."""
    from lesionseg.preprocess.geometry import resample_to_grid

    if volume.same_grid(reference):
        return volume
    array = resample_to_grid(volume.array, volume.affine, reference.affine, reference.shape, "label")
    if volume.array.any() and not array.any():
        raise LesionsegError(
            f"resampled onto the grid of {reference.source}, nothing of it is left: the two grids do not "
            "overlap in world coordinates",
            volume.source,
        )
    return Volume(array, reference.affine.copy(), "label", None, volume.source)


def place_label_slices(label: Volume, reference: Volume, label_slices: tuple[int, ...]) -> Volume:
    """The label on the reference grid when it holds only the labelled slices.

    ``label`` with one slice per entry of ``label_slices`` (in order) is placed at those indices of a zero
    volume on ``reference``'s grid; a label already on the reference grid is returned as it is. The
    indices must lie on the reference grid; the label's in-plane grid must be the reference's.
    """
    depth = reference.shape[2]
    if max(label_slices) >= depth:
        raise LesionsegError(
            f"label_slices {list(label_slices)} outside the image's {depth} slices", reference.source
        )
    if label.shape == reference.shape or label.shape[2] != len(label_slices):
        return label  # the grid check that follows reports a mismatch
    if label.shape[:2] != reference.shape[:2] or not np.allclose(
        label.affine[:3, :2], reference.affine[:3, :2], atol=1e-3
    ):
        raise LesionsegError(
            f"label slice grid {label.shape[:2]} differs from {reference.source} in-plane grid "
            f"{reference.shape[:2]}",
            label.source,
        )
    placed = np.zeros(reference.shape, dtype=label.array.dtype)
    placed[:, :, list(label_slices)] = label.array
    return Volume(placed, reference.affine.copy(), "label", None, label.source)
