"""Overlap losses on soft counts: soft Dice (thesis eq. 1), Tversky and focal Tversky (thesis eqs. 3-4).

All are built on `soft_counts`: with probabilities p and targets g, TP = sum p g, FP = sum p (1 - g),
FN = sum (1 - p) g, summed over the batch and space (batch=True, the thesis' sums over all N slices) or
over space only (batch=False, then averaged over samples). Binary inputs: logits (B, 1, ...), p = sigmoid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._common import binary_inputs, spatial_dims


def soft_counts(
    probs: torch.Tensor, target: torch.Tensor, dims: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Soft (TP, FP, FN) of probabilities and float targets of the same shape, summed over dims."""
    tp = (probs * target).sum(dims)
    fp = (probs * (1.0 - target)).sum(dims)
    fn = ((1.0 - probs) * target).sum(dims)
    return tp, fp, fn


def soft_dice(tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, smooth: float) -> torch.Tensor:
    """Soft Dice coefficient (2 TP + s) / (2 TP + FP + FN + s); 2 TP + FP + FN = |P| + |G|."""
    return (2.0 * tp + smooth) / (2.0 * tp + fp + fn + smooth)


def tversky_index(
    tp: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor, alpha: float, beta: float, smooth: float
) -> torch.Tensor:
    """Tversky index (TP + s) / (TP + alpha FN + beta FP + s) (thesis eq. 3 with beta = 1 - alpha)."""
    return (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)


def soft_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0, batch: bool = True
) -> torch.Tensor:
    """Soft Dice loss, thesis eq. 1 (after Li et al. 2018), s = 1.

    The thesis writes DL = -(2 sum |p o g| + s) / (sum (|p| + |g|) + s); we return 1 - Dice so that a
    perfect prediction gives ~0 (same gradient). Equals monai.losses.DiceLoss(sigmoid=True,
    smooth_nr=smooth, smooth_dr=smooth, batch=batch).
    """
    logits, target = binary_inputs(logits, target)
    probs = torch.sigmoid(logits)
    tp, fp, fn = soft_counts(probs, target, spatial_dims(probs, batch))
    return 1.0 - soft_dice(tp, fp, fn, smooth).mean()


def tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.7,
    beta: float = 0.3,
    smooth: float = 1.0,
    batch: bool = True,
) -> torch.Tensor:
    """Tversky loss 1 - TI, thesis eq. 3: alpha weighs false negatives, beta false positives.

    The thesis writes TI = TP / (TP + alpha FN + (1 - alpha) FP) and trains with alpha = 0.7, beta = 0.3;
    we keep both weights explicit (FN 0.7, FP 0.3) and add the same smoothing s as the Dice loss.
    Mapping to MONAI: monai.losses.TverskyLoss(sigmoid=True, alpha=beta, beta=alpha, smooth_nr=smooth,
    smooth_dr=smooth, batch=batch) -- MONAI's alpha weighs false positives.
    """
    logits, target = binary_inputs(logits, target)
    probs = torch.sigmoid(logits)
    tp, fp, fn = soft_counts(probs, target, spatial_dims(probs, batch))
    return 1.0 - tversky_index(tp, fp, fn, alpha, beta, smooth).mean()


def focal_tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 0.7,
    beta: float = 0.3,
    gamma: float = 4.0,
    smooth: float = 1.0,
    batch: bool = True,
) -> torch.Tensor:
    """Focal Tversky loss FTL = (1 - TI)^gamma, thesis eq. 4 with alpha 0.7, beta 0.3, gamma 4.

    Abraham and Khan 2019 define FTL = (1 - TI)^(1/gamma) (gamma = 4/3); we follow the thesis' exponent
    gamma as written and trained (gamma = 4 > 1 emphasises examples with TI < 0.5). The mean over samples
    (batch=False) is taken after the power.
    """
    logits, target = binary_inputs(logits, target)
    probs = torch.sigmoid(logits)
    tp, fp, fn = soft_counts(probs, target, spatial_dims(probs, batch))
    ti = tversky_index(tp, fp, fn, alpha, beta, smooth)
    return ((1.0 - ti).clamp_min(0.0) ** gamma).mean()


def dice_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    dice_weight: float = 1.0,
    bce_weight: float = 1.0,
    smooth: float = 1.0,
    batch: bool = True,
) -> torch.Tensor:
    """dice_weight (1 - soft Dice) + bce_weight binary cross-entropy: nnU-Net's Dice + CE for one sigmoid
    output. Equals monai.losses.DiceCELoss(sigmoid=True, smooth_nr=smooth, smooth_dr=smooth, batch=batch,
    lambda_dice=dice_weight, lambda_ce=bce_weight)."""
    logits, target = binary_inputs(logits, target)
    dice = soft_dice_loss(logits, target, smooth, batch)
    return dice_weight * dice + bce_weight * F.binary_cross_entropy_with_logits(logits, target)
