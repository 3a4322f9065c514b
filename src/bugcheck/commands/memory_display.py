"""``db``/``dw``/``dd``/``dq``/``dc``/``dp``/``da``/``du``/``dyb``, their physical ``!d*`` twins, ``!pte``, ``!vtop``.

Output mirrors WinDbg column for column: the address, two spaces, the units,
and for bytes a ``-`` between the 8th and 9th; bytes the dump does not hold
print as ``??`` (``????????`` for wider units) exactly where they fall, so a
partially captured triage block shows which part is real.
"""

from __future__ import annotations

from bugcheck.commands.registry import Result, command
from bugcheck.errors import BugcheckError, CommandError, MemoryNotPresent

#: without ``L?`` larger ranges are refused. WinDbg streams its output and allows 256 MB; a
#: Result holds its text, so the limits here are lower: 16 MB plain, 64 MB with ``L?``.
_MAX_RANGE = 0x1000000
_MAX_RANGE_FORCED = 0x4000000
#: ranges up to this size also carry their bytes in ``Result.data`` (larger ones: text only)
_MAX_DATA_ROWS = 0x10000

# unit size, default count, units per line, ascii column
_FORMATS = {
    "db": (1, 0x80, 16, True),
    "dw": (2, 0x40, 8, False),
    "dd": (4, 0x20, 4, False),
    "dq": (8, 0x10, 2, False),
    "dc": (4, 0x20, 4, True),
    "dyb": (1, 0x20, 4, False),
}


def _ascii(b: int | None) -> str:
    if b is None:
        return "?"
    return chr(b) if 0x20 <= b < 0x7F else "."


