"""A synthetic Windows kernel in memory: image, debugger block, modules, processes, threads, PRCBs.

Tests of the kernel model and the process/thread commands need dumps whose
contents are known exactly, and at sizes no corpus dump has (hundreds of
processes). :func:`build_kernel` lays such a kernel out with the real layouts
of a kernel build's types (an ISF table, which also supplies the symbol RVAs):
globals sit at ``base + RVA`` so a reader identifies the same table by the
header's PsLoadedModuleList / PsActiveProcessHead / KdDebuggerDataBlock, as it
does for a real dump. :class:`SynthKernel` records what was built so a test
can compare a reader's answers against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from bugcheck.dumpfile.writer.description import DumpDescription
from bugcheck.dumpfile.writer.headers import context_bytes

from .kdbg import kdbg_bytes
from .memory import PAGE, Arena, SparseMemory
from .modules import SynthModule, build_module_list, pe_header_page
from .stacks import (
    IDLE_CHAIN,
    SYSTEM_SERVICE,
    SYSTEM_TAIL,
    UNWOUND,
    USER_TAIL,
    WAIT_CHAIN,
    build_pdata,
    lay_chain,
)

DEFAULT_KERNEL_BASE = 0xFFFFF804_7BA00000
#: pool for objects, module entries and strings; stacks get their own range
POOL_BASE = 0xFFFFC08B_00000000
STACK_BASE = 0xFFFF8504_00000000
#: Windows x64 kernel stacks are 6 pages (KERNEL_STACK_SIZE); a guard page separates them
STACK_SIZE = 0x6000
STACK_STRIDE = 0x8000
#: bytes at the top of an initial stack taken by the FX save area and the trap frame
INITIAL_STACK_RESERVE = 0x1D0
#: KSWITCH_FRAME (kernel symbol tables do not describe it): P1Home..P5Home, ApcBypass + fill,
#: Rbp, Return; the switched-out thread resumes at Return with rsp just above the frame
SWITCH_FRAME_SIZE = 0x40
SWITCH_FRAME_APC_BYPASS = 0x28
SWITCH_FRAME_RBP = 0x30
SWITCH_FRAME_RETURN = 0x38

STATE_READY, STATE_RUNNING, STATE_WAIT = 1, 2, 5
#: KUSER_SHARED_DATA's fixed kernel address on x64
SHARED_DATA = 0xFFFFF780_00000000
#: 100 ns units per clock tick (15.625 ms), nt!KeMaximumIncrement on PCs
MAX_INCREMENT = 156250
#: the clock tick count at the crash (about 3 hours of uptime)
TICK_COUNT = 691_200
#: (wait reason, weight) for waiting threads: what a desktop's threads mostly wait on
_WAIT_REASONS = [(6, 5), (15, 3), (0, 2), (4, 2), (16, 1), (13, 1), (37, 1)]
_IMAGES = [
    "smss.exe", "csrss.exe", "wininit.exe", "services.exe", "lsass.exe", "svchost.exe",
    "winlogon.exe", "fontdrvhost.exe", "dwm.exe", "explorer.exe", "SearchIndexer.exe",
    "RuntimeBroker.exe", "notepad.exe", "MsMpEng.exe", "spoolsv.exe", "taskhostw.exe",
]  # fmt: skip
_DRIVERS = [
    ("\\SystemRoot\\system32\\hal.dll", 0x6000),
    ("\\SystemRoot\\system32\\kd.dll", 0xB000),
    ("\\SystemRoot\\System32\\drivers\\CLFS.SYS", 0x6A000),
    ("\\SystemRoot\\System32\\drivers\\ACPI.sys", 0xCC000),
    ("\\SystemRoot\\System32\\drivers\\Wdf01000.sys", 0xD1000),
    ("\\SystemRoot\\System32\\drivers\\storport.sys", 0xB3000),
    ("\\SystemRoot\\System32\\drivers\\Ntfs.sys", 0x2D4000),
    ("\\SystemRoot\\System32\\drivers\\tcpip.sys", 0x2E7000),
]
#: the globals a reader needs from the image, by the kernel's symbol names
_GLOBALS = (
    "PsLoadedModuleList",
    "PsActiveProcessHead",
    "KdDebuggerDataBlock",
    "KiProcessorBlock",
    "PsInitialSystemProcess",
    "ExpFreeListCount",
    "KeMaximumIncrement",
    "KeNumberProcessors",
)
_CODE = tuple(UNWOUND) + (SYSTEM_SERVICE[0],)
#: the exception directory and unwind data sit this far below the end of the image
PDATA_AREA = 0x8000


@dataclass
class SynthThread:
    address: int
    pid: int
    tid: int
    state: int
    wait_reason: int | None
    teb: int
    initial_stack: int
    stack_base: int
    stack_limit: int
    kernel_stack: int
    start_address: int
    #: Tcb.WaitTime: the tick count when the thread last changed state
    wait_time: int = 0
    #: the return address saved in the switch frame at ``kernel_stack`` (0 for running threads)
    switch_return: int = 0
    processor: int | None = None
    #: user threads: the system call's trap frame
    trap_frame: int = 0
    #: running threads: the registers their processor holds
    context: dict[str, int] | None = None


@dataclass
class SynthProcess:
    address: int
    pid: int
    parent_pid: int
    #: ImageFileName as the kernel stores it (at most 14 characters)
    image: str
    session_id: int | None
    dirbase: int
    peb: int
    create_time: int
    token: int
    object_table: int
    vad_root: int
    handle_count: int = 0
    threads: list[SynthThread] = field(default_factory=list)


@dataclass
class SynthProcessor:
    index: int
    pcr: int
    prcb: int
    current_thread: int
    idle_thread: int
    context: dict[str, int]


@dataclass
class SynthKernel:
    """What :func:`build_kernel` made, and the memory holding it."""

    kernel_base: int
    symbols: dict[str, int]
    modules: list[SynthModule]
    processes: list[SynthProcess]
    idle_process: SynthProcess
    processors: list[SynthProcessor]
    crash_processor: int
    memory: SparseMemory
    types: object

    @property
    def contexts(self) -> list[dict[str, int]]:
        return [p.context for p in self.processors]

    def threads(self) -> list[SynthThread]:
        return [t for p in self.processes for t in p.threads]

    def mappings(self) -> dict[int, bytes]:
        return self.memory.mappings()

    def link_process_cycle(self, from_index: int, to_index: int) -> None:
        """Corrupt the active process list: process ``from_index``'s Flink points back at ``to_index``."""
        ep = self.types.find_type("_EPROCESS")
        off = self.memory.offset(ep, "ActiveProcessLinks")
        src = self.processes[from_index].address + off
        self.memory.put(src, self.processes[to_index].address + off, self.memory.pointer_size)

    def description(self, **fields) -> DumpDescription:
        """A :class:`DumpDescription` of this kernel; ``fields`` override or add header fields."""
        mappings = self.mappings()
        need = (sum(-(-len(v) // PAGE) for v in mappings.values()) * 5 // 4 + 0x2000) * PAGE
        base = {
            "machine": "x64",
            "build": 19041,
            "contexts": self.contexts,
            "crash_processor": self.crash_processor,
            "processor_count": len(self.processors),
            "kd_debugger_data_block": self.symbols["KdDebuggerDataBlock"],
            "ps_loaded_module_list": self.symbols["PsLoadedModuleList"],
            "ps_active_process_head": self.symbols["PsActiveProcessHead"],
            "kernel_base": self.kernel_base,
            "bugcheck_code": 0xE2,  # MANUALLY_INITIATED_CRASH
            "system_time": 0x01D7_0800_0000_0000,
            "system_up_time": 36_000_000_000,
            "ram_size": max(256 << 20, 1 << (need - 1).bit_length()),
            "mappings": mappings,
        }
        base.update(fields)
        return DumpDescription(**base)


def _symbols(table, kernel_base: int) -> dict[str, int]:
    out = {}
    for name in _GLOBALS + _CODE:
        s = table.symbol_by_name(name)
        if s is None:
            if name in _GLOBALS[:4] or name in _CODE:
                raise ValueError(f"the kernel table has no {name}")
            continue
        out[name] = kernel_base + s.rva
    return out


def _image_size(symbols: dict[str, int], kernel_base: int) -> int:
    top = max(symbols.values()) - kernel_base + 0x10000 + PDATA_AREA
    return (top + 0xFFFF) & ~0xFFFF


def _image_name(name: str) -> str:
    """ImageFileName keeps the first 14 characters (the 15th byte is the terminator)."""
    return name[:14]


def build_kernel(
    table,
    kernel_base: int = DEFAULT_KERNEL_BASE,
    *,
    processes: int = 12,
    threads_per_process: int = 3,
    processors: int = 2,
    modules: list[tuple[str, int, int, int, int]] | None = None,
    crash_processor: int = 0,
    seed: int = 1,
) -> SynthKernel:
    """Lay a kernel out in memory with ``table``'s types and symbol RVAs.

    ``table`` is a kernel TypeSource that also answers ``symbol_by_name`` (an
    ISF table or a kernel PDB). ``modules`` are (path, base, size, timestamp,
    checksum) after the kernel itself; a default driver set is used when None.
    The first process is System (pid 4); the crashing processor runs a thread
    of the last process, the others run their idle threads.
    """
    if processes < 1 or threads_per_process < 1 or processors < 1:
        raise ValueError("a kernel needs at least one process, thread and processor")
    if not 0 <= crash_processor < processors:
        raise ValueError("crash_processor out of range")
    rng = random.Random(seed)
    types = {n: table.find_type(n) for n in ("_EPROCESS", "_ETHREAD", "_KPCR", "_KPRCB", "_MM_SESSION_SPACE")}
    for n, t in types.items():
        if t is None:
            raise ValueError(f"the kernel table has no {n}")
    ep, et, kpcr, kprcb = types["_EPROCESS"], types["_ETHREAD"], types["_KPCR"], types["_KPRCB"]
    mem = SparseMemory(8)
    pool = Arena(mem, POOL_BASE)
    sym = _symbols(table, kernel_base)
    size = _image_size(sym, kernel_base)

    # -- the kernel image and its module list -----------------------------------------------------
    nt = SynthModule("\\SystemRoot\\system32\\ntoskrnl.exe", kernel_base, size, 0x5F8E4C1A, 0xA5D1C8)
    mods = [nt]
    if modules is None:
        va = kernel_base - 0x4000000
        for path, msize in _DRIVERS:
            ts = rng.randrange(0x50000000, 0x68000000)
            mods.append(SynthModule(path, va, msize, ts, rng.randrange(0x10000, 0x400000)))
            va += (msize + 0xFFFF) & ~0xFFFF
    else:
        mods += [SynthModule(p, b, s, t, c) for p, b, s, t, c in modules]
    unwind = build_pdata(mem, table, kernel_base, size - PDATA_AREA)
    code_rvas = [v - kernel_base for k, v in sym.items() if k not in _GLOBALS]
    data_start = min(v - kernel_base for k, v in sym.items() if k in _GLOBALS) & ~(PAGE - 1)
    text_end = data_start if max(code_rvas) < data_start else size
    mem.write(
        kernel_base,
        pe_header_page(
            kernel_base,
            size,
            nt.timestamp,
            nt.checksum,
            exception=(unwind.pdata_rva, unwind.pdata_size),
            text_end=text_end,
        ),
    )
    build_module_list(mem, pool, table, sym["PsLoadedModuleList"], mods)

    # -- sessions ---------------------------------------------------------------------------------
    sess_t = types["_MM_SESSION_SPACE"]
    sessions = {}
    for sid in (0, 1):
        va = pool.alloc(sess_t.size, PAGE)
        mem.set(va, sess_t, "SessionId", sid)
        sessions[sid] = va

    cid_state = [0x64]

    def next_cid() -> int:
        # Process and thread ids come from one handle table, so they never collide.
        cid_state[0] += 4 * rng.randrange(1, 24)
        return cid_state[0]

    stack_slot = iter(range(1 << 20))
    fields = mem.fields
    tok_t = table.find_type("_TOKEN")
    ht_t = table.find_type("_HANDLE_TABLE")
    vad_t = table.find_type("_MMVAD_SHORT")
    free_lists = min(processors, 64)
    fl_t = None
    ht_size = 0x80
    if ht_t is not None:
        ht_size = ht_t.size
        fl_member = ht_t.member("FreeLists")
        if fl_member is not None:
            fl_t = fl_member.resolved_type().resolved_target()
            fl_off = fl_member.offset
            fl_count = fl_t.field_offset("HandleCount")
            ht_size = max(ht_size, fl_off + free_lists * fl_t.size)
    start_sys = sym.get("ExpWorkerThread", kernel_base + 0x2000)
    ktrap = table.find_type("_KTRAP_FRAME")
    ps = 8

    def new_thread(
        proc: SynthProcess, state: int, user: bool, start: int, is_idle: bool = False
    ) -> SynthThread:
        va = pool.alloc(et.size, 16)
        tid = next_cid()
        slot = next(stack_slot)
        stack_base = STACK_BASE + slot * STACK_STRIDE + STACK_STRIDE
        initial = stack_base - INITIAL_STACK_RESERVE
        mem.touch(stack_base - PAGE, PAGE)
        reason = None
        if state == STATE_WAIT:
            reason = rng.choices([r for r, _ in _WAIT_REASONS], [w for _, w in _WAIT_REASONS])[0]
        trap = 0
        if user:
            # A user thread entered the kernel by a system call: its trap frame tops the stack.
            trap = initial - ktrap.size
            mem.set_many(
                trap,
                ktrap,
                {"Rip": start + 0x14, "Rsp": 0x0000_00B0_0000_0000 + tid * 0x1000 - 0x28,
                 "SegCs": 0x33, "SegSs": 0x2B, "EFlags": 0x246},
            )  # fmt: skip
            outer = (trap - 8, sym["KiSystemServiceCopyEnd"] + SYSTEM_SERVICE[1])
            tail = USER_TAIL
        else:
            outer = (initial - 0x28, 0)
            tail = SYSTEM_TAIL
        context = None
        ret = 0
        if state == STATE_RUNNING and is_idle:
            rsp, pc = lay_chain(mem, sym, unwind, IDLE_CHAIN, initial - 0x28, 0)
            context = {"rip": pc, "rsp": rsp}
            kstack = rsp - 0x100
        elif state == STATE_RUNNING:
            # Stopped on the first instruction of KeBugCheckEx: the return address is at rsp.
            rsp, pc = lay_chain(mem, sym, unwind, tail, *outer)
            mem.put(rsp - 8, pc, ps)
            context = {"rip": sym["KeBugCheckEx"], "rsp": rsp - 8, "rcx": 0xE2}
            kstack = rsp - 0x200
        else:
            rsp, pc = lay_chain(mem, sym, unwind, WAIT_CHAIN + tail, *outer)
            kstack = rsp - SWITCH_FRAME_SIZE
            ret = pc
            mem.put(kstack + SWITCH_FRAME_RBP, rsp + 0x80, ps)
            mem.put(kstack + SWITCH_FRAME_RETURN, pc, ps)
        wait_time = TICK_COUNT - rng.randrange(0, 0x10000)
        teb = (0x0000_00A0_0000_0000 + proc.pid * 0x100000 + tid * 0x2000) if user else 0
        values = {
            "Tcb.Header.Type": 6,  # ThreadObject
            "Tcb.State": state,
            "Tcb.WaitReason": reason or 0,
            "Tcb.WaitMode": 1 if user and state == STATE_WAIT else 0,
            "Tcb.Priority": 8 if user else 13,
            "Tcb.BasePriority": 8 if user else 13,
            "Tcb.InitialStack": initial,
            "Tcb.StackBase": stack_base,
            "Tcb.StackLimit": stack_base - STACK_SIZE,
            "Tcb.KernelStack": kstack,
            "Tcb.TrapFrame": trap,
            "Tcb.Teb": teb,
            "Tcb.Process": proc.address,
            "Tcb.ApcState.Process": proc.address,
            "Tcb.ContextSwitches": rng.randrange(1, 50000),
            "Tcb.WaitTime": wait_time,
            "Tcb.KernelTime": rng.randrange(0, 500),
            "Tcb.UserTime": rng.randrange(0, 500) if user else 0,
            "Cid.UniqueProcess": proc.pid,
            "Cid.UniqueThread": tid,
            "StartAddress": start,
            "Win32StartAddress": start,
        }
        for path, value in values.items():
            slot_ = fields.slot(et, path)
            if slot_.bit_length is None:
                mem.put(va + slot_.offset, value, slot_.size)
            else:
                mem.set(va, et, path, value)
        t = SynthThread(va, proc.pid, tid, state, reason, teb, initial, stack_base,
                        stack_base - STACK_SIZE, kstack, start, wait_time, ret, None, trap,
                        context)  # fmt: skip
        proc.threads.append(t)
        return t

    def new_process(pid: int, parent: int, name: str, session: int | None, user: bool) -> SynthProcess:
        va = pool.alloc(ep.size, 16)
        token = pool.alloc(tok_t.size if tok_t is not None else 0x498, 16)
        table_va = pool.alloc(ht_size, 16)
        vad = pool.alloc(vad_t.size if vad_t is not None else 0x40, 16) if user else 0
        dirbase = 0x100000000 + len(procs) * 0x2000 if pid else 0x1AD000
        proc = SynthProcess(
            va,
            pid,
            parent,
            _image_name(name),
            session,
            dirbase,
            0x0000_00C0_0000_0000 + pid * 0x1000 if user else 0,
            0x01D7_07F0_0000_0000 + len(procs) * 10_000_000,
            token,
            table_va,
            vad,
        )
        values = {
            "Pcb.Header.Type": 3,  # ProcessObject
            "Pcb.DirectoryTableBase": dirbase,
            "UniqueProcessId": pid,
            "InheritedFromUniqueProcessId": parent,
            "Peb": proc.peb,
            "ObjectTable": table_va,
            "CreateTime.QuadPart": proc.create_time,
            "Token.Value": token | 0xA,  # EX_FAST_REF: low bits hold a reference count
            "VadRoot.Root": vad,
            "Session": sessions[session] if session is not None else 0,
        }
        mem.set_many(va, ep, values)
        if ht_t is not None:
            mem.set(table_va, ht_t, "QuotaProcess", va if pid else 0)
            mem.set(table_va, ht_t, "UniqueProcessId", pid)
            # Windows 8+ keeps per-processor free lists; the in-use handle count is their sum.
            for i in range(free_lists if fl_t is not None else 0):
                n = rng.randrange(20, 900)
                mem.put(table_va + fl_off + i * fl_t.size + fl_count, n, 4)
                proc.handle_count += n
        mem.set_bytes(va, ep, "ImageFileName", proc.image.encode("latin-1"))
        procs.append(proc)
        return proc

    def link_threads(proc: SynthProcess) -> None:
        mem.set(proc.address, ep, "ActiveThreads", len(proc.threads))
        mem.link_list(
            proc.address + mem.offset(ep, "ThreadListHead"),
            [t.address + mem.offset(et, "ThreadListEntry") for t in proc.threads],
        )
        mem.link_list(
            proc.address + mem.offset(ep, "Pcb.ThreadListHead"),
            [t.address + mem.offset(et, "Tcb.ThreadListEntry") for t in proc.threads],
        )

    # -- processes and threads ----------------------------------------------------------------------
    procs: list[SynthProcess] = []
    idle = new_process(0, 0, "Idle", None, False)
    procs.clear()  # the idle process is not on PsActiveProcessHead
    system = new_process(4, 0, "System", None, False)
    for i in range(1, processes):
        name = _IMAGES[(i - 1) % len(_IMAGES)]
        parent = procs[rng.randrange(len(procs))].pid
        pid = next_cid()
        new_process(pid, parent, name, 0 if i < 4 else 1, True)

    crash_proc = procs[-1]
    for proc in procs:
        user = proc is not system
        for j in range(threads_per_process):
            if proc is crash_proc and j == 0:
                state = STATE_RUNNING
            else:
                state = STATE_WAIT if rng.random() < 0.85 else STATE_READY
            start = start_sys if not user else 0x0000_7FF8_0000_0000 + j * 0x1000 + proc.pid
            new_thread(proc, state, user, start)
        link_threads(proc)
    mem.link_list(
        sym["PsActiveProcessHead"], [p.address + mem.offset(ep, "ActiveProcessLinks") for p in procs]
    )
    if "PsInitialSystemProcess" in sym:
        mem.put(sym["PsInitialSystemProcess"], system.address, ps)
    if "ExpFreeListCount" in sym:
        mem.put(sym["ExpFreeListCount"], free_lists, 4)
    if "KeMaximumIncrement" in sym:
        mem.put(sym["KeMaximumIncrement"], MAX_INCREMENT, 4)
    if "KeNumberProcessors" in sym:
        mem.put(sym["KeNumberProcessors"], processors, 4)
    usd = table.find_type("_KUSER_SHARED_DATA")
    if usd is not None:
        mem.touch(SHARED_DATA, usd.size)
        for path, value in (
            ("TickCountQuad", TICK_COUNT),
            ("TickCountMultiplier", 0x0FA00000),
            ("NtBuildNumber", 19041),
            ("NtProductType", 1),
            ("ProductTypeIsValid", 1),
            ("NtMajorVersion", 10),
            ("NtMinorVersion", 0),
            ("NativeProcessorArchitecture", 9),  # PROCESSOR_ARCHITECTURE_AMD64
        ):
            try:
                mem.set(SHARED_DATA, usd, path, value)
            except KeyError:
                pass

    # -- processors ---------------------------------------------------------------------------------
    prcb_off = mem.offset(kpcr, "Prcb")
    ctx_off = mem.offset(kprcb, "ProcessorState.ContextFrame")
    cpus: list[SynthProcessor] = []
    crash_thread = crash_proc.threads[0]
    crash_thread.processor = crash_processor
    for i in range(processors):
        idle_thread = new_thread(idle, STATE_RUNNING if i != crash_processor else STATE_READY, False,
                                 sym["KiIdleLoop"], is_idle=True)  # fmt: skip
        idle_thread.processor = i
        pcr = pool.alloc(kpcr.size, PAGE)
        prcb = pcr + prcb_off
        current = crash_thread if i == crash_processor else idle_thread
        ctx = dict(current.context)
        mem.set_many(pcr, kpcr, {"Self": pcr, "CurrentPrcb": prcb, "NtTib.StackBase": current.stack_base})
        mem.set_many(
            prcb,
            kprcb,
            {
                "Number": i,
                "CurrentThread": current.address,
                "IdleThread": idle_thread.address,
                "Context": prcb + ctx_off,
                "MHz": 2904,
            },
        )
        mem.write(prcb + ctx_off, context_bytes("x64", ctx))
        mem.put(sym["KiProcessorBlock"] + i * ps, prcb, ps)
        cpus.append(SynthProcessor(i, pcr, prcb, current.address, idle_thread.address, ctx))
    link_threads(idle)

    # -- the debugger data block --------------------------------------------------------------------
    kd = {
        "KernBase": kernel_base,
        "PsLoadedModuleList": sym["PsLoadedModuleList"],
        "PsActiveProcessHead": sym["PsActiveProcessHead"],
        "KiProcessorBlock": sym["KiProcessorBlock"],
        "MmPageSize": PAGE,
        "SizeEProcess": ep.size,
        "SizeEThread": et.size,
        "SizePrcb": kprcb.size,
        "SizePcr": kpcr.size,
        "OffsetEprocessPeb": mem.offset(ep, "Peb"),
        "OffsetEprocessParentCID": mem.offset(ep, "InheritedFromUniqueProcessId"),
        "OffsetEprocessDirectoryTableBase": mem.offset(ep, "Pcb.DirectoryTableBase"),
        "OffsetKThreadTeb": mem.offset(et, "Tcb.Teb"),
        "OffsetKThreadKernelStack": mem.offset(et, "Tcb.KernelStack"),
        "OffsetKThreadInitialStack": mem.offset(et, "Tcb.InitialStack"),
        "OffsetKThreadApcProcess": mem.offset(et, "Tcb.ApcState.Process"),
        "OffsetKThreadState": mem.offset(et, "Tcb.State"),
        "OffsetKThreadStackLimit": mem.offset(et, "Tcb.StackLimit"),
        "OffsetKThreadStackBase": mem.offset(et, "Tcb.StackBase"),
        "OffsetKThreadWaitReason": mem.offset(et, "Tcb.WaitReason"),
        "OffsetKThreadNextProcessor": mem.offset(et, "Tcb.NextProcessor"),
        "OffsetPrcbCurrentThread": mem.offset(kprcb, "CurrentThread"),
        "OffsetPrcbIdleThread": mem.offset(kprcb, "IdleThread"),
        "OffsetPrcbNumber": mem.offset(kprcb, "Number"),
        "OffsetPrcbProcStateContext": ctx_off,
        "OffsetPrcbContext": mem.offset(kprcb, "Context"),
        "OffsetPrcbMhz": mem.offset(kprcb, "MHz"),
        "OffsetPcrSelfPcr": mem.offset(kpcr, "Self"),
        "OffsetPcrCurrentPrcb": mem.offset(kpcr, "CurrentPrcb"),
        "OffsetPcrContainedPrcb": prcb_off,
        "OffsetPrcbDpcRoutine": mem.offset(kprcb, "DpcRoutineActive"),
        "OffsetPrcbCpuType": mem.offset(kprcb, "CpuType"),
        "OffsetPrcbVendorString": mem.offset(kprcb, "VendorString"),
    }
    mem.write(sym["KdDebuggerDataBlock"], kdbg_bytes(kd, address=sym["KdDebuggerDataBlock"]))

    return SynthKernel(kernel_base, sym, mods, procs, idle, cpus, crash_processor, mem, table)
