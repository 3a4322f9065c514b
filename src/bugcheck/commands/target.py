"""What the debugger says about the target: the load banner, ``vertarget``, ``.bugcheck``, ``.dumpdebug``.

The layout follows kd's load output line for line, because people (and their
scripts) read these lines by position: the kind line, the search paths, the
version line, product/suite, kernel base, session time and uptime.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import fields, is_dataclass

from bugcheck.commands.registry import Result, command
from bugcheck.dumpfile.buildlab import build_lab as read_build_lab
from bugcheck.errors import BugcheckError, CommandError

_PRODUCT = {1: "WinNt", 2: "LanManNt", 3: "ServerNt"}

#: VER_SUITE_* bits, named as kd prints them
_SUITES = [
    (0x0001, "SmallBusiness"),
    (0x0002, "Enterprise"),
    (0x0004, "BackOffice"),
    (0x0008, "CommunicationServer"),
    (0x0010, "TerminalServer"),
    (0x0020, "SmallBusinessRestricted"),
    (0x0040, "EmbeddedNT"),
    (0x0080, "DataCenter"),
    (0x0100, "SingleUserTS"),
    (0x0200, "Personal"),
    (0x0400, "Blade"),
    (0x0800, "EmbeddedRestricted"),
    (0x1000, "SecurityAppliance"),
    (0x2000, "StorageServer"),
    (0x4000, "ComputeServer"),
    (0x8000, "WHServer"),
    (0x20000, "MultiUserTS"),
]

_MACHINE = {"x64": "x64", "x86": "x86 compatible", "arm64": "ARM 64-bit (AArch64)"}

_FILETIME_EPOCH = _dt.datetime(1601, 1, 1, tzinfo=_dt.UTC)


def os_name(build: int) -> str:
    """The Windows name kd puts before ``Kernel Version`` (kd says "Windows 10" for 11 too)."""
    if build >= 10240:
        return "Windows 10"
    if build >= 9600:
        return "Windows 8.1"
    if build >= 9200:
        return "Windows 8"
    if build >= 7600:
        return "Windows 7"
    if build >= 6000:
        return "Windows Server 2008/Windows Vista"
    if build >= 3790:
        return "Windows Server 2003"
    if build >= 2600:
        return "Windows XP"
    return "Windows 2000"


def suite_names(mask: int) -> str:
    return " ".join(name for bit, name in _SUITES if mask & bit)


def format_filetime(ft: int) -> str:
    """``Thu Oct  7 20:33:12.945 2021 (UTC + 0:00)`` (the dump records no time zone)."""
    try:
        t = _FILETIME_EPOCH + _dt.timedelta(microseconds=ft // 10)
    except (OverflowError, ValueError):
        return "not available"
    return f"{t:%a %b} {t.day:2d} {t:%H:%M:%S}.{t.microsecond // 1000:03d} {t.year} (UTC + 0:00)"


def format_uptime(units_100ns: int) -> str:
    ms_total = units_100ns // 10_000
    days, rem = divmod(ms_total, 86_400_000)
    h, rem = divmod(rem, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{days} days {h}:{m:02d}:{s:02d}.{ms:03d}"


def _header(session):
    return getattr(session.dump, "header", None)


def _h(session, name: str, default=None):
    return getattr(_header(session), name, default)


def kernel_base(session) -> int | None:
    """From the debugger data block, else the first entry of the driver list, else the resolver."""
    kdd = getattr(session.dump, "kd_debugger_data", None)
    if isinstance(kdd, dict):
        for key in ("kern_base", "KernBase", "kernbase"):
            v = kdd.get(key)
            if isinstance(v, int) and v:
                return v
    triage = getattr(session.dump, "triage", None)
    drivers = getattr(triage, "drivers", None) if triage is not None else None
    if drivers:
        try:
            return int(drivers[0][1])
        except (TypeError, ValueError, IndexError):
            pass
    try:
        mods = session.modules
    except BugcheckError:
        mods = None
    if mods:
        return getattr(mods[0], "base", None)
    return None


def build_lab(session) -> str | None:
    """``Edition build lab:`` text when the dump holds NtBuildLab (see ``dumpfile.buildlab``)."""
    return read_build_lab(session.dump)


def version_lines(session) -> list[str]:
    """The block ``vertarget`` prints, which is also the middle of the load banner."""
    dump = session.dump
    build = _h(session, "minor_version", 0) or 0
    major = _h(session, "major_version", 0xF)
    nproc = _h(session, "number_processors", 0) or len(getattr(dump, "contexts", None) or []) or 1
    mp = f"MP ({nproc} procs)" if nproc > 1 else "UP"
    free = "Checked" if major == 0xC else "Free"
    machine = _MACHINE.get(getattr(dump, "machine", "x64"), getattr(dump, "machine", "x64"))
    lines = [f"{os_name(build)} Kernel Version {build} {mp} {free} {machine}"]
    ptype = _h(session, "product_type")
    if isinstance(ptype, int) and ptype in _PRODUCT:
        suite = _h(session, "suite_mask", 0) or 0
        lines.append(f"Product: {_PRODUCT[ptype]}, suite: {suite_names(suite)}")
    lab = build_lab(session)
    if lab:
        lines.append(f"Edition build lab: {lab}")
    lines.append("Machine Name:")
    base = kernel_base(session)
    plm = _h(session, "ps_loaded_module_list")
    parts = []
    if base is not None:
        parts.append(f"Kernel base = 0x{session.hex_addr(base)}")
    if plm:
        parts.append(f"PsLoadedModuleList = 0x{session.hex_addr(plm)}")
    if parts:
        lines.append(" ".join(parts))
    st = _h(session, "system_time")
    if st:
        lines.append(f"Debug session time: {format_filetime(st)}")
    up = _h(session, "system_up_time")
    lines.append(f"System Uptime: {format_uptime(up) if up else 'not available'}")
    return lines


def _comment_lines(session) -> list[str]:
    """The dump's comment (``.dump /c``, or the one ``repack`` writes), as kd shows it at load."""
    comment = getattr(getattr(session.dump, "header", None), "comment", "") or ""
    return [f"Comment: '{comment}'"] if comment else []


