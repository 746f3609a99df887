"""Class-balanced PixelNet (Islam and Ren 2018, section 2; PixelNet of Bansal et al. 2017).

Encoder: VGG-16's 13 convolutions in five blocks (2, 2, 3, 3, 3 convs of width w, 2w, 4w, 8w, 8w; 3x3,
ReLU; 2x2 max pooling between blocks), then pool5 and fc6 / fc7 as convolutions (FCN style). Hypercolumn
h_p = [conv1_2(p), conv2_2(p), conv3_3(p), conv4_3(p), conv5_3(p), fc7(p)] (post-ReLU responses), each
layer's response read at pixel p by bilinear interpolation of the 4 nearest feature positions. Predictor g:
an MLP of three fully connected layers (mlp_width, mlp_width, K) with ReLUs.

Geometry: the input is zero-padded at the bottom/right to a multiple of 32, so a feature map at stride s
has exactly H/s rows; pixel p = (row, col) sits at feature coordinate (row + 0.5) / s - 0.5 (pixel-centre
alignment, `align_corners=False`), clamped to the map (border). `forward_pixels` samples with
`grid_sample(..., align_corners=False, padding_mode="border")` and the dense `forward` with
`interpolate(..., mode="bilinear", align_corners=False)`: both implement that same formula.

Dense `forward` (inference on whole images): the MLP's first layer W1 = [W1_1 | ... | W1_6] is split by
hypercolumn block and applied as a 1x1 convolution to each feature map at its native resolution; only
these mlp_width-channel partial sums are up-sampled to the input size and added (equal to first
up-sampling the features and concatenating, because bilinear interpolation is linear and its weights sum
to 1, so the bias is added once after the sum). The other two layers run as 1x1 convolutions. Training
uses `forward_pixels` on sampled pixels (the paper's sparse prediction, N = 2000 per image).

Masked dense inference (`forward_masked`, or `forward(x, brain_mask=...)`, which slice-wise inference uses):
the convolutions run on every slice that holds brain, whole and as in `forward` (in channels-last layout, so
that each feature map is already a (pixels, channels) table to read from), but the MLP only at the brain
pixels; a slice without brain gets background and no convolution at all. Each
hypercolumn block enters W1 at whichever is cheaper: read the features at the brain pixels and multiply
(fine maps), or apply W1's block at the map's native resolution and read the mlp_width-channel partial sum
(coarse maps); the reads use `forward_pixels`' sampling, the 4 bilinear taps as one weighted
`embedding_bag` (a fused gather), and the coarse maps' partial sums are read and summed in one such bag of
4 taps per map. Brain pixels get `forward`'s logits (up to float rounding); the rest get
background (sigmoid 0; softmax 1 for class 0). The saving follows the share of the slice outside the
brain (and of the slices without brain), plus the dense path's full-size up-sampling of partial sums,
which the masked path never does (benchmarks/bench_pixelnet_masked.py).

Widths: the paper uses VGG-16 (w = 64, fc6/fc7 4096, fc6 7x7) and a 4096-wide MLP. For CPU the defaults are
narrower: fc_width 1024 with a 3x3 fc6 (the reduced fc6 of DeepLab-LargeFOV) and mlp_width 512. The dense
MLP's second layer alone costs 2 * mlp_width**2 FLOPs per pixel: 34 GFLOPs per 256 x 256 slice at 512,
2.2 TFLOPs at 4096 (the VGG convolutions cost about 40).
`PixelNetConfig(fc_width=4096, fc6_kernel=7, mlp_width=4096)` is the paper's network.

Pretrained weights: `pretrained_path` names a local torchvision-style VGG-16 state dict (`features.N.weight`,
`features.N.bias`, N the index in torchvision's `vgg16().features`) loaded into the 13 convolutions (needs
width 64); fc6, fc7 and the MLP start from scratch (He initialisation for the convolutions). When the
network's input channels differ from 3, the first filters are the RGB filters' mean, repeated and scaled by
3 / channels (our choice; the paper fed 3 modalities as the 3 channels). Default: from scratch.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lesionseg.errors import LesionsegError

from ._common import check_common_config, check_input, pad_to_multiple

VGG16_BLOCK_CONVS = (2, 2, 3, 3, 3)
VGG16_BLOCK_MULTIPLIERS = (1, 2, 4, 8, 8)
# Indices of the 13 convolutions in torchvision's vgg16().features.
TORCHVISION_VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
HYPERCOLUMN_LAYERS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3", "fc7")
DOWNSAMPLING_FACTOR = 32
# Logit given outside the brain by `forward_masked`: sigmoid(-1e4) and softmax([0, -1e4, ...])[1:] are exactly
# 0 in float32 and bfloat16, and the value stays finite in float16.
BACKGROUND_LOGIT = -1.0e4
# `forward_masked`: one value gathered from memory costs about as much CPU time as this many multiply-adds.
READ_COST = 16


@dataclass(frozen=True)
class PixelNetConfig:
    """Configuration of `PixelNet` (see the module docstring for the paper's values)."""

    in_channels: int = 1
    num_classes: int = 1
    width: int = 64
    context_slices: int = 1
    fc_width: int = 1024
    fc6_kernel: int = 3
    fc6_dilation: int = 1
    mlp_width: int = 512
    pretrained_path: str | None = None

    def __post_init__(self) -> None:
        check_common_config(self)
        for name in ("fc_width", "fc6_dilation", "mlp_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"PixelNetConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.fc6_kernel < 1 or self.fc6_kernel % 2 == 0:
            raise ValueError(f"PixelNetConfig.fc6_kernel must be odd, got {self.fc6_kernel}")


class PixelNet(nn.Module):
    """PixelNet with a VGG-16 hypercolumn. `forward` is dense; `forward_pixels` predicts sampled pixels;
    `forward_masked` is dense on brain pixels only."""

    accepts_brain_mask = True  # slice-wise inference passes each slice's brain mask to `forward`

    def __init__(self, config: PixelNetConfig) -> None:
        super().__init__()
        self.config = config
        in_ch = config.context_slices * config.in_channels
        self.blocks = nn.ModuleList()
        for n_convs, mult in zip(VGG16_BLOCK_CONVS, VGG16_BLOCK_MULTIPLIERS, strict=True):
            layers: list[nn.Module] = []
            for _ in range(n_convs):
                layers += [nn.Conv2d(in_ch, config.width * mult, 3, padding=1), nn.ReLU(inplace=True)]
                in_ch = config.width * mult
            self.blocks.append(nn.Sequential(*layers))
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        k, d = config.fc6_kernel, config.fc6_dilation
        self.fc = nn.Sequential(
            nn.Conv2d(in_ch, config.fc_width, k, padding=d * (k // 2), dilation=d),  # fc6
            nn.ReLU(inplace=True),
            nn.Conv2d(config.fc_width, config.fc_width, 1),  # fc7
            nn.ReLU(inplace=True),
        )
        self.hypercolumn_channels = tuple(config.width * m for m in VGG16_BLOCK_MULTIPLIERS) + (
            config.fc_width,
        )
        m = config.mlp_width
        self.mlp = nn.ModuleList(
            [
                nn.Linear(sum(self.hypercolumn_channels), m),
                nn.Linear(m, m),
                nn.Linear(m, config.num_classes),
            ]
        )
        for conv in self._convs():
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        if config.pretrained_path is not None:
            self.load_vgg16(config.pretrained_path)

    def _convs(self) -> list[nn.Conv2d]:
        convs = [layer for block in self.blocks for layer in block if isinstance(layer, nn.Conv2d)]
        return convs + [self.fc[0], self.fc[2]]  # type: ignore[list-item]

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The six hypercolumn layers' responses for a padded input (H, W multiples of 32)."""
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.pool(x))
            out.append(x)
        out.append(self.fc(self.pool(x)))
        return out

    def forward(
        self, x: torch.Tensor, coords: torch.Tensor | None = None, brain_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Dense prediction: (B, T*C, H, W) -> logits (B, K, H, W); with ``coords`` (B, N, 2) the sparse
        training path `forward_pixels` (so DistributedDataParallel, which wraps ``forward``, sees it); with
        ``brain_mask`` (B, H, W) the masked dense path `forward_masked`."""
        if coords is not None:
            return self.forward_pixels(x, coords)
        if brain_mask is not None:
            return self.forward_masked(x, brain_mask)
        check_input(x, self.config)
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, DOWNSAMPLING_FACTOR)
        size = x.shape[-2:]
        first, second, last = self.mlp
        hidden: torch.Tensor | None = None
        offsets = [sum(self.hypercolumn_channels[:i]) for i in range(len(self.hypercolumn_channels))]
        parts = zip(self.features(x), self.hypercolumn_channels, offsets, strict=True)
        # Coarsest first; at most one full-size partial sum exists besides the accumulator.
        for feature, channels, offset in reversed(list(parts)):
            partial = F.conv2d(feature, first.weight[:, offset : offset + channels, None, None])
            if partial.shape[-2:] != size:
                partial = F.interpolate(partial, size=size, mode="bilinear", align_corners=False)
            hidden = partial if hidden is None else hidden.add_(partial)
        assert hidden is not None
        hidden = F.relu(hidden.add_(first.bias[None, :, None, None]), inplace=True)
        hidden = F.relu(F.conv2d(hidden, second.weight[:, :, None, None], second.bias), inplace=True)
        logits = F.conv2d(hidden, last.weight[:, :, None, None], last.bias)
        return logits[..., :h, :w]

    def forward_masked(self, x: torch.Tensor, brain_mask: torch.Tensor) -> torch.Tensor:
        """Dense prediction on brain pixels only: (B, T*C, H, W) and ``brain_mask`` (B, H, W) (non-zero =
        brain) -> logits (B, K, H, W), `forward`'s logits on the brain and `BACKGROUND_LOGIT` outside it
        (for K > 1, class 0 gets 0 there: background with softmax probability 1)."""
        check_input(x, self.config)
        b, _, h, w = x.shape
        if tuple(brain_mask.shape) != (b, h, w):
            raise ValueError(f"brain_mask must be (B, H, W) = {(b, h, w)}, got {tuple(brain_mask.shape)}")
        first, second, last = self.mlp
        out = x.new_full((b, self.config.num_classes, h, w), BACKGROUND_LOGIT)
        if self.config.num_classes > 1:
            out[:, 0] = 0.0
        brain_mask = brain_mask.to(x.device) != 0
        with_brain = brain_mask.flatten(1).any(1).nonzero()[:, 0]  # slices without brain: no convolution
        if len(with_brain) == 0:
            return out
        where = brain_mask[with_brain].nonzero()  # (P, 3): batch (among with_brain), row, col, batch-major
        x = pad_to_multiple(x[with_brain], DOWNSAMPLING_FACTOR).contiguous(memory_format=torch.channels_last)
        height, width = x.shape[-2:]
        batch, rows, cols = where.unbind(1)

        def taps(h_s: int, w_s: int) -> tuple[torch.Tensor, torch.Tensor]:
            """The 4 bilinear taps of every brain pixel on a map of h_s x w_s per slice: (P, 4) rows of the
            map's (B * h_s * w_s, C) table (channels-last rows) and their (P, 4) weights; border-clamped,
            pixel centres at (p + 0.5) / s - 0.5 (`interpolate(align_corners=False)`, `grid_sample`)."""
            pairs = []
            for coord, size, full in ((rows, h_s, height), (cols, w_s, width)):
                src = ((coord.double() + 0.5) * (size / full) - 0.5).clamp(min=0.0)
                low = src.floor().long().clamp(max=size - 1)
                frac = src - low
                pairs.append(((low, 1 - frac), ((low + 1).clamp(max=size - 1), frac)))
            index = torch.stack([(batch * h_s + r) * w_s + c for r, _ in pairs[0] for c, _ in pairs[1]], 1)
            weights = torch.stack([wr * wc for _, wr in pairs[0] for _, wc in pairs[1]], 1)
            return index, weights

        def read(tables: list[torch.Tensor], sizes: list[tuple[int, int]]) -> torch.Tensor:
            """Tables of equal width C -> (P, C): the sum of their bilinear reads at the brain pixels, as
            one weighted bag per pixel of `embedding_bag` (one fused pass, no (P, C) intermediate per tap
            or per table)."""
            if sizes == [(height, width)]:
                return tables[0][(batch * height + rows) * width + cols]
            indices, weights, start = [], [], 0
            for table, (h_s, w_s) in zip(tables, sizes, strict=True):
                index, weight = taps(h_s, w_s)
                indices.append(index + start)
                weights.append(weight)
                start += len(table)
            table = tables[0] if len(tables) == 1 else torch.cat(tables)
            weight = torch.cat(weights, 1).to(table.dtype)
            return F.embedding_bag(torch.cat(indices, 1), table, per_sample_weights=weight, mode="sum")

        read_features, read_weights = [], []  # blocks read first share one product (a wider one is faster)
        partial_tables, partial_sizes = [], []  # blocks multiplied first share one read
        offsets = [sum(self.hypercolumn_channels[:i]) for i in range(len(self.hypercolumn_channels))]
        parts = zip(self.features(x), self.hypercolumn_channels, offsets, strict=True)
        for feature, channels, offset in parts:
            weight = first.weight[:, offset : offset + channels]
            table = feature.permute(0, 2, 3, 1).reshape(-1, channels)  # a view for channels-last maps
            # Read then multiply, or multiply at the map's own resolution then read: the cheaper, counting
            # a gathered value (4 taps) as READ_COST multiply-adds (m = mlp_width).
            m, size = weight.shape[0], tuple(feature.shape[-2:])
            read_first = len(where) * channels * (m + 4 * READ_COST)
            if read_first <= len(table) * channels * m + len(where) * m * 4 * READ_COST:
                read_features.append(read([table], [size]))
                read_weights.append(weight)
            else:
                partial_tables.append(table @ weight.T.to(table.dtype))
                partial_sizes.append(size)
        hidden = read(partial_tables, partial_sizes).float() if partial_tables else None
        if read_features:
            columns = torch.cat(read_features, 1)
            weight = torch.cat(read_weights, 1).T.to(columns.dtype)
            if hidden is None:
                hidden = (columns @ weight).float()
            elif hidden.dtype == columns.dtype:
                hidden.addmm_(columns, weight)  # no (P, mlp_width) intermediate
            else:  # bf16 autocast: float32 accumulator
                hidden.add_(columns @ weight)
        assert hidden is not None
        hidden = F.relu(hidden.add_(first.bias), inplace=True)
        logits = last(F.relu(second(hidden), inplace=True))
        out[with_brain[where[:, 0]], :, where[:, 1], where[:, 2]] = logits.to(out.dtype)
        return out

    def hypercolumns(self, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Hypercolumns h_p at pixels coords (B, N, 2) int64 (row, col) -> (B, N, D), D = sum of widths."""
        check_input(x, self.config)
        h, w = x.shape[-2:]
        if coords.ndim != 3 or coords.shape[0] != x.shape[0] or coords.shape[2] != 2:
            raise ValueError(f"coords must be (B={x.shape[0]}, N, 2) (row, col), got {tuple(coords.shape)}")
        if coords.dtype != torch.int64:
            raise ValueError(f"coords must be int64, got {coords.dtype}")
        if coords.numel() and (coords.min() < 0 or coords[..., 0].max() >= h or coords[..., 1].max() >= w):
            raise ValueError(f"coords out of bounds for an image of {h} x {w}")
        x = pad_to_multiple(x, DOWNSAMPLING_FACTOR)
        height, width = x.shape[-2:]
        # Normalised pixel centres of the padded image: grid_sample(align_corners=False) maps them to
        # (p + 0.5) / s - 0.5 on a map at stride s, the same as interpolate(align_corners=False).
        grid_y = (2.0 * coords[..., 0].float() + 1.0) / height - 1.0
        grid_x = (2.0 * coords[..., 1].float() + 1.0) / width - 1.0
        grid = torch.stack([grid_x, grid_y], dim=-1).unsqueeze(1)  # (B, 1, N, 2) as (x, y)
        columns = [
            F.grid_sample(f.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
            for f in self.features(x)
        ]
        return torch.cat(columns, dim=1).squeeze(2).transpose(1, 2)

    def forward_pixels(self, x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Sparse prediction at pixels coords (B, N, 2) int64 (row, col): logits (B, N, K).

        Equal to `forward(x)` read at those pixels. For the multi-class losses, which take (B, K, ...),
        pass `logits.transpose(1, 2)`.
        """
        hidden = self.hypercolumns(x, coords)
        first, second, last = self.mlp
        return last(F.relu(second(F.relu(first(hidden)))))

    @torch.no_grad()
    def load_vgg16(self, path: str | Path) -> None:
        """Copy a local torchvision-style VGG-16 state dict (`features.N.*`) into the 13 convolutions."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as err:
            raise LesionsegError(f"cannot read VGG-16 weights: {err}", path) from err
        if not isinstance(state, dict):
            raise LesionsegError("VGG-16 weights must be a state dict (name -> tensor)", path)
        targets = list(zip(TORCHVISION_VGG16_CONV_INDICES, self._convs()[:13], strict=True))
        for index, conv in targets:
            key = f"features.{index}"
            if f"{key}.weight" not in state or f"{key}.bias" not in state:
                raise LesionsegError(f"VGG-16 weights lack '{key}.weight' / '{key}.bias'", path)
            weight, bias = state[f"{key}.weight"], state[f"{key}.bias"]
            if conv is targets[0][1] and weight.ndim == 4 and weight.shape[1] != conv.in_channels:
                # RGB filters -> mean filter repeated over our channels, scaled to keep the response size.
                weight = weight.mean(dim=1, keepdim=True).repeat(1, conv.in_channels, 1, 1)
                weight = weight * (3.0 / conv.in_channels)
            if weight.shape != conv.weight.shape or bias.shape != conv.bias.shape:
                raise LesionsegError(
                    f"'{key}.weight' has shape {tuple(weight.shape)}, the network needs "
                    f"{tuple(conv.weight.shape)} (VGG-16 weights need width=64)",
                    path,
                )
            conv.weight.copy_(weight)
            conv.bias.copy_(bias)
