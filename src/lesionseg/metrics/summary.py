"""Summaries of per-case rows: mean, median, std and IQR per metric, and per-fold medians.

Undefined values (NaN) are left out of the statistics and counted: every statistic comes with ``n``
(rows), ``n_defined`` and ``n_undefined``, so a summary never hides a case whose metric had no value.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from lesionseg.metrics.case import METRIC_NAMES

TSCNN_TABLE_METRICS = ["dsc", "sensitivity", "specificity", "hd"]  # TS-CNN Table 1 columns


def as_float(value: object) -> float:
    """A row value as float; None, '' and anything unparsable become NaN."""
    if value is None or value == "":
        return math.nan
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def describe(values: Iterable[object]) -> dict[str, float | int | None]:
    """n, n_defined, n_undefined, mean, median, std (sample, ddof=1), q1, q3, iqr, min, max.

    Statistics are over the defined values; None where none (or, for std, fewer than two) are defined.
    """
    array = np.array([as_float(v) for v in values], dtype=np.float64)
    defined = array[~np.isnan(array)]
    out: dict[str, float | int | None] = {
        "n": int(array.size),
        "n_defined": int(defined.size),
        "n_undefined": int(array.size - defined.size),
    }
    if defined.size == 0:
        return out | dict.fromkeys(["mean", "median", "std", "q1", "q3", "iqr", "min", "max"], None)
    q1, median, q3 = (float(q) for q in np.percentile(defined, [25, 50, 75]))
    return out | {
        "mean": float(defined.mean()),
        "median": median,
        "std": float(defined.std(ddof=1)) if defined.size > 1 else None,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": float(defined.min()),
        "max": float(defined.max()),
    }


def group_rows(rows: Sequence[Mapping], key: str = "label") -> dict[str, list[Mapping]]:
    """Rows by the value of ``key``, in order of first appearance."""
    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(str(row.get(key, "")), []).append(row)
    return groups


def fold_order(folds: Iterable[object]) -> list[str]:
    """Fold names sorted numerically when they are numbers ("2" before "10")."""
    names = {str(f) for f in folds}
    return sorted(names, key=lambda f: (0, int(f), f) if f.lstrip("-").isdigit() else (1, 0, f))


def has_folds(rows: Sequence[Mapping]) -> bool:
    """True when every row carries a non-empty ``fold``."""
    return bool(rows) and all(str(r.get("fold", "")).strip() not in ("", "None", "nan") for r in rows)


def _median(values: Iterable[object]) -> float | None:
    defined = [v for v in (as_float(x) for x in values) if not math.isnan(v)]
    return float(np.median(defined)) if defined else None


def fold_medians(rows: Sequence[Mapping], metrics: Sequence[str] = TSCNN_TABLE_METRICS) -> dict:
    """Per-fold medians, the median over the fold medians and the median over all cases, of one label.

    Returns ``{"folds": {fold: {metric: median, "n_cases": k}}, "median_over_folds": {...},
    "median_all_cases": {...}, "n_undefined": {metric: count}}``. Rows without folds form one fold "all".
    """
    per_fold: dict[str, list[Mapping]] = {}
    for row in rows:
        fold = str(row.get("fold", "")).strip() if has_folds(rows) else "all"
        per_fold.setdefault(fold, []).append(row)
    folds = {}
    for fold in fold_order(per_fold):
        fold_rows = per_fold[fold]
        folds[fold] = {m: _median(r.get(m) for r in fold_rows) for m in metrics} | {"n_cases": len(fold_rows)}
    over_folds = {m: _median(folds[f][m] for f in folds) for m in metrics}
    return {
        "folds": folds,
        "median_over_folds": over_folds,
        "median_all_cases": {m: _median(r.get(m) for r in rows) for m in metrics},
        "n_undefined": {m: sum(math.isnan(as_float(r.get(m))) for r in rows) for m in metrics},
    }


def summarize(rows: Sequence[Mapping], metrics: Sequence[str] = METRIC_NAMES) -> dict:
    """Summary of per-case rows (the output of ``label_map_metrics``), grouped by ``label``.

    ``{"n_cases": N, "has_folds": bool, "labels": {label: {"kind", "n_cases", "n_ref_empty",
    "n_pred_empty", "n_both_empty", "metrics": {metric: describe(...)}, "folds": fold_medians(...)}}}``.
    """
    labels = {}
    for label, group in group_rows(rows).items():
        ref_empty = [bool(as_float(r.get("ref_empty")) == 1) for r in group]
        pred_empty = [bool(as_float(r.get("pred_empty")) == 1) for r in group]
        labels[label] = {
            "kind": str(group[0].get("kind", "label")),
            "n_cases": len(group),
            "n_ref_empty": sum(ref_empty),
            "n_pred_empty": sum(pred_empty),
            "n_both_empty": sum(a and b for a, b in zip(ref_empty, pred_empty, strict=True)),
            "metrics": {m: describe(r.get(m) for r in group) for m in metrics if any(m in r for r in group)},
            "folds": fold_medians(group),
        }
    return {
        "n_cases": len({str(r.get("case", "")) for r in rows}),
        "has_folds": has_folds(rows),
        "labels": labels,
    }
