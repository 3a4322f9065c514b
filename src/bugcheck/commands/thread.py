"""``!thread``: one kernel thread as kd shows it.

:func:`thread_info` gathers every field of the THREAD block into a JSON-able
dict (``!process`` reuses it for its thread lists); the layout lives in
:mod:`bugcheck.render.kobjects`. Fields are read by name from the kernel types;
what the dump lacks prints as kd prints it (``????????``, "Unable to get shared
data", "Cannot get nt!KeMaximumIncrement value").
"""

from __future__ import annotations

from bugcheck.commands.registry import Result, command
from bugcheck.errors import BugcheckError, CommandError, MemoryNotPresent
from bugcheck.kernel.kdtypes import ORIGIN, fallback_of
from bugcheck.kernel.objects import Process, Thread
from bugcheck.kernel.typed import StructView, walk_list
from bugcheck.render import kobjects as render

#: what kd prints when the kernel's types are missing
NO_SYMBOLS = "NT symbols are incorrect, please fix symbols"

#: KUSER_SHARED_DATA, where kd reads the current tick count
SHARED_DATA = {8: 0xFFFFF78000000000, 4: 0xFFDF0000}

#: _DISPATCHER_HEADER.Type values (KOBJECTS) as !thread names a wait object
#: KOBJECTS value of a thread's dispatcher header (the same in every NT release)
THREAD_OBJECT = 6

OBJECT_KINDS = {
    0: "NotificationEvent",
    1: "SynchronizationEvent",
    2: "Mutant",
    3: "ProcessObject",
    4: "QueueObject",
    5: "Semaphore",
    6: "ThreadObject",
    7: "GateObject",
    8: "NotificationTimer",
    9: "SynchronizationTimer",
    0x15: "PriQueueObject",
    0x18: "Timer2NotificationObject",
    0x19: "Timer2SynchronizationObject",
}

#: bound on the wait blocks followed for one thread
MAX_WAIT_BLOCKS = 64
#: bound on the IRPs listed for one thread
MAX_IRPS = 1024


def kernel_or_error(session):
    """The session's Kernel with its types loaded, or CommandError with kd's message."""
    try:
        kernel = session.kernel
    except BugcheckError:
        kernel = None
    if kernel is None or not kernel.types or kernel.types.get("_ETHREAD") is None:
        raise CommandError(NO_SYMBOLS)
    return kernel


def _read_uint(kernel, address: int | None, size: int) -> int | None:
    if not address:
        return None
    try:
        return int.from_bytes(kernel.memory.read(address, size), "little")
    except (MemoryNotPresent, BugcheckError):
        return None


def max_increment(kernel) -> int | None:
    """nt!KeMaximumIncrement (100 ns per clock tick), None when the dump lacks it.

    A clock tick is never 0 ns: zeros there are bytes the dump did not really hold (a page
    re-packed from a partial capture), and are treated as missing."""
    return _read_uint(kernel, kernel.symbol("KeMaximumIncrement"), 4) or None


def current_tick(kernel) -> tuple[int | None, int]:
    """(tick count at the crash, address kd reads it from) from KUSER_SHARED_DATA or KeTickCount."""
    ps = kernel.pointer_size
    base = SHARED_DATA.get(ps, SHARED_DATA[8])
    t = kernel.types.get("_KUSER_SHARED_DATA")
    if t is not None:
        v = StructView(kernel.memory, base, t, kernel.types)
        quad = v.field_or("TickCountQuad")
        if quad is None:
            low = v.field_or("TickCount.LowPart")
            high = v.field_or("TickCount.High1Time")
            quad = None if low is None else low | ((high or 0) << 32)
        if quad is not None:
            return quad, base
    sym = kernel.symbol("KeTickCount")
    return _read_uint(kernel, sym, 4), base


def wait_objects(kernel, t: Thread) -> tuple[list[dict], str | None]:
    """The objects a waiting thread waits on, from its wait block chain (bounded)."""
    wb_type = kernel.types.get("_KWAIT_BLOCK")
    first = t.f("Tcb.WaitBlockList")
    if wb_type is None or not first:
        return [], None
    count = t.f("Tcb.WaitBlockCount")
    out: list[dict] = []
    addr = first
    seen = set()
    for i in range(MAX_WAIT_BLOCKS):
        if count is not None and i >= count:
            break
        if addr in seen or not addr:
            break
        seen.add(addr)
        wb = StructView(kernel.memory, addr, wb_type, kernel.types)
        obj = wb.field_or("Object")
        if obj is None:
            return out, f"Unable to read wait block at {render.ptr(addr, kernel.pointer_size)}"
        out.append({"object": obj, "kind": _object_kind(kernel, obj)})
        if count is not None:
            addr = addr + wb_type.size
        else:
            addr = wb.field_or("NextWaitBlock")
            if addr == first:
                break
    return out, None


