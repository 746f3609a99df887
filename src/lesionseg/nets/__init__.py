"""Networks: registry + unet, resunet, tscnn, pixelnet; torch only, never imports data/ or train/.

`create_network(name, **config)` builds a network from its own typed config dataclass (`NETWORKS[name]`).
Shared vocabulary: in_channels (channels per slice), num_classes (1 for binary tasks), width (base channel
count), context_slices (1 = 2D, 3 = 2.5D). Every network maps (B, context_slices * in_channels, H, W) to
logits (B, num_classes, H, W) for any H, W (padded internally to its down-sampling factor, cropped back).
Networks work under `torch.autocast("cpu", dtype=torch.bfloat16)` and with channels_last models/inputs.
"""

from __future__ import annotations

from dataclasses import asdict

from torch import nn

from ._common import config_field_names
from .pixelnet import PixelNet, PixelNetConfig
from .resunet import ResUNet, ResUNetConfig
from .tscnn import TSCNN, TSCNNConfig
from .unet import UNet, UNetConfig

NETWORKS: dict[str, tuple[type[nn.Module], type]] = {
    "unet": (UNet, UNetConfig),
    "resunet": (ResUNet, ResUNetConfig),
    "tscnn": (TSCNN, TSCNNConfig),
    "pixelnet": (PixelNet, PixelNetConfig),
}


def create_network(name: str, **config: object) -> nn.Module:
    """Build the network `name` from keyword values of its config dataclass.

    Raises ValueError for an unknown name (listing the valid ones) or an option the network does not have
    (listing its options).
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; valid names: {', '.join(sorted(NETWORKS))}")
    network_cls, config_cls = NETWORKS[name]
    valid = config_field_names(config_cls)
    unknown = sorted(set(config) - set(valid))
    if unknown:
        raise ValueError(f"network {name!r} has no option(s) {unknown}; its options: {', '.join(valid)}")
    return network_cls(config_cls(**config))


def network_config(network: nn.Module) -> dict[str, object]:
    """The config of a registered network as a plain dict (for checkpoints): create_network(name, **it)."""
    return asdict(network.config)  # type: ignore[call-overload]


__all__ = [
    "NETWORKS",
    "PixelNet",
    "PixelNetConfig",
    "ResUNet",
    "ResUNetConfig",
    "TSCNN",
    "TSCNNConfig",
    "UNet",
    "UNetConfig",
    "create_network",
    "network_config",
]
