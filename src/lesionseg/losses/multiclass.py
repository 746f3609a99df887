"""Multi-class losses: logits (B, K, ...) with K >= 2 and int64 targets (B, ...); softmax over dim 1."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ._common import multiclass_inputs, reduce_loss, spatial_dims
from .overlap import soft_counts, soft_dice


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Softmax cross-entropy -log p_y."""
    logits, target = multiclass_inputs(logits, target)
    return reduce_loss(F.cross_entropy(logits, target, reduction="none"), reduction)


def class_weighted_cross_entropy(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_weights: Sequence[float] | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Class-weighted cross-entropy: sum_i w_{y_i} CE_i / sum_i w_{y_i} ('mean'), or the weighted CE_i.

    class_weights: one weight per class; None weighs each class present in the batch by the inverse of its
    pixel count (w_k = n / (K n_k)), so that 'mean' is the mean over present classes of each class' mean
    cross-entropy.
    """
    logits, target = multiclass_inputs(logits, target)
    num_classes = logits.shape[1]
    if class_weights is None:
        counts = torch.bincount(target.flatten(), minlength=num_classes).float()
        weight = torch.where(counts > 0, target.numel() / (num_classes * counts.clamp_min(1.0)), 0.0)
    else:
        weight = torch.as_tensor(class_weights, dtype=torch.float32, device=logits.device)
        if weight.shape != (num_classes,):
            raise ValueError(f"class_weights needs {num_classes} values, got {tuple(weight.shape)}")
    weight = weight.to(logits.device)
    if reduction == "mean":
        return F.cross_entropy(logits, target, weight=weight, reduction="mean")
    return reduce_loss(F.cross_entropy(logits, target, weight=weight, reduction="none"), reduction)


def dice_cross_entropy_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    dice_weight: float = 1.0,
    ce_weight: float = 1.0,
    smooth: float = 1.0,
    batch: bool = True,
) -> torch.Tensor:
    """dice_weight (1 - mean_k Dice_k) + ce_weight CE, Dice_k the soft Dice of class k's softmax
    probability against its one-hot target (all classes, background included).

    Equals monai.losses.DiceCELoss(softmax=True, to_onehot_y=True, smooth_nr=smooth, smooth_dr=smooth,
    batch=batch, lambda_dice=dice_weight, lambda_ce=ce_weight) with the target given as (B, 1, ...).
    """
    logits, target = multiclass_inputs(logits, target)
    probs = torch.softmax(logits, dim=1)
    one_hot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()
    tp, fp, fn = soft_counts(probs, one_hot, spatial_dims(probs, batch))
    dice = 1.0 - soft_dice(tp, fp, fn, smooth).mean()
    return dice_weight * dice + ce_weight * F.cross_entropy(logits, target)
