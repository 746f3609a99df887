"""The one exception type for mistakes a user can fix (bad files, bad options).

The CLI prints it as a single line and exits non-zero; any other exception is our bug and keeps its traceback.
"""

from __future__ import annotations

import os
from pathlib import Path


class LesionsegError(Exception):
    """A user-facing error: one line that names the file (if any) and the problem."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: 'PATH: reason' (both paths of a rename), without the errno number."""
    reason = exc.strerror or (str(exc).splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, FileExistsError) and exc.filename is not None and os.path.isfile(exc.filename):
        reason = "is a file, where a folder is needed"  # mkdir(exist_ok=True) on a file
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason
