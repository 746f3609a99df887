"""Tables, plots, overlays and the HTML report; no torch. The functions take rows (lists of dicts) and
arrays; reading the masks to score them is ``lesionseg.evaluate``'s job.

Reuse from training / cross-validation code:

- ``write_report(out_dir, rows, summary, figures, title, extra_sections)`` -> ``out_dir/report.html``
- ``write_metrics_csv(path, rows)`` / ``read_metrics_csv(path)``
- ``save_box_plots(path, rows, metrics)`` (WMH thesis Figure 9 style)
- ``overlay_slice(image2d, ref2d, pred2d)`` -> RGB array in TS-CNN Figure 3 colours (TP green, FP red,
  FN blue); ``save_overlay_figure(path, panels)`` for 2D slices, ``save_case_overlay(path, image, ref,
  pred, affine)`` for a volume
- ``summary_markdown(summary)`` / ``tscnn_table_markdown(fold_summary)`` (TS-CNN Table 1 layout)
"""

from lesionseg.report.html import html_table, write_report
from lesionseg.report.overlay import (
    FN_COLOUR,
    FP_COLOUR,
    TP_COLOUR,
    intensity_window,
    lesion_slices,
    overlay_slice,
    save_case_overlay,
    save_overlay_figure,
)
from lesionseg.report.plots import save_box_plots
from lesionseg.report.tables import (
    markdown_table,
    read_metrics_csv,
    summary_markdown,
    tscnn_table_markdown,
    write_metrics_csv,
)

__all__ = [
    "FN_COLOUR",
    "FP_COLOUR",
    "TP_COLOUR",
    "html_table",
    "intensity_window",
    "lesion_slices",
    "markdown_table",
    "overlay_slice",
    "read_metrics_csv",
    "save_box_plots",
    "save_case_overlay",
    "save_overlay_figure",
    "summary_markdown",
    "tscnn_table_markdown",
    "write_metrics_csv",
    "write_report",
]
