"""The Python API: one object per open dump, answering in the same data as ``--json``.

``open_dump(path, sympath=..., symbols_dir=...)`` returns a :class:`Dump`. It
is the dump file (every :class:`~bugcheck.dumpfile.DumpFile` attribute is
reachable on it: ``header``, ``contexts``, ``read_virtual``...) plus a debugger
session created on first use with the symbol options given, so opening a dump
to read its header costs nothing more than before.

Everything a command returns here is the ``data`` of its
:class:`~bugcheck.commands.registry.Result`, the very object ``bugcheck --json``
prints, so one schema (``docs/JSON.md``) describes both. Helpers that need
kernel symbols (``processes()``, ``Thread.stack()``...) degrade instead of
raising when the dump or its symbols lack something: they return empty lists
or ``None`` and append the reason to :attr:`Dump.notes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

from bugcheck.errors import BadFileError, BugcheckError

__all__ = ["CommandResult", "Dump", "Process", "Thread", "open_dump"]


class CommandResult(NamedTuple):
    """One command's output: WinDbg's text, the JSON-able data and the name of its schema."""

    text: str
    data: Any
    schema: str


def open_dump(
    path: str | Path,
    *,
    sympath: str | None = None,
    symbols_dir: str | Path | None = None,
    image_path: str | None = None,
    offline: bool = False,
    noisy: bool = False,
) -> Dump:
    """Open a crash dump read-only; symbols are only looked for once a call needs them.

    ``sympath`` is WinDbg's symbol path (``srv*CACHE*URL;DIR``; None: the
    ``_NT_SYMBOL_PATH`` environment variable or the default), ``symbols_dir`` a
    folder of offline kernel symbol tables (ISF), ``image_path`` WinDbg's
    executable image path, ``offline`` forbids any symbol server download.
    Raises :class:`~bugcheck.errors.BadFileError` for a missing, unreadable or
    malformed file.
    """
    from bugcheck.dumpfile import open_dump as open_file

    p = Path(path)
    if not p.exists():
        raise BadFileError(p, "no such file")
    if p.is_dir():
        raise BadFileError(p, "is a directory, not a dump file")
    try:
        f = open_file(p)
    except PermissionError as e:
        raise BadFileError(p, "permission denied") from e
    except OSError as e:
        raise BadFileError(p, e.strerror or str(e)) from e
    return Dump(
        f,
        sympath=sympath,
        symbols_dir=None if symbols_dir is None else str(symbols_dir),
        image_path=image_path,
        offline=offline,
        noisy=noisy,
    )


class Dump:
    """An open dump: the file's facts, plus WinDbg's commands and typed helpers over it."""

    def __init__(
        self,
        file,
        *,
        sympath: str | None = None,
        symbols_dir: str | None = None,
        image_path: str | None = None,
        offline: bool = False,
        noisy: bool = False,
    ):
        #: the underlying :class:`~bugcheck.dumpfile.DumpFile`
        self.file = file
        self._options = {
            "sympath": sympath,
            "symbols_dir": symbols_dir,
            "image_path": image_path,
            "offline": offline,
            "noisy": noisy,
        }
        self._session = None
        #: why a helper returned less than asked (missing symbols, absent memory...)
        self.notes: list[str] = []

    # -- the dump file -----------------------------------------------------------------------------
    def __getattr__(self, name: str):
        # only called for names Dump itself lacks: the rest of DumpFile's interface
        if name in ("file", "_session", "_options", "notes"):
            raise AttributeError(name)
        return getattr(self.file, name)

    @property
    def path(self) -> Path:
        return self.file.path

    @property
    def header(self):
        """The DUMP_HEADER fields (see docs/ARCHITECTURE.md)."""
        return self.file.header

    @property
    def kind(self):
        return self.file.kind

    @property
    def machine(self) -> str:
        return self.file.machine

    @property
    def pointer_size(self) -> int:
        return self.file.pointer_size

    @property
    def bugcheck_code(self) -> int:
        return self.file.bugcheck_code

    @property
    def bugcheck_parameters(self) -> tuple[int, ...]:
        return self.file.bugcheck_parameters

    @property
    def contexts(self):
        return self.file.contexts

    @property
    def crash_context(self):
        return self.file.crash_context

    def read_virtual(self, va: int, size: int) -> bytes:
        """Bytes at a kernel virtual address; raises MemoryNotPresent where the dump has none."""
        return self.file.read_virtual(va, size)

    def read_physical(self, pa: int, size: int) -> bytes:
        return self.file.read_physical(pa, size)

    def translate(self, va: int) -> int:
        return self.file.translate(va)

    # -- the debugger session ----------------------------------------------------------------------
    @property
    def session(self):
        """The :class:`~bugcheck.commands.session.Session` behind :meth:`run` (created on first use)."""
        if self._session is None:
            from bugcheck.commands.session import Session

            self._session = Session(self.file, **self._options)
        return self._session

    def run_all(self, line: str) -> list[CommandResult]:
        """Run ``cmd; cmd`` and return every command's (text, data, schema)."""
        return [CommandResult(r.text, r.data, r.schema or "bugcheck.text/1") for r in self.session.run(line)]

    def run(self, line: str) -> Any:
        """The data of the last command of ``line`` (a failed command gives ``{"error": ...}``)."""
        results = self.run_all(line)
        return results[-1].data if results else None

    def text(self, line: str) -> str:
        """What kd prints for ``line``: every command's text, one after the other."""
        return "\n".join(r.text for r in self.run_all(line) if r.text)

    # -- typed helpers ------------------------------------------------------------------------------
    def analyze(self) -> dict:
        """``!analyze -v`` as data (schema ``bugcheck.analysis/1``): failure bucket, culprit, stack..."""
        data = self.run("!analyze -v")
        if isinstance(data, dict) and "error" in data:
            self._note(f"!analyze: {data['error']}")
        return data

    def modules(self) -> list[dict]:
        """Loaded modules in load order, as ``lm`` lists them (schema ``bugcheck.modules/1`` items)."""
        data = self.run("lm")
        if not isinstance(data, dict) or "modules" not in data:
            self._note(f"lm: {_error_of(data)}")
            return []
        return data["modules"]

    def _kernel(self):
        try:
            kernel = self.session.kernel
        except BugcheckError as e:
            self._note(f"kernel model unavailable: {e}")
            return None
        if kernel is None:
            self._note("kernel model unavailable")
        return kernel

    def processes(self) -> list[Process]:
        """Every process on PsActiveProcessHead; empty (with a note) without kernel types."""
        kernel = self._kernel()
        if kernel is None:
            return []
        try:
            procs, warning = kernel.processes()
        except BugcheckError as e:
            self._note(f"process list: {e}")
            return []
        if warning:
            self._note(warning)
        return [Process(self, p) for p in procs]

    def process(self, key: int) -> Process | None:
        """A process by EPROCESS address or process id."""
        kernel = self._kernel()
        p = _quiet(lambda: kernel.find_process(key)) if kernel is not None else None
        return Process(self, p) if p is not None else None

    def thread(self, address: int) -> Thread | None:
        """The thread at an ETHREAD address (None without kernel types)."""
        kernel = self._kernel()
        t = _quiet(lambda: kernel.thread(address)) if kernel is not None else None
        return Thread(self, t) if t is not None else None

    def current_thread(self, processor: int | None = None) -> Thread | None:
        """The thread running on ``processor`` (default: the one that crashed)."""
        kernel = self._kernel()
        if kernel is None:
            return None
        t = _quiet(lambda: kernel.current_thread(processor))
        if t is None:
            self._note("the current thread is not known (no kernel types or no PRCB in the dump)")
            return None
        return Thread(self, t)

    def current_process(self, processor: int | None = None) -> Process | None:
        kernel = self._kernel()
        p = _quiet(lambda: kernel.current_process(processor)) if kernel is not None else None
        return Process(self, p) if p is not None else None

    def stack(self, max_frames: int = 256) -> list[dict]:
        """Frames from the register context in effect, innermost first (what ``k`` prints).

        That is the crash context unless a command run here (``.cxr``, ``.thread``,
        ``~Ns``...) selected another one.
        """
        return self._walk(None, max_frames)["frames"]

    def _walk(self, context, max_frames: int) -> dict:
        from bugcheck.commands.stack import session_walk

        try:
            sw = session_walk(self.session, max_frames, context=context)
        except BugcheckError as e:
            self._note(f"stack: {e}")
            return {"frames": [], "warnings": [str(e)], "first_scan": None}
        return sw.to_dict()

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    # -- lifetime -----------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the session's log and the file's mapping; the Dump is unusable afterwards."""
        if self._session is not None:
            self._session.close()
            self._session = None
        self.file.close()

    def __enter__(self) -> Dump:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<bugcheck.Dump {self.file.path} {self.file.machine}>"


