"""The one exception type for mistakes a user can fix (bad files, bad options).

The CLI prints it as a single line and exits non-zero; any other exception is our bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class LesionsegError(Exception):
    """A user-facing error: one line that names the file (if any) and the problem."""

    def __init__(self, problem: str, path: str | Path | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
