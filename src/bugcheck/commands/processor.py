"""Processor state: ``!running``, ``!irql``, ``!pcr``, ``!prcb``.

Each PRCB comes from ``KiProcessorBlock`` (or a triage dump's saved PRCB) and is
read through ``_KPRCB``/``_KPCR`` by field name. The PCR is the structure the
PRCB is embedded in, so its address is the PRCB's minus the offset of
``_KPCR.Prcb`` (``PrcbData`` on x86).
"""

from __future__ import annotations

from bugcheck.commands.registry import Result, command
from bugcheck.commands.thread import NO_SYMBOLS, kernel_or_error, partial_types_note, thread_stack
from bugcheck.errors import BugcheckError, CommandError, MemoryNotPresent
from bugcheck.kernel.kdtypes import fallback_of
from bugcheck.kernel.typed import StructView
from bugcheck.render import kobjects as render

#: LockQueue entries !running shows (kd's "16 built-in queued spin locks")
LOCK_QUEUE_SHOWN = 16

#: bound on the DPCs listed by !pcr
MAX_DPCS = 256


def _processor_arg(session, args: str) -> int:
    text = args.strip()
    if not text:
        return session.processor
    return session.evaluate(text.split()[0])


def _processor_or_error(kernel, index: int):
    p = kernel.processor(index)
    if p is None or not p.prcb or p.view is None:
        raise CommandError("Cannot get PRCB address")
    return p


def _kernel(session):
    try:
        return kernel_or_error(session)
    except CommandError:
        raise CommandError(NO_SYMBOLS) from None


# -- !irql -----------------------------------------------------------------------------------------
@command("!irql", "Show the IRQL a processor had before the debugger break")
def irql_command(session, args: str) -> Result:
    kernel = _kernel(session)
    index = _processor_arg(session, args)
    p = _processor_or_error(kernel, index)
    irql = p.saved_irql
    names = render.IRQL_NAMES_X86 if session.pointer_size == 4 else render.IRQL_NAMES_X64
    data = {
        "processor": index,
        "prcb": p.prcb,
        "irql": irql,
        "irql_name": names.get(irql) if irql is not None else None,
    }
    if irql is None:
        note = partial_types_note(kernel, ("_KPRCB",))
        if note and p.view is not None and not p.view.has("DebuggerSavedIRQL"):
            raise CommandError(
                f"{note}\nCannot get the saved IRQL: _KPRCB.DebuggerSavedIRQL is not in the dump's "
                "debugger data block"
            )
        raise CommandError("Cannot get PRCB address")
    return Result(render.irql_text(data), data, "bugcheck.irql/1")


def _with_note(kernel, result: Result, type_names: tuple[str, ...]) -> Result:
    """``result`` with the partial-types note line first (unchanged when nt's types are loaded)."""
    note = partial_types_note(kernel, type_names)
    if note:
        result.data["note"] = note
        result.text = f"{note}\n{result.text}"
    return result


# -- !prcb -----------------------------------------------------------------------------------------
def prcb_info(kernel, p) -> dict:
    f = p.f
    group = f("Group")
    return {
        "pointer_size": kernel.pointer_size,
        "processor": p.index,
        "prcb": p.prcb,
        "irql": p.saved_irql,
        "current_thread": p.current_thread,
        "next_thread": p.next_thread,
        "idle_thread": p.idle_thread,
        "number": f("Number"),
        "group": group,
        "group_index": f("GroupIndex"),
        "group_set_member": f("GroupSetMember"),
        "set_member": f("SetMember"),
        "interrupt_count": f("InterruptCount"),
        "dpc_time": f("DpcTime"),
        "interrupt_time": f("InterruptTime"),
        "kernel_time": f("KernelTime"),
        "user_time": f("UserTime"),
    }


@command("!prcb", "Display a processor control block summary")
def prcb_command(session, args: str) -> Result:
    kernel = _kernel(session)
    p = _processor_or_error(kernel, _processor_arg(session, args))
    data = prcb_info(kernel, p)
    return _with_note(kernel, Result(render.prcb_text(data), data, "bugcheck.prcb/1"), ("_KPRCB",))


# -- !pcr ------------------------------------------------------------------------------------------
def _pcr_address(kernel, p) -> int | None:
    pcr_t = kernel.types.get("_KPCR")
    if pcr_t is None:
        return None
    for name in ("Prcb", "PrcbData"):
        m = pcr_t.member(name)
        if m is not None:
            return p.prcb - m.offset
    return None


