"""Per-case rows <-> CSV, and markdown tables (summary statistics, TS-CNN Table 1 layout)."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output

# Columns kept as text when a CSV is read back (ids like "007" must not become 7).
TEXT_COLUMNS = {"case", "subject", "label", "kind", "fold", "pred", "ref", "image"}
TSCNN_COLUMNS = {
    "dsc": "DSC",
    "sensitivity": "Sensitivity",
    "specificity": "Specificity",
    "hd": "Hausdorff Distance",
}
SUMMARY_STATS = ["mean", "median", "std", "q1", "q3", "iqr", "n_defined", "n_undefined"]


def row_columns(rows: Sequence[Mapping]) -> list[str]:
    """Every key of every row, in order of first appearance."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def write_metrics_csv(
    path: str | Path, rows: Sequence[Mapping], columns: Sequence[str] | None = None
) -> Path:
    """Write rows (one per case and label) as CSV, atomically; NaN is written as ``nan``."""
    columns = list(columns or row_columns(rows))
    with atomic_output(path) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
    return Path(path)


def _parse(column: str, text: str) -> object:
    if column in TEXT_COLUMNS:
        return text
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_metrics_csv(path: str | Path) -> list[dict]:
    """Rows of a metrics CSV; numbers parsed (``nan`` -> NaN), id columns kept as text."""
    path = Path(path)
    if not path.exists():
        raise LesionsegError("metrics table not found", path)
    try:
        with path.open(newline="") as handle:
            rows = [{k: _parse(k, v) for k, v in row.items()} for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LesionsegError(f"cannot read metrics table ({exc})", path) from exc
    _require_numbers(rows, path)
    return rows


def _require_numbers(rows: list[dict], path: Path) -> None:
    """A column of numbers (any cell a number, not an id column) holds only numbers, ``nan`` or empty
    cells: a word among them would end the summaries in a TypeError."""
    numeric = {k for row in rows for k, v in row.items() if isinstance(v, int | float)}
    for line, row in enumerate(rows, start=2):  # line 1: the header
        for column in sorted(numeric):
            value = row.get(column)
            if isinstance(value, str) and value.strip():
                raise LesionsegError(
                    f"metrics table line {line}, column {column!r}: {value[:40]!r} is not a number "
                    "(write nan for an undefined value)",
                    path,
                )


def format_value(value: object, digits: int = 4) -> str:
    """Numbers with ``digits`` decimals, NaN as 'undefined', None (no value) as '-', integers as they are."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "undefined" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(header: Sequence[str], body: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; cells formatted with :func:`format_value`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(format_value(c) for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def tscnn_table_rows(fold_summary: Mapping) -> tuple[list[str], list[list[object]]]:
    """Header and rows in the layout of TS-CNN Table 1 (columns DSC, Sensitivity, Specificity, Hausdorff
    Distance): one row per fold median, then the median over folds and the median over all cases.

    ``fold_summary`` is ``summarize(...)["labels"][label]["folds"]``.
    """
    header = ["Fold", *TSCNN_COLUMNS.values()]
    metrics = list(TSCNN_COLUMNS)
    body: list[list[object]] = []
    folds = fold_summary.get("folds", {})
    for fold, medians in folds.items():
        name = (
            "All cases (median)" if fold == "all" else f"Fold {fold} (median, {medians.get('n_cases')} cases)"
        )
        body.append([name, *(_num(medians.get(m)) for m in metrics)])
    if len(folds) > 1 or (folds and "all" not in folds):
        body.append(["Median over folds", *(_num(fold_summary["median_over_folds"].get(m)) for m in metrics)])
        body.append(
            ["Median over all cases", *(_num(fold_summary["median_all_cases"].get(m)) for m in metrics)]
        )
    return header, body


def _num(value: object) -> object:
    return math.nan if value is None else value


def tscnn_table_markdown(fold_summary: Mapping, label: str = "") -> str:
    """TS-CNN Table 1 layout as markdown (the paper's column names), with the distance unit and a note on
    undefined Hausdorff distances."""
    header, body = tscnn_table_rows(fold_summary)
    text = (f"**{label}**\n\n" if label else "") + markdown_table(header, body)
    text += "\nHausdorff Distance in mm (from the voxel spacing).\n"
    undefined = fold_summary.get("n_undefined", {})
    notes = [f"{TSCNN_COLUMNS[m]}: {n} undefined" for m, n in undefined.items() if n and m in TSCNN_COLUMNS]
    if notes:
        text += "\nUndefined values (empty masks) are left out of the medians: " + "; ".join(notes) + ".\n"
    return text


def summary_table_rows(
    label_summary: Mapping, metric_labels: Mapping[str, str] | None = None
) -> tuple[list[str], list[list[object]]]:
    """Header and rows: one row per metric with mean, median, std, Q1, Q3, IQR, n defined, n undefined."""
    header = ["Metric", "Mean", "Median", "Std", "Q1", "Q3", "IQR", "n", "Undefined"]
    body = []
    for metric, stats in label_summary.get("metrics", {}).items():
        name = (metric_labels or {}).get(metric, metric)
        body.append([name, *(stats.get(s) for s in SUMMARY_STATS)])
    return header, body


def summary_markdown(
    summary: Mapping, metric_labels: Mapping[str, str] | None = None, title: str = ""
) -> str:
    """The whole summary as markdown: per label, the statistics table and the TS-CNN-layout table."""
    parts = [f"# {title}\n"] if title else []
    for label, info in summary.get("labels", {}).items():
        parts.append(f"## {label} ({info.get('kind', 'label')}, {info.get('n_cases')} cases)\n")
        empties = (
            f"Empty reference: {info.get('n_ref_empty', 0)}; "
            f"empty prediction: {info.get('n_pred_empty', 0)}; both empty: {info.get('n_both_empty', 0)}.\n"
        )
        parts.append(empties)
        parts.append(markdown_table(*summary_table_rows(info, metric_labels)))
        if info.get("folds"):
            parts.append("\nTS-CNN Table 1 layout (medians):\n\n" + tscnn_table_markdown(info["folds"]))
    return "\n".join(parts)
