"""Residual U-Net of Zhang, Liu and Wang 2018 ("Road extraction by deep residual U-Net").

TS-CNN Table 1 row B uses it as the 2D baseline, and TS-CNN section 2.1 builds its shared encoder from the
same residual units; `ResidualEncoder` and `ResidualDecoder` are therefore shared with `tscnn`.

Layout (w = width): encoder unit 1 at full resolution (w), units 2 and 3 with a stride-2 first convolution
(2w at 1/2, 4w at 1/4), a bridge unit with stride 2 (8w at 1/8): three down-samplings by strided
convolution, no pooling. The decoder up-samples by 2 (nearest neighbour, the Keras `UpSampling2D` default
of the reference implementations), concatenates the encoder feature map of the same scale and applies a
residual unit (4w, 2w, w); a 1x1 convolution gives the logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._common import InputResidualUnit, ResidualUnit, check_common_config, check_input, pad_to_multiple

DOWNSAMPLING_FACTOR = 8


class ResidualEncoder(nn.Module):
    """Zhang et al.'s residual encoder; returns four scales [C1 (w), C2 (2w), C3 (4w), C4 (8w, bridge)]."""

    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        self.channels = (width, 2 * width, 4 * width, 8 * width)
        self.unit1 = InputResidualUnit(in_channels, width)
        self.unit2 = ResidualUnit(width, 2 * width, stride=2)
        self.unit3 = ResidualUnit(2 * width, 4 * width, stride=2)
        self.bridge = ResidualUnit(4 * width, 8 * width, stride=2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.unit1(x)
        c2 = self.unit2(c1)
        c3 = self.unit3(c2)
        c4 = self.bridge(c3)
        return [c1, c2, c3, c4]


class ResidualDecoder(nn.Module):
    """Decoder of residual units: up-sample by 2, concatenate the skip of that scale, residual unit.

    skip_channels: channels of the encoder outputs [C1, C2, C3, C4] as the decoder receives them.
    widths: output channels of the decoder units at scales 1/4, 1/2, 1 (e.g. (4w, 2w, w)).
    upsampling: "nearest" (parameter-free, Zhang et al.) or "deconv" (2x2 stride-2 transposed convolution
    to the unit's width before the concatenation, TS-CNN's "de-convolution").
    """

    def __init__(
        self, skip_channels: tuple[int, int, int, int], widths: tuple[int, int, int], upsampling: str
    ) -> None:
        super().__init__()
        if upsampling not in ("nearest", "deconv"):
            raise ValueError(f"upsampling must be 'nearest' or 'deconv', got {upsampling!r}")
        self.ups = nn.ModuleList()
        self.units = nn.ModuleList()
        below = skip_channels[3]
        for skip, out in zip(reversed(skip_channels[:3]), widths, strict=True):
            if upsampling == "nearest":
                self.ups.append(nn.Upsample(scale_factor=2, mode="nearest"))
                unit_in = below + skip
            else:
                self.ups.append(nn.ConvTranspose2d(below, out, kernel_size=2, stride=2))
                unit_in = out + skip
            self.units.append(ResidualUnit(unit_in, out))
            below = out
        self.out_channels = below

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[3]
        for up, unit, skip in zip(self.ups, self.units, reversed(features[:3]), strict=True):
            x = unit(torch.cat([up(x), skip], dim=1))
        return x


@dataclass(frozen=True)
class ResUNetConfig:
    """Configuration of `ResUNet`.

    in_channels: channels per slice; context_slices: 1 (2D) or 3 (2.5D, neighbours stacked as channels:
    early fusion); width: channels of the first unit (Zhang et al.: 64).
    """

    in_channels: int = 1
    num_classes: int = 1
    width: int = 64
    context_slices: int = 1

    def __post_init__(self) -> None:
        check_common_config(self)


class ResUNet(nn.Module):
    """Residual U-Net (Zhang et al. 2018; TS-CNN Table 1 row B): (B, T*C, H, W) -> logits (B, K, H, W)."""

    def __init__(self, config: ResUNetConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.encoder = ResidualEncoder(config.context_slices * config.in_channels, w)
        self.decoder = ResidualDecoder(self.encoder.channels, (4 * w, 2 * w, w), upsampling="nearest")
        self.head = nn.Conv2d(w, config.num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config)
        h, w = x.shape[-2:]
        features = self.encoder(pad_to_multiple(x, DOWNSAMPLING_FACTOR))
        return self.head(self.decoder(features))[..., :h, :w]
