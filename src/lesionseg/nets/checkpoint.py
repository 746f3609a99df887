"""Checkpoints: the weights plus everything needed to rebuild, resume or predict (the resolved config).

Loading is weights-only (``torch.load(weights_only=True)``): a checkpoint can hold tensors, numbers,
strings and plain containers, never code. The schema is versioned (``format_version``) and checked on load,
and non-finite weights are refused both when saving and when loading.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch

from lesionseg.errors import LesionsegError
from lesionseg.io import atomic_output

FORMAT = "lesionseg-checkpoint-v1"
FORMAT_VERSION = 1  # checkpoints written before the field existed have the same keys: read as version 1

# key -> the types it may have; every checkpoint must have these (extra keys are allowed)
REQUIRED_KEYS: dict[str, tuple[type, ...]] = {
    "model": (dict,),
    "network": (str,),
    "network_config": (dict,),
    "config": (dict,),
    "context_slices": (int,),
    "label_values": (list, tuple),
}
OPTIONAL_KEYS: dict[str, tuple[type, ...]] = {
    "threshold": (int, float),
    "channel_names": (list, tuple),
}
# what ``train --resume`` needs on top (pass as ``require=`` to load_checkpoint)
RESUME_KEYS = (
    "optimizer",
    "epoch",
    "history",
    "best_metric",
    "best_val_loss",
    "bad_epochs",
    "rng",
    "torch_rng",
)


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` atomically (the previous file survives any failure).

    Numpy scalars and arrays inside plain containers become Python numbers and lists, so that the file loads
    weights-only. Refuses (LesionsegError) to write model weights that are not finite.
    """
    path = Path(path)
    plain = _plain({**state, "format": FORMAT, "format_version": FORMAT_VERSION}, "state")
    model = plain.get("model")
    if not isinstance(model, dict):
        raise TypeError("save_checkpoint: state['model'] must be a state_dict")
    bad = _non_finite(model)
    if bad:
        raise LesionsegError(
            f"model weights are not finite ({bad}); not saved, the last good checkpoint is kept", path
        )
    with atomic_output(path) as tmp:
        torch.save(plain, tmp)
    return path


def shipped_state(path: str | Path, trained: dict) -> dict[str, Any]:
    """A checkpoint as a model ships it: without optimiser and random-number state, weights in float32, with
    ``trained`` (how it was made) recorded under "trained"."""
    state = load_checkpoint(path)
    shipped = {k: v for k, v in state.items() if k not in ("optimizer", "rng", "torch_rng")}
    shipped["model"] = {k: v.to(torch.float32) for k, v in shipped["model"].items()}
    shipped["trained"] = trained
    return shipped


def load_checkpoint(path: str | Path, require: Iterable[str] = ()) -> dict[str, Any]:
    """Load a checkpoint weights-only and check its schema; ``require`` names further keys that must be there
    (e.g. RESUME_KEYS). LesionsegError (one line, naming the file and the key) for anything wrong."""
    path = Path(path)
    if not path.exists():
        raise LesionsegError("checkpoint not found", path)
    if not path.is_file():
        raise LesionsegError("checkpoint is not a file", path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc) and "Unsupported class" not in str(exc):  # not code: noise
            raise LesionsegError("cannot read checkpoint (not a file that torch.save wrote)", path) from exc
        raise LesionsegError(
            "refused to load checkpoint: it holds objects other than tensors, numbers, strings and plain "
            "containers (only weights are loaded, never code)",
            path,
        ) from exc
    except OSError as exc:
        raise LesionsegError(f"cannot read checkpoint ({exc.strerror or exc})", path) from exc
    except Exception as exc:  # truncated zip, not a torch file, ...
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise LesionsegError(f"cannot read checkpoint ({first})", path) from exc
    check_state(state, path, require)
    return state