def _dpc_queue(kernel, p) -> tuple[list[dict], str | None]:
    """DPCs queued on the processor's normal DPC list (bounded)."""
    view = p.view
    dpc_t = kernel.types.get("_KDPC")
    if view is None or dpc_t is None or not view.has("DpcData"):
        return [], None
    arr = view.sub("DpcData")
    elem = arr.type.resolved_target() if arr.type.count else arr.type
    data = StructView(kernel.memory, arr.address, elem or arr.type, kernel.types)
    out: list[dict] = []
    ps = kernel.pointer_size
    if data.has("DpcList.ListHead.Next"):
        head_addr = data.address_of("DpcList.ListHead")
        link_off = dpc_t.field_offset("DpcListEntry")
        try:
            link = data.field("DpcList.ListHead.Next")
        except (MemoryNotPresent, BugcheckError, KeyError):
            return [], f"Unable to read nt!_KDPC_DATA.DpcList @ {render.ptr(head_addr, ps)}"
        seen = set()
        while link and link not in seen and len(out) < MAX_DPCS:
            seen.add(link)
            dpc = StructView(kernel.memory, link - link_off, dpc_t, kernel.types)
            out.append({"dpc": dpc.address, "routine": dpc.field_or("DeferredRoutine")})
            link = _read_ptr(kernel, link)
        return out, None
    if data.has("DpcListHead"):
        head_addr = data.address_of("DpcListHead")
        link_off = dpc_t.field_offset("DpcListEntry")
        link = _read_ptr(kernel, head_addr)
        if link is None:
            return [], f"Unable to read nt!_KDPC_DATA.DpcListHead.Flink @ {render.ptr(head_addr, ps)}"
        seen = set()
        while link and link != head_addr and link not in seen and len(out) < MAX_DPCS:
            seen.add(link)
            dpc = StructView(kernel.memory, link - link_off, dpc_t, kernel.types)
            out.append({"dpc": dpc.address, "routine": dpc.field_or("DeferredRoutine")})
            link = _read_ptr(kernel, link)
        return out, None
    return [], None


def _read_ptr(kernel, addr: int) -> int | None:
    try:
        return kernel.read_pointer(addr)
    except (MemoryNotPresent, BugcheckError):
        return None


@command("!pcr", "Display a processor control region summary")
def pcr_command(session, args: str) -> Result:
    kernel = _kernel(session)
    p = _processor_or_error(kernel, _processor_arg(session, args))
    pcr = _pcr_address(kernel, p)
    pcr_t = kernel.types.get("_KPCR")
    if pcr is None or pcr_t is None:
        raise CommandError(NO_SYMBOLS)
    v = StructView(kernel.memory, pcr, pcr_t, kernel.types)
    # with only the debugger data block's offsets an absent member is unknown, not zero
    absent = None if fallback_of(kernel) is not None else 0

    def fld(name):
        if name == "SelfPcr" and absent is None and v.has("Self"):
            name = "Self"
        return v.field_or(name, None) if v.has(name) else absent

    nt_tib = {
        k: fld(f"NtTib.{k}")
        for k in (
            "ExceptionList",
            "StackBase",
            "StackLimit",
            "SubSystemTib",
            "Version",
            "ArbitraryUserPointer",
            "Self",
        )
    }
    nt_tib["UserPointer"] = nt_tib.pop("ArbitraryUserPointer")
    nt_tib["SelfTib"] = nt_tib.pop("Self")
    fields = {
        "SelfPcr": fld("SelfPcr"),
        "Prcb": p.prcb,
        "Irql": fld("Irql"),
        "IRR": fld("IRR"),
        "IDR": fld("IDR"),
        "InterruptMode": fld("InterruptMode"),
        "IDT": fld("IDT"),
        "GDT": fld("GDT"),
        "TSS": fld("TSS"),
    }
    dpcs, dpc_error = _dpc_queue(kernel, p)
    if absent is None and not (p.view is not None and p.view.has("DpcData")):
        dpc_error = "????"  # _KPRCB.DpcData is not among the debugger data block's offsets
    for d in dpcs:
        name = None
        if d["routine"]:
            try:
                name = session.symbols.symbol_for(d["routine"])
            except BugcheckError:
                name = None
        d["name"] = name
    data = {
        "pointer_size": kernel.pointer_size,
        "processor": p.index,
        "pcr": pcr,
        "major": fld("MajorVersion"),
        "minor": fld("MinorVersion"),
        "nt_tib": nt_tib,
        "fields": fields,
        "threads": {
            "CurrentThread": p.current_thread,
            "NextThread": p.next_thread,
            "IdleThread": p.idle_thread,
        },
        "dpc_queue": dpcs,
        "dpc_error": dpc_error,
    }
    return _with_note(kernel, Result(render.pcr_text(data), data, "bugcheck.pcr/1"), ("_KPCR", "_KPRCB"))


