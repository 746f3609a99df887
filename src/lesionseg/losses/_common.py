"""Input checks and reductions shared by the loss functions."""

from __future__ import annotations

import torch

REDUCTIONS = ("mean", "sum", "none")


def binary_inputs(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, 1, ...) and a target (B, 1, ...) float or (B, ...) integer -> both float32 (B, 1, ...)."""
    if logits.ndim < 2 or logits.shape[1] != 1:
        raise ValueError(f"binary losses take logits (B, 1, ...), got {tuple(logits.shape)}")
    if target.shape == logits.shape:
        pass
    elif target.shape == logits.shape[:1] + logits.shape[2:]:
        target = target.unsqueeze(1)
    else:
        raise ValueError(
            f"target {tuple(target.shape)} does not fit logits {tuple(logits.shape)}: expected the same "
            "shape or (B, ...)"
        )
    return logits.float(), target.float()


def multiclass_inputs(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, K, ...) with K >= 2 and an integer target (B, ...) -> float32 logits, int64 target."""
    if logits.ndim < 2 or logits.shape[1] < 2:
        raise ValueError(f"multi-class losses take logits (B, K >= 2, ...), got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"target must be (B, ...) = {tuple(logits.shape[:1] + logits.shape[2:])}, "
            f"got {tuple(target.shape)}"
        )
    if target.is_floating_point():
        raise ValueError(f"multi-class targets must be integer class indices, got {target.dtype}")
    return logits.float(), target.long()


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Apply reduction 'mean' | 'sum' | 'none' to an element-wise loss."""
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if reduction == "none":
        return loss
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def spatial_dims(tensor: torch.Tensor, batch: bool) -> tuple[int, ...]:
    """Dims to sum soft counts over for (B, C, ...): batch and space if batch else space only."""
    return (0, *range(2, tensor.ndim)) if batch else tuple(range(2, tensor.ndim))
