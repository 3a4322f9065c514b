"""WinDbg's text layouts for kernel objects: !process, !thread, !running, !irql, !pcr, !prcb.

Pure functions over the JSON-able dicts the commands build, so the text and the
``--json`` data can never disagree. A value the dump or the types lack arrives
as ``None`` and prints the way kd prints an unreadable field (``????????``),
or as the message kd prints in its place.
"""

from __future__ import annotations

from bugcheck.symbols.resolver import hex_addr

#: kd's x64 IRQL names (as !irql prints them)
IRQL_NAMES_X64 = {
    0: "LOW_LEVEL",
    1: "APC_LEVEL",
    2: "DISPATCH_LEVEL",
    12: "SYNCH_LEVEL",
    13: "CLOCK_LEVEL",
    14: "IPI_LEVEL",
    15: "HIGH_LEVEL",
}
#: kd's x86 IRQL names
IRQL_NAMES_X86 = {
    0: "LOW_LEVEL",
    1: "APC_LEVEL",
    2: "DISPATCH_LEVEL",
    27: "PROFILE_LEVEL",
    28: "CLOCK2_LEVEL",
    29: "IPI_LEVEL",
    30: "POWER_LEVEL",
    31: "HIGH_LEVEL",
}


def ptr(value, pointer_size: int = 8) -> str:
    """A pointer as kd's %p prints it (no backtick), ``?`` digits when unknown."""
    width = pointer_size * 2
    if value is None:
        return "?" * width
    return f"{value & ((1 << (width * 4)) - 1):0{width}x}"


def hex8(value) -> str:
    return "????????" if value is None else f"{value:08x}"


def dec(value) -> str:
    return "?" if value is None else str(value)


def duration(hundred_ns: int | None) -> str:
    """``HH:MM:SS.mmm`` from 100 ns units (ElapsedTime, UserTime, KernelTime)."""
    if hundred_ns is None:
        return "??:??:??.???"
    ms = max(hundred_ns, 0) // 10_000
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def tick_span(hundred_ns: int) -> str:
    """``D:HH:MM:SS.mmm`` as the ``Ticks:`` field of !thread shows it."""
    ms = max(hundred_ns, 0) // 10_000
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    d, h = divmod(h, 24)
    return f"{d}:{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


# -- !process --------------------------------------------------------------------------------------
def _handle_count(value) -> str:
    if value is None:
        return "<Data Not Accessible>"
    return f"{value:3d}."


def process_header(p: dict) -> list[str]:
    """The PROCESS block every !process level starts with."""
    ps = p.get("pointer_size", 8)
    sid = "none" if p.get("session_id") is None else str(p["session_id"])
    if p.get("session_id") is None and p.get("kernel_types"):
        sid = "????"  # partial types: the session is unknown, not absent
    cid = "????" if p.get("pid") is None else f"{p['pid']:04x}"
    pcid = "????" if p.get("parent_pid") is None else f"{p['parent_pid']:04x}"
    peb = "????????" if p.get("peb") is None else f"{p['peb']:08x}"
    fields = f"SessionId: {sid}  Cid: {cid}    Peb: {peb}  ParentCid: {pcid}"
    if ps == 8:
        lines = [f"PROCESS {ptr(p['address'], ps)}", f"    {fields}"]
    else:
        lines = [f"PROCESS {ptr(p['address'], ps)}  {fields}"]
    dirbase = "????????" if p.get("dirbase") is None else f"{p['dirbase']:08x}"
    lines.append(
        f"    DirBase: {dirbase}  ObjectTable: {ptr(p.get('object_table'), ps)}  "
        f"HandleCount: {_handle_count(p.get('handle_count'))}"
    )
    lines.append(f"    Image: {p.get('image') or '<Unknown>'}")
    return lines


def process_details(p: dict) -> list[str]:
    """The statistics block of ``!process ADDR 1``."""
    ps = p.get("pointer_size", 8)
    d = p.get("details") or {}

    def row(label: str, value: str) -> str:
        return f"    {label:<34}{value}"

    ws = d.get("working_set") or {}
    now, mn, mx = ws.get("now"), ws.get("min"), ws.get("max")

    def kb(v):
        return "?" if v is None else f"{v * 4}KB"

    lines = [
        f"    VadRoot {ptr(d.get('vad_root'), ps)} Vads {dec(d.get('vads'))} Clone {dec(d.get('clone'))} "
        f"Private {dec(d.get('private'))}. Modified {dec(d.get('modified'))}. Locked {dec(d.get('locked'))}.",
        f"    DeviceMap {ptr(d.get('device_map'), ps)}",
        row("Token", ptr(d.get("token"), ps)),
    ]
    for err in d.get("messages") or []:
        lines.append("    " + err)  # kd indents the ReadMemory error like the rows around it
    if d.get("shared_data_error"):
        lines.append(d["shared_data_error"])  # ...but not this one
    lines += [
        row("ElapsedTime", duration(d.get("elapsed_100ns"))),
        row("UserTime", duration(d.get("user_time_100ns"))),
        row("KernelTime", duration(d.get("kernel_time_100ns"))),
        row("QuotaPoolUsage[PagedPool]", dec(d.get("quota_paged"))),
        row("QuotaPoolUsage[NonPagedPool]", dec(d.get("quota_nonpaged"))),
        f"    {'Working Set Sizes (now,min,max)':<33}({dec(now)}, {dec(mn)}, {dec(mx)}) "
        f"({kb(now)}, {kb(mn)}, {kb(mx)})",
        row("PeakWorkingSetSize", dec(ws.get("peak"))),
        row("VirtualSize", "?" if d.get("virtual_size") is None else f"{d['virtual_size'] // (1 << 20)} Mb"),
        row(
            "PeakVirtualSize",
            "?" if d.get("peak_virtual_size") is None else f"{d['peak_virtual_size'] // (1 << 20)} Mb",
        ),
        row("PageFaultCount", dec(d.get("page_fault_count"))),
        row("MemoryPriority", d.get("memory_priority") or "?"),
        row("BasePriority", dec(d.get("base_priority"))),
        row("CommitCharge", dec(d.get("commit_charge"))),
    ]
    return lines


def process_block(p: dict, flags: int) -> list[str]:
    """One process as ``!process ADDR FLAGS`` prints it (threads included per the flags)."""
    lines = process_header(p)
    if flags & 1:
        lines += process_details(p)
    if flags & 6:
        lines.append("")
        threads = p.get("threads") or []
        if not threads and not p.get("threads_warning"):
            lines.append("No active threads")
        for i, t in enumerate(threads):
            if i and flags & 2:
                lines.append("")
            if t.get("unreadable"):
                # kd gives up on the thread list at the first ETHREAD it cannot read
                lines.append(
                    f"        *** Error in reading nt!_ETHREAD @ {ptr(t['address'], t.get('pointer_size', 8))}"
                )
                return lines
            if flags & 6 == 4:
                lines.append(" " * 8 + thread_first_line(t))
            elif flags & 6 == 2:
                lines += _indent(thread_head(t), 8)
            else:
                lines += _indent(thread_block(t), 8)
        if p.get("threads_warning"):
            lines.append(f"        WARNING: {p['threads_warning']}")
    return lines


def process_list(procs: list[dict], flags: int, warning: str | None, head_error: str | None = None) -> str:
    """``!process 0 FLAGS [IMAGE]``: every process on PsActiveProcessHead."""
    lines = ["**** NT ACTIVE PROCESS DUMP ****"]
    if head_error:
        lines.append(head_error)
    for p in procs:
        lines += process_block(p, flags)
        lines.append("")
    if warning:
        lines.append(f"WARNING: {warning}")
    return "\n".join(lines)


def _indent(lines: list[str], n: int) -> list[str]:
    pad = " " * n
    return [pad + ln if ln else ln for ln in lines]


# -- !thread ---------------------------------------------------------------------------------------
def thread_first_line(t: dict) -> str:
    ps = t.get("pointer_size", 8)
    if t.get("unreadable"):
        return f"THREAD {ptr(t['address'], ps)}  Unable to read _ETHREAD (not in the dump)"
    pid = "????" if t.get("pid") is None else f"{t['pid']:04x}"
    tid = "????" if t.get("tid") is None else f"{t['tid']:04x}"
    return (
        f"THREAD {ptr(t['address'], ps)}  Cid {pid}.{tid}  Teb: {ptr(t.get('teb'), ps)} "
        f"Win32Thread: {ptr(t.get('win32_thread'), ps)} {t.get('state_text') or '????'}"
    )


def thread_head(t: dict) -> list[str]:
    """The THREAD line and the objects it waits on."""
    ps = t.get("pointer_size", 8)
    lines = [thread_first_line(t)]
    for w in t.get("wait_objects") or []:
        lines.append(f"    {ptr(w['object'], ps)}  {w['kind']}")
    if t.get("wait_objects_warning"):
        lines.append(f"    {t['wait_objects_warning']}")
    return lines


def irp_lines(t: dict) -> list[str]:
    """kd's "IRP List:" block: ``(Type,Size) Flags  Mdl`` per IRP (Mdl as kd's 8-digit %08lx)."""
    ps = t.get("pointer_size", 8)
    irps = t.get("irps") or []
    if not irps:
        return []
    lines = ["IRP List:"]
    for i in irps:
        typ = "????" if i.get("type") is None else f"{i['type']:04x}"
        size = "????" if i.get("size") is None else f"{i['size']:04x}"
        mdl = "????????" if i.get("mdl") is None else f"{i['mdl']:08x}"
        lines.append(f"    {ptr(i['irp'], ps)}: ({typ},{size}) Flags: {hex8(i.get('flags'))}  Mdl: {mdl}")
    return lines


def thread_block(t: dict) -> list[str]:
    """The full !thread display (kd's column layout), stack last."""
    ps = t.get("pointer_size", 8)
    lines = thread_head(t)
    if t.get("unreadable"):
        return lines
    lines += irp_lines(t)
    if t.get("impersonation_token") is not None:
        lines.append(f"Impersonation token:  {ptr(t['impersonation_token'], ps)}")
    elif t.get("impersonation_known") is False:
        lines.append("Impersonation: ????")
    else:
        lines.append("Not impersonating")
    lines.append(f"{'DeviceMap':<26}{ptr(t.get('device_map'), ps)}")
    owner = t.get("owning_process")
    owner_s = ptr(owner, ps) if owner else "0"
    lines.append(
        f"{'Owning Process':<26}{owner_s}       Image:         {t.get('owning_image') or '<Unknown>'}"
    )
    att = t.get("attached_process")
    if att:
        lines.append(
            f"{'Attached Process':<26}{ptr(att, ps)}       Image:         {t.get('attached_image') or '<Unknown>'}"
        )
    else:
        lines.append(f"{'Attached Process':<26}N/A            Image:         N/A")
    if t.get("shared_data_error"):
        lines.append(t["shared_data_error"])
    wait = t.get("wait_start_tick")
    if t.get("ticks") is not None:
        span = f" ({t['ticks_time']})" if t.get("ticks_time") else ""
        lines.append(f"{'Wait Start TickCount':<26}{dec(wait):<15}Ticks: {t['ticks']}{span}")
    else:
        lines.append(f"{'Wait Start TickCount':<26}{dec(wait):<13}")
    lines.append(
        f"{'Context Switch Count':<26}{dec(t.get('context_switches')):<15}"
        f"IdealProcessor: {dec(t.get('ideal_processor')):<14}"
    )
    if t.get("increment_error"):
        lines.append(t["increment_error"])
    lines.append(f"{'UserTime':<26}{duration(t.get('user_time_100ns'))}")
    lines.append(f"{'KernelTime':<26}{duration(t.get('kernel_time_100ns'))}")
    lines.append(
        f"Win32 Start Address {t.get('win32_start_text') or '0x' + ptr(t.get('win32_start_address'), ps)}"
    )
    st = t.get("stack") or {}
    lines.append(f"Stack Init {ptr(st.get('init'), ps)} Current {ptr(st.get('current'), ps)}")
    lines.append(
        f"Base {ptr(st.get('base'), ps)} Limit {ptr(st.get('limit'), ps)} Call {ptr(st.get('call'), ps)}"
    )
    lines.append(
        f"Priority {dec(t.get('priority'))} BasePriority {dec(t.get('base_priority'))} "
        f"PriorityDecrement {dec(t.get('priority_decrement'))} IoPriority {dec(t.get('io_priority'))} "
        f"PagePriority {dec(t.get('page_priority'))}"
    )
    lines += t.get("stack_lines") or []
    return lines


def thread_stack_lines(sw: dict, ps: int) -> list[str]:
    """!thread's stack: ``Child-SP RetAddr Call Site``.

    x64 rows use the current debugger's wide RetAddr column (five blanks after the
    return address), as ``k`` and STACK_TEXT do: a published !thread from a 10.0.2x
    WinDbg reads ``Child-SP          RetAddr               Call Site`` /
    ``ffff9405`d02eb7f8 fffff802`6042a6b5     tedrdrv+0x7e70``.
    """
    if ps == 4:
        lines = ["ChildEBP RetAddr  Call Site"]
    else:
        lines = ["Child-SP          RetAddr               Call Site"]
    for i, f in enumerate(sw.get("frames") or []):
        if sw.get("first_scan") is not None and i == sw["first_scan"]:
            lines.append("WARNING: Stack unwind information not available. Following frames may be wrong.")
        site = f.get("symbol") or ""
        if f.get("trap_frame") is not None:
            site += f" (TrapFrame @ {hex_addr(f['trap_frame'], ps)})"
        gap = "     " if ps == 8 else " "
        lines.append(f"{hex_addr(f.get('sp'), ps)} {hex_addr(f.get('return_address'), ps)}{gap}{site}")
    return lines


def thread_text(t: dict) -> str:
    return "\n".join(thread_block(t))


