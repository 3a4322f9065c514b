"""bugcheck: analyze Windows kernel crash dumps the way WinDbg/kd does, on any OS.

``bugcheck.open(path)`` opens a dump (read-only, lazily) and returns a
:class:`bugcheck.api.Dump`: the decoded dump plus the debugger commands on it.
"""

from __future__ import annotations

__version__ = "0.1.0"


def open(path, **options):  # noqa: A001 - the public name mirrors the builtin on purpose
    """Open a crash dump (read-only, lazily) and return a :class:`bugcheck.api.Dump`.

    The dump object offers the decoded header, register contexts and memory
    (``read_virtual``, ``read_physical``, ``translate``) directly, and the debugger on
    top: ``dump.run("kv")``, ``dump.analyze()``, ``dump.processes()``, ``dump.modules()``.
    Options: ``sympath``, ``symbols_dir``, ``image_path``, ``offline``, ``noisy``.
    """
    from bugcheck.api import open_dump

    return open_dump(path, **options)
