"""2D U-Net of the WMH thesis (Ricchi 2022, section 2.4, Fig. 4), after Li et al. 2018.

Per level two 3x3 convolutions, each followed by a ReLU; 2x2 max pooling with stride 2 between levels; the
expanding path up-samples by 2, concatenates the contracting-path map of the same scale and applies two
3x3 convolutions (the first of them is the "up-convolution" that reduces the channels); a final 1x1
convolution maps each `width`-component vector to the classes. With five levels this is 10 + 8 + 1 = 19
convolutional layers, the count the thesis gives, which implies parameter-free up-sampling (nearest
neighbour, Keras `UpSampling2D`) rather than transposed convolutions.

Choices where the thesis is silent:
- channel_multipliers (1, 1.5, 2, 4, 8): 64-96-128-256-512 channels at width 64, as in Li et al.'s
  released model (the thesis only states the 64 channels of the last level); (1, 2, 4, 8, 16) gives
  Ronneberger's doubling.
- Li et al. use 5x5 kernels at the first level; `first_level_kernel=5` reproduces that, default 3 as the
  thesis' "3x3" description of the U-Net.
- batch_norm: off by default, as in the paper's network (plain conv + ReLU); on inserts BatchNorm2d after
  each 3x3 convolution (and drops the convolution bias) for training from scratch at small batch sizes.
Convolutions use 'same' padding, so no cropping of skip connections is needed; the input is zero-padded to
a multiple of 2**(levels-1) and the logits cropped back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._common import check_common_config, check_input, pad_to_multiple


@dataclass(frozen=True)
class UNetConfig:
    """Configuration of `UNet`. Level i has round(width * channel_multipliers[i]) channels."""

    in_channels: int = 1
    num_classes: int = 1
    width: int = 64
    context_slices: int = 1
    channel_multipliers: tuple[float, ...] = (1.0, 1.5, 2.0, 4.0, 8.0)
    batch_norm: bool = False
    first_level_kernel: int = 3

    def __post_init__(self) -> None:
        check_common_config(self)
        # a list from a JSON config becomes the tuple the frozen dataclass is declared with
        object.__setattr__(self, "channel_multipliers", tuple(float(m) for m in self.channel_multipliers))
        if len(self.channel_multipliers) < 2 or any(m <= 0 for m in self.channel_multipliers):
            raise ValueError(
                f"UNetConfig.channel_multipliers needs >= 2 positive values, got {self.channel_multipliers}"
            )
        if self.first_level_kernel < 1 or self.first_level_kernel % 2 == 0:
            raise ValueError(f"UNetConfig.first_level_kernel must be odd, got {self.first_level_kernel}")


def _double_conv(in_channels: int, out_channels: int, batch_norm: bool, kernel: int = 3) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in in (in_channels, out_channels):
        layers.append(nn.Conv2d(c_in, out_channels, kernel, padding=kernel // 2, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """U-Net of the WMH thesis / Li et al. 2018. Input (B, T*C, H, W) -> logits (B, K, H, W)."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        channels = [max(1, round(config.width * m)) for m in config.channel_multipliers]
        self.downsampling_factor = 2 ** (len(channels) - 1)
        in_ch = config.context_slices * config.in_channels
        self.down = nn.ModuleList()
        for i, c in enumerate(channels):
            kernel = config.first_level_kernel if i == 0 else 3
            self.down.append(_double_conv(in_ch, c, config.batch_norm, kernel))
            in_ch = c
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.up = nn.ModuleList(
            _double_conv(channels[i + 1] + channels[i], channels[i], config.batch_norm)
            for i in reversed(range(len(channels) - 1))
        )
        self.head = nn.Conv2d(channels[0], config.num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config)
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.downsampling_factor)
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for block in self.up:
            x = block(torch.cat([self.upsample(x), skips.pop()], dim=1))
        return self.head(x)[..., :h, :w]
