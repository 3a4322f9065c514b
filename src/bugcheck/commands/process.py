"""``!process``: processes as kd lists them.

``!process`` (current process, flags 3), ``!process -1 FLAGS``, ``!process 0
FLAGS [IMAGE]`` (every process on PsActiveProcessHead), ``!process ADDR|PID
[FLAGS]`` (flags 0xF by default). Flag bits as documented: 1 statistics,
2 threads with their wait objects, 4 thread list (one line each without 2;
full blocks with stacks with 2).

HandleCount follows kd: ``_HANDLE_TABLE.HandleCount`` where the build has it,
else the sum of ``HandleCount`` over the table's free lists (Windows 8 and
later keep the count per free list; ``nt!ExpFreeListCount`` says how many are
in use). When that cannot be read kd prints ``<Data Not Accessible>``.
"""

from __future__ import annotations

import gc

from bugcheck.commands.registry import Result, command
from bugcheck.commands.thread import (
    SHARED_DATA,
    ListingFacts,
    _read_uint,
    kernel_or_error,
    max_increment,
    partial_types_note,
    thread_info,
)
from bugcheck.errors import BugcheckError, CommandError, MemoryNotPresent
from bugcheck.kernel import budget as budget_limits
from bugcheck.kernel.kdtypes import ORIGIN, fallback_of
from bugcheck.kernel.objects import MAX_THREADS, Process
from bugcheck.kernel.typed import StructView, read_scalar
from bugcheck.render import kobjects as render

#: where kernel space begins: a value from here up is an address, not a process id
KERNEL_SPACE = {8: 0xFFFF8000_00000000, 4: 0x80000000}
#: bound on the free lists summed for HandleCount (ExpFreeListCount is at most a few dozen)
MAX_FREE_LISTS = 64


def _array_item(view: StructView, path: str, index: int) -> int | None:
    """Element ``index`` of a scalar array member (``ProcessQuotaUsage[1]``), None when unreadable."""
    try:
        arr = view.sub(path)
    except KeyError:
        return None
    elem = arr.type.resolved_target()
    if elem is None or not elem.size or (arr.type.count and index >= arr.type.count):
        return None
    try:
        return read_scalar(view.memory, arr.address + index * elem.size, elem, view.types.pointer_size)
    except (MemoryNotPresent, BugcheckError):
        return None


def handle_count(kernel, p: Process) -> int | None:
    table = p.object_table
    ht = kernel.types.get("_HANDLE_TABLE")
    if not table or ht is None:
        return None
    v = StructView(kernel.memory, table, ht, kernel.types)
    if v.has("HandleCount"):
        return v.field_or("HandleCount")
    if not v.has("FreeLists"):
        return None
    # there is at least one free list: a count of 0 is bytes the dump did not really hold
    n = _read_uint(kernel, kernel.symbol("ExpFreeListCount"), 4)
    if not n:
        return None
    fl = v.sub("FreeLists")
    elem = fl.type.resolved_target() or kernel.types.get("_HANDLE_TABLE_FREE_LIST")
    if elem is None or not elem.size:
        return None
    total = 0
    for i in range(min(n, MAX_FREE_LISTS)):
        item = StructView(kernel.memory, fl.address + i * elem.size, elem, kernel.types)
        c = item.field_or("HandleCount")
        if c is None:
            return None
        total += c
    return total


def _vm(p: Process, name: str):
    for path in (f"Vm.Instance.{name}", f"Vm.{name}"):
        if p.view.has(path):
            return p.f(path)
    return None


def _has_vm(p: Process, name: str) -> bool:
    return p.view.has(f"Vm.Instance.{name}") or p.view.has(f"Vm.{name}")