# -- !running --------------------------------------------------------------------------------------
def _lock_queue(kernel, p) -> str | None:
    view = p.view
    if view is None or not view.has("LockQueue"):
        return None
    arr = view.sub("LockQueue")
    elem = arr.type.resolved_target()
    if elem is None or not elem.size:
        return None
    lock_off = elem.field_offset("Lock") if elem.member("Lock") else kernel.pointer_size
    chars = []
    for i in range(min(arr.type.count or LOCK_QUEUE_SHOWN, LOCK_QUEUE_SHOWN)):
        try:
            lock = kernel.read_pointer(arr.address + i * elem.size + lock_off)
        except (MemoryNotPresent, BugcheckError):
            chars.append("?")
            continue
        # LOCK_QUEUE_OWNER is bit 1, LOCK_QUEUE_WAIT bit 0 of the lock pointer
        chars.append("O" if lock & 2 else "W" if lock & 1 else ".")
    return "".join(chars)


def _affinity(kernel, name: str) -> int | None:
    """Group 0 of a kernel KAFFINITY_EX global (KeActiveProcessors, KiIdleSummary), None when absent."""
    addr = kernel.symbol(name)
    t = kernel.types.get("_KAFFINITY_EX")
    if not addr or t is None or t.member("Bitmap") is None:
        return None
    try:
        return kernel.read_pointer(addr + t.field_offset("Bitmap"))
    except (MemoryNotPresent, BugcheckError):
        return None


def _priority(kernel, thread_addr: int | None) -> int | None:
    if not thread_addr:
        return None
    t = kernel.thread(thread_addr)
    return t.f("Tcb.Priority") if t is not None else None


@command("!running", "List the threads running on each processor")
def running_command(session, args: str) -> Result:
    kernel = _kernel(session)
    opts = "".join(a.lstrip("-/") for a in args.split())
    show_idle = "i" in opts
    stacks = "t" in opts
    procs = kernel.processors()
    partial = fallback_of(kernel) is not None
    # An empty active set cannot be: the processor that crashed was active. Zeros there are
    # bytes the dump did not really hold (a page re-packed from a partial capture).
    active = _affinity(kernel, "KeActiveProcessors") or None
    idle_summary = _affinity(kernel, "KiIdleSummary")
    system_mask = idle_mask = 0
    rows = []
    for p in procs:
        if not p.prcb:
            continue
        system_mask |= 1 << p.index
        cur, idle = p.current_thread, p.idle_thread
        if idle_summary is not None:
            is_idle = bool(idle_summary >> p.index & 1)
        else:
            is_idle = cur is not None and cur == idle and not p.next_thread
        if is_idle:
            idle_mask |= 1 << p.index
        if is_idle and not show_idle:
            continue
        row = {
            "index": p.index,
            "prcb": p.prcb,
            "current": cur,
            "current_priority": _priority(kernel, cur),
            "next": p.next_thread,
            "next_priority": _priority(kernel, p.next_thread),
            "idle": idle,
            "idle_processor": is_idle,
            "locks": _lock_queue(kernel, p),
            "stack_lines": None,
        }
        if partial:
            row["locks"] = row["locks"] or "?" * LOCK_QUEUE_SHOWN
            row["next_unknown"] = p.next_thread is None
        if stacks and cur:
            t = kernel.thread(cur)
            _frames, lines, note = thread_stack(session, kernel, t, p.index)
            row["stack_lines"] = lines or ([f"Stack unavailable: {note}"] if note else [])
        rows.append(row)
    if active is not None:
        system_mask = active
    data = {
        "pointer_size": kernel.pointer_size,
        "system_mask": system_mask,
        "idle_mask": idle_mask,
        "all_idle": bool(system_mask) and idle_mask == system_mask,
        "rows": rows,
        "mask_source": {
            "system": "nt!KeActiveProcessors" if active is not None else "processors with a PRCB",
            "idle": "nt!KiIdleSummary"
            if idle_summary is not None
            else "processors whose current thread is their idle thread",
        },
    }
    return _with_note(kernel, Result(render.running_text(data), data, "bugcheck.running/1"), ("_KPRCB",))


__all__ = ["irql_command", "pcr_command", "prcb_command", "running_command", "prcb_info"]
