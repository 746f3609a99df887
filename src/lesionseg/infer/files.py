"""The file-level step of inference: read a case's channels, preprocess, predict, map back, write.

``lesionseg segment``, ``lesionseg predict`` and :func:`lesionseg.segment` all go through here, so that one
case gives one mask whichever door it came in by. Output paths are explicit (:class:`OutputPaths`); the
options that change the result are typed (:class:`InferenceOptions`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lesionseg.errors import LesionsegError
from lesionseg.infer.ensemble_file import expand_model_folders, saved_ensemble_calibration
from lesionseg.infer.predictor import Prediction, Predictor, load_members
from lesionseg.io import Volume, read_volume, write_volume
from lesionseg.preprocess.limits import check_geometry
from lesionseg.report.lesion_table import lesion_table, lesion_table_path, write_lesion_table


@dataclass(frozen=True)
class InferenceOptions:
    """What changes a prediction, with the CLI's defaults.

    ``threshold``: None = the model's own; ``min_lesion_mm3``: drop smaller predicted lesions (None =
    the model's calibrated value, else 0);
    ``tta``: left-right flip test-time augmentation (None = as the model was calibrated); ``bf16``:
    bfloat16 autocast where the CPU supports it (:func:`bf16_supported`); ``device``: "auto" (CUDA when
    available), "cpu", "cuda", ...
    """

    threshold: float | None = None
    min_lesion_mm3: float | None = None  # None: the model's calibrated value
    tta: bool | None = None
    bf16: bool = True
    device: str = "auto"
    progress: bool = False  # a progress bar over the slice batches of each case (stderr)


@dataclass(frozen=True)
class OutputPaths:
    """Where one case's results go: the label mask, and optionally the probability map and (ensembles
    only) the members' spread."""

    label: Path
    probability: Path | None = None
    uncertainty: Path | None = None

    @classmethod
    def in_folder(
        cls, out_dir: str | Path, case_id: str, probabilities: bool = False, uncertainty: bool = False
    ) -> OutputPaths:
        """``<out_dir>/<case_id>_mask.nii.gz`` (+ ``_prob``, ``_uncertainty``): ``lesionseg predict``."""
        out = Path(out_dir)
        return cls(
            out / f"{case_id}_mask.nii.gz",
            out / f"{case_id}_prob.nii.gz" if probabilities else None,
            out / f"{case_id}_uncertainty.nii.gz" if uncertainty else None,
        )

    @classmethod
    def beside(cls, mask: str | Path, probabilities: bool = False, uncertainty: bool = False) -> OutputPaths:
        """``mask`` itself (+ ``<stem>_prob.nii.gz``, ``<stem>_uncertainty.nii.gz`` next to it):
        ``lesionseg segment -o mask``."""
        mask = Path(mask)
        stem = mask.name.removesuffix(".gz").removesuffix(".nii")
        return cls(
            mask,
            mask.with_name(f"{stem}_prob.nii.gz") if probabilities else None,
            mask.with_name(f"{stem}_uncertainty.nii.gz") if uncertainty else None,
        )

    def items(self) -> list[tuple[str, Path]]:
        """(Prediction field, path) for every output asked for, label first."""
        pairs = [("label", self.label), ("probability", self.probability), ("uncertainty", self.uncertainty)]
        return [(what, path) for what, path in pairs if path is not None]


def bf16_supported() -> bool:
    """True when this CPU runs bfloat16 convolutions natively (oneDNN reports it)."""
    import torch

    return (
        bool(getattr(torch.backends, "mkldnn", None))
        and torch.backends.mkldnn.is_available()
        and (torch.ops.mkldnn._is_mkldnn_bf16_supported())
    )


def load_predictor(
    models: Sequence[str | Path] | None = None,
    options: InferenceOptions | None = None,
    channels: Sequence[str] = ("FLAIR", "T1"),
) -> Predictor:
    """A Predictor over checkpoint files (several: an ensemble; a folder: what was trained into it, see
    ``ensemble_file.py``); None = the bundled model for ``channels`` (FLAIR + T1, or FLAIR alone). An
    ensemble trained with its own calibration uses its saved threshold and minimum lesion size unless
    ``options`` set them."""
    options = options or InferenceOptions()
    if models is None:
        from lesionseg.models import bundled_model_path

        models = [bundled_model_path(channels)]
    paths = expand_model_folders(models)
    threshold, min_lesion_mm3 = options.threshold, options.min_lesion_mm3
    saved = saved_ensemble_calibration(paths)
    if saved is not None:
        threshold = saved[0] if threshold is None else threshold
        min_lesion_mm3 = saved[1] if min_lesion_mm3 is None else min_lesion_mm3
    return Predictor(
        load_members(paths),
        threshold,
        options.tta,
        min_lesion_mm3,
        bf16=options.bf16 and bf16_supported(),
        device=options.device,
        progress=options.progress,
    )


