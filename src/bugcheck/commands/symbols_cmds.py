"""Module and symbol commands: ``lm``, ``!lmi``, ``x``, ``ln``, ``dps``/``dqs``/``dds``,
``.sympath``, ``.symfix``, ``.reload``.

Each returns structured data (modules, symbols, lines) and WinDbg's text for it.
"""

from __future__ import annotations

import bisect
import os
import re
from datetime import UTC, datetime

from bugcheck.commands.registry import Result, command
from bugcheck.errors import BugcheckError, CommandError, MemoryNotPresent
from bugcheck.symbols.pe import image_property

LM_HEADER = "start             end                 module name"
LM_HEADER_32 = "start    end        module name"


def lm_row(head: str, name: str, state: str, symbol_file: str | None) -> str:
    """One ``lm`` row as kd pads it.

    The name fills eight columns and is followed by three blanks (the middle one is
    where kd puts a flag such as ``T``); the state fills 22 columns plus a space
    even when no symbol file follows, so rows keep trailing blanks
    (``volmgrx    (no symbols)           ``, ``SysmonDrv   (deferred)             ``,
    ``mcupdate_GenuineIntel   (no symbols)           ``).
    """
    name_col = f"{name:<8}   "
    return f"{head}{name_col}{state:<22} {symbol_file or ''}"


def _target(session):
    return session.slot("target")


def _hex(session, v: int) -> str:
    return session.hex_addr(v)


def _state_text(ms) -> str:
    return f"({ms.state})"


def _ctime(ts: int) -> str:
    try:
        dt = datetime.fromtimestamp(ts, UTC)
        return f"{dt:%a %b} {dt.day:2d} {dt:%H:%M:%S %Y}"
    except (OverflowError, OSError, ValueError):
        return "***** Invalid"


def _parse_lm_options(args: str) -> dict:
    """``lm [options] [m PATTERN | M PATTERN] [a ADDRESS]`` (options may be glued: ``lmvm nt``)."""
    opts = {"verbose": False, "names": False, "times": False, "image": False, "full": False, "pattern": None,
            "address": None, "loaded_only": False, "sort_name": False, "one": False}  # fmt: skip
    tokens = args.split()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        low = tok.lower()
        if low in ("m", "M") or tok in ("m", "M"):
            opts["pattern"] = tokens[i + 1] if i + 1 < len(tokens) else "*"
            i += 2
            continue
        if low == "a":
            opts["address"] = tokens[i + 1] if i + 1 < len(tokens) else None
            i += 2
            continue
        if low == "1m":
            opts["one"] = True
        elif low == "sm":
            opts["sort_name"] = True
        else:
            trailing_m = False
            for ch in low:
                if ch == "v":
                    opts["verbose"] = True
                elif ch == "n":
                    opts["names"] = True
                elif ch == "t":
                    opts["times"] = True
                elif ch == "i":
                    opts["image"] = True
                elif ch == "f":
                    opts["full"] = True
                elif ch == "l":
                    opts["loaded_only"] = True
                elif ch == "m":
                    trailing_m = True
                elif ch in "okudec":
                    pass
                else:
                    raise CommandError(f"Unrecognized lm option '{ch}'")
            if trailing_m:
                opts["pattern"] = tokens[i + 1] if i + 1 < len(tokens) else "*"
                i += 2
                continue
        i += 1
    return opts


def _wild(pattern: str, text: str) -> bool:
    rx = "^" + re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".") + "$"
    return re.match(rx, text.lower()) is not None


def _module_dict(m, ms) -> dict:
    return {
        "name": m.name,
        "image_name": m.image_name,
        "path": m.path,
        "start": m.base,
        "end": m.end,
        "size": m.size,
        "timestamp": m.timestamp,
        "checksum": m.checksum,
        "symbol_state": ms.state,
        "symbol_file": ms.symbol_file or None,
        "image_file": ms.image_file or None,
    }


#: what kd lists as Translations when the image's version resource is not at hand
DEFAULT_TRANSLATIONS = "0000.04b0 0000.04e4 0409.04b0 0409.04e4"


