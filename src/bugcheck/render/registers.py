"""The register block of ``r``, ``.trap`` and ``.cxr``, laid out as WinDbg prints it.

Inputs are a plain ``{name: value}`` dict (lower-case names as in
``dumpfile.Context.regs``) and the architecture; missing registers print as 0,
which is what WinDbg shows for a trap frame that did not save them.
"""

from __future__ import annotations

TRAP_NOTE = [
    "NOTE: The trap frame does not contain all registers.",
    "Some register values may be zeroed or incorrect.",
]

_X64_ROWS = [
    ("rax", "rbx", "rcx"),
    ("rdx", "rsi", "rdi"),
    ("rip", "rsp", "rbp"),
    ("r8", "r9", "r10"),
    ("r11", "r12", "r13"),
    ("r14", "r15"),
]
_SEGMENTS = ("cs", "ss", "ds", "es", "fs", "gs")

#: (bit, set text, clear text) in WinDbg's order
_FLAG_BITS = [
    (11, "ov", "nv"),
    (10, "dn", "up"),
    (9, "ei", "di"),
    (7, "ng", "pl"),
    (6, "zr", "nz"),
    (4, "ac", "na"),
    (2, "pe", "po"),
    (0, "cy", "nc"),
]

# sub-registers readable with ``r NAME``: name -> (full register, shift, bits)
_SUBREGS: dict[str, tuple[str, int, int]] = {}
for _r in ("a", "b", "c", "d"):
    _SUBREGS[f"e{_r}x"] = (f"r{_r}x", 0, 32)
    _SUBREGS[f"{_r}x"] = (f"r{_r}x", 0, 16)
    _SUBREGS[f"{_r}l"] = (f"r{_r}x", 0, 8)
    _SUBREGS[f"{_r}h"] = (f"r{_r}x", 8, 8)
for _r in ("si", "di", "sp", "bp"):
    _SUBREGS[f"e{_r}"] = (f"r{_r}", 0, 32)
    _SUBREGS[_r] = (f"r{_r}", 0, 16)
    _SUBREGS[f"{_r}l"] = (f"r{_r}", 0, 8)
for _n in range(8, 16):
    _SUBREGS[f"r{_n}d"] = (f"r{_n}", 0, 32)
    _SUBREGS[f"r{_n}w"] = (f"r{_n}", 0, 16)
    _SUBREGS[f"r{_n}b"] = (f"r{_n}", 0, 8)
_SUBREGS["eip"] = ("rip", 0, 32)
_SUBREGS["ip"] = ("rip", 0, 16)

_FLAG_NAMES = {"of": 11, "df": 10, "if": 9, "sf": 7, "zf": 6, "af": 4, "pf": 2, "cf": 0, "tf": 8}


def flags_text(efl: int) -> str:
    """``nv up ei ng nz na pe nc`` for an EFLAGS value."""
    return " ".join(on if efl >> bit & 1 else off for bit, on, off in _FLAG_BITS)


def iopl_flags_line(efl: int) -> str:
    return f"iopl={(efl >> 12) & 3:<10}{flags_text(efl)}"


def segments_line(regs: dict[str, int], efl: int) -> str:
    segs = "  ".join(f"{s}={regs.get(s, 0) & 0xFFFF:04x}" for s in _SEGMENTS)
    return f"{segs}             efl={efl & 0xFFFFFFFF:08x}"


def _x64(regs: dict[str, int], trap: bool) -> list[str]:
    g = regs.get
    lines = [" ".join(f"{n:>3}={g(n, 0) & 0xFFFFFFFFFFFFFFFF:016x}" for n in row) for row in _X64_ROWS]
    efl = g("efl", 0)
    lines.append(iopl_flags_line(efl))
    if not trap:
        lines.append(segments_line(regs, efl))
    return lines


def _x86(regs: dict[str, int], trap: bool) -> list[str]:
    g = regs.get
    m = 0xFFFFFFFF
    efl = g("efl", 0)
    line1 = " ".join(f"{n}={g(n, 0) & m:08x}" for n in ("eax", "ebx", "ecx", "edx", "esi", "edi"))
    line2 = " ".join(f"{n}={g(n, 0) & m:08x}" for n in ("eip", "esp", "ebp")) + " " + iopl_flags_line(efl)
    out = []
    if trap and "errcode" in regs:
        out.append(f"ErrCode = {regs['errcode'] & m:08x}")
    return [*out, line1, line2, segments_line(regs, efl)]


def psr_text(psr: int) -> str:
    """``60000000 -ZC- EL0``: NZCV flags and the exception level, as WinDbg ARM64 shows cpsr."""
    nzcv = "".join(c if psr >> bit & 1 else "-" for bit, c in ((31, "N"), (30, "Z"), (29, "C"), (28, "V")))
    return f"{psr & 0xFFFFFFFF:08x} {nzcv} EL{(psr >> 2) & 3}"


