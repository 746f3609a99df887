"""Typed configuration: dataclasses <-> JSON, with type checks and ``key=value`` overrides. No torch.

Every config in lesionseg is a (possibly nested) dataclass whose fields are plain JSON-able types:
``bool``, ``int``, ``float``, ``str``, ``Literal[...]``, ``tuple[...]``, ``list[...]``, ``dict[str, ...]``,
``X | None`` and nested dataclasses. The helpers here are generic over them:

- ``to_dict(cfg)``: a JSON-ready dict (tuples become lists).
- ``from_dict(cls, data)``: the inverse, checking every value's type; unknown keys, missing required keys
  and wrong types raise LesionsegError naming the key (and the file, when ``path`` is given).
- ``apply_overrides(cfg, ["n4=true", "target_size=[192,192]", "crop_margin=4,4,2"])``: a new config; a
  dotted key reaches into nested dataclasses. Values are read as JSON, then as comma-separated JSON
  values, then as a bare string.
- ``load_config(cls, path)`` / ``dump_config(cfg, path)``: JSON files (written atomically).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from lesionseg.errors import LesionsegError

T = TypeVar("T")

__all__ = [
    "apply_overrides",
    "config_hash",
    "dump_config",
    "dumps_config",
    "from_dict",
    "load_config",
    "parse_override_value",
    "to_dict",
]


def to_dict(obj: Any) -> Any:
    """A dataclass (or value) as JSON-ready data: dataclasses -> dicts, tuples -> lists, recursively."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def from_dict(cls: type[T], data: Any, path: str | Path | None = None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, checking keys and value types against the field hints."""
    if not isinstance(data, dict):
        raise LesionsegError(f"{_where(where)}expected an object, got {type(data).__name__}", path)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise LesionsegError(
            f"{_where(where)}unknown key(s) {', '.join(map(repr, unknown))} "
            f"(valid keys: {', '.join(sorted(fields))})",
            path,
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], key, path)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise LesionsegError(f"missing required key {key!r}", path)
    return cls(**kwargs)


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def _convert(value: Any, hint: Any, key: str, path: str | Path | None) -> Any:
    """``value`` checked (and lists turned into tuples) against the type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key, path)
            except LesionsegError as exc:
                errors.append(exc.problem)
        raise LesionsegError(
            errors[0] if len(errors) == 1 else f"{key}: {value!r} matches none of {hint}", path
        )
    if origin is typing.Literal:
        if value is None and "none" in args:  # ``--set augmentation=none`` parses as null
            return "none"
        if value not in args:
            raise LesionsegError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}", path)
        return value
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, path, key)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise LesionsegError(f"{key}: expected a list, got {value!r}", path)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise LesionsegError(f"{key}: expected {len(args)} values, got {len(value)}", path)
            items = [
                _convert(v, a, f"{key}[{i}]", path) for i, (v, a) in enumerate(zip(value, args, strict=True))
            ]
        else:
            item = args[0] if args else Any
            items = [_convert(v, item, f"{key}[{i}]", path) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise LesionsegError(f"{key}: expected an object, got {value!r}", path)
        kt, vt = args or (Any, Any)
        return {_convert(k, kt, key, path): _convert(v, vt, f"{key}.{k}", path) for k, v in value.items()}
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (bool, str):
        if isinstance(value, hint):
            return value
    else:
        raise TypeError(f"config field {key}: unsupported type hint {hint!r}")  # our bug, not the user's
    raise LesionsegError(f"{key}: expected {hint.__name__}, got {value!r}", path)


def parse_override_value(text: str) -> Any:
    """``"true"`` -> True, ``"[1, 2]"`` or ``"1,2"`` -> [1, 2], ``"null"``/``"none"`` -> None, else text."""
    if text.strip().lower() == "none":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [parse_override_value(part.strip()) for part in text.split(",")]
    return text


def apply_overrides(cfg: T, overrides: Sequence[str], source: str = "--set") -> T:
    """A copy of ``cfg`` with each ``key=value`` applied (dotted keys for nested configs), type-checked."""
    data = to_dict(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise LesionsegError(f"{source}: expected key=value, got {item!r}")
        node = data
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                valid = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
                where = ".".join(parts[:depth]) or type(cfg).__name__
                raise LesionsegError(f"{source}: unknown key {key!r} (valid keys of {where}: {valid})")
            if depth < len(parts) - 1:
                node = node[part]
        node[parts[-1]] = parse_override_value(text)
    try:
        return from_dict(type(cfg), data)
    except LesionsegError as exc:
        raise LesionsegError(f"{source}: {exc.problem}") from exc


def load_config(cls: type[T], path: str | Path) -> T:
    """Read a JSON config file into dataclass ``cls``; errors name the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise LesionsegError("config file not found", path) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LesionsegError(f"cannot read config ({exc})", path) from exc
    return from_dict(cls, data, path)


def dumps_config(cfg: Any) -> str:
    """The config as indented JSON text with keys in field order."""
    return json.dumps(to_dict(cfg), indent=2) + "\n"


def dump_config(cfg: Any, path: str | Path) -> Path:
    """Write ``cfg`` as JSON atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(dumps_config(cfg))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def config_hash(cfg: Any, length: int = 12) -> str:
    """A short, stable hex digest of the config's JSON form (keys sorted)."""
    import hashlib

    text = json.dumps(to_dict(cfg), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]
