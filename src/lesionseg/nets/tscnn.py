"""Trident Segmentation CNN (Liu et al., TS-CNN section 2.1 and Fig. 1).

One residual encoder (`ResidualEncoder`, the same as the residual U-Net's) is shared by the three slices
I_{t-1}, I_t, I_{t+1}. The input (B, 3*C, H, W) is ordered [t-1 channels, t channels, t+1 channels] (see
docs/architecture.md), so a reshape to (3B, C, H, W) lists the slices of each sample together and runs all
of them through the encoder as one batch (no copy for a contiguous NCHW input; batch-norm statistics are
then taken over all 3B slices).

Temporal-concat module: at each of the four scales the encoder output (3B, F, h, w) is read as
(B, 3, F, h, w) -- three feature maps on a time axis -- and the time axis is folded into channels by a
reshape, giving (B, 3F, h, w) ordered [t-1 features, t features, t+1 features] (C1..C4 of Fig. 1).
Optionally (`reduce_temporal`) a 1x1 convolution brings 3F back to F at each scale; the paper does not
mention one, so the default is off.

Decoder: a standard decoder with de-convolutions (2x2, stride-2 transposed convolutions), the Spatial-concat
module (channel concatenation with C3, C2, C1) and residual units (4w, 2w, w), then a 1x1 convolution to
the logits. Base width 32 (Table 1 rows D, E) or 64 (row F, "CC=64").

Not stated in the paper, chosen here: the decoder unit widths (4w, 2w, w, as the residual U-Net), the
de-convolution kernel (2x2 stride 2), and that context_slices = 1 is allowed (a one-prong trident: the
residual U-Net with de-convolutions), so that the same network runs on 2D input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ._common import check_common_config, check_input, pad_to_multiple
from .resunet import DOWNSAMPLING_FACTOR, ResidualDecoder, ResidualEncoder


@dataclass(frozen=True)
class TSCNNConfig:
    """Configuration of `TSCNN`.

    context_slices: number of slices sharing the encoder (3 in the paper: t-1, t, t+1).
    width: channels of the encoder's first unit (32 in rows D, E; 64 in rows F, G).
    reduce_temporal: 1x1 convolution from context_slices*F to F after each Temporal-concat.
    """

    in_channels: int = 1
    num_classes: int = 1
    width: int = 32
    context_slices: int = 3
    reduce_temporal: bool = False

    def __post_init__(self) -> None:
        check_common_config(self)


class TemporalConcat(nn.Module):
    """(T*B, F, h, w) encoder output -> (B, T*F, h, w): slices on a time axis folded into channels."""

    def __init__(self, slices: int, channels: int, reduce: bool) -> None:
        super().__init__()
        self.slices = slices
        self.reduce = nn.Conv2d(slices * channels, channels, kernel_size=1) if reduce else nn.Identity()
        self.out_channels = channels if reduce else slices * channels

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        tb, f, h, w = features.shape
        if features.is_contiguous():  # NCHW: the fold is a free view
            fused = features.reshape(tb // self.slices, self.slices * f, h, w)
        else:  # e.g. channels_last: one copy that keeps the layout
            fused = torch.cat(features.unflatten(0, (tb // self.slices, self.slices)).unbind(1), dim=1)
        return self.reduce(fused)


class TSCNN(nn.Module):
    """TS-CNN: shared residual encoder over slices, Temporal-concat at four scales, de-convolution decoder."""

    def __init__(self, config: TSCNNConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.encoder = ResidualEncoder(config.in_channels, w)
        self.temporal_concat = nn.ModuleList(
            TemporalConcat(config.context_slices, c, config.reduce_temporal) for c in self.encoder.channels
        )
        skips = tuple(t.out_channels for t in self.temporal_concat)
        self.decoder = ResidualDecoder(skips, (4 * w, 2 * w, w), upsampling="deconv")  # type: ignore[arg-type]
        self.head = nn.Conv2d(w, config.num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.config)
        b, _, h, w = x.shape
        x = pad_to_multiple(x, DOWNSAMPLING_FACTOR)
        slices = x.reshape(b * self.config.context_slices, self.config.in_channels, *x.shape[-2:])
        features = self.encoder(slices)
        fused = [concat(f) for concat, f in zip(self.temporal_concat, features, strict=True)]
        return self.head(self.decoder(fused))[..., :h, :w]
