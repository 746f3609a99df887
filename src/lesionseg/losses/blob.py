"""Blob loss (Kofler et al., "blob loss: instance imbalance aware loss functions for semantic segmentation",
IPMI 2023): every connected lesion of the target counts once, whatever its size.

A global Dice lets a few large lesions dominate: missing a 5-pixel lesion costs almost nothing. Blob loss
adds, for each lesion i of each sample, a soft Dice computed with every *other* lesion masked out, so that
predicting lesion j is no false positive for lesion i, and averages those Dice losses over the lesions:

    L = L_global + blob_weight * mean_i (1 - Dice_i),   Dice_i = (2 TP_i + s) / (P_i + |G_i| + s)

with TP_i the probability mass on lesion i, P_i = TP_i + the mass on background pixels, |G_i| its pixel
count. Where this departs from the paper's example code: its per-lesion term is the whole base loss (Dice
+ BCE on the masked output), here only the Dice part (the BCE part is per pixel and has no instance
imbalance to correct); it averages over each sample's lesions and then over the samples, here over all
the batch's lesions at once (a sample with many lesions weighs more); and its weights of the two terms
are settings, here ``blob_weight`` 0.5, chosen before the one run that tried it. Lesions are the
connected components of each sample's target with full connectivity (3x3 in 2D), as lesion-wise F1
counts them (metrics/lesions.py); they are labelled on the CPU with scipy.ndimage.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ._common import binary_inputs
from .overlap import dice_bce_loss


def label_instances(target: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) binary target -> (B, ...) int64 lesion ids, 1..n per sample (0 background)."""
    mask = target[:, 0].detach().cpu().numpy() > 0.5
    structure = np.ones((3,) * (mask.ndim - 1), dtype=bool)
    labels = np.stack([ndimage.label(m, structure=structure)[0] for m in mask])
    return torch.from_numpy(labels.astype(np.int64)).to(target.device)


def blob_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """mean over the batch's lesions of (1 - Dice_i), each lesion scored against the background alone
    (module docstring); 0 when the batch holds no lesion."""
    logits, target = binary_inputs(logits, target)
    instances = label_instances(target)
    probs = torch.sigmoid(logits[:, 0])
    losses = []
    for p, ids in zip(probs, instances, strict=True):
        n = int(ids.max())
        if n == 0:
            continue
        flat = ids.reshape(-1)
        mass = torch.zeros(n + 1, device=p.device, dtype=p.dtype).scatter_add_(0, flat, p.reshape(-1))
        size = torch.bincount(flat, minlength=n + 1).to(p.dtype)
        tp, background = mass[1:], mass[0]
        losses.append(1.0 - (2.0 * tp + smooth) / (background + tp + size[1:] + smooth))
    if not losses:
        return probs.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) whole
    return torch.cat(losses).mean()


def dice_bce_blob_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    blob_weight: float = 0.5,
    smooth: float = 1.0,
) -> torch.Tensor:
    """nnU-Net's Dice + BCE (:func:`dice_bce_loss`) + ``blob_weight`` x :func:`blob_dice_loss`."""
    return dice_bce_loss(logits, target, smooth=smooth) + blob_weight * blob_dice_loss(logits, target, smooth)
