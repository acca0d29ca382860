"""One exception type per failure class, each mapped to a documented exit code.

The CLI prints ``str(error)`` as a single line and exits with ``error.exit_code``, so every
message must say what is wrong and what to do, naming the file, column, row or parameter.
"""

from __future__ import annotations


class WorkbenchError(Exception):
    """A failure the user can act on; never shown with a traceback."""

    exit_code = 1


class BadInputError(WorkbenchError):
    """The data, the parameters or a model path are unusable."""

    exit_code = 2


class NotebookFailedError(WorkbenchError):
    """A report notebook raised; the partial output was still written."""

    exit_code = 3


class LockHeldError(WorkbenchError):
    """Another run holds the reports folder."""

    exit_code = 4
