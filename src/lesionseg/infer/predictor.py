"""Predict lesion masks on new scans with one checkpoint or an ensemble.

Preprocesses exactly as in training (from the configuration saved in the checkpoint), runs slice-wise
inference, averages the members' probabilities (WMH thesis section 2.4), thresholds, removes components
smaller than ``min_lesion_mm3``, and maps everything back onto the input's original grid.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from lesionseg.config import from_dict
from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.errors import LesionsegError
from lesionseg.infer.slicewise import foreground_probability, predict_volume, to_label
from lesionseg.io import Volume
from lesionseg.preprocess import PreprocessedCase, PreprocessRecord, invert, preprocess_volumes

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One trained network with what it needs to predict."""

    model: torch.nn.Module
    context_slices: int
    threshold: float
    label_values: list[int]
    channel_names: list[str]
    preprocess: PreprocessConfig
    source: str
    trained_with_mask_files: bool = False
    min_lesion_mm3: float = 0.0  # calibrated on the validation subjects when the trainer did so
    flip_tta: bool = False  # trained (and calibrated) to predict with its left-right mirror averaged in


@dataclass
class Prediction:
    """Results on the input's original grid."""

    label: Volume  # label values as in the manifest (binary: 0/1)
    probability: Volume  # lesion (foreground) probability, members averaged
    uncertainty: Volume | None  # ensembles: std of the members' foreground probabilities
    steps: list[dict] = field(default_factory=list)  # post-processing records (JSON-ready) for the sidecar


def member_from_state(state: dict, source: str = "") -> Member:
    from lesionseg.nets.checkpoint import build_model

    cfg = state["config"]
    return Member(
        model=build_model(state, source or None),
        context_slices=int(state["context_slices"]),
        threshold=float(state.get("threshold", 0.5)),
        label_values=[int(v) for v in state["label_values"]],
        channel_names=list(state.get("channel_names", [])),
        preprocess=from_dict(PreprocessConfig, cfg["preprocess"]),
        source=source,
        trained_with_mask_files=bool(state.get("trained_with_mask_files", False)),
        min_lesion_mm3=float(state.get("min_lesion_mm3", 0.0)),
        flip_tta=bool(cfg.get("flip_tta", False)),
    )


def load_members(paths: list[str | Path]) -> list[Member]:
    """Checkpoints -> members; an ensemble must share channels, labels and preprocessing."""
    from lesionseg.nets.checkpoint import load_checkpoint

    if not paths:
        raise LesionsegError("no model given")
    members = [member_from_state(load_checkpoint(p), str(p)) for p in paths]
    first = members[0]
    for m in members[1:]:
        if (m.channel_names, m.label_values, m.preprocess) != (
            first.channel_names,
            first.label_values,
            first.preprocess,
        ):
            raise LesionsegError(
                f"ensemble member differs from {first.source} in channels, labels or preprocessing", m.source
            )
    return members


