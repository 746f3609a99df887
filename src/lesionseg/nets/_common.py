"""Building blocks shared by the networks: size padding, config checks, residual units.

Every network accepts any (H, W): it pads the input at the bottom and right with zeros up to a multiple of
its total down-sampling factor and crops the logits back, so pixel (row, col) of the output is pixel
(row, col) of the input.
"""

from __future__ import annotations

from dataclasses import fields

import torch
import torch.nn.functional as F
from torch import nn


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad (B, C, H, W) at the bottom and right so that H and W are multiples of `multiple`."""
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h))


def check_common_config(config: object) -> None:
    """Validate the shared vocabulary: in_channels, num_classes, width, context_slices (all >= 1)."""
    for name in ("in_channels", "num_classes", "width", "context_slices"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive int, got {value!r}")


def check_input(x: torch.Tensor, config: object) -> None:
    """Check that x is (B, context_slices * in_channels, H, W)."""
    expected = config.context_slices * config.in_channels  # type: ignore[attr-defined]
    if x.ndim != 4 or x.shape[1] != expected:
        raise ValueError(
            f"expected input (B, {expected}, H, W) = (B, context_slices * in_channels, H, W), "
            f"got {tuple(x.shape)}"
        )


def config_field_names(config_cls: type) -> list[str]:
    """Names of a config dataclass' fields, in declaration order."""
    return [f.name for f in fields(config_cls)]


class ResidualUnit(nn.Module):
    """Pre-activation residual unit of Zhang et al. 2018 (residual U-Net), after He et al. 2016.

    out = conv3x3(ReLU(BN(conv3x3_s(ReLU(BN(x)))))) + shortcut(x); the first convolution carries the stride
    (stride 2 replaces pooling in the encoder). The shortcut is identity when shapes agree, else a
    1x1 convolution (with the same stride) followed by batch norm.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        )
        # The strided 1x1 shortcut is the 1x1 convolution of every stride-th pixel: the same product, run as
        # a subsampling, then a stride-1 convolution. torch 2.13's CPU backward of a channels-last, stride-2
        # 1x1 convolution with fewer than 16 input channels corrupts the heap (a crash at width 8).
        self.stride = stride
        if in_channels == out_channels and stride == 1:
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The body's first ReLU is in place on BN's output, never on x itself.
        skip = x[..., :: self.stride, :: self.stride] if self.stride > 1 else x
        return self.body(x) + self.shortcut(skip)


class InputResidualUnit(nn.Module):
    """First unit of Zhang et al.'s encoder: conv3x3 -> BN -> ReLU -> conv3x3, plus a 1x1 conv + BN shortcut.

    The raw input is not batch-normalised and rectified first (it is an image, not a feature map).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        )
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)
