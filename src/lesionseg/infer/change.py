"""Lesion change between two studies of one patient: match the lesions of two masks on one grid and call
each new, enlarging, stable, shrinking or resolved.

Lesions are the connected components of each mask with full (26-) connectivity
(:func:`lesionseg.metrics.lesions.label_lesions`). A lesion of study 2 matches every lesion of study 1 it
shares a voxel with; lesions linked through matches (a lesion that split or merged) form one group, whose
volumes at both times are compared:

- a study-2 group with no study-1 lesion is **new** when it holds at least ``min_new_mm3`` and its voxels
  brightened (mean subtraction z >= ``min_subtraction_z``);
- a matched group is **enlarging** when it grew by at least ``min_change_fraction`` of its study-1 volume
  and by ``min_change_mm3``, and the voxels it gained brightened; **shrinking** in the mirror case (the
  voxels it lost darkened); otherwise **stable**;
- a study-1 group with no study-2 lesion is **resolved** when it held at least ``min_new_mm3`` and its
  voxels darkened.

A candidate that fails the subtraction check is kept as **stable** with the reason in its ``note``: two
independent segmentations flicker at lesion borders and near the threshold, and the subtraction image is the
independent evidence (Battaglini et al., JMRI 2014). ``min_subtraction_z`` None turns the check off.

The change map (study 2's grid): 0 none, 1 new (the whole lesion), 2 enlarging (the voxels gained),
3 shrinking or resolved (the voxels lost).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from lesionseg.config.change import ChangeOptions
from lesionseg.metrics.lesions import label_lesions

NONE, NEW, ENLARGING, SHRINKING = 0, 1, 2, 3
CHANGE_LABELS = {NONE: "none", NEW: "new", ENLARGING: "enlarging", SHRINKING: "shrinking or resolved"}
STATUSES = ("new", "enlarging", "stable", "shrinking", "resolved")


@dataclass
class LesionChange:
    """One lesion of either study: its group's volumes at both times (mm^3) and the group's status."""

    lesion: str  # "s1-3": lesion 3 of study 1; "s2-5": lesion 5 of study 2
    study: int
    group: int
    matched: list[str]
    volume_study1_mm3: float
    volume_study2_mm3: float
    status: str
    changed_mm3: float  # volume of the voxels marked in the change map for this group
    subtraction_z: float  # mean over the changed (or candidate) voxels; NaN when not computed
    centre_voxel: tuple[int, int, int]  # on study 2's grid
    note: str = ""
    extra: dict = field(default_factory=dict, repr=False)

    def row(self) -> dict:
        """A flat dict for the CSV."""
        return {
            "lesion": self.lesion,
            "study": self.study,
            "group": self.group,
            "matched": " ".join(self.matched),
            "volume_study1_mm3": round(self.volume_study1_mm3, 2),
            "volume_study2_mm3": round(self.volume_study2_mm3, 2),
            "status": self.status,
            "changed_mm3": round(self.changed_mm3, 2),
            "subtraction_z": round(self.subtraction_z, 3) if np.isfinite(self.subtraction_z) else "",
            "i": self.centre_voxel[0],
            "j": self.centre_voxel[1],
            "k": self.centre_voxel[2],
            "note": self.note,
        }


def _groups(labels1: np.ndarray, labels2: np.ndarray, n1: int, n2: int) -> list[tuple[list[int], list[int]]]:
    """Connected groups of the overlap graph: (study-1 labels, study-2 labels), sorted by first label."""
    parent = list(range(n1 + n2 + 1))  # 1..n1 study 1, n1+1..n1+n2 study 2

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    both = (labels1 > 0) & (labels2 > 0)
    pairs = np.unique(np.stack([labels1[both], labels2[both]], axis=1), axis=0) if both.any() else []
    for a, b in pairs:
        ra, rb = find(int(a)), find(n1 + int(b))
        if ra != rb:
            parent[rb] = ra
    members: dict[int, tuple[list[int], list[int]]] = {}
    for a in range(1, n1 + 1):
        members.setdefault(find(a), ([], []))[0].append(a)
    for b in range(1, n2 + 1):
        members.setdefault(find(n1 + b), ([], []))[1].append(b)
    return sorted(members.values(), key=lambda g: min(g[1]) if g[1] else n2 + min(g[0]))


def _union_box(boxes: list[tuple[slice, ...]]) -> tuple[slice, ...]:
    """The smallest box holding every box given (find_objects slices)."""
    return tuple(
        slice(min(b[axis].start for b in boxes), max(b[axis].stop for b in boxes)) for axis in range(3)
    )


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else float("nan")


def classify_change(
    mask1: np.ndarray,
    mask2: np.ndarray,
    spacing: tuple[float, float, float],
    subtraction: np.ndarray | None = None,
    options: ChangeOptions | None = None,
) -> tuple[np.ndarray, list[LesionChange]]:
    """(change map uint8 (X, Y, Z), one LesionChange per lesion of either study).

    ``mask1``, ``mask2``: the lesion masks of study 1 and 2 on one grid (study 2's); ``spacing``: its voxel
    size in mm; ``subtraction``: the subtraction z image on that grid
    (:mod:`lesionseg.preprocess.subtraction`), needed unless ``options.min_subtraction_z`` is None.
    """
    options = options or ChangeOptions()
    options.check()
    m1, m2 = np.asarray(mask1) > 0, np.asarray(mask2) > 0
    if m1.shape != m2.shape:
        raise ValueError(f"masks differ in shape: {m1.shape} vs {m2.shape}")
    check_z = options.min_subtraction_z is not None
    if check_z and (subtraction is None or subtraction.shape != m2.shape):
        raise ValueError("a subtraction image on the masks' grid is needed for the subtraction check")
    voxel_mm3 = float(np.prod(spacing))
    labels1, n1 = label_lesions(m1)
    labels2, n2 = label_lesions(m2)
    change = np.zeros(m2.shape, dtype=np.uint8)
    results: list[LesionChange] = []
    boxes1, boxes2 = ndimage.find_objects(labels1), ndimage.find_objects(labels2)
    for number, (group1, group2) in enumerate(_groups(labels1, labels2, n1, n2), start=1):
        box = _union_box([boxes1[a - 1] for a in group1] + [boxes2[b - 1] for b in group2])
        region1 = np.isin(labels1[box], group1) if group1 else np.zeros_like(m1[box])
        region2 = np.isin(labels2[box], group2) if group2 else np.zeros_like(m2[box])
        v1, v2 = region1.sum() * voxel_mm3, region2.sum() * voxel_mm3
        if not group1:
            status, changed, sign, kind = "new", region2, 1.0, NEW
            big_enough = v2 >= options.min_new_mm3
            size_note = f"{v2:.1f} mm3 < {options.min_new_mm3:g} mm3"
        elif not group2:
            status, changed, sign, kind = "resolved", region1, -1.0, SHRINKING
            big_enough = v1 >= options.min_new_mm3
            size_note = f"{v1:.1f} mm3 < {options.min_new_mm3:g} mm3"
        else:
            gained, lost = region2 & ~m1[box], region1 & ~m2[box]
            threshold = max(options.min_change_fraction * v1, options.min_change_mm3)
            if v2 - v1 >= threshold:
                status, changed, sign, kind, big_enough = "enlarging", gained, 1.0, ENLARGING, True
            elif v1 - v2 >= threshold:
                status, changed, sign, kind, big_enough = "shrinking", lost, -1.0, SHRINKING, True
            else:
                status, changed, sign, kind, big_enough = "stable", gained | lost, 0.0, NONE, False
            size_note = f"volume change {v2 - v1:+.1f} mm3 below {threshold:.1f} mm3"
        z = sign * _mean(subtraction[box][changed]) if check_z and sign != 0.0 else float("nan")
        note = ""
        if not big_enough:
            note = f"{status} candidate: {size_note}" if status != "stable" else ""
            status = "stable"
        elif check_z and not z >= options.min_subtraction_z:
            note = f"{status} candidate: subtraction z {z:.2f} < {options.min_subtraction_z:g}"
            status = "stable"
        if status != "stable":
            change[box][changed] = kind
        changed_mm3 = float(changed.sum()) * voxel_mm3 if status != "stable" else 0.0
        names = [f"s1-{a}" for a in group1] + [f"s2-{b}" for b in group2]
        for study, group, labels in ((1, group1, labels1), (2, group2, labels2)):
            for lab in group:
                where = np.argwhere(labels[box] == lab)
                offset = np.array([s.start for s in box])
                centre = tuple(int(c) for c in where[len(where) // 2] + offset)
                name = f"s{study}-{lab}"
                results.append(
                    LesionChange(
                        name,
                        study,
                        number,
                        [n for n in names if n != name and not n.startswith(f"s{study}-")],
                        float(v1),
                        float(v2),
                        status,
                        changed_mm3,
                        z,
                        centre,  # type: ignore[arg-type]
                        note,
                    )
                )
    return change, results


def change_counts(lesions: list[LesionChange]) -> dict[str, int]:
    """Groups per status (a lesion that split or merged counts once)."""
    seen: dict[int, str] = {}
    for lesion in lesions:
        seen.setdefault(lesion.group, lesion.status)
    return {status: sum(1 for s in seen.values() if s == status) for status in STATUSES}