# -- processors ------------------------------------------------------------------------------------
def irql_text(d: dict) -> str:
    if d.get("irql") is None:
        return "Cannot get PRCB address"
    name = d.get("irql_name")
    suffix = f" ({name})" if name else ""
    return f"Debugger saved IRQL for processor {d['processor']:#x} -- {d['irql']}{suffix}"


def running_text(d: dict) -> str:
    ps = d.get("pointer_size", 8)
    w = ps * 2
    lines = [
        "",
        f"System Processors:  ({d['system_mask']:0{w}x})",
        f"  Idle Processors:  ({d['idle_mask']:0{w}x})",
    ]
    if d.get("all_idle"):
        lines.append("All processors idle.")
    lines.append("")
    lines.append(
        "       Prcbs"
        + " " * (w - 3)
        + "Current"
        + " " * (w - 7)
        + "(pri) Next"
        + " " * (w - 4)
        + "(pri) Idle"
    )
    for row in d["rows"]:
        cur = row.get("current")
        cur_s = f"{ptr(cur, ps)} ({_pri(row.get('current_priority'))})"
        nxt = row.get("next")
        nxt_s = f"{ptr(nxt, ps)} ({_pri(row.get('next_priority'))})" if nxt else " " * (w + 5)
        if nxt is None and row.get("next_unknown"):
            nxt_s = f"{ptr(None, ps)} (??)"
        lines.append(
            f"{row['index']:3d}    {ptr(row['prcb'], ps)}  {cur_s} {nxt_s} {ptr(row.get('idle'), ps)}  "
            f"{row.get('locks') or '................'}"
        )
        if row.get("stack_lines") is not None:
            lines.append("")
            lines += row["stack_lines"]
            lines.append("")
    lines.append("")
    return "\n".join(lines)


def _pri(v) -> str:
    return "??" if v is None else f"{v:2d}"


def pcr_text(d: dict) -> str:
    ps = d.get("pointer_size", 8)

    def row(label: str, value) -> str:
        return f"\t{label:>19}: {ptr(value, ps)}"

    lines = [f"KPCR for Processor {d['processor']} at {ptr(d['pcr'], ps)}:"]
    lines.append(f"    Major {dec(d.get('major'))} Minor {dec(d.get('minor'))}")
    for k in (
        "ExceptionList",
        "StackBase",
        "StackLimit",
        "SubSystemTib",
        "Version",
        "UserPointer",
        "SelfTib",
    ):
        lines.append(row(f"NtTib.{k}", d["nt_tib"].get(k)))
    lines.append("")
    for k in ("SelfPcr", "Prcb", "Irql", "IRR", "IDR", "InterruptMode", "IDT", "GDT", "TSS"):
        lines.append(row(k, d["fields"].get(k)))
    lines.append("")
    for k in ("CurrentThread", "NextThread", "IdleThread"):
        lines.append(row(k, d["threads"].get(k)))
    lines.append("")
    dpc = d.get("dpc_queue") or []
    if d.get("dpc_error"):
        lines.append(f"\t{'DpcQueue':>18}: {d['dpc_error']}")
    else:
        entries = [
            f" 0x{ptr(e['dpc'], ps)} 0x{ptr(e['routine'], ps)} {e.get('name') or ''}".rstrip() for e in dpc
        ]
        lines.append(f"\t{'DpcQueue':>18}: " + (entries[0] if entries else ""))
        lines += ["\t" + " " * 20 + e for e in entries[1:]]
    return "\n".join(lines)


def prcb_text(d: dict) -> str:
    ps = d.get("pointer_size", 8)
    lines = [f"PRCB for Processor {d['processor']} at {ptr(d['prcb'], ps)}:"]
    if d.get("irql") is not None:
        lines.append(f"Current IRQL -- {d['irql']}")
    lines.append(
        f"Threads--  Current {ptr(d.get('current_thread'), ps)} Next {ptr(d.get('next_thread'), ps)} "
        f"Idle {ptr(d.get('idle_thread'), ps)}"
    )
    if d.get("group") is not None or d.get("group_index") is not None:
        gsm = d.get("group_set_member")
        lines.append(
            f"Processor Index {dec(d.get('number'))} Number ({dec(d.get('group'))}, {dec(d.get('group_index'))}) "
            f"GroupSetMember {'?' if gsm is None else format(gsm, 'x')}"
        )
    else:
        lines.append(f"Number {dec(d.get('number'))} SetMember {hex8(d.get('set_member'))}")
    lines.append(f"Interrupt Count -- {hex8(d.get('interrupt_count'))}")
    lines.append(f"Times -- Dpc    {hex8(d.get('dpc_time'))} Interrupt {hex8(d.get('interrupt_time'))} ")
    lines.append(f"         Kernel {hex8(d.get('kernel_time'))} User      {hex8(d.get('user_time'))} ")
    return "\n".join(lines)
