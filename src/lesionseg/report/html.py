"""A self-contained HTML report: summary tables, TS-CNN-layout fold table, figures, per-case table.

Plain data in (rows = list of dicts, summary = dict, figures = list of dicts), one HTML file out. No
scripts, no web fonts, no CDN: inline CSS; images are linked relative to the report when they lie in its
folder, embedded as base64 otherwise (or always, with ``embed_images``), so the report opens offline.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from lesionseg.io import atomic_output
from lesionseg.metrics.case import METRIC_LABELS, METRIC_NAMES
from lesionseg.report.tables import format_value, summary_table_rows, tscnn_table_rows

CASE_COUNT_COLUMNS = ["ref_volume_ml", "pred_volume_ml", "ref_lesions", "pred_lesions", "lesions_detected"]

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1200px;
color:#222;padding:0 16px}
h1{font-size:1.6em;border-bottom:2px solid #ddd;padding-bottom:6px}
h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #eee}
h3{font-size:1.05em}
table{border-collapse:collapse;margin:8px 0 16px;font-size:0.85em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f2f2f2}
td.text,th.text{text-align:left}
td.undefined{color:#999;font-style:italic}
tr:nth-child(even) td{background:#fafafa}
figure{display:inline-block;margin:8px 12px 16px 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:0.85em;color:#555}
dl.inputs{display:grid;grid-template-columns:max-content auto;gap:2px 12px;font-size:0.9em}
dl.inputs dt{font-weight:bold}
dl.inputs dd{margin:0;word-break:break-all}
.note{font-size:0.85em;color:#555}
.scroll{overflow-x:auto}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _td(value: object, text: bool = False) -> str:
    if isinstance(value, float) and math.isnan(value):
        return '<td class="undefined" title="undefined (empty mask)">undefined</td>'
    return f'<td class="text">{_e(value)}</td>' if text else f"<td>{_e(format_value(value))}</td>"


def html_table(header: Sequence[str], body: Sequence[Sequence[object]], text_columns: int = 1) -> str:
    """A table whose first ``text_columns`` columns are left-aligned text."""
    head = "".join(
        f'<th class="text">{_e(h)}</th>' if i < text_columns else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    lines = [f"<tr>{head}</tr>"]
    for row in body:
        lines.append("<tr>" + "".join(_td(c, text=i < text_columns) for i, c in enumerate(row)) + "</tr>")
    return '<div class="scroll"><table>' + "\n".join(lines) + "</table></div>"


def _relative(path: Path, out_dir: Path) -> str | None:
    """``path`` relative to ``out_dir`` when it lies inside it, else None."""
    try:
        rel = Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
    except ValueError:  # another drive
        return None
    return None if rel.startswith("..") else rel


def _figure_html(figure: Mapping, out_dir: Path, embed: bool) -> str:
    path = Path(figure["path"])
    src = None if embed else _relative(path, out_dir)
    if src is None:
        src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    caption = _e(figure.get("caption", path.stem))
    return f'<figure><img src="{_e(src)}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'


def _summary_section(summary: Mapping, metric_labels: Mapping[str, str]) -> str:
    parts = []
    for label, info in summary.get("labels", {}).items():
        parts.append(
            f"<h3>{_e(label)} <span class='note'>({_e(info.get('kind', 'label'))}, "
            f"{_e(info.get('n_cases'))} cases)</span></h3>"
        )
        parts.append(
            f"<p class='note'>Empty reference: {_e(info.get('n_ref_empty', 0))}; empty prediction: "
            f"{_e(info.get('n_pred_empty', 0))}; both empty: {_e(info.get('n_both_empty', 0))}. "
            "Statistics leave undefined values out and count them in the last column.</p>"
        )
        parts.append(html_table(*summary_table_rows(info, metric_labels)))
        if info.get("folds"):
            header, body = tscnn_table_rows(info["folds"])
            parts.append("<p class='note'>TS-CNN Table 1 layout: medians per fold and over folds.</p>")
            parts.append(html_table(header, body))
    return "\n".join(parts)


def _case_section(rows: Sequence[Mapping], columns: Sequence[str] | None) -> str:
    if not rows:
        return "<p>No cases.</p>"
    if columns is None:
        keys = {k for r in rows for k in r}
        lead = [c for c in ("case", "fold", "label") if c in keys]
        columns = lead + [c for c in METRIC_NAMES + CASE_COUNT_COLUMNS if c in keys]
    n_text = sum(1 for c in columns if c in ("case", "fold", "label", "kind"))
    header = [METRIC_LABELS.get(c, c) for c in columns]
    body = [[r.get(c, "") for c in columns] for r in rows]
    return html_table(header, body, text_columns=n_text)


def _extra_section(section: Mapping) -> str:
    parts = [f"<h2>{_e(section.get('title', ''))}</h2>"]
    if "html" in section:
        parts.append(str(section["html"]))
    if "text" in section:
        parts.append(f"<pre>{_e(section['text'])}</pre>")
    if "table" in section and section["table"]:
        table = list(section["table"])
        header = list(dict.fromkeys(k for r in table for k in r))
        parts.append(html_table(header, [[r.get(k, "") for k in header] for r in table]))
    return "\n".join(parts)


def write_report(
    out_dir: str | Path,
    rows: Sequence[Mapping],
    summary: Mapping,
    figures: Sequence[Mapping] = (),
    title: str = "Evaluation report",
    extra_sections: Sequence[Mapping] = (),
    columns: Sequence[str] | None = None,
    metric_labels: Mapping[str, str] | None = None,
    filename: str = "report.html",
    embed_images: bool = False,
) -> Path:
    """Write ``out_dir/filename`` and return its path.

    - ``rows``: per-case dicts (``label_map_metrics`` rows, or any dicts; NaN shows as "undefined").
    - ``summary``: ``summarize(rows)``, optionally with ``"inputs"`` (dict shown as a list) and ``"notes"``
      (text); unknown keys are ignored.
    - ``figures``: dicts ``{"path": PNG, "caption": str, "section": str}``; sections in order of first use
      (default section "Figures").
    - ``extra_sections``: dicts ``{"title": str, "html": str | "text": str | "table": list[dict]}``.
    - ``columns``: per-case table columns (default: case, fold, label, metrics, volumes, lesion counts).
    """
    out_dir = Path(out_dir)
    labels = dict(METRIC_LABELS) | dict(metric_labels or {})
    created = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    body = [f"<h1>{_e(title)}</h1>", f"<p class='note'>Generated {created} by lesionseg.</p>"]
    inputs = summary.get("inputs") or {}
    if inputs:
        items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in inputs.items())
        body.append(f"<dl class='inputs'>{items}</dl>")
    if summary.get("notes"):
        body.append(f"<p class='note'>{_e(summary['notes'])}</p>")
    if summary.get("labels"):
        body.append(f"<h2>Summary ({_e(summary.get('n_cases', len(rows)))} cases)</h2>")
        body.append(_summary_section(summary, labels))
    sections: dict[str, list[str]] = {}
    for figure in figures:
        sections.setdefault(str(figure.get("section", "Figures")), []).append(
            _figure_html(figure, out_dir, embed_images)
        )
    for name, items in sections.items():
        body.append(f"<h2>{_e(name)}</h2>" + "\n".join(items))
    body.append("<h2>Per-case metrics</h2>")
    body.append(_case_section(rows, columns))
    body.extend(_extra_section(s) for s in extra_sections)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    path = out_dir / filename
    with atomic_output(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