def read_channels(channels: Mapping[str, str | Path | Volume], channel_names: Sequence[str]) -> list[Volume]:
    """The model's channels in its order (``channel_names``), read when given as paths, all on the grid of
    the first. A Volume keeps its own affine: the reorientation, and so the mask, depend on it."""
    missing = [name for name in channel_names if name not in channels]
    if missing:
        raise LesionsegError(f"the model needs channel(s) {', '.join(missing)} (have {', '.join(channels)})")
    images = [_volume(channels[name], "image") for name in channel_names]
    for name, vol in zip(channel_names, images, strict=True):
        check_geometry(vol, _describe(channels[name], name))  # spacing and size the model is applied to
    first = channel_names[0]
    for name, vol in zip(channel_names[1:], images[1:], strict=True):
        if not images[0].same_grid(vol):
            raise LesionsegError(
                f"channel {name} is not on the grid of {_describe(channels[first], first)}",
                _describe(channels[name], name),
            )
    return images


def read_brain_mask(mask: str | Path | Volume | None) -> Volume | None:
    """A brain mask file or Volume -> a {0, 1} label Volume (voxels > 0.5 are brain)."""
    if mask is None:
        return None
    raw = _volume(mask, "image")
    return raw.with_array((raw.array > 0.5).astype("uint8"), kind="label")


def predict_channels(
    predictor: Predictor,
    channels: Mapping[str, str | Path | Volume],
    mask: str | Path | Volume | None = None,
) -> tuple[Prediction, Volume]:
    """Read (or take) one case's channels and brain mask and predict: (results on the first channel's grid,
    the first channel's Volume, whose affine and header the outputs are written with)."""
    images = read_channels(channels, predictor.channel_names)
    return predictor.predict(images, read_brain_mask(mask)), images[0]


def predict_files(
    predictor: Predictor,
    channels: Mapping[str, str | Path | Volume],
    outputs: OutputPaths,
    mask: str | Path | Volume | None = None,
    overwrite: bool = False,
    steps: list[dict] | None = None,
) -> list[Path]:
    """Predict one case and write its outputs atomically on the first channel's grid (affine and header
    kept), and the per-lesion table beside the mask (``<stem>.lesions.csv``, locations from the template
    registered onto the first channel). The uncertainty map is written for ensembles only. Refuses to
    replace an existing output unless ``overwrite``; returns the paths written, the table last.
    ``steps``: the prediction's post-processing records are appended to it (for the sidecar)."""
    targets = [
        (what, path) for what, path in outputs.items() if what != "uncertainty" or len(predictor.members) > 1
    ]
    table_path = lesion_table_path(outputs.label)
    existing = [path for path in [*(p for _, p in targets), table_path] if path.exists()]
    if existing and not overwrite:
        raise LesionsegError("output exists (use --overwrite to replace it)", existing[0])
    prediction, reference = predict_channels(predictor, channels, mask)
    if steps is not None:
        steps.extend(prediction.steps)
    for what, path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_volume(getattr(prediction, what), path, reference=reference)
    spread = prediction.uncertainty if len(predictor.members) > 1 else None
    write_lesion_table(table_path, lesion_table(prediction.label, prediction.probability, reference, spread))
    return [path for _, path in targets] + [table_path]


def _volume(item: str | Path | Volume, kind: str) -> Volume:
    if isinstance(item, Volume):
        return item
    if isinstance(item, (str, Path)):
        return read_volume(item, kind)  # type: ignore[arg-type]
    raise TypeError(
        f"expected a file path or a lesionseg.Volume, got {type(item).__name__}: an array alone has no "
        "affine, and the orientation it gives decides the mask (wrap it as Volume(array, affine))"
    )


def _describe(item: str | Path | Volume, name: str) -> str | Path:
    if isinstance(item, Volume):
        return item.source or f"the {name} Volume"
    return item
