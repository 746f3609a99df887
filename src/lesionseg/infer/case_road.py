"""One case in, mask and record out: the road every prediction of raw scans takes.

``lesionseg segment``, ``lesionseg predict`` (each case of a batch) and :func:`lesionseg.segment` all call
:func:`segment_case` (and :func:`segment_case_to_files` to write), so one case gives one mask and one
record whichever door it came in by:

1. :func:`lesionseg.preprocess.native.prepare_channels`: read each channel (or take a Volume), refuse a
   constant image, register a channel on another grid onto the first (rigid), detect a skull and strip it
   (deepbet; ``skull_strip`` "auto", "on" or "off");
2. the brain mask given, else the skull-stripping mask, else the predictor derives one;
3. :meth:`Predictor.predict`: preprocess, slice-wise networks, average, threshold, minimum lesion size, back
   onto the first channel's grid;
4. (files) :func:`lesionseg.infer.files.predict_files` writes the mask (and maps) and the per-lesion table
   atomically, then the JSON sidecar records inputs, model, options, every step applied and the table's
   rows (``"lesions"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lesionseg.infer.files import OutputPaths, predict_files, read_brain_mask
from lesionseg.infer.predictor import Prediction, Predictor
from lesionseg.io import Volume, atomic_output

Channel = str | Path | Volume


@dataclass(frozen=True)
class PreparedCase:
    """A case's channels on the first channel's grid, in the model's order, with its brain mask (or None)
    and the steps that produced them."""

    volumes: dict[str, Volume]
    mask: Volume | None
    steps: list[dict]

    @property
    def reference(self) -> Volume:
        """The first channel: every output is written on its grid, with its affine and header."""
        return next(iter(self.volumes.values()))


def prepare_case(
    predictor: Predictor,
    channels: Mapping[str, Channel],
    mask: Channel | None = None,
    *,
    register: bool = True,
    skull_strip: str = "auto",
) -> PreparedCase:
    """Steps 1-2 of the road: channels read, registered and skull-stripped as needed, and the brain mask."""
    from lesionseg.preprocess.native import prepare_channels

    device = str(getattr(predictor, "device", "cpu"))
    names = predictor.channel_names
    images, stripped, steps = prepare_channels(channels, names, register, skull_strip, device)
    brain = stripped
    if mask is not None:
        brain = read_brain_mask(mask)
        steps.append({"step": "brain_mask", "file": str(mask.source if isinstance(mask, Volume) else mask)})
    return PreparedCase(dict(zip(names, images, strict=True)), brain, steps)


def segment_case(
    predictor: Predictor,
    channels: Mapping[str, Channel],
    mask: Channel | None = None,
    *,
    register: bool = True,
    skull_strip: str = "auto",
) -> tuple[Prediction, PreparedCase]:
    """The whole road in memory: (the prediction on the first channel's grid, the prepared case)."""
    prepared = prepare_case(predictor, channels, mask, register=register, skull_strip=skull_strip)
    return predictor.predict(list(prepared.volumes.values()), prepared.mask), prepared


def segment_case_to_files(
    predictor: Predictor,
    channels: Mapping[str, Channel],
    outputs: OutputPaths,
    sidecar: Path,
    mask: Channel | None = None,
    *,
    register: bool = True,
    skull_strip: str = "auto",
    overwrite: bool = False,
) -> list[Path]:
    """The road with its outputs written: the mask (and maps) on the first channel's grid, then the JSON
    sidecar. Refuses to replace an existing output unless ``overwrite``; returns every path written."""
    from lesionseg.errors import LesionsegError

    existing = [p for _, p in outputs.items() if p.exists()] + ([sidecar] if sidecar.exists() else [])
    if existing and not overwrite:
        raise LesionsegError("output exists (use --overwrite to replace it)", existing[0])
    prepared = prepare_case(predictor, channels, mask, register=register, skull_strip=skull_strip)
    written = predict_files(
        predictor, prepared.volumes, outputs, prepared.mask, overwrite=overwrite, steps=prepared.steps
    )
    write_sidecar(sidecar, predictor, channels, prepared.steps, written)
    return [*written, sidecar]


def sidecar_record(
    predictor: Predictor, channels: Mapping[str, Channel], steps: list[dict], written: list[Path]
):  # noqa: ANN201
    """The JSON record beside a mask: inputs, model, options and every preprocessing step applied."""
    from lesionseg import __version__

    return {
        "lesionseg_version": __version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "inputs": {name: _describe(item) for name, item in channels.items()},
        "models": [m.source for m in predictor.members],
        "threshold": predictor.threshold,
        "min_lesion_mm3": getattr(predictor, "min_lesion_mm3", None),
        "tta": predictor.flip_tta,
        "steps": steps,
        "outputs": [str(p) for p in written],
        "grid": "outputs are on the grid of the first input channel, with its affine and header",
        "lesions": _lesion_rows(written),
    }


def write_sidecar(
    path: Path, predictor: Predictor, channels: Mapping[str, Channel], steps: list[dict], written: list[Path]
) -> None:
    """Write :func:`sidecar_record` to ``path`` atomically."""
    record = sidecar_record(predictor, channels, steps, written)
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")


def _lesion_rows(written: list[Path]) -> list[dict]:
    """The rows of the lesion table among ``written`` (``<stem>.lesions.csv``) as the sidecar carries them
    (a value that is not a number, e.g. no members' spread, is null: strict JSON has no NaN)."""
    from lesionseg.report.lesion_table import read_lesion_table

    tables = [p for p in written if p.name.endswith(".lesions.csv")]
    rows = read_lesion_table(tables[0]) if tables else []
    return [{k: _finite_or_none(v) for k, v in r.items()} for r in rows]


def _finite_or_none(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _describe(item: Channel) -> str:
    if isinstance(item, Volume):
        return str(item.source) if item.source else "a Volume in memory"
    return str(item)