def parse_range(session, args: str, unit: int, default_count: int, *, physical: bool = False):
    """(start, count of units) from ``ADDR``, ``ADDR L n``, ``ADDR L?n``, ``ADDR END`` or nothing."""
    text = args.strip()
    if not text:
        start = session.next_display_address
        if start is None:
            ctx = session.context
            start = getattr(ctx, "sp", 0) if ctx is not None else 0
        return start, default_count
    if physical and text.startswith("#"):
        text = text[1:]
    start, end = session.evaluate_prefix(text)
    rest = text[end:].strip()
    count = default_count
    if rest:
        if rest[0] in "lL":
            forced = rest[1:2] == "?"
            n_text = rest[2:] if forced else rest[1:]
            count = session.evaluate(n_text.strip())
            limit = _MAX_RANGE_FORCED if forced else _MAX_RANGE
            if count * unit > limit:
                raise CommandError(f"Range error in '{args.strip()}'" if not forced else "Range too large")
        else:
            end_addr = session.evaluate(rest)
            if end_addr < start:
                raise CommandError(f"Range error in '{args.strip()}'")
            nbytes = end_addr - start + 1
            if nbytes > _MAX_RANGE:
                raise CommandError(f"Range error in '{args.strip()}'")
            count = max(1, (nbytes + unit - 1) // unit)
    return start, count


def _read(session, address: int, size: int, physical: bool) -> list[int | None]:
    """Bytes at ``address`` with None for each byte the dump lacks."""
    address &= (1 << 64) - 1
    if physical:
        space = getattr(session.dump, "physical", None)
        if space is None:
            return [None] * size
        data, holes = space.read_padded(address, size)
    else:
        data, holes = session.read_virtual_padded(address, size)
    out: list[int | None] = list(data)
    for start, length in holes:
        for i in range(max(0, start - address), min(size, start - address + length)):
            out[i] = None
    return out


def _unit_text(chunk: list[int | None], unit: int) -> str:
    if any(b is None for b in chunk):
        return "?" * (unit * 2) if unit != 8 else "????????`????????"
    v = int.from_bytes(bytes(chunk), "little")  # type: ignore[arg-type]
    if unit == 8:
        return f"{v >> 32:08x}`{v & 0xFFFFFFFF:08x}"
    return f"{v:0{unit * 2}x}"


def render(session, fmt: str, start: int, count: int, *, physical: bool = False) -> tuple[list[str], list]:
    unit, _, per_line, ascii_col = _FORMATS[fmt]
    lines = []
    rows = []
    line_bytes = per_line * unit
    total = count * unit
    window = 0x10000  # read in pieces so a large range never holds a per-byte list of it all
    mem: list[int | None] = []
    mem_start = 0
    for off in range(0, total, line_bytes):
        n = min(line_bytes, total - off)
        if off + n > mem_start + len(mem):
            mem_start = off
            mem = _read(session, start + off, min(window, total - off), physical)
        chunk = mem[off - mem_start : off - mem_start + n]
        addr = start + off
        if fmt == "dyb":
            body = " ".join("????????" if b is None else f"{b:08b}" for b in chunk)
            hexes = " ".join("??" if b is None else f"{b:02x}" for b in chunk)
            body = f"{body:<{per_line * 9 - 1}}  {hexes}"
        elif unit == 1:
            parts = ["??" if b is None else f"{b:02x}" for b in chunk]
            body = ""
            for i, p in enumerate(parts):
                body += p if i == 0 else ("-" if i == 8 else " ") + p
            body = f"{body:<{per_line * 3 - 1}}"
        else:
            parts = [_unit_text(chunk[i : i + unit], unit) for i in range(0, n, unit)]
            body = " ".join(parts)
            if ascii_col:
                body = f"{body:<{per_line * (unit * 2 + 1) - 1}}"
        if physical:
            head = f"#{addr:8x} "
            sep = " "
        else:
            head = session.hex_addr(addr) + "  "
            sep = "  "
        line = head + body
        if ascii_col:
            line += sep + "".join(_ascii(b) for b in chunk)
        lines.append(line.rstrip() if not ascii_col else line)
        if total <= _MAX_DATA_ROWS:
            rows.append({"address": addr, "hex": "".join("??" if b is None else f"{b:02x}" for b in chunk)})
    if fmt == "dyb" and lines:
        pad = " " * (len(session.hex_addr(start)) + 2) if not physical else " " * 10
        lines[:0] = [pad + " ".join(["76543210"] * per_line), pad + " ".join(["--------"] * per_line)]
    return lines, rows


def _display(session, fmt: str, args: str, physical: bool = False) -> Result:
    unit, default, _, _ = _FORMATS[fmt]
    start, count = parse_range(session, args, unit, default, physical=physical)
    if physical:
        mem = _read(session, start, min(count * unit, 16), True)
        if all(b is None for b in mem) and getattr(session.dump, "physical", None) is None:
            raise CommandError("Physical memory is not available in this dump (mini kernel dump)")
    lines, rows = render(session, fmt, start, count, physical=physical)
    if not physical:
        session.next_display_address = (start + count * unit) & ((1 << 64) - 1)
        session.last_display_command = fmt
    return Result(
        "\n".join(lines),
        {
            "format": fmt,
            "address": start,
            "unit": unit,
            "count": count,
            "physical": physical,
            "rows": rows if count * unit <= _MAX_DATA_ROWS else None,
        },
        "bugcheck.memory/1",
    )


@command("db", "Display memory as bytes and ASCII")
def cmd_db(session, args):
    return _display(session, "db", args)


@command("dw", "Display memory as 16-bit words")
def cmd_dw(session, args):
    return _display(session, "dw", args)


@command("dd", "Display memory as 32-bit double words")
def cmd_dd(session, args):
    return _display(session, "dd", args)


@command("dq", "Display memory as 64-bit quad words")
def cmd_dq(session, args):
    return _display(session, "dq", args)


@command("dc", "Display memory as double words and ASCII")
def cmd_dc(session, args):
    return _display(session, "dc", args)


@command("dyb", "Display memory as binary bytes")
def cmd_dyb(session, args):
    return _display(session, "dyb", args)


@command("dp", "Display memory as pointers (dq on 64-bit targets, dd on 32-bit)")
def cmd_dp(session, args):
    return _display(session, "dq" if session.pointer_size == 8 else "dd", args)


def _string(session, args: str, wide: bool) -> Result:
    unit = 2 if wide else 1
    start, max_chars = parse_range(session, args, unit, 0x100 if not wide else 0x100)
    per_line = 32
    mem = _read(session, start, max_chars * unit, False)
    chars: list[str] = []
    complete = True
    for i in range(max_chars):
        piece = mem[i * unit : (i + 1) * unit]
        if any(b is None for b in piece):
            complete = False
            break
        v = int.from_bytes(bytes(piece), "little")  # type: ignore[arg-type]
        if v == 0:
            break
        chars.append(chr(v) if 0x20 <= v < 0x7F else ".")
    lines = []
    if not chars and not complete:
        lines.append(f"{session.hex_addr(start)}  " + "?" * 8)
    for off in range(0, len(chars), per_line):
        seg = "".join(chars[off : off + per_line])
        lines.append(f'{session.hex_addr(start + off * unit)}  "{seg}"')
    if not lines:
        lines.append(f'{session.hex_addr(start)}  ""')
    session.next_display_address = start + (len(chars) + 1) * unit
    return Result(
        "\n".join(lines),
        {"address": start, "string": "".join(chars), "wide": wide, "complete": complete},
        "bugcheck.string/1",
    )


@command("da", "Display memory as an ASCII string")
def cmd_da(session, args):
    return _string(session, args, False)


@command("du", "Display memory as a UTF-16 string")
def cmd_du(session, args):
    return _string(session, args, True)


@command("!db", "Display physical memory as bytes")
def cmd_pdb(session, args):
    return _display(session, "db", args, physical=True)


@command("!dw", "Display physical memory as words")
def cmd_pdw(session, args):
    return _display(session, "dw", args, physical=True)


@command("!dd", "Display physical memory as double words")
def cmd_pdd(session, args):
    return _display(session, "dd", args, physical=True)


@command("!dq", "Display physical memory as quad words")
def cmd_pdq(session, args):
    return _display(session, "dq", args, physical=True)


@command("!dc", "Display physical memory as double words and ASCII")
def cmd_pdc(session, args):
    return _display(session, "dc", args, physical=True)


# -- paging ---------------------------------------------------------------------------------------

_MASK48 = (1 << 48) - 1


def _paging(session):
    paging = getattr(session.dump, "paging", None)
    if paging is None:
        raise CommandError("Page tables are not available in this dump (mini kernel dump)")
    return paging


def _pte_base(session) -> int:
    kdd = getattr(session.dump, "kd_debugger_data", None) or {}
    base = kdd.get("PteBase") if isinstance(kdd, dict) else None
    return base if isinstance(base, int) and base else 0xFFFFF68000000000


def _self_map(va: int, pte_base: int) -> int:
    """Virtual address of the PTE that maps ``va`` through the self-map at ``pte_base``."""
    return (((va & _MASK48) >> 12) << 3) + pte_base & ((1 << 64) - 1)


def pte_flags(value: int) -> str:
    """The 11-character flag column of ``!pte`` (C G L D A N T K/U W/R E V)."""
    return "".join(
        [
            "C" if value & (1 << 9) else "-",
            "G" if value & (1 << 8) else "-",
            "L" if value & (1 << 7) else "-",
            "D" if value & (1 << 6) else "-",
            "A" if value & (1 << 5) else "-",
            "N" if value & (1 << 4) else "-",
            "T" if value & (1 << 3) else "-",
            "U" if value & (1 << 2) else "K",
            "W" if value & (1 << 1) else "R",
            "-" if value & (1 << 63) else "E",
            "V" if value & 1 else "-",
        ]
    )


@command("!pte", "Display the page table entries that map a virtual address")
def cmd_pte(session, args: str) -> Result:
    if not args.strip():
        raise CommandError("Usage: !pte VirtualAddress")
    va = session.evaluate(args.strip())
    paging = _paging(session)
    walk = paging.walk(va)
    if session.machine != "x64":
        lines = [f"VA {va:x}"]
        for lvl in walk.levels:
            val = "????????" if lvl.value is None else f"{lvl.value:x}"
            lines.append(f"{lvl.name} at {lvl.entry_address:x} contains {val}")
        return Result(
            "\n".join(lines), {"va": va, "levels": [vars(lv) for lv in walk.levels]}, "bugcheck.pte/1"
        )
    if not walk.levels:
        # nothing to walk: a non-canonical address, or no page directory at all
        why = walk.reason or "address cannot be translated"
        return Result(
            f"{va:x}: {why}", {"va": va, "levels": [], "physical": None, "reason": why}, "bugcheck.pte/1"
        )
    if len(walk.levels) > 4 or (walk.levels and walk.levels[0].name == "PML5E"):
        return _pte_five_level(va, walk)
    base = _pte_base(session)
    # the self-map addresses: PTE of va, PTE of that (the PDE), and so on up
    vas = []
    a = va
    for _ in range(4):
        a = _self_map(a, base)
        vas.append(a)
    vas = list(reversed(vas))  # PXE, PPE, PDE, PTE
    names = ["PXE", "PPE", "PDE", "PTE"]
    heads, contains, pfns = [], [], []
    levels = []
    for i, lvl in enumerate(walk.levels[:4]):
        name = names[i] if len(walk.levels) <= 4 else lvl.name
        heads.append(f"{name} at {vas[i]:016X}    ")
        if lvl.value is None:
            contains.append("contains ????????????????  ")
            pfns.append(f"{'not in dump':<25}  ")
        else:
            contains.append(f"contains {lvl.value:016X}  ")
            if lvl.valid:
                pfns.append(f"pfn {lvl.pfn:<10x}{pte_flags(lvl.value)}  ")
            else:
                pfns.append(f"{'not valid':<25}  ")
        levels.append(
            {
                "name": name,
                "va": vas[i],
                "physical": lvl.entry_address,
                "value": lvl.value,
                "index": lvl.index,
            }
        )
    lines = [
        " " * 43 + f"VA {va:016x}",
        "".join(heads).rstrip(),
        "".join(contains).rstrip(),
        "".join(pfns).rstrip(),
    ]
    if walk.physical is None and any(lv.value is None for lv in walk.levels):
        lines.append(walk.reason)
    return Result(
        "\n".join(lines),
        {"va": va, "levels": levels, "physical": walk.physical, "reason": walk.reason},
        "bugcheck.pte/1",
    )


def _pte_five_level(va: int, walk) -> Result:
    """5-level paging (LA57): the self-map addresses of 4-level tables do not apply, so each
    level is shown with the physical address of its entry."""
    heads, contains, pfns, levels = [], [], [], []
    for lvl in walk.levels:
        heads.append(f"{lvl.name} at phys {lvl.entry_address:012X}  ")
        if lvl.value is None:
            contains.append(f"{'contains ????????????????':<30}")
            pfns.append(f"{'not in dump':<30}")
        else:
            contains.append(f"{'contains ' + format(lvl.value, '016X'):<30}")
            pfns.append(
                f"{('pfn ' + format(lvl.pfn, '<10x') + pte_flags(lvl.value)) if lvl.valid else 'not valid':<30}"
            )
        levels.append(
            {
                "name": lvl.name,
                "va": None,
                "physical": lvl.entry_address,
                "value": lvl.value,
                "index": lvl.index,
            }
        )
    lines = [f"VA {va:016x}", "".join(heads).rstrip(), "".join(contains).rstrip(), "".join(pfns).rstrip()]
    if walk.physical is None:
        lines.append(walk.reason)
    return Result(
        "\n".join(lines),
        {"va": va, "levels": levels, "physical": walk.physical, "reason": walk.reason},
        "bugcheck.pte/1",
    )


@command("!vtop", "Translate a virtual address with a given page directory base")
def cmd_vtop(session, args: str) -> Result:
    parts = args.split()
    if len(parts) != 2:
        raise CommandError("Usage: !vtop DirBase VirtualAddress")
    dtb = session.evaluate(parts[0])
    va = session.evaluate(parts[1])
    paging = _paging(session)
    if dtb:
        try:
            paging = type(paging)(paging.physical, dtb)
        except (TypeError, BugcheckError) as e:
            raise CommandError(f"Cannot walk page tables at {dtb:#x}: {e}") from e
    walk = paging.walk(va)
    tag = {"x64": "Amd64VtoP", "x86": "X86VtoP", "arm64": "Arm64VtoP"}.get(session.machine, "VtoP")
    lines = [f"{tag}: Virt {va:016x}, pagedir {paging.dtb:016x}"]
    for lvl in walk.levels:
        label = {"PXE": "PML4E", "PPE": "PDPE"}.get(lvl.name, lvl.name)
        lines.append(f"{tag}: {label} {lvl.entry_address:016x}")
    if walk.physical is not None:
        lines.append(f"{tag}: Mapped phys {walk.physical:016x}")
        lines.append(f"Virtual address {va:x} translates to physical address {walk.physical:x}.")
    else:
        lines.append(f"{tag}: {walk.reason or 'zero PTE'}")
        lines.append(f"Virtual address {va:x} translation fails, error 0xD0000147.")
    return Result(
        "\n".join(lines),
        {"va": va, "dtb": paging.dtb, "physical": walk.physical, "reason": walk.reason},
        "bugcheck.vtop/1",
    )


def read_or_none(session, address: int, size: int) -> bytes | None:
    try:
        return session.read_virtual(address, size)
    except MemoryNotPresent:
        return None
