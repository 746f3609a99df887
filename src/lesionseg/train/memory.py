"""How much memory a training step will take, estimated before training starts, so that a batch that cannot
fit is refused in one line instead of being killed by the kernel (``--set batch_size=100000`` reached 22 GiB
before the OOM killer stopped it, leaving a half-made output folder).

The estimate is measured, not modelled: one training sample goes forward through a copy of the network
(train mode, the run's autocast) and the bytes of every tensor autograd keeps for the backward pass are
summed. A step of ``batch_size`` samples keeps ``batch_size`` times that; the backward pass needs about as
much again for the gradients it builds (``BACKWARD_FACTOR``); weights, their gradients and two Adam moments
add four copies of the parameters. The copy leaves the network, its batch-norm statistics and the RNGs as they
were.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch

from lesionseg.errors import LesionsegError

BACKWARD_FACTOR = 2.0  # peak of a step / what the forward pass keeps (the backward's gradients as much again)
PARAMETER_COPIES = 4  # weights, gradients, Adam's two moments


def saved_bytes(run: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd saves for backward while ``run()`` computes a loss."""
    total = 0

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        nonlocal total
        total += tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        run()
    return total


def step_bytes(per_sample_saved: int, batch_size: int, parameter_bytes: int) -> int:
    """Estimated peak bytes of one training step (see the module docstring)."""
    return int(BACKWARD_FACTOR * per_sample_saved * batch_size + PARAMETER_COPIES * parameter_bytes)


def available_bytes(device: torch.device) -> int | None:
    """Free memory of ``device``: CUDA's free memory, else the system's MemAvailable; None when unknown."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_step_memory(
    model: torch.nn.Module,
    loss_of_one_sample: Callable[[torch.nn.Module], torch.Tensor],
    batch_size: int,
    device: torch.device,
) -> int:
    """The estimated peak bytes of a training step of ``batch_size``; LesionsegError (one line, before any
    file is written) when it exceeds the free memory of ``device``. ``loss_of_one_sample(net)`` computes the
    loss of a batch of one on the network given."""
    net = copy.deepcopy(model.module if hasattr(model, "module") else model)
    net.train()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        per_sample = saved_bytes(lambda: loss_of_one_sample(net))
    parameters = sum(p.numel() * p.element_size() for p in net.parameters())
    needed = step_bytes(per_sample, batch_size, parameters)
    free = available_bytes(device)
    if free is not None and needed > free:
        raise LesionsegError(
            f"batch_size {batch_size} needs about {needed / 2**30:.1f} GiB for a training step "
            f"({per_sample / 2**20:.1f} MiB of activations per sample), more than the "
            f"{free / 2**30:.1f} GiB free on {device.type}; lower batch_size (--set batch_size=N)"
        )
    return needed
