"""Output names from untrusted text (case ids, subjects, file stems) that cannot leave the output folder.

``safe_name`` turns any text into one path component: characters other than letters, digits, ``.``,
``_`` and ``-`` become ``_`` (so ``/``, ``\\`` and NUL cannot survive), leading dots become ``_`` (no ``..``,
no hidden files), and the result is at most 120 characters. ``inside`` checks the final path once more,
after resolving symbolic links, so that a link planted in the output folder cannot redirect a write.
"""

from __future__ import annotations

import re
from pathlib import Path

from lesionseg.errors import LesionsegError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_NAME = 120


def safe_name(text: str) -> str:
    """One file-name component derived from ``text`` (never empty, never '.', '..' or hidden)."""
    name = _UNSAFE.sub("_", str(text))
    name = re.sub(r"^\.+", lambda m: "_" * len(m.group()), name)[:MAX_NAME]
    return name or "_"


def inside(out_dir: str | Path, path: str | Path) -> Path:
    """``path`` if it lies under ``out_dir`` once both are resolved; LesionsegError otherwise."""
    root = Path(out_dir).resolve()
    target = Path(path)
    resolved = (target if target.is_absolute() else Path.cwd() / target).resolve()
    if resolved != root and root not in resolved.parents:
        raise LesionsegError(f"output would be written outside the output folder {out_dir}", path)
    return target