def _verbose_lines(session, m, ms) -> list[str]:
    """``lm v`` detail lines in kd's order (published ``lmvm`` output of nt, stornvme, EvilDriver,
    SysmonDrv): symbol file, paths, the "Browse all global symbols" line, the /Brepro note,
    timestamp, checksum, size, versions, Translations, then the resource strings."""
    lines = []
    if ms.state != "deferred":
        lines.append(f"    Loaded symbol image file: {m.image_name}")
        if ms.image_file and not ms.image_file.startswith("(dump memory"):
            # the image came from a file (-i or the symbol path), as kd maps it on a minidump
            lines.append(f"    Mapped memory image file: {ms.image_file}")
    if m.path:
        lines.append(f"    Image path: {m.path}")
    lines.append(f"    Image name: {m.image_name}")
    lines.append("    Browse all global symbols  functions  data")
    img = ms.image
    repro = bool(image_property(img, "is_reproducible"))
    if m.timestamp:
        if repro:
            lines.append("    Image was built with /Brepro flag.")
            lines.append(
                f"    Timestamp:        {m.timestamp:08X} (This is a reproducible build file hash, not a timestamp)"
            )
        else:
            lines.append(f"    Timestamp:        {_ctime(m.timestamp)} ({m.timestamp:08X})")
    lines.append(f"    CheckSum:         {m.checksum:08X}")
    lines.append(f"    ImageSize:        {m.size:08X}")
    vi = image_property(img, "version_info")
    if vi is None:
        lines.append(f"    Translations:     {DEFAULT_TRANSLATIONS}")
        lines.append("    Information from resource tables:")
        return lines
    if vi.file_version_str:
        lines.append(f"    File version:     {vi.file_version_str}")
    if vi.product_version_str:
        lines.append(f"    Product version:  {vi.product_version_str}")
    translations = getattr(vi, "translations", None) or []
    text = " ".join(f"{lang:04x}.{cp:04x}" for lang, cp in translations) or DEFAULT_TRANSLATIONS
    lines.append(f"    Translations:     {text}")
    lines.append("    Information from resource tables:")
    strings = getattr(vi, "strings", None) or {}
    for key in ("CompanyName", "ProductName", "InternalName", "OriginalFilename", "ProductVersion",
                "FileVersion", "FileDescription", "LegalCopyright"):  # fmt: skip
        if key in strings:
            lines.append(f"        {key + ':':<17} {strings[key]}")
    return lines


@command("lm", "List loaded modules: lm [v|n|t|i|f|l|sm|1m] [m PATTERN] [a ADDRESS]")
def lm(session, args: str) -> Result:
    opts = _parse_lm_options(args)
    target = _target(session)
    resolver = target.resolver
    modules = sorted(target.modules, key=lambda m: m.name.lower() if opts["sort_name"] else m.base)
    if opts["pattern"]:
        modules = [m for m in modules if _wild(opts["pattern"], m.name)]
    if opts["address"]:
        addr = session.evaluate(opts["address"])
        modules = [m for m in modules if m.contains(addr)]
    lines = [] if opts["one"] else [LM_HEADER if session.pointer_size == 8 else LM_HEADER_32]
    if opts["verbose"] and lines:
        lines.insert(0, "Browse full module list")  # every published ``lmvm`` starts so
    data = []
    for m in modules:
        # WinDbg loads symbols for the modules it lists verbosely or by pattern; plain lm shows state.
        ms = resolver.load(m) if (opts["verbose"] or opts["pattern"]) else resolver.state(m)
        if opts["loaded_only"] and ms.state in ("deferred", "no symbols"):
            continue
        data.append(_module_dict(m, ms))
        if opts["one"]:
            lines.append(m.name)
            continue
        head = f"{_hex(session, m.base)} {_hex(session, m.end)}   "
        if opts["names"] or opts["times"] or opts["image"] or opts["full"]:
            shown = target.display_image_name(m)
            col = m.path if opts["full"] else shown
            line = f"{head}{m.name:<8} {col}"
            if opts["times"]:
                line = f"{head}{m.name:<8} {shown:<12} {_ctime(m.timestamp)} ({m.timestamp:08X})"
            lines.append(line.rstrip())
        else:
            lines.append(lm_row(head, m.name, _state_text(ms), ms.symbol_file))
        if opts["verbose"]:
            lines.extend(_verbose_lines(session, m, ms))
    unloaded = [] if opts["pattern"] or opts["address"] or opts["one"] else list(target.unloaded_modules)
    if unloaded:
        lines.append("")
        lines.append("Unloaded modules:")
        for u in unloaded:
            lines.append(f"{_hex(session, u.start)} {_hex(session, u.end)}   {u.name}")
    return Result(
        "\n".join(lines),
        {"modules": data, "unloaded": [{"name": u.name, "start": u.start, "end": u.end} for u in unloaded]},
        schema="bugcheck.modules/1",
    )


