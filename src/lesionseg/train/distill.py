"""Knowledge distillation: one student network learns the averaged, mirrored probabilities of an ensemble.

Hinton et al. (2015) train a small network on the soft targets of a large one; here the teacher is the
shipped ensemble (several networks, each mirrored) and the student one network of the same recipe, so
``segment`` runs one network at ensemble quality (issue "Ensemble quality at one network's price"). The
teacher's foreground probability of every training scan is computed once on the preprocessed grid and
travels with its slices through the sampler's augmentation (``SoftTargetCase``); the loss is

    (1 - w) * recipe loss(student, reference label) + w * BCE(student foreground probability, teacher's)

with ``w = distill_weight`` (binary lesion masks only: the soft target is one foreground probability).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lesionseg.config.preprocess import PreprocessConfig
from lesionseg.errors import LesionsegError
from lesionseg.preprocess import PreprocessedCase


@dataclass
class SoftTargetCase(PreprocessedCase):
    """A preprocessed training case with the teacher's foreground probability (X, Y, Z) beside its label."""

    soft: np.ndarray | None = None


def teacher_paths(teacher: str) -> list[Path]:
    """The teacher's checkpoints: ``teacher`` is a model folder or checkpoint files joined by commas."""
    from lesionseg.infer.ensemble_file import expand_model_folders

    paths = [Path(p.strip()) for p in teacher.split(",") if p.strip()]
    missing = [p for p in paths if not p.exists()]
    if not paths or missing:
        raise LesionsegError("teacher model not found", missing[0] if missing else teacher)
    return expand_model_folders(paths)


def with_teacher_targets(
    cases: Sequence, teacher: str, preprocess: PreprocessConfig, device: str = "cpu"
) -> list[SoftTargetCase]:
    """``cases`` (preprocessed with ``preprocess``) with the teacher ensemble's averaged probabilities,
    mirrored as the teacher predicts by default. The teacher must preprocess as the student does (its
    probabilities are read on the student's grid)."""
    from lesionseg.infer.predictor import Predictor, load_members
    from lesionseg.infer.slicewise import foreground_probability

    members = load_members(teacher_paths(teacher))
    for member in members:
        if member.preprocess != preprocess:
            raise LesionsegError(
                "the teacher preprocesses differently from the student; distil within one recipe",
                member.source,
            )
        if len(member.label_values) > 2:
            raise LesionsegError("distillation needs a binary (lesion / background) teacher", member.source)
    predictor = Predictor(members, device=device)
    out = []
    for case in cases:
        _, mean, _ = predictor.predict_preprocessed(case)
        out.append(SoftTargetCase(**vars(case), soft=foreground_probability(mean).astype(np.float16)))
    return out


def distillation_loss(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy between the student's foreground probability and the teacher's ``soft`` (B, H, W);
    ``logits`` (B, 1, H, W) (sigmoid) or (B, K, H, W) (softmax, foreground = 1 - background)."""
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], soft)
    log_background = F.log_softmax(logits, dim=1)[:, 0]
    log_foreground = torch.log1p(-log_background.exp().clamp(max=1 - 1e-6))
    return -(soft * log_foreground + (1 - soft) * log_background).mean()
