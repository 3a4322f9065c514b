"""The kernel as the debugger sees it: processors, processes, threads, modules.

:class:`Kernel` ties a dump to the kernel's types (from its PDB or ISF table)
and the address of kernel globals (``symbol`` callback, normally the
resolver's ``nt!`` lookup). Where types are missing it falls back to what the
dump itself carries: the debugger data block (``KiProcessorBlock``,
``PsActiveProcessHead``) and, for triage dumps, the saved PRCB/process/thread
addresses, and it says which information is unavailable.
"""

from __future__ import annotations

from collections.abc import Callable

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.kernel.budget import WorkBudget
from bugcheck.kernel.objects import MAX_PROCESSES, Process, Processor, Thread
from bugcheck.kernel.typed import StructView, Types, walk_list

#: a machine never has more logical processors than this; bounds KiProcessorBlock reads
MAX_PROCESSORS = 2048


class Kernel:
    def __init__(self, dump, types: Types, symbol: Callable[[str], int | None] | None = None):
        self.dump = dump
        self.memory = dump.virtual
        self.types = types
        self.pointer_size = dump.pointer_size
        self._symbol = symbol or (lambda name: None)
        self.warnings: list[str] = []
        self._processors: list[Processor] | None = None
        #: the current command's work limits (set by the session per command; None: unlimited)
        self.budget: WorkBudget | None = None

    # -- helpers -------------------------------------------------------------------------------
    def symbol(self, name: str) -> int | None:
        addr = self._symbol(name)
        if addr is None:
            kd = getattr(self.dump, "kd_debugger_data", None) or {}
            addr = kd.get(name) or None
        return addr

    def read_pointer(self, address: int) -> int:
        return int.from_bytes(self.memory.read(address, self.pointer_size), "little")

    def _view(self, address: int, type_name: str) -> StructView | None:
        t = self.types.get(type_name)
        return None if t is None else StructView(self.memory, address, t, self.types)

    # -- processors ----------------------------------------------------------------------------
    def processors(self) -> list[Processor]:
        if self._processors is not None:
            return self._processors
        count = min(self.dump.header.number_processors or 1, MAX_PROCESSORS)
        prcbs: list[int | None] = [None] * count
        block = self.symbol("KiProcessorBlock")
        if block:
            for i in range(count):
                try:
                    prcbs[i] = self.read_pointer(block + i * self.pointer_size) or None
                except MemoryNotPresent:
                    pass
        triage = getattr(self.dump, "triage", None)
        tri_prcb = getattr(triage, "prcb_address", None) if triage is not None else None
        if tri_prcb and tri_prcb not in prcbs:
            idx = self._prcb_number(tri_prcb)
            if idx is None:
                idx = self.dump.crash_processor if self.dump.crash_processor is not None else 0
            if 0 <= idx < count:
                prcbs[idx] = tri_prcb
        out = []
        for i, p in enumerate(prcbs):
            out.append(Processor(i, p or 0, self._view(p, "_KPRCB") if p else None))
        self._processors = out
        return out

    def _prcb_number(self, prcb: int) -> int | None:
        v = self._view(prcb, "_KPRCB")
        return None if v is None else v.field_or("Number")

    def processor(self, index: int) -> Processor | None:
        procs = self.processors()
        return procs[index] if 0 <= index < len(procs) else None

    @property
    def crash_processor(self) -> int:
        cp = getattr(self.dump, "crash_processor", None)
        if cp is not None:
            return cp
        triage = getattr(self.dump, "triage", None)
        if triage is not None:
            if getattr(triage, "processor_number", None) is not None:
                return triage.processor_number
            if getattr(triage, "prcb_address", None):
                n = self._prcb_number(triage.prcb_address)
                if n is not None:
                    return n
        return 0

    # -- threads and processes -----------------------------------------------------------------
    def thread(self, address: int) -> Thread | None:
        v = self._view(address, "_ETHREAD")
        return None if v is None else Thread(v)

    def process(self, address: int) -> Process | None:
        v = self._view(address, "_EPROCESS")
        return None if v is None else Process(v)

    def current_thread(self, processor: int | None = None) -> Thread | None:
        idx = self.crash_processor if processor is None else processor
        p = self.processor(idx)
        addr = p.current_thread if p is not None else None
        if not addr and idx == self.crash_processor:
            triage = getattr(self.dump, "triage", None)
            addr = getattr(triage, "thread_address", None) if triage is not None else None
        return self.thread(addr) if addr else None

    def current_process(self, processor: int | None = None) -> Process | None:
        t = self.current_thread(processor)
        addr = t.process_address if t is not None else None
        if not addr and (processor is None or processor == self.crash_processor):
            triage = getattr(self.dump, "triage", None)
            addr = getattr(triage, "process_address", None) if triage is not None else None
        return self.process(addr) if addr else None

    def processes(self) -> tuple[list[Process], str | None]:
        """Every process on PsActiveProcessHead (bounded); a warning when the list is cut short."""
        ep = self.types.get("_EPROCESS")
        if ep is None:
            return [], "process list unavailable: no kernel types (_EPROCESS) loaded"
        head = self.dump.header.ps_active_process_head or self.symbol("PsActiveProcessHead")
        if not head:
            return [], "PsActiveProcessHead is not known"
        try:
            link = ep.field_offset("ActiveProcessLinks")
        except KeyError:
            source = getattr(self.types.source, "origin", None)
            if source:
                return [], f"process list unavailable: _EPROCESS.ActiveProcessLinks is not among the {source}"
            return [], "process list unavailable: _EPROCESS has no ActiveProcessLinks"
        walk = walk_list(self.memory, head, link, self.pointer_size, MAX_PROCESSES)
        procs = [Process(StructView(self.memory, a, ep, self.types)) for a in walk.entries]
        warning = walk.warning
        if warning and not procs:
            warning = f"unable to read the process list: {warning}"
        return procs, warning

    def find_process(self, key: int) -> Process | None:
        """A process by EPROCESS address or by process id (as ``!process`` accepts either)."""
        procs, _ = self.processes()
        for p in procs:
            if p.address == key:
                return p
        for p in procs:
            if p.pid == key:
                return p
        return None

    def find_thread(self, key: int) -> Thread | None:
        """A thread by ETHREAD address or by thread id: the processors' current threads, then
        every process's thread list (a minidump often holds only the former)."""
        for p in self.processors():
            t = self.thread(p.current_thread) if p.current_thread else None
            if t is not None and (t.address == key or t.cid[1] == key):
                return t
        procs, _ = self.processes()
        for p in procs:
            threads, _ = p.threads(self.types)
            for t in threads:
                if t.address == key or t.cid[1] == key:
                    return t
        return None

    def safe(self, fn, default=None):
        try:
            return fn()
        except BugcheckError:
            return default
