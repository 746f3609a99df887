"""Which torch device runs a model: ``auto`` (CUDA when available), ``cpu`` or ``cuda``; and bf16 autocast
on either."""

from __future__ import annotations

import contextlib
import functools

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
    """bf16 autocast on the device's type, or nothing. On a CPU without native bfloat16 (no AVX-512 BF16
    or AMX: e.g. an AVX2-only AMD EPYC) nothing either: there oneDNN emulates bfloat16 convolutions, and a
    training step of the lesion recipe took 12 s instead of 0.6 s."""
    device_type = torch.device(device).type
    if bf16 and device_type == "cpu" and not cpu_bf16_native():
        bf16 = False
    return torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


@functools.cache
def cpu_bf16_native() -> bool:
    """True when this CPU runs bfloat16 convolutions natively (oneDNN reports it)."""
    mkldnn = getattr(torch.backends, "mkldnn", None)
    return bool(mkldnn) and mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