def _arm64(regs: dict[str, int]) -> list[str]:
    names = [f"x{i}" for i in range(29)] + ["fp", "lr", "sp"]
    g = regs.get
    cells = [f"{n:>3}={g(n, 0) & 0xFFFFFFFFFFFFFFFF:016x}" for n in names]
    lines = ["   ".join(cells[i : i + 4]) for i in range(0, len(cells), 4)]
    psr = g("cpsr", g("psr", 0))
    lines.append(f" pc={g('pc', 0) & 0xFFFFFFFFFFFFFFFF:016x}  psr={psr_text(psr)}")
    return lines


def register_block(regs: dict[str, int], arch: str = "x64", trap: bool = False) -> list[str]:
    """The lines ``r`` prints before the instruction (``trap`` adds the NOTE and, on x64, drops segments)."""
    if arch == "x64":
        body = _x64(regs, trap)
    elif arch == "x86":
        body = _x86(regs, trap)
    elif arch == "arm64":
        body = _arm64(regs)
    else:
        raise ValueError(f"unknown architecture {arch!r}")
    return ([*TRAP_NOTE] if trap and arch != "x86" else []) + body


def _width(name: str, arch: str) -> int:
    if name in _SEGMENTS:
        return 4
    if name in ("efl", "cpsr", "psr"):
        return 8
    if arch == "x86":
        return 8
    if name in _SUBREGS:
        return _SUBREGS[name][2] // 4
    return 16


def register_value(regs: dict[str, int], name: str, arch: str = "x64") -> int | None:
    """A register or sub-register (``eax`` from ``rax``, ``zf`` from ``efl``); None if unknown."""
    n = name.lower().lstrip("@")
    if n in regs:
        return regs[n]
    if arch == "arm64":
        alias = {"x29": "fp", "x30": "lr", "psr": "cpsr"}.get(n)
        return regs.get(alias) if alias else None
    if n in _FLAG_NAMES:
        return regs.get("efl", 0) >> _FLAG_NAMES[n] & 1
    if arch == "x64" and n in _SUBREGS:
        full, shift, bits = _SUBREGS[n]
        if full in regs:
            return regs[full] >> shift & ((1 << bits) - 1)
    if arch == "x86" and n in (
        "ax",
        "bx",
        "cx",
        "dx",
        "si",
        "di",
        "sp",
        "bp",
        "al",
        "bl",
        "cl",
        "dl",
        "ah",
        "bh",
        "ch",
        "dh",
    ):
        full = "e" + (n if len(n) == 2 and n[1] in "xip" else n[0] + "x")
        if full in regs:
            v = regs[full]
            if n.endswith("h"):
                return v >> 8 & 0xFF
            if n.endswith("l"):
                return v & 0xFF
            return v & 0xFFFF
    return None


def format_register(regs: dict[str, int], name: str, arch: str = "x64") -> str | None:
    """``rax=00000000c85c00f0`` / ``cs=0010`` / ``zf=0`` for ``r NAME``; None when unknown."""
    n = name.lower().lstrip("@")
    v = register_value(regs, n, arch)
    if v is None:
        return None
    if n in _FLAG_NAMES:
        return f"{n}={v}"
    w = _width(n, arch)
    return f"{n}={v & ((1 << (4 * w)) - 1):0{w}x}"


def set_register(regs: dict[str, int], name: str, value: int, arch: str = "x64") -> None:
    """``r NAME=value``: update ``regs`` in place (sub-registers merge into their full register)."""
    n = name.lower().lstrip("@")
    if n in _FLAG_NAMES and arch != "arm64":
        bit = _FLAG_NAMES[n]
        efl = regs.get("efl", 0)
        regs["efl"] = (efl | (1 << bit)) if value & 1 else (efl & ~(1 << bit))
        return
    if arch == "x64" and n in _SUBREGS and n not in regs:
        full, shift, bits = _SUBREGS[n]
        mask = ((1 << bits) - 1) << shift
        # writing a 32-bit register zero-extends, as the CPU does
        old = 0 if bits == 32 else regs.get(full, 0)
        regs[full] = (old & ~mask) | ((value << shift) & mask)
        return
    if arch == "arm64":
        n = {"x29": "fp", "x30": "lr", "psr": "cpsr"}.get(n, n)
    known = (
        n in regs
        or n in _SEGMENTS
        or n == "efl"
        or (arch == "arm64" and n in ("pc", "sp", "fp", "lr", "cpsr"))
    )
    if not known and not (arch == "arm64" and n.startswith("x") and n[1:].isdigit()):
        raise KeyError(n)
    bits = 64 if arch in ("x64", "arm64") else 32
    if n in _SEGMENTS:
        bits = 16
    regs[n] = value & ((1 << bits) - 1)
