"""Check a resolved TrainConfig's network and loss options against their typed configs before any work:
an unknown or ill-typed key is a one-line error listing the valid ones (config/ has no torch, so the
registries are consulted here)."""

from __future__ import annotations

from lesionseg.config import from_dict
from lesionseg.config.train import TrainConfig
from lesionseg.errors import LesionsegError
from lesionseg.losses import LOSSES, loss_parameters
from lesionseg.nets import NETWORKS
from lesionseg.nets._common import config_field_names

# filled in by the trainer from the data, never by the user
DATA_FIELDS = ("in_channels", "num_classes", "width", "context_slices")


def check_options(cfg: TrainConfig) -> None:
    """LesionsegError naming the bad key of ``network_options`` or ``loss_params`` (and the valid ones)."""
    if cfg.network not in NETWORKS:
        raise LesionsegError(f"network: unknown {cfg.network!r} (valid: {', '.join(sorted(NETWORKS))})")
    _, config_cls = NETWORKS[cfg.network]
    valid = [f for f in config_field_names(config_cls) if f not in DATA_FIELDS]
    unknown = sorted(set(cfg.network_options) - set(valid))
    if unknown:
        raise LesionsegError(
            f"network_options: {cfg.network!r} has no option(s) {', '.join(unknown)} "
            f"(valid: {', '.join(valid)})"
        )
    values = dict(cfg.network_options, in_channels=1, num_classes=1, width=cfg.width)
    values["context_slices"] = cfg.context_slices
    try:
        from_dict(config_cls, values, where="network_options")  # checks each value's type
    except (TypeError, ValueError) as exc:
        raise LesionsegError(f"network_options: {exc}") from exc
    if cfg.loss not in LOSSES:
        raise LesionsegError(f"loss: unknown {cfg.loss!r} (valid: {', '.join(sorted(LOSSES))})")
    params = loss_parameters(LOSSES[cfg.loss].function)
    unknown = sorted(set(cfg.loss_params) - set(params))
    if unknown:
        raise LesionsegError(
            f"loss_params: {cfg.loss!r} has no parameter(s) {', '.join(unknown)} "
            f"(valid: {', '.join(params)})"
        )
