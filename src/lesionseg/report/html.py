"""A self-contained HTML report: provenance, summary tables, TS-CNN-layout fold table, figures, case table.

Plain data in (rows = list of dicts, summary = dict, figures = list of dicts), one HTML file out, rendered by
one jinja2 template with autoescaping on: every value from the data (case ids, label names, titles, paths)
is escaped, and only markup this module builds itself (:func:`html_table`) is trusted. No scripts, no web
fonts, no CDN: inline CSS; images are linked relative to the report when they lie in its folder, embedded
as base64 otherwise (or always, with ``embed_images``), so the report opens offline.
"""

from __future__ import annotations

import base64
import datetime as _dt
import math
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from lesionseg.io import atomic_output
from lesionseg.metrics.case import METRIC_LABELS, METRIC_NAMES
from lesionseg.report.tables import format_value, summary_table_rows, tscnn_table_rows

CASE_COUNT_COLUMNS = ["ref_volume_ml", "pred_volume_ml", "ref_lesions", "pred_lesions", "lesions_detected"]
# Column titles (with units) for the per-case table beyond the metrics' own labels.
COLUMN_LABELS = {
    "ref_volume_ml": "Reference volume (mL)",
    "pred_volume_ml": "Predicted volume (mL)",
    "ref_lesions": "Reference lesions",
    "pred_lesions": "Predicted lesions",
    "lesions_detected": "Lesions detected",
    "lesions_false": "False lesions",
    "ref_voxels": "Reference voxels",
    "pred_voxels": "Predicted voxels",
    "n_slices": "Slices",
}
# Provenance shown first, in this order; other keys follow in the order given.
PROVENANCE_ORDER = ["model", "method", "threshold", "lesionseg version", "date", "command"]
TSCNN_HD_UNIT_NOTE = "Hausdorff Distance in mm."

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

TABLE_TEMPLATE = """\
<div class="scroll"><table>
<tr>{% for h in header %}<th{% if loop.index0 < text_columns %} class="text"{% endif %}>{{ h }}</th>\
{% endfor %}</tr>
{% for row in body %}<tr>{% for c in row %}{% if c.undefined %}\
<td class="undefined" title="undefined (empty mask)">undefined</td>{% elif c.text %}\
<td class="text">{{ c.value }}</td>{% else %}<td>{{ c.value }}</td>{% endif %}{% endfor %}</tr>
{% endfor %}</table></div>"""