class Predictor:
    def __init__(
        self,
        members: list[Member],
        threshold: float | None = None,
        flip_tta: bool | None = None,
        min_lesion_mm3: float | None = None,
        bf16: bool = False,
        channels_last: bool = False,
        batch_size: int = 16,
        optimize: bool = True,
        crop_to_brain: bool = False,
        device: str | torch.device = "cpu",
        progress: bool = False,
    ) -> None:
        """``optimize``: fold batch norms and fuse conv + ReLU (``optimize.py``); off gives the plain eager
        path the benchmark compares against. ``crop_to_brain`` runs the network on the brain's bounding box
        only: faster, but not exact (its mask against the full slice's: BENCHMARKS.md, "Speed: inference
        on one whole case"), so it is off by default. ``threshold`` and
        ``min_lesion_mm3`` default to the first member's saved (calibrated) values, ``flip_tta`` (average
        in the left-right mirror image's prediction) to the members' configs', which their calibration
        used (members that disagree must be given one).
        ``device``: "cpu", "cuda" or "auto"; the fused CPU kernels of ``optimize`` are used on the CPU
        only."""
        from lesionseg.infer.optimize import prepare_for_inference
        from lesionseg.nets.device import resolve_device

        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        optimize = optimize and self.device.type == "cpu"
        self.optimize, self.crop_to_brain = optimize, crop_to_brain
        if optimize or channels_last:
            for m in members:
                m.model = prepare_for_inference(m.model, channels_last, fold_bn=optimize)
        for m in members:
            m.model = m.model.to(self.device)
        self.members = members
        self.threshold = members[0].threshold if threshold is None else threshold
        self.min_lesion_mm3 = members[0].min_lesion_mm3 if min_lesion_mm3 is None else min_lesion_mm3
        if flip_tta is None and len({m.flip_tta for m in members}) > 1:
            mirrored = next(m for m in members if m.flip_tta != members[0].flip_tta)
            raise LesionsegError(
                f"ensemble member differs from {members[0].source} in test-time mirroring (flip_tta); "
                "choose one with --tta or --no-tta",
                mirrored.source,
            )
        self.flip_tta = members[0].flip_tta if flip_tta is None else flip_tta
        self.progress = progress
        self.bf16, self.channels_last, self.batch_size = bf16, channels_last, batch_size

    @property
    def preprocess_config(self) -> PreprocessConfig:
        return self.members[0].preprocess

    @property
    def channel_names(self) -> list[str]:
        return self.members[0].channel_names

    def member_probabilities(self, case: PreprocessedCase) -> list[np.ndarray]:
        return [
            predict_volume(
                m.model,
                np.asarray(case.image),
                np.asarray(case.mask),
                m.context_slices,
                self.batch_size,
                self.bf16,
                self.channels_last,
                self.flip_tta,
                crop_multiple=16 if self.crop_to_brain else 0,
                device=self.device,
                progress=self.progress,
            )
            for m in self.members
        ]

    def predict_preprocessed(
        self, case: PreprocessedCase, steps: list[dict] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(class-index map, averaged probabilities (K', ...), foreground std or None), preprocessed grid.
        ``steps``: the minimum-lesion-size record is appended to it when the size filter removed every
        predicted lesion (:func:`minimum_lesion_size`)."""
        probs = self.member_probabilities(case)
        mean = np.mean(probs, axis=0)
        labels = to_label(mean, self.threshold)
        if self.min_lesion_mm3 > 0:
            labels, record = minimum_lesion_size(labels, case.spacing, self.min_lesion_mm3)
            if steps is not None and record["erased_all"]:  # the sidecar says when it emptied the mask
                steps.append(record)
        spread = np.std([foreground_probability(p) for p in probs], axis=0) if len(probs) > 1 else None
        return labels, mean, spread

    def labels_on_original_grid(
        self, labels: np.ndarray, n_outputs: int, record: PreprocessRecord
    ) -> np.ndarray:
        """Class indices on the preprocessed grid -> the task's label values (uint8) on the original grid
        (``record``: the preprocessing record of the case); a one-output model maps 1 to the lesion value."""
        label_values = self.members[0].label_values
        values = np.asarray(label_values if n_outputs > 1 else [0, label_values[-1]])
        return values[invert(labels, record, "label")].astype(np.uint8)

    def predict(self, images: list[Volume], mask: Volume | None = None) -> Prediction:
        """Channels in the model's order (``channel_names``), on one grid -> results on that grid."""
        if (
            mask is None
            and self.members[0].trained_with_mask_files
            and self.preprocess_config.brain_mask == "file"
        ):
            warnings.warn(
                "this model was trained with brain-mask files; without one (--mask) the brain is taken as "
                "the non-background voxels, and z-scoring over a different region can change the result",
                stacklevel=2,
            )
        case = preprocess_volumes(images, self.preprocess_config, mask=mask)
        steps: list[dict] = []
        labels, mean, spread = self.predict_preprocessed(case, steps)
        reference = images[0]
        label = self.labels_on_original_grid(labels, mean.shape[0], case.record)
        prob = invert(foreground_probability(mean), case.record, "image").astype(np.float32)
        out_spread = None if spread is None else invert(spread, case.record, "image").astype(np.float32)
        return Prediction(
            label=reference.with_array(label, kind="label"),
            probability=reference.with_array(prob, kind="image"),
            uncertainty=None if out_spread is None else reference.with_array(out_spread, kind="image"),
            steps=steps,
        )


LESION_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connected lesions, as the evaluation counts them


def lesions_of_at_least(
    mask: np.ndarray, voxel_mm3: float, min_sizes_mm3: Sequence[float]
) -> list[np.ndarray]:
    """``mask`` (boolean) without its lesions (26-connected components) smaller than each of
    ``min_sizes_mm3``; the components are labelled once for all sizes (calibration tries many)."""
    components, n = ndimage.label(mask, structure=LESION_CONNECTIVITY)
    if n == 0:
        return [np.zeros(mask.shape, bool) for _ in min_sizes_mm3]
    sizes = np.bincount(components.ravel()) * voxel_mm3
    sizes[0] = 0.0  # the background is never a lesion
    return [sizes[components] >= max(m, 1e-9) for m in min_sizes_mm3]


def remove_small_components(labels: np.ndarray, spacing, min_mm3: float) -> np.ndarray:  # noqa: ANN001
    """Drop lesions (26-connected components of the foreground) smaller than ``min_mm3``."""
    (kept,) = lesions_of_at_least(labels > 0, float(np.prod(spacing)), (min_mm3,))
    return np.where(kept, labels, 0).astype(labels.dtype)


def minimum_lesion_size(labels: np.ndarray, spacing, min_mm3: float) -> tuple[np.ndarray, dict]:  # noqa: ANN001
    """``remove_small_components`` and its record (lesions and voxels before and removed). When it erases
    every lesion of a non-empty mask it says so: a one-line warning on stderr and ``erased_all: true`` in
    the record, so that an empty mask is never mistaken for a prediction of no lesions."""
    kept = remove_small_components(labels, spacing, min_mm3)
    before, after = int(np.count_nonzero(labels)), int(np.count_nonzero(kept))
    n_before = int(ndimage.label(labels > 0, structure=LESION_CONNECTIVITY)[1]) if before else 0
    n_after = int(ndimage.label(kept > 0, structure=LESION_CONNECTIVITY)[1]) if after else 0
    erased_all = before > 0 and after == 0
    record = {
        "step": "min_lesion_size",
        "min_lesion_mm3": float(min_mm3),
        "lesions_before": n_before,
        "lesions_removed": n_before - n_after,
        "voxels_removed": before - after,
        "erased_all": erased_all,
    }
    if erased_all:
        voxel_mm3 = float(np.prod(spacing))
        log.warning(
            "lesionseg: warning: the minimum lesion size (%g mm3) removed every predicted lesion "
            "(%d, %.0f mm3 in all): the mask written is empty; --min-lesion-mm3 0 keeps them",
            min_mm3,
            n_before,
            before * voxel_mm3,
        )
    return kept, record
