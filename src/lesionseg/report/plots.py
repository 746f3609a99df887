"""Box plots of per-case metrics (WMH thesis Figures 9-12: one box per group, every case drawn as a dot)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lesionseg.io import atomic_output
from lesionseg.metrics.case import METRIC_LABELS

# Fewer defined values than this: points only, no box.
MIN_BOX_CASES = 3
# Metrics bounded by [0, 1]: drawn on that full range so that plots compare at a glance.
UNIT_RANGE = {
    "dsc",
    "iou",
    "sensitivity",
    "precision",
    "f1",
    "lesion_recall",
    "lesion_precision",
    "lesion_f1",
}


def _values(rows: Sequence[Mapping], metric: str) -> tuple[np.ndarray, int]:
    values = []
    for row in rows:
        try:
            values.append(float(row.get(metric)))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            values.append(math.nan)
    array = np.asarray(values, dtype=np.float64)
    defined = array[~np.isnan(array)]
    return defined, int(array.size - defined.size)


def save_box_plots(
    path: str | Path,
    rows: Sequence[Mapping],
    metrics: Sequence[str],
    metric_labels: Mapping[str, str] | None = None,
    group_by: str = "label",
    title: str = "",
    columns: int | None = None,
    dpi: int = 100,
) -> Path:
    """One box plot per metric (one box per value of ``group_by``), per-case values as jittered dots.

    Undefined values (NaN) cannot be drawn; each box's tick says how many were left out ("2 undef.").
    A group with fewer than ``MIN_BOX_CASES`` defined values gets no box (a box of one or two values is a
    flat line that looks like a distribution), only its points, and its tick says ``n=2``.
    ``columns``: panels per row (default 3, or 2 with more than three groups).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups: dict[str, list[Mapping]] = {}
    for row in rows:
        groups.setdefault(str(row.get(group_by, "")), []).append(row)
    if columns is None:  # wide panels when there are many groups (BraTS: 4 labels + 3 regions)
        columns = 3 if len(groups) <= 3 else 2
    n_cols = min(columns, max(len(metrics), 1))
    n_rows = math.ceil(len(metrics) / n_cols)
    width = max(3.0, 0.9 * len(groups) + 1.5)
    figure = Figure(figsize=(width * n_cols, 3.4 * n_rows + (0.4 if title else 0)), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    rng = np.random.default_rng(0)
    for ax, metric in zip(axes.ravel(), metrics, strict=False):
        data, ticks = [], []
        for name, group in groups.items():
            defined, undefined = _values(group, metric)
            data.append(defined)
            few = f"\nn={defined.size}" if 0 < defined.size < MIN_BOX_CASES else ""
            ticks.append(name + few + (f"\n({undefined} undef.)" if undefined else ""))
        positions = np.arange(1, len(data) + 1)
        drawable = [(p, d) for p, d in zip(positions, data, strict=True) if d.size]
        boxed = [(p, d) for p, d in drawable if d.size >= MIN_BOX_CASES]
        if boxed:
            ax.boxplot(
                [d for _, d in boxed],
                positions=[p for p, _ in boxed],
                widths=0.5,
                showfliers=False,
                medianprops={"color": "tab:orange", "linewidth": 2},
            )
        for p, d in drawable:
            jitter = rng.uniform(-0.12, 0.12, d.size) if d.size >= MIN_BOX_CASES else np.zeros(d.size)
            size = 12 if d.size >= MIN_BOX_CASES else 30
            ax.scatter(p + jitter, d, s=size, color="tab:blue", alpha=0.7, zorder=3)
        ax.set_xticks(positions, ticks, fontsize=8)
        ax.set_xlim(0.4, len(data) + 0.6)
        ax.set_title({**METRIC_LABELS, **(metric_labels or {})}.get(metric, metric), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if metric in UNIT_RANGE:
            ax.set_ylim(-0.03, 1.03)
    for ax in axes.ravel()[len(metrics) :]:
        ax.set_axis_off()
    if title:
        figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)