class _KernelObject:
    """A kernel object of a :class:`Dump`, over its typed view (``bugcheck.kernel.objects``)."""

    def __init__(self, dump: Dump, view):
        self._dump = dump
        #: the :class:`bugcheck.kernel.objects.Process` / ``Thread`` view
        self.view = view

    @property
    def address(self) -> int:
        return self.view.address


class Process(_KernelObject):
    """An EPROCESS of a :class:`Dump`; fields the dump lacks read as None."""

    @property
    def pid(self) -> int | None:
        return _quiet(lambda: self.view.pid)

    @property
    def parent_pid(self) -> int | None:
        return _quiet(lambda: self.view.parent_pid)

    @property
    def image(self) -> str:
        return _quiet(lambda: self.view.image_name) or ""

    def to_dict(self) -> dict:
        """address, pid, parent_pid, peb, dirbase, object_table, image, session_id, token..."""
        return _quiet(self.view.summary) or {"address": self.address}

    def info(self, flags: int = 1) -> dict | None:
        """What ``!process ADDR FLAGS`` shows, as data (a ``bugcheck.process/1`` process); None on failure."""
        data = self._dump.run(f"!process {self.address:#x} {flags:#x}")
        if isinstance(data, dict) and isinstance(data.get("process"), dict):
            return data["process"]
        self._dump._note(f"!process {self.address:#x}: {_error_of(data)}")
        return None

    def threads(self) -> list[Thread]:
        """The process's threads (ThreadListHead); empty, with a note, when unreadable."""
        kernel = self._dump._kernel()
        if kernel is None:
            return []
        try:
            threads, warning = self.view.threads(kernel.types)
        except BugcheckError as e:
            self._dump._note(f"threads of process {self.address:#x}: {e}")
            return []
        if warning:
            self._dump._note(f"threads of process {self.address:#x}: {warning}")
        return [Thread(self._dump, t) for t in threads]

    def __repr__(self) -> str:
        return f"<Process {self.address:#x} pid={self.pid} {self.image!r}>"