@command("!lmi", "Detailed information about one module: !lmi MODULE")
def lmi(session, args: str) -> Result:
    target = _target(session)
    name = args.strip()
    m = target.resolver.module_by_name(name)
    if m is None:
        try:
            m = target.resolver.module_at(session.evaluate(name))
        except BugcheckError:
            m = None
    if m is None:
        raise CommandError(f"{name} not found")
    ms = target.resolver.load(m)
    lines = [
        f"Loaded Module Info: [{name}] ",
        f"         Module: {m.image_name.rsplit('.', 1)[0]}",
        f"   Base Address: {_hex(session, m.base)}",
        f"     Image Name: {m.image_name}",
    ]
    img = ms.image
    if img is not None:
        lines.append(f"   Machine Type: {img.machine} ({img.machine_name.upper()})")
    lines.append(f"     Time Stamp: {m.timestamp:08x} {_ctime(m.timestamp)}")
    lines.append(f"           Size: {m.size:x}")
    lines.append(f"       CheckSum: {m.checksum:x}")
    cv = image_property(img, "codeview")
    if cv is not None and cv.guid is not None:
        lines.append(f"Debug Data Dirs: CODEVIEW RSDS - GUID: {{{str(cv.guid).upper()}}}")
        lines.append(f"               Age: {cv.age}, Pdb: {cv.pdb_name}")
    where = ms.image_file or "not found"
    lines.append(f"     Image Type: {'MEMORY' if where == '(dump memory)' else 'FILE'}     - {where}")
    lines.append(f"    Symbol Type: {ms.state}")
    if ms.symbol_file:
        lines.append(f"                 {ms.symbol_file}")
    data = _module_dict(m, ms)
    if cv is not None:
        data["pdb"] = {"name": cv.pdb_name, "guid": str(cv.guid), "age": cv.age}
    return Result("\n".join(lines), data, schema="bugcheck.module/1")


@command("x", "Examine symbols: x MODULE!PATTERN")
def examine(session, args: str) -> Result:
    pattern = args.strip().split()[-1] if args.strip() else ""
    if not pattern:
        raise CommandError("Syntax error: x needs MODULE!PATTERN")
    resolver = _target(session).resolver
    hits = resolver.matching(pattern)
    hits.sort(key=lambda mh: mh[0].base + mh[1].rva)
    lines, data = [], []
    for module, sym in hits:
        addr = module.base + sym.rva
        suffix = " (<no parameter info>)" if sym.is_function else " = <no type information>"
        lines.append(f"{_hex(session, addr)} {module.name}!{sym.name}{suffix}")
        data.append({"address": addr, "module": module.name, "name": sym.name, "function": sym.is_function})
    return Result("\n".join(lines), {"symbols": data}, schema="bugcheck.symbols/1")