PAGE_TEMPLATE = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ css }}</style></head>
<body>
<h1>{{ title }}</h1>
<h2>Provenance</h2>
<dl class="inputs provenance">{% for k, v in provenance %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
{% if inputs %}<h2>Inputs</h2>
<dl class="inputs">{% for k, v in inputs %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>{% endif %}
{% if notes %}<p class="note">{{ notes }}</p>{% endif %}
{% if labels %}<h2>Summary ({{ n_cases }} cases)</h2>
{% for label in labels %}<h3>{{ label.name }} \
<span class="note">({{ label.kind }}, {{ label.n_cases }} cases)</span></h3>
<p class="note">Empty reference: {{ label.n_ref_empty }}; empty prediction: {{ label.n_pred_empty }}; \
both empty: {{ label.n_both_empty }}. \
Statistics leave undefined values out and count them in the last column.</p>
{{ label.stats }}
{% if label.folds %}<p class="note">TS-CNN Table 1 layout: medians per fold and over folds. \
{{ hd_note }}</p>
{{ label.folds }}{% endif %}
{% endfor %}{% endif %}
{% for section in figure_sections %}<h2>{{ section.name }}</h2>
{% for f in section.figures %}<figure><img src="{{ f.src }}" alt="{{ f.caption }}">\
<figcaption>{{ f.caption }}</figcaption></figure>
{% endfor %}{% endfor %}
<h2>Per-case metrics</h2>
{% if cases %}{{ cases }}{% else %}<p>No cases.</p>{% endif %}
{% for section in extra_sections %}<h2>{{ section.title }}</h2>
{% if section.note %}<p class="note">{{ section.note }}</p>{% endif %}
{% if section.html %}{{ section.html }}{% endif %}
{% if section.text %}<pre>{{ section.text }}</pre>{% endif %}
{% for t in section.tables %}{% if t.heading %}<h3>{{ t.heading }}</h3>{% endif %}\
{% if t.note %}<p class="note">{{ t.note }}</p>{% endif %}{{ t.table }}
{% endfor %}{% endfor %}
</body></html>
"""


@cache
def _environment() -> jinja2.Environment:
    """The one template environment of every lesionseg report: autoescaping on for every template."""
    return jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def render(template: str, **context: object) -> Markup:
    """``template`` (jinja2 source) rendered with autoescaping; the result is trusted markup."""
    return Markup(_environment().from_string(template).render(**context))


def _cell(value: object, text: bool) -> dict:
    if isinstance(value, float) and math.isnan(value):
        return {"undefined": True}
    return {"undefined": False, "text": text, "value": value if text else format_value(value)}


def html_table(header: Sequence[str], body: Sequence[Sequence[object]], text_columns: int = 1) -> Markup:
    """A table whose first ``text_columns`` columns are left-aligned text; every cell escaped."""
    cells = [[_cell(c, i < text_columns) for i, c in enumerate(row)] for row in body]
    return render(TABLE_TEMPLATE, header=list(header), body=cells, text_columns=text_columns)


def _relative(path: Path, out_dir: Path) -> str | None:
    """``path`` relative to ``out_dir`` when it lies inside it, else None."""
    try:
        rel = Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
    except ValueError:  # another drive
        return None
    return None if rel.startswith("..") else rel


def _figure(figure: Mapping, out_dir: Path, embed: bool) -> dict:
    path = Path(figure["path"])
    src = None if embed else _relative(path, out_dir)
    if src is None:
        src = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    return {"src": src, "caption": str(figure.get("caption", path.stem))}


def column_label(column: str, metric_labels: Mapping[str, str] | None = None) -> str:
    """A per-case column's title, with its unit (HD95 (mm), volumes in mL)."""
    labels = dict(METRIC_LABELS) | dict(metric_labels or {})
    return labels.get(column, COLUMN_LABELS.get(column, column))


def _label_sections(summary: Mapping, metric_labels: Mapping[str, str]) -> list[dict]:
    sections = []
    for label, info in summary.get("labels", {}).items():
        folds = None
        if info.get("folds"):
            header, body = tscnn_table_rows(info["folds"])
            folds = html_table([_with_hd_unit(h) for h in header], body)
        sections.append(
            {
                "name": label,
                "kind": info.get("kind", "label"),
                "n_cases": info.get("n_cases"),
                "n_ref_empty": info.get("n_ref_empty", 0),
                "n_pred_empty": info.get("n_pred_empty", 0),
                "n_both_empty": info.get("n_both_empty", 0),
                "stats": html_table(*summary_table_rows(info, metric_labels)),
                "folds": folds,
            }
        )
    return sections


def _with_hd_unit(header: str) -> str:
    return f"{header} (mm)" if header == "Hausdorff Distance" else header


def _case_table(rows: Sequence[Mapping], columns: Sequence[str] | None, labels: Mapping[str, str]) -> Markup:
    if not rows:
        return Markup("")
    if columns is None:
        keys = {k for r in rows for k in r}
        lead = [c for c in ("case", "fold", "label") if c in keys]
        columns = lead + [c for c in METRIC_NAMES + CASE_COUNT_COLUMNS if c in keys]
    n_text = sum(1 for c in columns if c in ("case", "fold", "label", "kind", "subject"))
    header = [column_label(c, labels) for c in columns]
    return html_table(header, [[r.get(c, "") for c in columns] for r in rows], text_columns=n_text)


def _extra_section(section: Mapping) -> dict:
    html = section.get("html")
    tables = []
    if section.get("table"):
        table = list(section["table"])
        header = list(dict.fromkeys(k for r in table for k in r))
        body = [[r.get(k, "") for k in header] for r in table]
        tables.append({"heading": "", "note": "", "table": html_table(header, body)})
    for block in section.get("tables") or ():
        tables.append(
            {
                "heading": block.get("heading", ""),
                "note": block.get("note", ""),
                "table": html_table(block["header"], block["body"], block.get("text_columns", 1)),
            }
        )
    return {
        "title": section.get("title", ""),
        # only markup this module built (html_table, render) is trusted; any other string is escaped
        "html": html if isinstance(html, Markup) else (str(html) if html is not None else ""),
        "text": section.get("text", ""),
        "note": section.get("note", ""),
        "tables": tables,
    }


def current_command() -> str:
    """The command line of this process, as a user would type it (``lesionseg ...`` for the CLI)."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("lesionseg", "__main__.py", "main.py"):
        argv[0] = "lesionseg"
    return shlex.join(argv) if argv else ""


def provenance_block(provenance: Mapping[str, object] | None = None) -> dict[str, object]:
    """What produced a report: model, method, threshold (when known), lesionseg version, date and command;
    values given in ``provenance`` win over the defaults, empty ones are left out."""
    from lesionseg import __version__

    given = {k: v for k, v in dict(provenance or {}).items() if v not in (None, "")}
    defaults = {
        "lesionseg version": __version__,
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": current_command(),
    }
    merged = defaults | given
    ordered = {k: merged[k] for k in PROVENANCE_ORDER if k in merged}
    return ordered | {k: v for k, v in merged.items() if k not in ordered}


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
    provenance: Mapping[str, object] | None = None,
) -> Path:
    """Write ``out_dir/filename`` and return its path.

    - ``rows``: per-case dicts (``label_map_metrics`` rows, or any dicts; NaN shows as "undefined").
    - ``summary``: ``summarize(rows)``, optionally with ``"inputs"`` (dict shown as a list), ``"notes"``
      (text) and ``"provenance"`` (dict: model, method, threshold, ...); unknown keys are ignored.
    - ``figures``: dicts ``{"path": PNG, "caption": str, "section": str}``; sections in order of first use
      (default section "Figures").
    - ``extra_sections``: dicts ``{"title": str, "text": str | "table": list[dict] | "tables": list of
      {"heading", "note", "header", "body", "text_columns"}}``; an ``"html"`` value is shown as markup only
      when it is :class:`markupsafe.Markup` (from :func:`html_table`), else escaped as text.
    - ``columns``: per-case table columns (default: case, fold, label, metrics, volumes, lesion counts).
    - ``provenance``: merged over ``summary["provenance"]`` and the defaults (version, date, command).
    """
    out_dir = Path(out_dir)
    labels = dict(METRIC_LABELS) | dict(metric_labels or {})
    sections: dict[str, list[dict]] = {}
    for figure in figures:
        sections.setdefault(str(figure.get("section", "Figures")), []).append(
            _figure(figure, out_dir, embed_images)
        )
    prov = provenance_block(dict(summary.get("provenance") or {}) | dict(provenance or {}))
    page = render(
        PAGE_TEMPLATE,
        title=title,
        css=Markup(CSS),
        provenance=list(prov.items()),
        inputs=list((summary.get("inputs") or {}).items()),
        notes=summary.get("notes") or "",
        n_cases=summary.get("n_cases", len(rows)),
        labels=_label_sections(summary, labels) if summary.get("labels") else [],
        hd_note=TSCNN_HD_UNIT_NOTE,
        figure_sections=[{"name": k, "figures": v} for k, v in sections.items()],
        cases=_case_table(rows, columns, labels),
        extra_sections=[_extra_section(s) for s in extra_sections],
    )
    path = out_dir / filename
    with atomic_output(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
