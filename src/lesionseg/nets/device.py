"""Which torch device runs a model: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; and bf16 autocast
on either."""

from __future__ import annotations

import contextlib

import torch

from lesionseg.config.train import DEVICE_CHOICES
from lesionseg.errors import LesionsegError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` without CUDA is a one-line error."""
    if name not in DEVICE_CHOICES:
        raise LesionsegError(f"unknown device {name!r} (valid: {', '.join(DEVICE_CHOICES)})")
    if name == "cuda" and not torch.cuda.is_available():
        raise LesionsegError("--device cuda: this machine has no CUDA device (use --device cpu or auto)")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def autocast(bf16: bool, device: torch.device | str = "cpu"):  # noqa: ANN201 - a context manager
    """bf16 autocast on the device's type, or nothing."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
