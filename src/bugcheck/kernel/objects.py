"""Processes, threads and processors as typed views over dump memory.

Every field is read by name through the loaded kernel types; a field a build
does not have, or whose memory the dump lacks, reads as ``None`` so commands can
print what WinDbg prints for it rather than failing the whole listing.
"""

from __future__ import annotations

from dataclasses import dataclass

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.kernel.typed import StructView, Types, walk_list

#: _KTHREAD.State values (KTHREAD_STATE), as WinDbg names them in !thread
THREAD_STATES = {
    0: "INITIALIZED",
    1: "READY",
    2: "RUNNING",
    3: "STANDBY",
    4: "TERMINATED",
    5: "WAIT",
    6: "TRANSITION",
    7: "DEFERREDREADY",
    8: "GATEWAITOBSOLETE",
    9: "WAITFORPROCESSINSWAP",
}

#: KWAIT_REASON names as !thread prints them
WAIT_REASONS = [
    "Executive", "FreePage", "PageIn", "PoolAllocation", "DelayExecution", "Suspended", "UserRequest",
    "WrExecutive", "WrFreePage", "WrPageIn", "WrPoolAllocation", "WrDelayExecution", "WrSuspended",
    "WrUserRequest", "WrSpare0", "WrQueue", "WrLpcReceive", "WrLpcReply", "WrVirtualMemory",
    "WrPageOut", "WrRendezvous", "WrKeyedEvent", "WrTerminated", "WrProcessInSwap", "WrCpuRateControl",
    "WrCalloutStack", "WrKernel", "WrResource", "WrPushLock", "WrMutex", "WrQuantumEnd",
    "WrDispatchInt", "WrPreempted", "WrYieldExecution", "WrFastMutex", "WrGuardedMutex", "WrRundown",
    "WrAlertByThreadId", "WrDeferredPreempt", "WrPhysicalFault", "WrIoRing", "WrMdlCache",
]  # fmt: skip

#: bounds on threads per process and processes per system. A thread listing with stacks costs
#: ~30 KB of output per thread, so a corrupt or hostile list must not reach 65536 entries; real
#: processes stay well below 8192 threads (a walk cut there ends with a warning that says so).
MAX_THREADS = 8192
MAX_PROCESSES = 65536


def _safe(fn, default=None):
    try:
        return fn()
    except (MemoryNotPresent, KeyError, BugcheckError):
        return default


@dataclass
class _ObjectView:
    """A kernel object at an address; ``f(path)`` reads a field or gives ``default``."""

    view: StructView

    @property
    def address(self) -> int:
        return self.view.address

    def f(self, path: str, default=None):
        return self.view.field_or(path, default)


@dataclass
class Thread(_ObjectView):
    @property
    def cid(self) -> tuple[int | None, int | None]:
        return self.f("Cid.UniqueProcess"), self.f("Cid.UniqueThread")

    @property
    def teb(self):
        return self.f("Tcb.Teb")

    @property
    def win32_thread(self):
        return self.f("Tcb.Win32Thread")

    @property
    def state(self) -> int | None:
        return self.f("Tcb.State")

    @property
    def state_name(self) -> str:
        s = self.state
        return THREAD_STATES.get(s, f"UNKNOWN({s})") if s is not None else "????"

    @property
    def wait_reason(self) -> str:
        r = self.f("Tcb.WaitReason")
        if r is None:
            return "????"
        return WAIT_REASONS[r] if r < len(WAIT_REASONS) else f"Unknown({r})"

    @property
    def wait_mode(self) -> str:
        m = self.f("Tcb.WaitMode")
        return "UserMode" if m == 1 else "KernelMode"

    @property
    def process_address(self):
        return self.f("Tcb.Process") or self.f("Tcb.ApcState.Process")

    @property
    def stack_bounds(self) -> dict:
        return {
            "init": self.f("Tcb.InitialStack"),
            "current": self.f("Tcb.KernelStack"),
            "base": self.f("Tcb.StackBase"),
            "limit": self.f("Tcb.StackLimit"),
        }

    @property
    def start_address(self):
        return self.f("StartAddress")

    @property
    def win32_start_address(self):
        return self.f("Win32StartAddress")

    def summary(self) -> dict:
        pid, tid = self.cid
        return {
            "address": self.address,
            "pid": pid,
            "tid": tid,
            "teb": self.teb,
            "win32_thread": self.win32_thread,
            "state": self.state_name,
            "wait_reason": self.wait_reason if self.state == 5 else None,
            "wait_mode": self.wait_mode,
            "process": self.process_address,
            "context_switches": self.f("Tcb.ContextSwitches"),
            "wait_time": self.f("Tcb.WaitTime"),
            "priority": self.f("Tcb.Priority"),
            "base_priority": self.f("Tcb.BasePriority"),
            "priority_decrement": self.f("Tcb.PriorityDecrement"),
            "ideal_processor": self.f("Tcb.IdealProcessor"),
            "kernel_time": self.f("Tcb.KernelTime"),
            "user_time": self.f("Tcb.UserTime"),
            "start_address": self.start_address,
            "win32_start_address": self.win32_start_address,
            "stack": self.stack_bounds,
        }