class Thread(_KernelObject):
    """An ETHREAD of a :class:`Dump`; :meth:`stack` walks it as ``.thread ADDR; k`` would."""

    @property
    def pid(self) -> int | None:
        return _quiet(lambda: self.view.cid[0])

    @property
    def tid(self) -> int | None:
        return _quiet(lambda: self.view.cid[1])

    @property
    def state(self) -> str:
        """RUNNING, WAIT, READY... (``????`` when the dump lacks the field)."""
        return _quiet(lambda: self.view.state_name) or "????"

    def to_dict(self) -> dict:
        """address, pid, tid, teb, state, wait_reason, process, priorities, times, stack bounds."""
        return _quiet(self.view.summary) or {"address": self.address}

    def info(self) -> dict | None:
        """What ``!thread ADDR`` shows, as data (``bugcheck.thread/1``); None on failure."""
        data = self._dump.run(f"!thread {self.address:#x}")
        if isinstance(data, dict) and "unreadable" in data:
            return data
        self._dump._note(f"!thread {self.address:#x}: {_error_of(data)}")
        return None

    def context(self):
        """The registers ``.thread`` would install: its processor's when running, else its switch frame."""
        from bugcheck.commands.context import thread_context

        try:
            return thread_context(self._dump.session, self.address)
        except BugcheckError as e:
            self._dump._note(f"thread {self.address:#x}: {e}")
            return None

    def walk(self, max_frames: int = 256) -> dict:
        """The stack walk as data: frames, warnings, first_scan (schema ``bugcheck.stack/1``)."""
        ctx = self.context()
        if ctx is None:
            why = self._dump.notes[-1] if self._dump.notes else "no register context for this thread"
            return {"frames": [], "warnings": [why], "first_scan": None}
        return self._dump._walk(ctx, max_frames)

    def stack(self, max_frames: int = 256) -> list[dict]:
        """Frame dicts (number, pc, sp, return_address, args, method, symbol, module...), innermost first."""
        return self.walk(max_frames)["frames"]

    def __repr__(self) -> str:
        return f"<Thread {self.address:#x} tid={self.tid} {self.state}>"


def _quiet(fn):
    try:
        return fn()
    except (BugcheckError, KeyError):
        return None


def _error_of(data) -> str:
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return "no data"
