"""The report of ``lesionseg compare``: counts, volumes, registration, the lesion table, and an overlay of
every new or enlarging lesion at both times.

Each overlay shows the axial slice through the lesion on study 2's grid, turned to the closest RAS
orientation and drawn in the radiological convention (patient's right on the left): study 1 (registered)
beside study 2, with each study's lesions outlined in yellow and the change voxels filled (new red,
enlarging orange, lost blue). Rendered through the one autoescaping template engine of :mod:`report.html`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from markupsafe import Markup
from scipy import ndimage

from lesionseg.io import atomic_output
from lesionseg.report.html import CSS, html_table, provenance_block, render
from lesionseg.report.overlay import (
    axial_display,
    canonical_array,
    intensity_window,
    is_axis_aligned,
    overlay_slice,
)

CHANGE_COLOURS = {1: (1.0, 0.1, 0.1), 2: (1.0, 0.6, 0.0), 3: (0.2, 0.4, 1.0)}
OUTLINE_COLOUR = (1.0, 1.0, 0.0)
FIGURE_NOTE = "Yellow outline: the lesions of that study; filled: new (red), enlarging (orange), lost (blue)."
HALF_WIDTH_MM = 30.0  # each overlay shows 60 x 60 mm about the lesion

PAGE_TEMPLATE = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ css }}</style></head>
<body>
<h1>{{ title }}</h1>
<h2>Provenance</h2>
<dl class="inputs provenance">{% for k, v in provenance %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
<h2>Inputs</h2>
<dl class="inputs">{% for k, v in inputs %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
<h2>Change</h2>
{{ counts }}
{{ volumes }}
<p class="note">{{ rules }}</p>
<h2>Registration (study 1 onto study 2)</h2>
<dl class="inputs">{% for k, v in registration %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
<h2>New and enlarging lesions</h2>
{% if figures %}<p class="note">{{ figure_note }}</p>
{% for f in figures %}<figure><img src="{{ f.src }}" alt="{{ f.caption }}">\
<figcaption>{{ f.caption }}</figcaption></figure>
{% endfor %}{% else %}<p>None.</p>{% endif %}
<h2>Lesions of either study</h2>
{{ lesions }}
</body></html>
"""


def _panel(
    image: np.ndarray, lesion: np.ndarray, change: np.ndarray, window: tuple[float, float]
) -> np.ndarray:
    """RGB (H, W, 3): the windowed image, the lesion outline, the change voxels filled."""
    rgb = overlay_slice(image, np.zeros_like(lesion), np.zeros_like(lesion), window=window)
    for code, colour in CHANGE_COLOURS.items():
        where = change == code
        rgb[where] = 0.4 * rgb[where] + 0.6 * np.asarray(colour)
    outline = lesion & ~ndimage.binary_erosion(lesion)
    rgb[outline] = OUTLINE_COLOUR
    return rgb


