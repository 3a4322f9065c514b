"""Typed errors shared by every layer.

Untrusted files (dumps, PDBs, images) must never surface as a traceback: every
problem with one is raised as a :class:`BadFileError` that names the file and the
problem in one line, and the CLI turns it into that line plus exit code 2.
Absent memory is not a file problem: it is :class:`MemoryNotPresent`, which
carries the first address that could not be read so commands can print
``????????`` exactly where WinDbg would.
"""

from __future__ import annotations


class BugcheckError(Exception):
    """Base of every error this package raises on purpose."""


class BadFileError(BugcheckError):
    """A dump, PDB, image or symbol table is malformed, truncated or of an unsupported kind."""

    def __init__(self, path: object, problem: str):
        self.path = str(path) if path is not None else "<memory>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UnsupportedFormatError(BadFileError):
    """A well-formed file of a kind or version this package does not read (named in the message)."""


class MemoryNotPresent(BugcheckError):
    """A read touched an address the dump does not hold (or a page that is not present).

    ``address`` is the first absent byte; ``space`` is ``"virtual"`` or ``"physical"``.
    """

    def __init__(self, address: int, space: str = "virtual", reason: str = ""):
        self.address = address
        self.space = space
        self.reason = reason
        msg = f"{space} address {address:#x} is not available in the dump"
        if reason:
            msg += f" ({reason})"
        super().__init__(msg)


class SymbolError(BugcheckError):
    """A symbol, type or module could not be found or loaded."""


class CommandError(BugcheckError):
    """A debugger command could not be parsed or run; the message is what kd would print."""
