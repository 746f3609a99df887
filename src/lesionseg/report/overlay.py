"""Reference-vs-prediction overlays in the colours of TS-CNN Figure 3.

True positive green, false positive red, false negative blue, blended over a grey image windowed at
intensity percentiles. :func:`overlay_slice` works on one 2D slice (any source: a volume's axial slice or a
PNG slice of the TS-CNN data); :func:`save_case_overlay` picks the axial slices of a volume with the most
lesion and writes one PNG. matplotlib is used through its object API with the Agg canvas (no pyplot, no
display).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lesionseg.io import atomic_output

TP_COLOUR = (0.0, 1.0, 0.0)  # green
FP_COLOUR = (1.0, 0.0, 0.0)  # red
FN_COLOUR = (0.0, 0.0, 1.0)  # blue
# Patient sides at the left and right edges of an axial slice shown by axial_display (radiological).
RADIOLOGICAL_SIDES = ("R", "L")


def intensity_window(
    image: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0)
) -> tuple[float, float]:
    """(low, high) intensity at the given percentiles of the non-zero voxels (all voxels if none)."""
    values = np.asarray(image, dtype=np.float64)
    nonzero = values[values != 0]
    sample = nonzero if nonzero.size else values.ravel()
    if sample.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(sample, percentiles))
    return (low, high) if high > low else (low, low + 1.0)


def overlay_slice(
    image: np.ndarray | None,
    ref: np.ndarray,
    pred: np.ndarray,
    window: tuple[float, float] | None = None,
    alpha: float = 0.7,
) -> np.ndarray:
    """RGB float image (H, W, 3) in [0, 1]: TP green, FP red, FN blue over the windowed grey ``image``.

    - ``image``: (H, W) intensities, or None for a black background.
    - ``ref``, ``pred``: (H, W) masks (non-zero = lesion), in the same orientation as ``image``.
    - ``window``: (low, high) intensities mapped to black and white; percentiles 1-99 of the slice if None.
    """
    ref = np.asarray(ref) != 0
    pred = np.asarray(pred) != 0
    if ref.shape != pred.shape or ref.ndim != 2:
        raise ValueError(f"ref {ref.shape} and pred {pred.shape} must be one 2D shape")
    if image is None:
        grey = np.zeros(ref.shape, dtype=np.float64)
    else:
        image = np.asarray(image, dtype=np.float64)
        if image.shape != ref.shape:
            raise ValueError(f"image {image.shape} and masks {ref.shape} differ in shape")
        low, high = window if window is not None else intensity_window(image)
        grey = np.clip((image - low) / max(high - low, 1e-12), 0.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for mask, colour in ((ref & pred, TP_COLOUR), (pred & ~ref, FP_COLOUR), (ref & ~pred, FN_COLOUR)):
        rgb[mask] = (1.0 - alpha) * rgb[mask] + alpha * np.asarray(colour)
    return rgb


def is_axis_aligned(affine: np.ndarray) -> bool:
    """Whether each array axis maps to a different world axis (so :func:`canonical_array` can orient it)."""
    rotation = np.asarray(affine, dtype=np.float64)[:3, :3]
    return sorted(np.argmax(np.abs(rotation), axis=0).tolist()) == [0, 1, 2]


def canonical_array(array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The array with axes permuted and flipped to the closest RAS orientation of ``affine`` (numpy only);
    unchanged when the affine is too oblique to tell."""
    rotation = np.asarray(affine, dtype=np.float64)[:3, :3]
    world_of_axis = np.argmax(np.abs(rotation), axis=0)
    if sorted(world_of_axis.tolist()) != [0, 1, 2]:
        return array
    order = np.argsort(world_of_axis)
    out = np.transpose(array, order)
    for world, axis in enumerate(order):
        if rotation[world, axis] < 0:
            out = np.flip(out, axis=world)
    return out


def axial_display(slice_xy: np.ndarray) -> np.ndarray:
    """An (X, Y) RAS axial slice as (rows, cols) for display: anterior up, patient's right on the viewer's
    left (radiological convention)."""
    return np.asarray(slice_xy).T[::-1, ::-1]


def lesion_slices(ref: np.ndarray, pred: np.ndarray, count: int = 3) -> list[int]:
    """Indices of the ``count`` axial slices (last axis) with the most reference-or-predicted lesion, in
    slice order; the middle slice when both masks are empty."""
    per_slice = np.count_nonzero((np.asarray(ref) != 0) | (np.asarray(pred) != 0), axis=(0, 1))
    ranked = [int(z) for z in np.argsort(-per_slice, kind="stable")[:count] if per_slice[z] > 0]
    return sorted(ranked) or [ref.shape[-1] // 2]


def save_overlay_figure(
    path: str | Path,
    panels: Sequence[tuple[np.ndarray | None, np.ndarray, np.ndarray, str]],
    title: str = "",
    window: tuple[float, float] | None = None,
    show_image_row: bool = True,
    dpi: int = 100,
    image_name: str = "image",
    sides: tuple[str, str] | None = None,
) -> Path:
    """One PNG of 2D panels ``(image, ref, pred, caption)``, arrays already in display orientation.

    With ``show_image_row`` the plain windowed image is drawn above each overlay (as TS-CNN Figure 3 shows
    the original beside the predictions). Each row is labelled on the left: ``image_name`` (e.g. "FLAIR")
    and "FLAIR + prediction vs reference". ``sides``: the patient sides at the panels' left and right edges
    (``RADIOLOGICAL_SIDES`` = ("R", "L") for :func:`axial_display`), written on every panel; None when the
    orientation is unknown. A legend names the three colours.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n_rows = 2 if show_image_row else 1
    n_cols = max(len(panels), 1)
    figure = Figure(figsize=(3.2 * n_cols, 3.2 * n_rows + 0.6), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for col, (image, ref, pred, caption) in enumerate(panels):
        win = window if window is not None else (intensity_window(image) if image is not None else None)
        if show_image_row:
            plain = overlay_slice(image, np.zeros_like(ref), np.zeros_like(pred), window=win)
            axes[0, col].imshow(plain, interpolation="nearest")
            axes[0, col].set_title(caption, fontsize=9)
        axes[-1, col].imshow(overlay_slice(image, ref, pred, window=win), interpolation="nearest")
        if not show_image_row:
            axes[-1, col].set_title(caption, fontsize=9)
    row_names = [image_name, f"{image_name} + prediction vs reference"]
    for row, name in zip(range(n_rows), row_names[-n_rows:], strict=True):
        axes[row, 0].text(
            -0.04,
            0.5,
            name,
            transform=axes[row, 0].transAxes,
            rotation=90,
            ha="right",
            va="center",
            fontsize=9,
        )
    for ax in axes.ravel():
        ax.set_axis_off()
        if sides is not None and ax.has_data():
            for x, side, align in ((0.02, sides[0], "left"), (0.98, sides[1], "right")):
                ax.text(
                    x,
                    0.5,
                    side,
                    transform=ax.transAxes,
                    ha=align,
                    va="center",
                    color="yellow",
                    fontsize=10,
                    fontweight="bold",
                )
    legend = [
        Patch(color=TP_COLOUR, label="TP"),
        Patch(color=FP_COLOUR, label="FP"),
        Patch(color=FN_COLOUR, label="FN"),
    ]
    figure.legend(handles=legend, loc="lower center", ncol=3, frameon=False, fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.tight_layout(rect=(0, 0.06, 1, 0.95 if title else 1))
    with atomic_output(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def save_case_overlay(
    path: str | Path,
    image: np.ndarray | None,
    ref: np.ndarray,
    pred: np.ndarray,
    affine: np.ndarray | None = None,
    n_slices: int = 3,
    title: str = "",
    percentiles: tuple[float, float] = (1.0, 99.0),
    image_name: str = "image",
) -> Path:
    """PNG of the ``n_slices`` axial slices of a volume with the most lesion (reference or prediction).

    ``image``, ``ref`` and ``pred`` are (X, Y, Z) on one grid (``image`` None: black background); with
    ``affine`` they are first turned to the closest RAS orientation so the slices are axial and shown in the
    radiological convention, marked R (left edge) and L (right edge). The window is taken at
    ``percentiles`` of the whole volume's non-zero voxels. ``image_name`` labels the image row ("FLAIR").
    """
    sides = RADIOLOGICAL_SIDES if affine is not None and is_axis_aligned(affine) else None
    ref = np.asarray(ref) != 0
    pred = np.asarray(pred) != 0
    if affine is not None:
        ref, pred = canonical_array(ref, affine), canonical_array(pred, affine)
        image = canonical_array(image, affine) if image is not None else None
    window = intensity_window(image, percentiles) if image is not None else None
    # crop (x, y) to the head and the lesions, so that small lesions stay visible; background = 0 or the
    # corner voxel's value (z-scored images have a constant non-zero background)
    content = (ref | pred).any(axis=-1)
    if image is not None:
        image = np.asarray(image)
        content |= ((image != 0) & (image != image.flat[0])).any(axis=-1)
    box = _content_box(content, margin=4)
    ref, pred = ref[box], pred[box]
    image = image[box] if image is not None else None
    panels = []
    for z in lesion_slices(ref, pred, n_slices):
        tp = int(np.count_nonzero(ref[..., z] & pred[..., z]))
        fp = int(np.count_nonzero(pred[..., z] & ~ref[..., z]))
        fn = int(np.count_nonzero(ref[..., z] & ~pred[..., z]))
        caption = f"slice {z}: TP {tp}, FP {fp}, FN {fn}"
        img = axial_display(image[..., z]) if image is not None else None
        panels.append((img, axial_display(ref[..., z]), axial_display(pred[..., z]), caption))
    return save_overlay_figure(
        path,
        panels,
        title=title,
        window=window,
        image_name=image_name if image is not None else "no image",
        sides=sides,
    )


def _content_box(content: np.ndarray, margin: int) -> tuple[slice, slice]:
    """(x, y) slices around the True pixels of a 2D map, grown by ``margin``; everything if none."""
    if not content.any():
        return slice(None), slice(None)
    box = []
    for axis in (0, 1):
        hits = np.flatnonzero(content.any(axis=1 - axis))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, content.shape[axis])))
    return box[0], box[1]
