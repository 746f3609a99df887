"""Thin nn.Module wrappers over the loss functions; the functions hold the maths and the defaults."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from .blob import dice_bce_blob_loss
from .focal import binary_cross_entropy, binary_focal_loss, focal_loss, self_balancing_focal_loss
from .multiclass import class_weighted_cross_entropy, cross_entropy, dice_cross_entropy_loss
from .overlap import dice_bce_loss, focal_tversky_loss, soft_dice_loss, tversky_loss


def loss_parameters(function: Callable[..., torch.Tensor]) -> list[str]:
    """Names of a loss function's keyword parameters (all after logits and target)."""
    return list(inspect.signature(function).parameters)[2:]


class LossModule(nn.Module):
    """Module calling `function(logits, target, **params)`; params are checked against its signature."""

    function: ClassVar[Callable[..., torch.Tensor]]

    def __init__(self, **params: Any) -> None:
        super().__init__()
        valid = loss_parameters(type(self).function)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no parameter(s) {unknown}; its parameters: {', '.join(valid)}"
            )
        self.params = params

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return type(self).function(logits, target, **self.params)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.params.items())


class BinaryCrossEntropy(LossModule):
    function = staticmethod(binary_cross_entropy)


class FocalLoss(LossModule):
    function = staticmethod(focal_loss)


class BinaryFocalLoss(LossModule):
    function = staticmethod(binary_focal_loss)


class SelfBalancingFocalLoss(LossModule):
    function = staticmethod(self_balancing_focal_loss)


class DiceBCELoss(LossModule):
    function = staticmethod(dice_bce_loss)


class DiceBCEBlobLoss(LossModule):
    function = staticmethod(dice_bce_blob_loss)


class SoftDiceLoss(LossModule):
    function = staticmethod(soft_dice_loss)


class TverskyLoss(LossModule):
    function = staticmethod(tversky_loss)


class FocalTverskyLoss(LossModule):
    function = staticmethod(focal_tversky_loss)


class CrossEntropy(LossModule):
    function = staticmethod(cross_entropy)


class ClassWeightedCrossEntropy(LossModule):
    function = staticmethod(class_weighted_cross_entropy)


class DiceCrossEntropyLoss(LossModule):
    function = staticmethod(dice_cross_entropy_loss)