def check_state(state: object, path: str | Path, require: Iterable[str] = ()) -> None:
    """The schema check of load_checkpoint: format, version, required keys and their types, finite weights."""
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise LesionsegError(f"not a lesionseg checkpoint (no 'format': {FORMAT!r})", path)
    version = state.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise LesionsegError(f"checkpoint key 'format_version' is invalid ({version!r})", path)
    if version > FORMAT_VERSION:
        raise LesionsegError(
            f"checkpoint format_version {version} is newer than this lesionseg reads ({FORMAT_VERSION}); "
            "upgrade lesionseg",
            path,
        )
    for key, types in REQUIRED_KEYS.items():
        if key not in state:
            raise LesionsegError(f"checkpoint key '{key}' is missing", path)
        _check_type(state, key, types, path)
    for key, types in OPTIONAL_KEYS.items():
        if key in state:
            _check_type(state, key, types, path)
    for key in require:
        if key not in state:
            raise LesionsegError(f"checkpoint key '{key}' is missing (needed to resume)", path)
    model = state["model"]
    for name, value in model.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise LesionsegError(f"checkpoint key 'model' holds a non-tensor entry {name!r}", path)
    if not model:
        raise LesionsegError("checkpoint key 'model' is empty", path)
    if not isinstance(state["config"].get("preprocess"), dict):
        raise LesionsegError("checkpoint key 'config.preprocess' is missing", path)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in state["label_values"]):
        raise LesionsegError("checkpoint key 'label_values' must hold integers", path)
    threshold = state.get("threshold", 0.5)
    if not (isinstance(threshold, (int, float)) and 0.0 < threshold < 1.0):
        raise LesionsegError(f"checkpoint key 'threshold' must be in (0, 1), got {threshold!r}", path)
    if state["context_slices"] < 1:
        got = state["context_slices"]
        raise LesionsegError(f"checkpoint key 'context_slices' must be >= 1, got {got}", path)
    bad = _non_finite(model)
    if bad:
        raise LesionsegError(f"model weights are not finite ({bad}); refusing this model", path)


def build_model(state: dict[str, Any], source: str | Path | None = None) -> torch.nn.Module:
    """The network a checkpoint describes, with its weights, in eval mode (``source``: for errors)."""
    from lesionseg.nets import create_network

    try:
        model = create_network(state["network"], **state["network_config"])
        model.load_state_dict(state["model"])
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise LesionsegError(f"checkpoint weights do not fit its network ({first})", source) from exc
    return model.eval()


def _check_type(state: dict, key: str, types: tuple[type, ...], path: str | Path) -> None:
    value = state[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        names = " or ".join(t.__name__ for t in types)
        raise LesionsegError(f"checkpoint key '{key}' must be {names}, got {type(value).__name__}", path)


def _non_finite(model: dict[str, Any]) -> str:
    """'' when every floating tensor is finite, else which parameter and how many values are bad."""
    bad_names, bad_values, total = [], 0, 0
    for name, value in model.items():
        if isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_complex()):
            total += value.numel()
            count = int((~torch.isfinite(value)).sum())
            if count:
                bad_names.append(str(name))
                bad_values += count
    if not bad_names:
        return ""
    return f"{bad_values} of {total} values are NaN or infinite, first in '{bad_names[0]}'"


def _plain(obj: Any, where: str) -> Any:
    """``obj`` with numpy scalars/arrays turned into Python numbers/lists and paths into strings, so that
    ``torch.load(weights_only=True)`` accepts it; TypeError (our bug) for anything else."""
    if isinstance(obj, np.generic):  # first: np.float64 is also a float
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bytes, torch.Tensor, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist(), where) if obj.dtype == object else obj.tolist()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, dict):
        return {_plain(k, where): _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, torch.Size):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, (set, frozenset)):
        return sorted(_plain(v, where) for v in obj)
    kind = type(obj).__name__
    raise TypeError(f"save_checkpoint: {where} is a {kind}, which a weights-only checkpoint cannot hold")


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "REQUIRED_KEYS",
    "RESUME_KEYS",
    "build_model",
    "check_state",
    "load_checkpoint",
    "save_checkpoint",
]