def process_details(session, kernel, p: Process) -> dict:
    inc = max_increment(kernel)
    messages = []
    if inc is None:
        messages.append("ReadMemory error: Cannot get nt!KeMaximumIncrement value.")
    # ElapsedTime: the crash's FILETIME minus CreateTime, both in 100 ns units. kd takes the
    # time from KUSER_SHARED_DATA; when that page is not in the dump (triage dumps) it says so
    # and prints a zero ElapsedTime (a real !process on a 22621 minidump shows both).
    create = p.f("CreateTime.QuadPart")
    now = getattr(session.dump.header, "system_time", None)
    elapsed = (now - create) if (now and create) else None
    shared = SHARED_DATA.get(kernel.pointer_size, SHARED_DATA[8])
    try:
        kernel.memory.read(shared, 4)
    except BugcheckError:
        shared_error = f"{render.ptr(shared, kernel.pointer_size)}: Unable to get shared data"
        elapsed = 0
    else:
        shared_error = None
    user, kern = p.f("Pcb.UserTime"), p.f("Pcb.KernelTime")
    quota_paged = _array_item(p.view, "ProcessQuotaUsage", 0)
    quota_nonpaged = _array_item(p.view, "ProcessQuotaUsage", 1)
    if not p.view.has("ProcessQuotaUsage"):
        qb = p.f("QuotaBlock")
        qt = kernel.types.get("_EPROCESS_QUOTA_BLOCK")
        if qb and qt is not None:
            qv = StructView(kernel.memory, qb, qt, kernel.types)
            quota_paged = qv.field_or("QuotaEntry.Usage")
    prio = _vm(p, "Flags.MemoryPriority")
    vad_root = p.f("VadRoot.Root") if p.view.has("VadRoot.Root") else p.f("VadRoot")
    return {
        "vad_root": vad_root,
        "vads": p.f("VadCount"),
        "clone": (p.f("CloneRoot", 0) or 0) if fallback_of(kernel) is None else p.f("CloneRoot"),
        "private": p.f("NumberOfPrivatePages"),
        "modified": p.f("ModifiedPageCount"),
        "locked": p.f("NumberOfLockedPages"),
        "device_map": p.f("DeviceMap"),
        "token": p.token,
        "messages": messages,
        "shared_data_error": shared_error,
        "elapsed_100ns": elapsed,
        "max_increment": inc,
        "user_ticks": user,
        "kernel_ticks": kern,
        "user_time_100ns": None if user is None else user * (inc or 0),
        "kernel_time_100ns": None if kern is None else kern * (inc or 0),
        "quota_paged": quota_paged,
        "quota_nonpaged": quota_nonpaged,
        "working_set": {
            "now": _vm(p, "WorkingSetSize") if _has_vm(p, "WorkingSetSize") else _vm(p, "WorkingSetLeafSize"),
            "min": _vm(p, "MinimumWorkingSetSize"),
            "max": _vm(p, "MaximumWorkingSetSize"),
            "peak": _vm(p, "PeakWorkingSetSize"),
        },
        "virtual_size": p.f("VirtualSize"),
        "peak_virtual_size": p.f("PeakVirtualSize"),
        "page_fault_count": _vm(p, "PageFaultCount"),
        "memory_priority": None if prio is None else ("FOREGROUND" if prio == 2 else "BACKGROUND"),
        "base_priority": p.f("Pcb.BasePriority"),
        "commit_charge": p.f("CommitCharge"),
    }


def process_info(session, kernel, p: Process, flags: int, facts: ListingFacts | None = None) -> dict:
    """The fields ``!process`` shows for ``p`` at ``flags`` (JSON-able); ``facts`` is shared
    by the processes of one listing."""
    partial = fallback_of(kernel) is not None
    info = {
        "pointer_size": kernel.pointer_size,
        "address": p.address,
        "pid": p.pid,
        "parent_pid": p.parent_pid,
        "peb": p.peb,
        "dirbase": p.dirbase,
        "object_table": p.object_table,
        "handle_count": handle_count(kernel, p),
        "image": p.image_name or None,
        "session_id": p.session_id,
        "details": process_details(session, kernel, p) if flags & 1 else None,
        "threads": None,
        "threads_warning": None,
    }
    if flags & 6:
        budget = kernel.budget.threads if kernel.budget is not None else MAX_THREADS
        if budget <= 0:
            threads, warning = (
                [],
                f"threads not listed: this command's budget of {budget_limits.THREADS} threads is used up",
            )
        else:
            threads, warning = p.threads(kernel.types, limit=budget)
            if kernel.budget is not None:
                kernel.budget.threads -= len(threads)
        with_stack = flags & 6 == 6
        if facts is None:
            facts = ListingFacts(kernel)
        info["threads"] = [
            thread_info(session, kernel, t, with_stack=with_stack, facts=facts) for t in threads
        ]
        info["threads_warning"] = warning
        if partial and not threads:
            info["threads_warning"] = (
                "thread list unavailable: _EPROCESS.ThreadListHead is not in the dump's debugger data block"
            )
    if partial:
        info["kernel_types"] = ORIGIN
    return info