@dataclass
class Process(_ObjectView):
    @property
    def pid(self):
        return self.f("UniqueProcessId")

    @property
    def parent_pid(self):
        return self.f("InheritedFromUniqueProcessId")

    @property
    def peb(self):
        return self.f("Peb")

    @property
    def dirbase(self):
        return self.f("Pcb.DirectoryTableBase")

    @property
    def object_table(self):
        return self.f("ObjectTable")

    @property
    def image_name(self) -> str:
        return _safe(lambda: self.view.ascii("ImageFileName"), "") or ""

    @property
    def session_id(self):
        """From the session space (``Session->SessionId``), WinDbg's ``SessionId``; None when unknown."""
        sess = self.f("Session")
        if not sess:
            return None
        t = self.view.types.get("_MM_SESSION_SPACE")
        if t is None:
            return None
        return StructView(self.view.memory, sess, t, self.view.types).field_or("SessionId")

    @property
    def token(self):
        raw = self.f("Token.Value") if self.view.has("Token.Value") else self.f("Token.Object")
        return None if raw is None else raw & ~0xF

    def threads(self, types: Types, limit: int = MAX_THREADS) -> tuple[list[Thread], str | None]:
        ethread = types.get("_ETHREAD")
        if ethread is None or not self.view.has("ThreadListHead"):
            return [], "thread list unavailable (no _ETHREAD type)"
        head = self.view.address_of("ThreadListHead")
        walk = walk_list(
            self.view.memory,
            head,
            ethread.field_offset("ThreadListEntry"),
            types.pointer_size,
            min(limit, MAX_THREADS),
        )
        return [Thread(StructView(self.view.memory, a, ethread, types)) for a in walk.entries], walk.warning

    def summary(self) -> dict:
        return {
            "address": self.address,
            "pid": self.pid,
            "parent_pid": self.parent_pid,
            "peb": self.peb,
            "dirbase": self.dirbase,
            "object_table": self.object_table,
            "image": self.image_name,
            "session_id": self.session_id,
            "token": self.token,
            "vad_root": self.f("VadRoot.Root") if self.view.has("VadRoot.Root") else self.f("VadRoot"),
            "create_time": self.f("CreateTime.QuadPart"),
        }


@dataclass
class Processor:
    index: int
    prcb: int
    view: StructView | None

    def f(self, path: str, default=None):
        return None if self.view is None else self.view.field_or(path, default)

    @property
    def current_thread(self):
        return self.f("CurrentThread")

    @property
    def next_thread(self):
        return self.f("NextThread")

    @property
    def idle_thread(self):
        return self.f("IdleThread")

    @property
    def saved_irql(self):
        return self.f("DebuggerSavedIRQL")

    def summary(self) -> dict:
        return {
            "index": self.index,
            "prcb": self.prcb,
            "current_thread": self.current_thread,
            "next_thread": self.next_thread,
            "idle_thread": self.idle_thread,
            "debugger_saved_irql": self.saved_irql,
            "dpc_routine_active": self.f("DpcRoutineActive"),
        }
