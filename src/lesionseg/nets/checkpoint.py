"""Checkpoints: the weights plus everything needed to rebuild, resume or predict (the resolved config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output

FORMAT = "lesionseg-checkpoint-v1"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    with atomic_output(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise LesionsegError("checkpoint not found", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise LesionsegError(f"cannot read checkpoint ({str(exc).splitlines()[0][:200]})", path) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise LesionsegError("not a lesionseg checkpoint", path)
    return state


def build_model(state: dict[str, Any]) -> torch.nn.Module:
    """The network a checkpoint describes, with its weights, in eval mode."""
    from lesionseg.nets import create_network

    model = create_network(state["network"], **state["network_config"])
    model.load_state_dict(state["model"])
    return model.eval()