def _parse(session, args: str) -> tuple[int | None, int | None, str | None]:
    """(process key or None for the current one, flags or None for the default, image name)."""
    toks = [t for t in args.split() if not t.startswith("/")]
    if not toks:
        return None, None, None
    mask = (1 << (8 * session.pointer_size)) - 1
    key = session.evaluate(toks[0]) & mask
    if key == mask:
        key = None
    flags = session.evaluate(toks[1]) if len(toks) > 1 else None
    image = toks[2] if len(toks) > 2 else None
    return key, flags, image


@command("!process", "Display processes (EPROCESS) the way kd does")
def process_command(session, args: str) -> Result:
    kernel = kernel_or_error(session)
    if kernel.types.get("_EPROCESS") is None:
        raise CommandError("NT symbols are incorrect, please fix symbols")
    key, flags, image = _parse(session, args)

    if key == 0:
        flags = 3 if flags is None else flags
        procs, warning = kernel.processes()
        head_error = None
        if not procs:
            head = kernel.dump.header.ps_active_process_head or kernel.symbol("PsActiveProcessHead")
            head_error = (
                f"Unable to read _LIST_ENTRY @ {render.ptr(head, kernel.pointer_size)}"
                if head
                else "Unable to get NT!PsActiveProcessHead"
            )
            if fallback_of(kernel) is not None:
                head_error = (
                    "Unable to walk the process list: _EPROCESS.ActiveProcessLinks is not in the "
                    "dump's debugger data block"
                )
            warning = None
        if image:
            procs = [p for p in procs if p.image_name.lower() == image.lower()]
        if flags and len(procs) > budget_limits.DETAILED_PROCESSES:
            # every detailed entry is kept in memory until the listing prints; a hostile list of
            # tens of thousands of processes must not exhaust memory (a real system has far fewer)
            cut = len(procs) - budget_limits.DETAILED_PROCESSES
            procs = procs[: budget_limits.DETAILED_PROCESSES]
            warning = (warning + "; " if warning else "") + (
                f"listing stopped after {budget_limits.DETAILED_PROCESSES} processes ({cut} more on the list; "
                "'!process 0 0' lists them all, '!process ADDR FLAGS' shows one)"
            )
        facts = ListingFacts(kernel)
        # Thousands of acyclic dicts are built and all kept: the cyclic collector has nothing
        # to find among them, and running it over a growing heap costs a sixth of the listing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            infos = [process_info(session, kernel, p, flags, facts) for p in procs]
        finally:
            if collecting:
                gc.enable()
        data = {
            "flags": flags,
            "image_filter": image,
            "processes": infos,
            "warning": warning,
            "error": head_error,
        }
        text = render.process_list(infos, flags, warning, head_error)
        note = partial_types_note(kernel, ("_EPROCESS", "_KTHREAD") if flags & 6 else ("_EPROCESS",))
        if note:
            data["note"] = note
            text = f"{note}\n{text}"
        return Result(text, data, "bugcheck.processes/1")

    prefix = []
    if key is None:
        flags = 3 if flags is None else flags
        p = kernel.current_process(session.processor)
        if p is None:
            raise CommandError("Unable to get current process")
    else:
        flags = 0xF if flags is None else flags
        p = None
        pv = kernel.process(key)
        if pv is not None and pv.f("Pcb.Header.Type") is not None and pv.f("Pcb.Header.Type") & 0x7F == 3:
            p = pv
        elif key >= KERNEL_SPACE.get(kernel.pointer_size, KERNEL_SPACE[8]):
            # a kernel address is an EPROCESS, never a process id
            raise CommandError(f"{render.ptr(key, kernel.pointer_size)}: Unable to get process contents")
        else:
            prefix.append(f"Searching for Process with Cid == {key:x}")
            p = kernel.find_process(key)
            if p is None or p.pid != key:
                procs, warning = kernel.processes()
                msg = "Unable to get process list" if not procs else f"Unable to find process {key:x}"
                return Result("\n".join([*prefix, msg]), {"error": msg, "key": key}, "bugcheck.error/1")
    info = process_info(session, kernel, p, flags)
    note = partial_types_note(kernel, ("_EPROCESS", "_KTHREAD") if flags & 6 else ("_EPROCESS",))
    text = "\n".join([*([note] if note else []), *prefix, *render.process_block(info, flags)])
    data = {"flags": flags, "process": info}
    if note:
        data["note"] = note
    return Result(text, data, "bugcheck.process/1")