@command("ln", "List nearest symbols: ln ADDRESS")
def list_near(session, args: str) -> Result:
    if not args.strip():
        ctx = session.context
        address = ctx.regs.get("rip", ctx.regs.get("eip", ctx.regs.get("pc", 0))) if ctx else 0
    else:
        address = session.evaluate(args.strip())
    resolver = _target(session).resolver
    s = resolver.symbolize(address)
    if s.module is None:
        return Result("", {"address": address, "module": None}, schema="bugcheck.near/1")
    if s.symbol is None:
        text = f"({_hex(session, s.module.base)})   {s.module.name}+{address - s.module.base:#x}"
        return Result(
            text, {"address": address, "module": s.module.name, "symbol": None}, schema="bugcheck.near/1"
        )
    start = s.module.base + s.symbol.rva
    ms = resolver.load(s.module)
    nxt = None
    if ms.symbols is not None:
        ordered = getattr(ms, "_sorted_symbols", None)
        if ordered is None:
            ordered = sorted(ms.symbols.symbols_matching("*"), key=lambda x: x.rva)
            ms._sorted_symbols = ordered
        i = bisect.bisect_right([x.rva for x in ordered], s.symbol.rva)
        if i < len(ordered):
            nxt = ordered[i]
    here = resolver.symbol_for(address)
    lines = ["Browse module", "Set bu breakpoint", ""]
    line = f"({_hex(session, start)})   {here}"
    if nxt is not None:
        line += f"   |  ({_hex(session, s.module.base + nxt.rva)})   {s.module.name}!{nxt.name}"
    lines.append(line)
    if s.displacement == 0:
        lines.append("Exact matches:")
        lines.append(f"    {s.module.name}!{s.symbol.name} (<no parameter info>)")
    return Result(
        "\n".join(lines),
        {
            "address": address,
            "module": s.module.name,
            "symbol": s.symbol.name,
            "displacement": s.displacement,
            "next": None if nxt is None else nxt.name,
        },  # fmt: skip
        schema="bugcheck.near/1",
    )


