"""``dataset check``: read every case of a manifest, validate it, and summarise its lesions.

Validation is what :func:`lesionseg.data.manifest.load_case` enforces (files exist and read as finite 3D
volumes; channels, label and brain mask share one grid, affines within 1e-3 mm; label values among the
manifest's labels; brain mask not empty). A failing case does not stop the check: its error is recorded
and the next case is read.

Lesion statistics, per case:
- voxels and millilitres for every non-background label (voxel volume from the first channel's affine);
- lesion count: 3D connected components of ``label > 0`` (all lesion classes together) with
  26-connectivity (``scipy.ndimage.label`` with a 3x3x3 structuring element).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from lesionseg.data.manifest import Case, Manifest, load_case
from lesionseg.errors import LesionsegError

CONNECTIVITY_26 = np.ones((3, 3, 3), dtype=bool)


@dataclass
class CaseSummary:
    """What ``dataset check`` found for one case; ``error`` is None when the case is valid."""

    id: str
    subject: str
    error: str | None = None
    shape: tuple[int, int, int] | None = None
    spacing: tuple[float, float, float] | None = None
    has_label: bool = False
    has_mask: bool = False
    label_voxels: dict[str, int] = field(default_factory=dict)
    label_ml: dict[str, float] = field(default_factory=dict)
    lesion_voxels: int = 0
    lesion_ml: float = 0.0
    lesion_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class CheckReport:
    """All case summaries of one manifest checked against one data root."""

    manifest: str
    root: str
    label_names: list[str]
    cases: list[CaseSummary]

    @property
    def failed(self) -> list[CaseSummary]:
        return [c for c in self.cases if not c.ok]

    def to_dict(self) -> dict:
        ok = [c for c in self.cases if c.ok]
        return {
            "manifest": self.manifest,
            "root": self.root,
            "label_names": self.label_names,
            "cases": [{**asdict(c), "ok": c.ok} for c in self.cases],
            "totals": {
                "cases": len(self.cases),
                "subjects": len({c.subject for c in self.cases}),
                "failed": len(self.failed),
                "lesion_voxels": sum(c.lesion_voxels for c in ok),
                "lesion_ml": sum(c.lesion_ml for c in ok),
                "lesion_count": sum(c.lesion_count for c in ok),
                "label_voxels": {n: sum(c.label_voxels.get(n, 0) for c in ok) for n in self.label_names},
            },
        }


def summarise_label(label: np.ndarray, labels: dict[str, int], voxel_ml: float) -> dict:
    """Voxels and mL per non-background label, total lesion voxels/mL and the 26-connected lesion count."""
    foreground = label > 0
    counts = np.bincount(label.ravel().astype(np.int64))
    per_label = {
        name: int(counts[value]) if value < counts.size else 0 for name, value in labels.items() if value != 0
    }
    _, n_components = ndimage.label(foreground, structure=CONNECTIVITY_26)
    total = int(np.count_nonzero(foreground))
    return {
        "label_voxels": per_label,
        "label_ml": {name: n * voxel_ml for name, n in per_label.items()},
        "lesion_voxels": total,
        "lesion_ml": total * voxel_ml,
        "lesion_count": int(n_components),
    }


def check_case(manifest: Manifest, case: Case, root: str | Path) -> CaseSummary:
    """Load and summarise one case; a LesionsegError becomes the summary's ``error`` (one line)."""
    summary = CaseSummary(case.id, case.subject)
    try:
        loaded = load_case(manifest, case, root)
    except LesionsegError as exc:
        summary.error = str(exc)
        return summary
    ref = loaded.reference
    summary.shape = tuple(int(s) for s in ref.shape)  # type: ignore[assignment]
    summary.spacing = tuple(round(s, 4) for s in ref.spacing)  # type: ignore[assignment]
    summary.has_mask = loaded.mask is not None
    if loaded.label is not None:
        summary.has_label = True
        for key, value in summarise_label(loaded.label.array, manifest.labels, ref.voxel_volume_ml).items():
            setattr(summary, key, value)
    return summary


def check_dataset(manifest: Manifest, root: str | Path) -> CheckReport:
    """Check every case of ``manifest`` under ``root``; never stops at the first failing case."""
    root = Path(root)
    if not root.is_dir():
        raise LesionsegError("data root is not a folder", root)
    names = [n for n, v in manifest.labels.items() if v != 0]
    cases = [check_case(manifest, case, root) for case in manifest.cases]
    return CheckReport(manifest.name, str(root), names, cases)


def _cell_voxels(voxels: int, ml: float) -> str:
    return f"{voxels} ({ml:.2f})"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def format_report(report: CheckReport) -> list[str]:
    """The summary table (one row per valid case) and the totals line; failing cases are listed apart."""
    multi = len(report.label_names) > 1
    header = ["case", "subject", "shape", "spacing (mm)"]
    header += [f"{n} vox (mL)" for n in report.label_names] if multi else []
    header += ["lesion vox", "lesion mL", "lesions"]
    rows = [header]
    for c in report.cases:
        if not c.ok:
            continue
        row = [
            c.id,
            c.subject,
            "x".join(map(str, c.shape or ())),
            "x".join(f"{s:.3g}" for s in c.spacing or ()),
        ]
        if not c.has_label:
            row += ["-"] * (len(header) - len(row))
        else:
            if multi:
                row += [_cell_voxels(c.label_voxels[n], c.label_ml[n]) for n in report.label_names]
            row += [str(c.lesion_voxels), f"{c.lesion_ml:.2f}", str(c.lesion_count)]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    totals = report.to_dict()["totals"]
    total = (
        f"total: {plural(totals['cases'], 'case')} ({plural(totals['subjects'], 'subject')}), "
        f"{totals['failed']} failed; "
        f"lesion voxels {totals['lesion_voxels']} ({totals['lesion_ml']:.2f} mL), "
        f"{totals['lesion_count']} lesions"
    )
    if multi:
        total += "; " + ", ".join(f"{n} {totals['label_voxels'][n]}" for n in report.label_names)
    lines.append(total)
    return lines