def save_lesion_overlay(
    path: str | Path,
    images: tuple[np.ndarray, np.ndarray],
    masks: tuple[np.ndarray, np.ndarray],
    change: np.ndarray,
    slice_index: int,
    box: tuple[slice, slice],
    window: tuple[float, float],
    title: str,
    sides: bool = True,
) -> Path:
    """One PNG of two panels (study 1, study 2) of canonical (RAS) arrays at axial ``slice_index``; with
    ``sides`` the patient's R and L are written at the panels' edges."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2, squeeze=False)[0]
    for ax, image, mask, name in zip(axes, images, masks, ("study 1 (registered)", "study 2"), strict=True):
        z = slice_index
        panel = _panel(image[box][..., z], mask[box][..., z] > 0, change[box][..., z], window)
        ax.imshow(_display_rgb(panel), interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
        for x, side, align in ((0.02, "R", "left"), (0.98, "L", "right")) if sides else ():
            ax.text(x, 0.5, side, transform=ax.transAxes, ha=align, va="center", color="yellow", fontsize=9)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def _display_rgb(panel: np.ndarray) -> np.ndarray:
    """An (X, Y, 3) RAS slice as (rows, cols, 3) in the radiological display of :func:`axial_display`."""
    return np.stack([axial_display(panel[..., c]) for c in range(3)], axis=-1)


def save_lesion_overlays(
    folder: str | Path,
    images: tuple[np.ndarray, np.ndarray],
    masks: tuple[np.ndarray, np.ndarray],
    change: np.ndarray,
    affine: np.ndarray,
    lesions: Sequence[Mapping],
    limit: int,
) -> list[dict]:
    """A PNG per new or enlarging lesion of study 2 (largest change first, at most ``limit``) in ``folder``;
    returns figure dicts ``{"path", "caption"}``. ``images``, ``masks``, ``change``: (X, Y, Z) on one grid
    with ``affine``; ``lesions``: rows of the lesion table (``lesion``, ``study``, ``status``, ``i``, ``j``,
    ``k``)."""
    chosen = [r for r in lesions if r["study"] == 2 and r["status"] in ("new", "enlarging")]
    chosen = sorted(chosen, key=lambda r: -float(r["changed_mm3"]))[:limit]
    if not chosen:
        return []
    spacing = np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)
    canon = [canonical_array(a, affine) for a in (*images, *masks, change)]
    image1, image2, mask1, mask2, change_c = canon
    window = intensity_window(image2, (1.0, 99.5))
    order = np.argsort(np.argmax(np.abs(np.asarray(affine)[:3, :3]), axis=0))
    spacing_c = spacing[order]
    figures = []
    for row in chosen:
        marker = np.zeros(change.shape, dtype=bool)
        marker[int(row["i"]), int(row["j"]), int(row["k"])] = True
        x, y, z = (int(v) for v in np.argwhere(canonical_array(marker, affine))[0])
        half = [max(int(HALF_WIDTH_MM / s), 4) for s in spacing_c[:2]]
        box = (
            slice(max(x - half[0], 0), x + half[0] + 1),
            slice(max(y - half[1], 0), y + half[1] + 1),
        )
        caption = (
            f"{row['lesion']}: {row['status']}, {float(row['volume_study1_mm3']):.0f} -> "
            f"{float(row['volume_study2_mm3']):.0f} mm3 (axial slice {z})"
        )
        path = Path(folder) / f"{row['lesion']}.png"
        save_lesion_overlay(
            path, (image1, image2), (mask1, mask2), change_c, z, box, window, caption, is_axis_aligned(affine)
        )
        figures.append({"path": path, "caption": caption})
    return figures


def _items(mapping: Mapping) -> list[tuple[str, object]]:
    return [
        (str(k), v if not isinstance(v, (list, tuple)) else ", ".join(map(str, v)))
        for k, v in mapping.items()
    ]


def write_change_report(
    out_dir: str | Path, summary: Mapping, lesion_rows: Sequence[Mapping], figures: Sequence[Mapping]
) -> Path:
    """``out_dir/report.html``; figures lie in ``out_dir`` and are linked relatively."""
    out = Path(out_dir)
    counts = summary.get("counts", {})
    volumes = summary.get("lesion_volume_ml", {})
    changed = summary.get("change_volume_ml", {})
    counts_table = html_table(["status", *counts], [["lesion groups", *counts.values()]])
    volume_table = html_table(
        ["", "study 1", "study 2", *changed],
        [
            [
                "lesion volume (mL); change voxels (mL)",
                volumes.get("study1"),
                volumes.get("study2"),
                *changed.values(),
            ]
        ],
    )
    options = summary.get("options", {})
    rules = (
        (
            "Rules: new or resolved lesion >= {min_new_mm3} mm3; enlarging or shrinking by >= "
            "{min_change_fraction:.0%} of the study-1 volume and >= {min_change_mm3} mm3; changed voxels' "
            "mean subtraction z >= {min_subtraction_z} (brighter for new / enlarging, darker for shrinking / "
            "resolved). A candidate that fails a rule stays stable; its reason is in the lesion table's note."
        ).format(**{k: ("off" if v is None else v) for k, v in options.items()})
        if options
        else ""
    )
    columns = list(lesion_rows[0]) if lesion_rows else []
    lesions = (
        html_table(columns, [[r[c] for c in columns] for r in lesion_rows], 1)
        if lesion_rows
        else Markup("<p>No lesions.</p>")
    )
    page = render(
        PAGE_TEMPLATE,
        title="Lesion change between two studies",
        css=Markup(CSS),
        provenance=list(provenance_block({"model": str(summary.get("segmentation", ""))}).items()),
        inputs=_items(summary.get("inputs", {})),
        counts=counts_table,
        volumes=volume_table,
        rules=rules,
        registration=_items(summary.get("registration", {})),
        figure_note=FIGURE_NOTE,
        figures=[
            {"src": Path(f["path"]).relative_to(out).as_posix(), "caption": f["caption"]} for f in figures
        ],
        lesions=lesions,
    )
    path = out / "report.html"
    with atomic_output(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return path