def _split_range(session, args: str, default_count: int, unit: int):
    text = args.strip()
    if not text:
        start = getattr(session, "_dps_next", None)
        if start is None:
            raise CommandError("Syntax error: an address is required")
        return start, default_count
    m = re.search(r"\s+[lL](\?)?\s*(\S+)\s*$", text)
    if m:
        count = session.evaluate(m.group(2))
        return session.evaluate(text[: m.start()]), max(1, min(count, 0x100000 // unit))
    parts = text.split()
    if len(parts) == 2:
        a, b = session.evaluate(parts[0]), session.evaluate(parts[1])
        return a, max(1, min((b - a) // unit + 1, 0x100000 // unit))
    return session.evaluate(text), default_count


def _dps(session, args: str, unit: int) -> Result:
    start, count = _split_range(session, args, 16, unit)
    resolver = _target(session).resolver
    lines, data = [], []
    width = unit * 2
    for i in range(count):
        addr = start + i * unit
        try:
            value = int.from_bytes(session.dump.read_virtual(addr, unit), "little")
        except MemoryNotPresent:
            value = None
        if value is None:
            shown = "????????`????????" if unit == 8 else "????????"
            lines.append(f"{_hex(session, addr)}  {shown}")
            data.append({"address": addr, "value": None, "symbol": None})
            continue
        shown = f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}" if unit == 8 else f"{value:0{width}x}"
        sym = resolver.symbol_for(value) if value else None
        lines.append(f"{_hex(session, addr)}  {shown}" + (f" {sym}" if sym else ""))
        data.append({"address": addr, "value": value, "symbol": sym})
    session._dps_next = start + count * unit
    return Result("\n".join(lines), {"entries": data}, schema="bugcheck.pointers/1")


@command("dps", "Display pointer-sized values with symbols: dps ADDRESS [L count]")
def dps(session, args: str) -> Result:
    return _dps(session, args, session.pointer_size)


@command("dqs", "Display quadwords with symbols: dqs ADDRESS [L count]")
def dqs(session, args: str) -> Result:
    return _dps(session, args, 8)


@command("dds", "Display doublewords with symbols: dds ADDRESS [L count]")
def dds(session, args: str) -> Result:
    return _dps(session, args, 4)


MS_SYMBOL_SERVER = "https://msdl.microsoft.com/download/symbols"


def path_validation_lines(text: str) -> list[str]:
    """kd's ``Path validation summary`` for a symbol path.

    Published load output and ``.sympath`` replies list each element under
    ``Response                         Time (ms)     Location``: ``Deferred`` for a
    symbol-server element (``srv*...``), ``OK`` for a directory that exists. What
    kd says for a missing directory is not in any output we could check, so such
    elements are left out rather than guessed.
    """
    rows = []
    for element in (e.strip() for e in (text or "").split(";")):
        if not element:
            continue
        if element.lower().startswith(("srv*", "symsrv*", "cache*")):
            rows.append(f"{'Deferred':<47}{element}")
        elif os.path.isdir(element):
            rows.append(f"{'OK':<47}{element}")
    if not rows:
        return []
    head = "************* Path validation summary **************"
    return [head, f"{'Response':<33}{'Time (ms)':<14}Location", *rows]


def expand_sympath(text: str) -> str:
    r"""The ``Expanded Symbol search path`` kd prints.

    A bare ``srv*`` element becomes ``cache*;SRV*<Microsoft's server>`` and every other
    element is shown lower-cased (MS docs, .symfix page: ``c:\someSymbols`` ->
    ``c:\somesymbols``; WinDbg getting-started: ``srv*`` ->
    ``cache*;SRV*https://msdl.microsoft.com/download/symbols``).
    """
    out = []
    for element in text.split(";"):
        if element.strip().lower() == "srv*":
            out.append(f"cache*;SRV*{MS_SYMBOL_SERVER}")
        else:
            out.append(element.lower())
    return ";".join(out)


@command(".sympath", "Show or set the symbol path: .sympath [+] [PATH]")
def sympath(session, args: str) -> Result:
    target = _target(session)
    text = args.strip()
    if text:
        if text.startswith("+"):
            extra = text[1:].strip()
            current = target.sympath_text or ""
            text = f"{current};{extra}" if current else extra
        target.set_sympath(text)
        session.sympath = text
    shown = target.sympath_text or ""
    lines = [
        f"Symbol search path is: {shown or '<empty>'}",
        f"Expanded Symbol search path is: {expand_sympath(shown)}",
    ]
    summary = path_validation_lines(shown)
    if summary:
        lines += ["", *summary]
    return Result("\n".join(lines), {"sympath": shown}, schema="bugcheck.sympath/1")


@command(".symfix", "Use Microsoft's public symbol server: .symfix[+] [CACHE]")
def symfix(session, args: str) -> Result:
    from bugcheck.symbols.sympath import symfix as make

    target = _target(session)
    text = args.strip()
    append = text.startswith("+")
    cache = text[1:].strip() if append else text
    fixed = make(cache or None)
    new = f"{target.sympath_text};{fixed}" if append and target.sympath_text else fixed
    target.set_sympath(new)
    session.sympath = new
    return Result("", {"sympath": new}, schema="bugcheck.sympath/1")


def reload_dot_lines(n: int) -> list[str]:
    """One dot per module: 63 on the first line, 64 on the next ones, as kd's load output shows."""
    lines = []
    if n > 0:
        lines.append("." * min(n, 63))
        n -= min(n, 63)
    while n > 0:
        lines.append("." * min(n, 64))
        n -= min(n, 64)
    return lines


@command(".reload", "Reload module symbols: .reload [/f] [MODULE]")
def reload(session, args: str) -> Result:
    target = _target(session)
    words = args.split()
    force = any(w.lower() in ("/f", "-f") for w in words)
    names = [w for w in words if not w.startswith(("/", "-"))]
    resolver = target.resolver
    lines = []
    if names:
        for n in names:
            m = resolver.module_by_name(n.split("=")[0].rsplit(".", 1)[0] if "." in n else n.split("=")[0])
            if m is None:
                lines.append(f'"{n}" was not found in the image list.')
                lines.append("Debugger will attempt to load it anyway.")
                continue
            ms = resolver.load(m, force=True)
            lines.extend(ms.messages)
        return Result("\n".join(lines), {"reloaded": names}, schema="bugcheck.reload/1")
    resolver.unload_all()
    lines.append("Loading Kernel Symbols")
    dots = []
    for m in target.modules:
        if force:
            resolver.load(m, force=True)
        dots.append(".")
    lines += reload_dot_lines(len(dots))
    lines.append("Loading User Symbols")
    if target.unloaded_modules:
        lines.append("Loading unloaded module list")
        lines.append("." * min(len(target.unloaded_modules), 63))
    if force:
        for m in target.modules:
            ms = resolver.state(m)
            lines.extend(msg for msg in ms.messages if msg.startswith("***") or msg.startswith("WARNING"))
    return Result(
        "\n".join(lines), {"modules": len(target.modules), "forced": force}, schema="bugcheck.reload/1"
    )