def _kind_line(session) -> str:
    kind = getattr(session.dump, "kind", None)
    line = getattr(kind, "banner_line", None)
    return line or "Kernel Dump File"


def banner(session) -> Result:
    """What kd prints after opening a dump, before the first prompt."""
    dump = session.dump
    sympath = session.sympath
    if sympath is None:
        sympath = os.environ.get("_NT_SYMBOL_PATH", "srv*")
    from bugcheck.commands.symbols_cmds import path_validation_lines

    lines = [
        f"Loading Dump File [{getattr(dump, 'path', '')}]",
        _kind_line(session),
        *_comment_lines(session),
        "",
        *path_validation_lines(sympath),
        f"Symbol search path is: {sympath}",
        f"Executable search path is: {session.image_path or ''}",
    ]
    lines += version_lines(session)
    warnings = [str(w) for w in (getattr(dump, "warnings", None) or [])]
    lines += warnings
    lines += load_lines(session)
    data = {
        "path": str(getattr(dump, "path", "")),
        "kind": getattr(getattr(dump, "kind", None), "value", None),
        "machine": getattr(dump, "machine", None),
        "build": _h(session, "minor_version"),
        "processors": _h(session, "number_processors"),
        "product_type": _h(session, "product_type"),
        "suite_mask": _h(session, "suite_mask"),
        "kernel_base": kernel_base(session),
        "ps_loaded_module_list": _h(session, "ps_loaded_module_list"),
        "system_time": _h(session, "system_time"),
        "system_up_time": _h(session, "system_up_time"),
        "bugcheck_code": getattr(dump, "bugcheck_code", None),
        "bugcheck_parameters": list(getattr(dump, "bugcheck_parameters", None) or []),
        "warnings": warnings,
        "text_lines": lines,
    }
    return Result("\n".join(lines), data, "bugcheck.banner/1")


def kernel_symbol_lines(target) -> list[str]:
    """Say where the kernel's symbols came from (a minidump's table is chosen by header RVAs)."""
    try:
        nt = target.resolver.kernel
        ms = target.resolver.load(nt) if nt is not None else None
    except Exception:  # noqa: BLE001 - the banner never fails on symbol trouble
        return []
    if ms is None:
        return []
    if ms.state == "symbol table" and getattr(target, "kernel_table_reason", None):
        return [f"Kernel symbols: offline symbol table chosen: {target.kernel_table_reason}"]
    if ms.state in ("no symbols", "export symbols"):
        image = "ntkrnlmp.exe" if target.dump.header.number_processors > 1 else "ntoskrnl.exe"
        return [
            f"*** ERROR: Symbol file could not be found.  Defaulted to export symbols for {image} - "
            if ms.state == "export symbols"
            else f"*** ERROR: Module load completed but symbols could not be loaded for {image}",
        ]
    return []