def irp_list(kernel, t: Thread) -> tuple[list[dict], str | None]:
    """IRPs queued to the thread (``ETHREAD.IrpList``), bounded; kd prints them under "IRP List:"."""
    irp_t = kernel.types.get("_IRP")
    if irp_t is None or not t.view.has("IrpList") or irp_t.member("ThreadListEntry") is None:
        return [], None
    budget = kernel.budget.irps if kernel.budget is not None else MAX_IRPS
    if budget <= 0:
        return [], "IRP list not read: this command's IRP budget is used up"
    walk = walk_list(
        kernel.memory,
        t.view.address_of("IrpList"),
        irp_t.field_offset("ThreadListEntry"),
        kernel.pointer_size,
        min(MAX_IRPS, budget),
    )
    if kernel.budget is not None:
        kernel.budget.irps -= len(walk.entries)
    out = []
    for a in walk.entries:
        v = StructView(kernel.memory, a, irp_t, kernel.types)
        out.append(
            {
                "irp": a,
                "type": v.field_or("Type"),
                "size": v.field_or("Size"),
                "flags": v.field_or("Flags"),
                "mdl": v.field_or("MdlAddress"),
            }
        )
    return out, walk.warning


def _object_kind(kernel, obj: int) -> str:
    hdr = kernel.types.get("_DISPATCHER_HEADER")
    if hdr is None:
        return "????"
    v = StructView(kernel.memory, obj, hdr, kernel.types)
    kind = v.field_or("Type")
    if kind is None:
        return "Unknown (unreadable object header)"
    name = OBJECT_KINDS.get(kind & 0x7F)
    if name is None:
        return f"Unknown type {kind:#x}"
    if kind & 0x7F == 5:
        limit = _read_uint(kernel, obj + hdr.size, 4)
        return f"Semaphore Limit {'?' if limit is None else hex(limit)}"
    if kind & 0x7F == 2:
        mt = kernel.types.get("_KMUTANT")
        owner = StructView(kernel.memory, obj, mt, kernel.types).field_or("OwnerThread") if mt else None
        return f"Mutant - owning thread {render.ptr(owner, kernel.pointer_size)}"
    return name


def _state_text(kernel, t: Thread, running_on: int | None) -> str:
    s = t.state
    name = t.state_name
    if s == 5:
        alertable = "Alertable" if t.f("Tcb.Alertable") else "Non-Alertable"
        return f"WAIT: ({t.wait_reason}) {t.wait_mode} {alertable}"
    if s in (1, 2, 3):
        cpu = running_on
        if cpu is None:
            cpu = t.f("Tcb.NextProcessorNumber")
            if cpu is None:
                cpu = t.f("Tcb.NextProcessor")
        if cpu is not None:
            return f"{name} on processor {cpu:x}"
    return name


class ListingFacts:
    """What every thread of one listing shares (``!process 0 7`` asks for it thousands of times):
    the tick values, which thread runs where, and each owning process's image and device map.
    Filled on first use; dump memory never changes, so a listing can keep it throughout."""

    def __init__(self, kernel):
        self.kernel = kernel
        self._increment: tuple | None = None
        self._tick: tuple | None = None
        self._running: dict[int, int] | None = None
        self._processes: dict[int, tuple] = {}
        self._symbols: dict[int, str | None] = {}

    def symbol(self, session, address: int) -> str | None:
        """``_symbol`` per address (start addresses repeat across a process's threads)."""
        try:
            return self._symbols[address]
        except KeyError:
            name = self._symbols[address] = _symbol(session, address)
            return name

    def max_increment(self):
        if self._increment is None:
            self._increment = (max_increment(self.kernel),)
        return self._increment[0]

    def current_tick(self):
        if self._tick is None:
            self._tick = current_tick(self.kernel)
        return self._tick

    def running_on(self, address: int) -> int | None:
        if self._running is None:
            running: dict[int, int] = {}
            for p in self.kernel.processors():
                running.setdefault(p.current_thread, p.index)
            self._running = running
        return self._running.get(address)

    def image_of(self, address: int | None) -> str | None:
        return self._process(address)[1] if address else None

    def device_map(self, address: int | None):
        return self._process(address)[0] if address else None

    def _process(self, address: int) -> tuple:
        got = self._processes.get(address)
        if got is None:
            view = self.kernel.process(address)
            got = (
                view.f("DeviceMap") if view is not None else None,
                view.image_name if view is not None else None,
            )
            self._processes[address] = got
        return got


