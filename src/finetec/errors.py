"""User-facing errors.

Every problem caused by the user's input (a bad file, an unknown name, an invalid option)
is raised as :class:`FinetecError`. The CLI prints it as one line and exits non-zero;
anything else is a bug in finetec.
"""
from __future__ import annotations

import os


class FinetecError(Exception):
    """An error in the user's input, printed as one line: ``<path>: <problem>``."""

    def __init__(self, problem: str, path: str | os.PathLike | None = None):
        problem = str(problem)
        if "\n" in problem or "\r" in problem:  # always one line, whatever a value's repr holds
            problem = " ".join(problem.split())
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