def load_lines(session) -> list[str]:
    """What kd prints after the version block while it loads the target.

    A current kd (10.0.27871, on a 26100 minidump) ends its load output with::

        Loading Kernel Symbols
        ...............................................................
        Loading User Symbols
        Loading unloaded module list
        ..................................................
        For analysis of this file, run !analyze -v
        nt!KeBugCheckEx:
        fffff802`bb8feba0 48894c2408      mov     qword ptr [rsp+8],rcx ss:0018:...

    Each part is left out when this dump cannot supply it (no module list, no
    context); nothing here may stop the banner.
    """
    try:
        target = session.slot("target")
        modules = list(getattr(target, "modules", None) or []) if target is not None else []
        unloaded = list(getattr(target, "unloaded_modules", None) or []) if modules else []
    except Exception:  # noqa: BLE001 - a dump without a module list still gets its banner
        return []
    if not modules:
        return []
    from bugcheck.commands.symbols_cmds import reload_dot_lines

    lines = ["Loading Kernel Symbols", *reload_dot_lines(len(modules)), "Loading User Symbols"]
    if unloaded:
        lines += ["Loading unloaded module list", "." * min(len(unloaded), 64)]
    lines += kernel_symbol_lines(target)
    if getattr(session.dump, "bugcheck_code", None) is not None:
        lines.append("For analysis of this file, run !analyze -v")
    try:
        from bugcheck import disasm
        from bugcheck.commands.disassembly import reader, symbolizer

        ctx = session.context
        arch = getattr(ctx, "arch", "x64")
        if ctx is not None and arch in ("x64", "x86", "arm64"):
            regs = dict(getattr(ctx, "regs", {}) or {})
            lines += disasm.current_instruction_lines(reader(session), regs, arch, symbolizer(session))
    except Exception:  # noqa: BLE001 - the current instruction is decoration here
        pass
    return lines


@command("vertarget", "Show the target computer's version")
def vertarget(session, args: str) -> Result:
    lines = version_lines(session)
    return Result("\n".join(lines), {"lines": lines}, "bugcheck.vertarget/1")


@command(".bugcheck", "Display the bug check code and its four arguments")
def dot_bugcheck(session, args: str) -> Result:
    code = getattr(session.dump, "bugcheck_code", None)
    params = list(getattr(session.dump, "bugcheck_parameters", None) or [])
    if code is None:
        raise CommandError("Unable to get bugcheck data")
    text = f"Bugcheck code {code & 0xFFFFFFFF:08X}\nArguments " + " ".join(
        session.hex_addr(p) for p in params
    )
    return Result(text, {"code": code, "parameters": params}, "bugcheck.bugcheck/1")


def _field_value(session, value) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if value > 0xFFFFFFFF:
            return session.hex_addr(value) if session.pointer_size == 8 else f"{value:x}"
        return f"{value:08x}"
    if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value) and len(value) <= 8:
        return " ".join(_field_value(session, v) or "" for v in value)
    if isinstance(value, bytes):
        return None
    if isinstance(value, str):
        return value if value.isprintable() else None
    return None


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_"))


@command(".dumpdebug", "Display the crash dump header")
def dumpdebug(session, args: str) -> Result:
    dump = session.dump
    header = _header(session)
    bits = 64 if session.pointer_size == 8 else 32
    kind = getattr(getattr(dump, "kind", None), "value", "")
    kind_text = {"triage": "Kernel Mini Dump", "full": "Full Kernel Dump"}.get(kind, "Kernel Dump")
    lines = [f"----- {bits} bit {kind_text} Analysis", "", f"DUMP_HEADER{bits}:"]
    data = {}
    if header is not None:
        items = (
            [(f.name, getattr(header, f.name)) for f in fields(header)]
            if is_dataclass(header)
            else list(vars(header).items())
        )
        for name, value in items:
            if name == "bugcheck_parameters" and isinstance(value, tuple | list):
                for i, v in enumerate(value[:4], 1):
                    lines.append(f"{'BugCheckParameter' + str(i):<20}{_field_value(session, v)}")
                data[name] = list(value)
                continue
            text = _field_value(session, value)
            if text is None:
                continue
            label = _camel(name).replace("Bugcheck", "BugCheck")
            lines.append(f"{label:<20}{text}")
            data[name] = value if not isinstance(value, tuple) else list(value)
    triage = getattr(dump, "triage", None)
    if triage is not None:
        lines += ["", f"TRIAGE_DUMP{bits}:"]
        titems = (
            [(f.name, getattr(triage, f.name)) for f in fields(triage)]
            if is_dataclass(triage)
            else list(vars(triage).items())
        )
        for name, value in titems:
            text = _field_value(session, value)
            if text is None or isinstance(value, list):
                continue
            lines.append(f"{_camel(name):<22}{text}")
    warnings = list(getattr(dump, "warnings", None) or [])
    lines += [str(w) for w in warnings]
    return Result("\n".join(lines), {"header": data, "warnings": warnings}, "bugcheck.dumpdebug/1")