def thread_info(
    session, kernel, t: Thread, with_stack: bool = True, facts: ListingFacts | None = None
) -> dict:
    """Every field of kd's THREAD block for ``t`` (None where the dump has no data).

    ``facts``: a :class:`ListingFacts` shared by the threads of one listing (one is made when absent).
    """
    ps = kernel.pointer_size
    kind = t.f("Tcb.Header.Type")
    if kind is None or kind & 0x7F != THREAD_OBJECT:
        # no object header, or one that is not a thread's (a list entry pointing at other data,
        # or a page the dump holds only in part): kd cannot read it as an ETHREAD either
        return {"pointer_size": ps, "address": t.address, "unreadable": True, "state": None}
    if facts is None:
        facts = ListingFacts(kernel)
    pid, tid = t.cid
    running_on = facts.running_on(t.address)
    owner = t.f("Tcb.Process") or t.f("Tcb.ApcState.Process")
    apc_proc = t.f("Tcb.ApcState.Process")
    attached = apc_proc if apc_proc and owner and apc_proc != owner else None
    device_map = facts.device_map(owner)
    waits, wait_warning = wait_objects(kernel, t) if t.state == 5 else ([], None)
    irps, irp_warning = irp_list(kernel, t)

    inc = facts.max_increment()
    increment_error = None if inc is not None else "ReadMemory error: Cannot get nt!KeMaximumIncrement value."
    user_ticks, kernel_ticks = t.f("Tcb.UserTime"), t.f("Tcb.KernelTime")

    def to_100ns(ticks):
        if ticks is None:
            return None
        return ticks * (inc or 0)

    wait_tick = t.f("Tcb.WaitTime")
    now, shared = facts.current_tick()
    ticks = ticks_time = None
    shared_error = None
    if now is None:
        shared_error = f"{render.ptr(shared, ps)}: Unable to get shared data"
    elif wait_tick is not None:
        ticks = (now - wait_tick) & 0xFFFFFFFF
        if ticks and inc:
            ticks_time = render.tick_span(ticks * inc)

    win32 = t.win32_start_address
    win32_text = None
    if win32:
        name = facts.symbol(session, win32)
        win32_text = f"{name} (0x{render.ptr(win32, ps)})" if name else None

    bounds = t.stack_bounds
    partial = fallback_of(kernel) is not None  # only the debugger data block's offsets are known
    impersonating = t.f("ActiveImpersonationInfo")
    imp_token = None
    if impersonating:
        cs = t.f("ClientSecurity.ImpersonationToken")
        if cs is None:
            cs = t.f("ClientSecurity.ImpersonationData")
        imp_token = (cs & ~7) if cs is not None else 0

    info = {
        "pointer_size": ps,
        "address": t.address,
        "unreadable": False,
        "pid": pid,
        "tid": tid,
        "teb": t.teb,
        "win32_thread": t.win32_thread,
        "state": t.state_name,
        "state_text": _state_text(kernel, t, running_on),
        "running_on": running_on,
        "wait_reason": t.wait_reason if t.state == 5 else None,
        "wait_objects": waits,
        "wait_objects_warning": wait_warning,
        "irps": irps,
        "irp_list_warning": irp_warning,
        "impersonation_token": imp_token,
        "device_map": device_map,
        "owning_process": owner,
        "owning_image": facts.image_of(owner),
        "attached_process": attached,
        "attached_image": facts.image_of(attached),
        "wait_start_tick": wait_tick,
        "current_tick": now,
        "ticks": ticks,
        "ticks_time": ticks_time,
        "shared_data_error": shared_error,
        "context_switches": t.f("Tcb.ContextSwitches"),
        "ideal_processor": t.f("Tcb.IdealProcessor"),
        "user_ticks": user_ticks,
        "kernel_ticks": kernel_ticks,
        "max_increment": inc,
        "increment_error": increment_error,
        "user_time_100ns": to_100ns(user_ticks),
        "kernel_time_100ns": to_100ns(kernel_ticks),
        "start_address": t.start_address,
        "win32_start_address": win32,
        "win32_start_text": win32_text,
        "stack": {**bounds, "call": t.f("Tcb.CallbackStack", None if partial else 0)},
        "priority": t.f("Tcb.Priority"),
        "base_priority": t.f("Tcb.BasePriority"),
        "priority_decrement": t.f("Tcb.PriorityDecrement"),
        "io_priority": t.f("ThreadIoPriority"),
        "page_priority": t.f("ThreadPagePriority"),
        "frames": None,
        "stack_note": None,
        "stack_lines": [],
    }
    if partial:
        info["kernel_types"] = ORIGIN
        info["impersonation_known"] = impersonating is not None
    if with_stack:
        frames, lines, note = thread_stack(session, kernel, t, running_on)
        info["frames"], info["stack_lines"], info["stack_note"] = frames, lines, note
    return info


def _symbol(session, address: int) -> str | None:
    try:
        return session.symbols.symbol_for(address)
    except BugcheckError:
        return None


