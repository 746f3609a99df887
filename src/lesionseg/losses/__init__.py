"""Losses: pure functions + thin modules + registry `create_loss(name, **params)`; torch only, but for the
blob loss, which labels its target's lesions with scipy.ndimage.

Shapes (docs/architecture.md), stated once for every loss here:
- Binary losses (binary_cross_entropy, focal_loss, binary_focal_loss, self_balancing_focal_loss,
  soft_dice_loss, tversky_loss, focal_tversky_loss, dice_bce_loss, dice_bce_blob_loss): logits
  (B, 1, ...) and a target either of the same shape (float in [0, 1]) or (B, ...) integer {0, 1};
  p = sigmoid(logits).
- Multi-class losses (cross_entropy, class_weighted_cross_entropy, dice_cross_entropy_loss): logits
  (B, K, ...), K >= 2, and an int64 target (B, ...) of class indices; p = softmax over dim 1.
- "..." is any number of spatial dims, e.g. (H, W) for slices or (N,) for PixelNet's sampled pixels
  (PixelNet.forward_pixels returns (B, N, K): pass logits.transpose(1, 2)).
- Default reduction: mean over all elements (per-pixel losses accept reduction="sum" | "none"); the
  overlap losses (Dice, Tversky) are one number per batch (batch=True) or averaged over samples.
- Everything is computed in float32 (inputs from bf16 autocast are cast up).

Registry keys are the function names; `create_loss("focal_loss", alpha=0.9)` is `FocalLoss(alpha=0.9)`.
"""

from __future__ import annotations

from torch import nn

from .blob import blob_dice_loss, dice_bce_blob_loss
from .focal import (
    binary_cross_entropy,
    binary_focal_loss,
    focal_loss,
    focal_terms,
    self_balancing_focal_loss,
)
from .modules import (
    BinaryCrossEntropy,
    BinaryFocalLoss,
    ClassWeightedCrossEntropy,
    CrossEntropy,
    DiceBCEBlobLoss,
    DiceBCELoss,
    DiceCrossEntropyLoss,
    FocalLoss,
    FocalTverskyLoss,
    LossModule,
    SelfBalancingFocalLoss,
    SoftDiceLoss,
    TverskyLoss,
    loss_parameters,
)
from .multiclass import class_weighted_cross_entropy, cross_entropy, dice_cross_entropy_loss
from .overlap import (
    dice_bce_loss,
    focal_tversky_loss,
    soft_counts,
    soft_dice,
    soft_dice_loss,
    tversky_index,
    tversky_loss,
)

LOSSES: dict[str, type[LossModule]] = {
    "binary_cross_entropy": BinaryCrossEntropy,
    "focal_loss": FocalLoss,
    "binary_focal_loss": BinaryFocalLoss,
    "self_balancing_focal_loss": SelfBalancingFocalLoss,
    "soft_dice_loss": SoftDiceLoss,
    "dice_bce_loss": DiceBCELoss,
    "dice_bce_blob_loss": DiceBCEBlobLoss,
    "tversky_loss": TverskyLoss,
    "focal_tversky_loss": FocalTverskyLoss,
    "cross_entropy": CrossEntropy,
    "class_weighted_cross_entropy": ClassWeightedCrossEntropy,
    "dice_cross_entropy_loss": DiceCrossEntropyLoss,
}

BINARY_LOSSES = (
    "binary_cross_entropy",
    "focal_loss",
    "binary_focal_loss",
    "self_balancing_focal_loss",
    "soft_dice_loss",
    "tversky_loss",
    "focal_tversky_loss",
    "dice_bce_loss",
    "dice_bce_blob_loss",
)
MULTICLASS_LOSSES = ("cross_entropy", "class_weighted_cross_entropy", "dice_cross_entropy_loss")


def create_loss(name: str, **params: object) -> nn.Module:
    """Build the loss module `name` with keyword parameters of its function.

    Raises ValueError for an unknown name (listing the valid ones) or parameter (listing the accepted ones).
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}")
    return LOSSES[name](**params)


__all__ = [
    "BINARY_LOSSES",
    "LOSSES",
    "MULTICLASS_LOSSES",
    "BinaryCrossEntropy",
    "BinaryFocalLoss",
    "ClassWeightedCrossEntropy",
    "CrossEntropy",
    "DiceBCEBlobLoss",
    "DiceBCELoss",
    "DiceCrossEntropyLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "LossModule",
    "SelfBalancingFocalLoss",
    "SoftDiceLoss",
    "TverskyLoss",
    "binary_cross_entropy",
    "binary_focal_loss",
    "blob_dice_loss",
    "class_weighted_cross_entropy",
    "create_loss",
    "cross_entropy",
    "dice_bce_blob_loss",
    "dice_bce_loss",
    "dice_cross_entropy_loss",
    "focal_loss",
    "focal_terms",
    "focal_tversky_loss",
    "loss_parameters",
    "self_balancing_focal_loss",
    "soft_counts",
    "soft_dice",
    "soft_dice_loss",
    "tversky_index",
    "tversky_loss",
]
