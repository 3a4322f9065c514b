"""bugcheck: analyze Windows kernel crash dumps the way WinDbg/kd does, on any OS.

``bugcheck.open(path)`` opens a dump (read-only, lazily) and returns a
:class:`bugcheck.dumpfile.DumpFile`.
"""

from __future__ import annotations

__version__ = "0.1.0"


def open(path):  # noqa: A001 - the public name mirrors the builtin on purpose
    """Open a crash dump file and return its DumpFile (see docs/ARCHITECTURE.md)."""
    from bugcheck.dumpfile import open_dump

    return open_dump(path)