def thread_stack(session, kernel, t: Thread, running_on: int | None):
    """(frames, text lines, note) for a thread's kernel stack, through the stack layer when present.

    The thread's context is the one ``.thread`` would install (its processor's
    context when running, else the switch frame at ``KernelStack``); the walk is
    the one ``k`` uses. Without those modules the thread prints without its stack
    and ``note`` says why.
    """
    try:
        from bugcheck.commands import context as ctx_mod  # noqa: PLC0415
        from bugcheck.commands import stack as stack_mod  # noqa: PLC0415

        thread_context = ctx_mod.thread_context
        session_walk = stack_mod.session_walk
    except (ImportError, AttributeError):
        return None, [], "stack walker not available"
    ps = kernel.pointer_size
    try:
        ctx = thread_context(session, t.address)
        sw = session_walk(session, context=ctx)
    except (BugcheckError, ValueError) as e:
        return None, [f"Unable to get the stack of this thread: {e}"], str(e)
    frames = sw.to_dict()
    return frames, render.thread_stack_lines(frames, ps), None


def _parse_thread_command(session, args: str) -> tuple[int | None, int, bool, bool]:
    """``!thread [-p] [-t] [ADDR [FLAGS]]``: (address/id, flags, -p, -t); flags default 6."""
    toks = args.split()
    with_process = by_id = False
    while toks and toks[0].lower() in ("-p", "-t", "/p", "/t"):
        opt = toks.pop(0).lower()[1]
        with_process |= opt == "p"
        by_id |= opt == "t"
    addr = None
    flags = DEFAULT_THREAD_FLAGS
    if toks and toks[0] != "-1":
        addr = session.evaluate(toks[0]) & ((1 << (8 * session.pointer_size)) - 1)
    if len(toks) > 1:
        flags = session.evaluate(toks[1])
    return addr, flags, with_process, by_id


#: kd's default: the wait states (0x2) and, with them, the stack (0x4)
DEFAULT_THREAD_FLAGS = 0x6


@command("!thread", "Display a kernel thread (ETHREAD) the way kd does")
def thread_command(session, args: str) -> Result:
    kernel = kernel_or_error(session)
    addr, flags, with_process, by_id = _parse_thread_command(session, args)
    ps = session.pointer_size
    if addr is None or addr == (1 << (8 * ps)) - 1:
        t = kernel.current_thread(session.processor)
        if t is None:
            raise CommandError(f"Unable to get current thread for processor {session.processor}")
    elif by_id:
        t = kernel.find_thread(addr)
        if t is None or t.cid[1] != addr:
            raise CommandError(f"Unable to find thread with Cid {addr:x}")
    else:
        t = kernel.thread(addr)
        if t is None:
            raise CommandError(NO_SYMBOLS)
        hdr_type = t.f("Tcb.Header.Type")
        if hdr_type is None:
            raise CommandError(f"{render.ptr(addr, ps)}: Unable to get thread contents")
        if hdr_type & 0x7F != THREAD_OBJECT:
            raise CommandError(f"{render.ptr(addr, ps)} is not a thread object (type {hdr_type})")
    # 0x2 shows the thread's block and wait states, 0x4 adds the stack only together with 0x2;
    # without 0x2 kd prints the THREAD line and what it waits on
    detail = bool(flags & 0x2)
    info = thread_info(session, kernel, t, with_stack=detail and bool(flags & 0x4))
    info["flags"] = flags
    lines = render.thread_block(info) if detail else render.thread_head(info)
    if with_process:
        lines = _owner_lines(session, kernel, info) + lines
    text = "\n".join(lines)
    note = partial_types_note(kernel, ("_KTHREAD", "_ETHREAD"))
    if note:
        info["note"] = note
        text = f"{note}\n{text}"
    return Result(text, info, "bugcheck.thread/1")


def _owner_lines(session, kernel, info: dict) -> list[str]:
    """``-p``: the owning process's summary (``!process ADDR 0``) above the thread."""
    from bugcheck.commands.process import process_info  # process.py builds on this module

    owner = info.get("owning_process")
    p = kernel.process(owner) if owner else None
    if p is None:
        return []
    pinfo = process_info(session, kernel, p, 0)
    info["process"] = pinfo
    return render.process_block(pinfo, 0)


def partial_types_note(kernel, type_names: tuple[str, ...]) -> str | None:
    """The one line saying nt's symbols were not found and which fields the dump's block gave."""
    src = fallback_of(kernel)
    return None if src is None else src.note(type_names)


def process_of(kernel, t: Thread) -> Process | None:
    addr = t.f("Tcb.Process") or t.f("Tcb.ApcState.Process")
    return kernel.process(addr) if addr else None
