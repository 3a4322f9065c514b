"""x86/x64 and ARM64 disassembly in WinDbg's layout (``u``, ``ub``, ``uf``, the last line of ``r``/``.trap``).

iced-x86's MASM formatter already speaks most of WinDbg's dialect (``dword ptr``,
``0FFFFFFFFh``, ``gs:[188h]``); this module adds what the debugger does on top:
symbolized branch targets and RIP-relative operands (``nt!Foo (fffff800`62a00e70)``),
explicit string-instruction operands, the fixed-width byte column, the
``module!name+0x12:`` label lines, and, for the instruction at the current
program counter, the effective address and value of its memory operand
(``ds:00000000`00000000=????????``).

Everything here is a pure function over callbacks so it can be tested without
a dump:

- ``read(address, size) -> bytes``: the bytes present at ``address``, possibly fewer
  than asked (a short answer means the next byte is absent);
- ``symbolize(address) -> str | None``: ``nt!KeBugCheckEx``, ``nt!Foo+0x12`` or
  ``myfault+0x1981``; None when no module holds the address;
- ``function_range(address) -> (start, end) | None``: for ``uf`` (``.pdata`` or symbol sizes).

``arch="arm64"`` routes decoding to :mod:`bugcheck.disasm_arm64` (capstone);
the walking logic (``u`` counts, ``ub`` boundaries, ``uf`` reachability) is shared.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bugcheck.symbols.resolver import hex_addr

try:  # iced-x86 is a hard dependency; capstone is only a fallback for broken installs
    import iced_x86 as _iced
except ImportError:  # pragma: no cover - exercised only without iced
    _iced = None

ReadFn = Callable[[int, int], bytes]
SymbolizeFn = Callable[[int], "str | None"]
RangeFn = Callable[[int], "tuple[int, int] | None"]

MAX_INSN = 15
#: hard caps so a hostile or huge request cannot loop for long
MAX_COUNT = 100_000
MAX_UF_INSNS = 20_000
#: candidate start points ``ub`` tries before settling for the best so far
MAX_UB_TRIES = 64
#: and roughly how many instructions it may decode doing so
MAX_UB_WORK = 32_768


@dataclass
class Insn:
    """One disassembled line; ``mnemonic == '???'`` marks absent or undecodable bytes."""

    address: int
    raw: bytes
    mnemonic: str
    operands: str
    #: ``ds:00000000`00000000=????????`` for the current instruction, else ""
    effective: str = ""
    #: iced flow control kind name (``next``, ``call``, ``return``, ``conditional_branch``...)
    flow: str = "next"
    #: direct branch/call target when there is one
    target: int | None = None
    present: bool = True

    @property
    def size(self) -> int:
        return len(self.raw) if self.raw else 1

    def text(self, pointer_size: int = 8) -> str:
        raw = self.raw.hex() if self.present else "??"
        # kd keeps the operand column where it can: opcode bytes longer than 16 hex digits eat
        # into the mnemonic's padding (always leaving one blank)
        width = max(7 - max(0, len(raw) - 16), len(self.mnemonic))
        line = f"{hex_addr(self.address, pointer_size)} {raw:<15} {self.mnemonic:<{width}}"
        if self.operands:
            line += " " + self.operands
        if self.effective:
            line += " " + self.effective
        return line.rstrip()


# --------------------------------------------------------------------------------------------
# iced formatter setup


def _register_names() -> dict[int, str]:
    names = {}
    for n in dir(_iced.Register):
        if n.isupper() or (n[0].isupper() and not n.startswith("_")):
            v = getattr(_iced.Register, n)
            if isinstance(v, int):
                names[v] = n.lower()
    return names


_FLOW_NAMES: dict[int, str] = {}
_REG_NAMES: dict[int, str] = {}
_FORMATTER = None


def _formatter():
    global _FORMATTER
    if _FORMATTER is None:
        f = _iced.Formatter(_iced.FormatterSyntax.MASM)
        f.memory_size_options = _iced.MemorySizeOptions.ALWAYS
        f.space_after_operand_separator = False
        f.uppercase_hex = True
        f.hex_suffix = "h"
        f.add_leading_zero_to_hex_numbers = True
        f.small_hex_numbers_in_decimal = True
        f.show_branch_size = False
        f.rip_relative_addresses = False
        _FORMATTER = f
        for n in dir(_iced.FlowControl):
            v = getattr(_iced.FlowControl, n)
            if isinstance(v, int) and n.isupper():
                _FLOW_NAMES[v] = n.lower()
        _REG_NAMES.update(_register_names())
    return _FORMATTER


_STRING_OPS = {
    # mnemonic stem -> operand templates (destination first), as WinDbg spells them
    "movs": ("{di}", "{si}"),
    "cmps": ("{si}", "{di}"),
    "stos": ("{di}",),
    "lods": ("{si}",),
    "scas": ("{di}",),
    "ins": ("{di}",),
    "outs": ("{si}",),
}
_SIZE_WORDS = {"b": "byte", "w": "word", "d": "dword", "q": "qword"}


def _string_form(mnemonic: str, bitness: int) -> tuple[str, str] | None:
    """``rep stosb`` -> (``rep stos``, ``byte ptr [rdi]``) as WinDbg writes string instructions."""
    parts = mnemonic.split()
    stem_full = parts[-1]
    stem, suffix = stem_full[:-1], stem_full[-1:]
    if stem not in _STRING_OPS or suffix not in _SIZE_WORDS:
        return None
    width = _SIZE_WORDS[suffix]
    if bitness == 64:
        di, si = "[rdi]", "[rsi]"
    elif bitness == 32:
        di, si = "es:[edi]", "[esi]"
    else:
        di, si = "es:[di]", "[si]"
    ops = []
    for tmpl in _STRING_OPS[stem]:
        ops.append(f"{width} ptr {di if tmpl == '{di}' else si}")
    if stem == "ins":
        ops.append("dx")
    elif stem == "outs":
        ops.insert(0, "dx")
    return " ".join([*parts[:-1], stem]), ",".join(ops)


_HEX_IN_BRACKETS = re.compile(r"\[([0-9A-F]+)h\]")


def _sym_text(target: int, symbolize: SymbolizeFn | None, pointer_size: int) -> str:
    name = symbolize(target) if symbolize else None
    addr = hex_addr(target, pointer_size)
    return f"{name} ({addr})" if name else addr


def _reg_value(reg: int, regs: dict[str, int]) -> int | None:
    """Value of an iced register (``ebx`` from ``rbx`` when only the full one is known)."""
    name = _REG_NAMES.get(reg, "")
    if name in regs:
        return regs[name]
    info = _iced.RegisterInfo(reg)
    full = _REG_NAMES.get(info.full_register, "")
    if full in regs:
        return regs[full] & ((1 << (8 * info.size)) - 1)
    full32 = _REG_NAMES.get(info.full_register32, "")
    if full32 in regs:
        return regs[full32] & ((1 << (8 * info.size)) - 1)
    return None


#: instructions whose memory operand is an address computation, not an access
_NO_ACCESS = {"lea", "nop", "prefetch", "prefetchw", "prefetchnta", "prefetcht0", "prefetcht1", "prefetcht2"}


def _effective(ins, regs: dict[str, int], read: ReadFn, bitness: int, mnemonic: str) -> str:
    """The ``seg:[sel:]address=value`` note WinDbg adds for the current instruction."""
    mem_ops = [k for k in range(ins.op_count) if ins.op_kind(k) == _iced.OpKind.MEMORY]
    if not mem_ops or mnemonic.split()[-1] in _NO_ACCESS:
        return ""
    addr = ins.memory_displacement
    if ins.memory_base not in (_iced.Register.NONE, _iced.Register.RIP, _iced.Register.EIP):
        v = _reg_value(ins.memory_base, regs)
        if v is None:
            return ""
        addr += v
    if ins.memory_index != _iced.Register.NONE:
        v = _reg_value(ins.memory_index, regs)
        if v is None:
            return ""
        addr += v * ins.memory_index_scale
    ptr_size = 8 if bitness == 64 else 4
    addr &= (1 << (8 * ptr_size)) - 1
    size = _iced.MemorySizeInfo(ins.memory_size).size
    seg = _REG_NAMES.get(ins.memory_segment, "ds")
    sel = regs.get(seg, 0)
    where = f"{seg}:{sel:04x}:" if sel else f"{seg}:"
    if size <= 0:
        return ""
    shown = min(size, 16)
    data = read(addr, shown) if shown else b""
    if len(data) < shown:
        value = "?" * (2 * shown)
    else:
        value = int.from_bytes(data, "little").to_bytes(shown, "big").hex()
    return f"{where}{hex_addr(addr, ptr_size)}={value}"


def decode_one(
    code: bytes,
    address: int,
    bitness: int = 64,
    symbolize: SymbolizeFn | None = None,
    regs: dict[str, int] | None = None,
    read: ReadFn | None = None,
) -> Insn:
    """Decode the instruction at the start of ``code`` (absent/invalid -> ``??`` / ``???``)."""
    pointer_size = 8 if bitness == 64 else 4
    if not code:
        return Insn(address, b"", "???", "", present=False)
    if _iced is None:  # pragma: no cover
        return _decode_capstone(code, address, bitness)
    f = _formatter()
    dec = _iced.Decoder(bitness, code[:MAX_INSN], ip=address)
    ins = dec.decode()
    if ins.is_invalid:
        if dec.last_error == _iced.DecoderError.NO_MORE_BYTES:
            # the instruction runs into memory the dump does not hold
            return Insn(address, b"", "???", "", present=False)
        return Insn(address, code[:1], "???", "", present=True)
    raw = code[: ins.len]
    full = f.format(ins)
    operands = f.format_all_operands(ins)
    mnemonic = full[: len(full) - len(operands)].strip() if operands else full.strip()
    flow = _FLOW_NAMES.get(ins.flow_control, "next")
    target = None
    if ins.is_string_instruction and not operands.strip():
        sf = _string_form(mnemonic, bitness)
        if sf:
            mnemonic, operands = sf
    elif ins.op_count and any(
        ins.op_kind(k) in (_iced.OpKind.NEAR_BRANCH16, _iced.OpKind.NEAR_BRANCH32, _iced.OpKind.NEAR_BRANCH64)
        for k in range(ins.op_count)
    ):
        target = ins.near_branch_target
        operands = _sym_text(target, symbolize, pointer_size)
    elif ins.is_ip_rel_memory_operand or (
        bitness != 64
        and ins.memory_base == _iced.Register.NONE
        and ins.memory_index == _iced.Register.NONE
        and any(ins.op_kind(k) == _iced.OpKind.MEMORY for k in range(ins.op_count))
    ):
        absolute = ins.ip_rel_memory_address if ins.is_ip_rel_memory_operand else ins.memory_displacement
        name = symbolize(absolute) if symbolize else None
        if ins.is_ip_rel_memory_operand or name:
            inner = (
                f"{name} ({hex_addr(absolute, pointer_size)})" if name else hex_addr(absolute, pointer_size)
            )
            if not ins.is_ip_rel_memory_operand:
                operands = operands.replace("ds:[", "[", 1)
            operands = _HEX_IN_BRACKETS.sub(lambda _m: f"[{inner}]", operands, count=1)
        else:
            # 32-bit kd writes a bare displacement with all eight digits: fs:[00000124h]
            operands = _HEX_IN_BRACKETS.sub(lambda _m: f"[{absolute & 0xFFFFFFFF:08X}h]", operands, count=1)
    effective = ""
    if regs is not None and read is not None:
        effective = _effective(ins, regs, read, bitness, mnemonic)
    return Insn(address, raw, mnemonic, operands, effective, flow, target)


def _decode_capstone(code: bytes, address: int, bitness: int) -> Insn:  # pragma: no cover
    try:
        import capstone
    except ImportError:
        return Insn(address, code[:1], "???", "")
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64 if bitness == 64 else capstone.CS_MODE_32)
    for i in md.disasm(code[:MAX_INSN], address):
        return Insn(address, bytes(i.bytes), i.mnemonic, i.op_str.replace(", ", ","))
    return Insn(address, code[:1], "???", "")


# --------------------------------------------------------------------------------------------
# u / ub / uf


def _bitness(arch: str) -> int:
    if arch == "x86":
        return 32
    if arch == "x64":
        return 64
    raise ValueError(f"no disassembler for {arch}")


def _decoder(arch: str, symbolize: SymbolizeFn | None) -> Callable[[bytes, int], Insn]:
    """``decode(code, address) -> Insn`` for ``arch`` (the ``uf`` walker is architecture-neutral)."""
    if arch == "arm64":
        from bugcheck import disasm_arm64

        return lambda code, a: disasm_arm64.decode_one(code, a, symbolize)
    bitness = _bitness(arch)
    return lambda code, a: decode_one(code, a, bitness, symbolize)


def _disassemble_arm64(
    read: ReadFn, address: int, count: int, symbolize: SymbolizeFn | None, end: int | None
) -> list[Insn]:
    from bugcheck import disasm_arm64 as a64

    address &= (1 << 64) - 1
    if end is not None:
        n = max(0, (end - address + a64.WORD - 1) // a64.WORD)
    else:
        n = count
    n = min(max(n, 0), MAX_COUNT)
    out: list[Insn] = []
    for k, word in enumerate(a64.fetch_words(read, address, n)):
        out.append(a64.decode_one(word or b"", address + k * a64.WORD, symbolize))
    return out


def _disassemble_back_arm64(
    read: ReadFn, address: int, count: int, symbolize: SymbolizeFn | None
) -> list[Insn]:
    """The present words that end at ``address`` (like x86, stop at the first absent one going down)."""
    from bugcheck import disasm_arm64 as a64

    count = max(1, min(count, 4096))
    start = (address - count * a64.WORD) & ((1 << 64) - 1)
    words = a64.fetch_words(read, start, count)
    out: list[Insn] = []
    for k in range(count - 1, -1, -1):
        if words[k] is None:
            break
        out.append(a64.decode_one(words[k], start + k * a64.WORD, symbolize))
    out.reverse()
    return out


def _fetch(read: ReadFn, address: int, n: int = MAX_INSN) -> bytes:
    try:
        return read(address, n) or b""
    except Exception:  # a reader must not break the listing; absent is what we show
        return b""


def _is_label(name: str | None) -> bool:
    """A symbol line is printed where a symbol starts (no ``+0x`` displacement)."""
    return bool(name) and "+" not in name


def render(
    insns: list[Insn],
    symbolize: SymbolizeFn | None,
    pointer_size: int = 8,
    labels: set[int] | None = None,
) -> list[str]:
    """Lines with ``name:`` labels before the first instruction and wherever a symbol starts."""
    out = []
    for n, ins in enumerate(insns):
        name = symbolize(ins.address) if symbolize else None
        if name and (n == 0 or _is_label(name) or (labels and ins.address in labels)):
            out.append(f"{name}:")
        out.append(ins.text(pointer_size))
    return out


def disassemble(
    read: ReadFn,
    address: int,
    count: int = 8,
    arch: str = "x64",
    symbolize: SymbolizeFn | None = None,
    regs: dict[str, int] | None = None,
    end: int | None = None,
) -> list[Insn]:
    """``u``: ``count`` instructions from ``address`` (or up to ``end``); the one at pc gets its note."""
    if arch == "arm64":
        return _disassemble_arm64(read, address, count, symbolize, end)
    bitness = _bitness(arch)
    mask = (1 << bitness) - 1
    pc = None
    if regs is not None:
        pc = regs.get("rip" if bitness == 64 else "eip")
    out: list[Insn] = []
    a = address & mask
    limit = min(count, MAX_COUNT) if end is None else MAX_COUNT
    while len(out) < limit and (end is None or a < end):
        code = _fetch(read, a)
        cur = regs if (pc is not None and a == pc) else None
        ins = decode_one(code, a, bitness, symbolize, cur, read if cur is not None else None)
        out.append(ins)
        a = (a + ins.size) & mask
    return out


def disassemble_back(
    read: ReadFn,
    address: int,
    count: int = 8,
    arch: str = "x64",
    symbolize: SymbolizeFn | None = None,
    function_start: int | None = None,
) -> list[Insn]:
    """``ub``: the ``count`` instructions that end exactly at ``address``.

    x86 decoding resynchronizes quickly, so the farthest start (within
    ``count * 15`` bytes, or the function start when known) whose linear decode
    lands exactly on ``address`` gives the most trustworthy boundaries.
    ARM64 words are fixed and aligned, so there it is just the words below.
    """
    if arch == "arm64":
        return _disassemble_back_arm64(read, address, count, symbolize)
    bitness = _bitness(arch)
    count = max(1, min(count, 4096))
    window = count * MAX_INSN
    lo = address - window
    if function_start is not None and address - window <= function_start < address:
        starts = [function_start]
    else:
        starts = []
    starts += list(range(max(lo, 0), address))
    data = b""
    base = max(lo, 0)
    data = _fetch(read, base, address - base)
    # when memory is absent below, the bytes we have begin later: skip starts before them
    have_from = address - len(data) if len(data) < address - base else base
    if len(data) < address - base:
        tail = _fetch_tail(read, base, address)
        data, have_from = tail
    best: list[Insn] | None = None
    best_key = None
    tries = 0
    for s in starts:
        if s < have_from:
            continue
        tries += 1
        if tries > max(2, min(MAX_UB_TRIES, MAX_UB_WORK // count)):
            break
        got = _linear(data[s - have_from :], s, address, bitness, symbolize)
        if got is None:
            continue
        seq, invalid = got
        if invalid == 0 and len(seq) >= count:
            best = seq
            break
        # otherwise prefer a full count, then clean decodes
        key = (-min(len(seq), count), invalid)
        if best_key is None or key < best_key:
            best, best_key = seq, key
    if not best:
        return []
    return best[-count:]


def _fetch_tail(read: ReadFn, lo: int, hi: int) -> tuple[bytes, int]:
    """The longest run of present bytes ending at ``hi`` (page by page)."""
    start = hi
    chunks: list[bytes] = []
    while start > lo:
        page_lo = max(lo, (start - 1) & ~0xFFF)
        got = _fetch(read, page_lo, start - page_lo)
        if len(got) < start - page_lo:
            break
        chunks.insert(0, got)
        start = page_lo
    return b"".join(chunks), start


def _linear(
    code: bytes, start: int, stop: int, bitness: int, symbolize: SymbolizeFn | None
) -> tuple[list[Insn], int] | None:
    """Instructions from ``start`` that end exactly at ``stop`` (and how many were invalid), else None."""
    out = []
    invalid = 0
    a = start
    while a < stop:
        off = a - start
        ins = decode_one(code[off : off + MAX_INSN], a, bitness, symbolize)
        if not ins.present:
            return None
        invalid += ins.mnemonic == "???"
        out.append(ins)
        a += ins.size
    return (out, invalid) if a == stop else None


def disassemble_function(
    read: ReadFn,
    address: int,
    arch: str = "x64",
    symbolize: SymbolizeFn | None = None,
    function_range: RangeFn | None = None,
) -> tuple[list[Insn], set[int]]:
    """``uf``: every instruction reachable from the function start, in address order.

    Returns the instructions and the set of block starts (branch targets and
    fall-through points after branches), where ``uf`` prints a label line.
    """
    decode = _decoder(arch, symbolize)
    rng = function_range(address) if function_range else None
    start, end = rng if rng else (address, None)
    seen: dict[int, Insn] = {}
    labels: set[int] = {start}
    work = [start]
    while work and len(seen) < MAX_UF_INSNS:
        a = work.pop()
        while a not in seen and len(seen) < MAX_UF_INSNS:
            if end is not None and not (start <= a < end):
                break
            ins = decode(_fetch(read, a), a)
            seen[a] = ins
            if not ins.present or ins.mnemonic == "???":
                break
            nxt = a + ins.size
            flow = ins.flow
            if flow in ("conditional_branch", "unconditional_branch") and ins.target is not None:
                t = ins.target
                if end is None:
                    # no known extent: stay near, and do not walk into another named function
                    follow = abs(t - start) < 0x10000 and (
                        t == start or not _is_label(symbolize(t) if symbolize else None)
                    )
                else:
                    follow = start <= t < end
                if follow:
                    labels.add(t)
                    work.append(t)
                if flow == "conditional_branch":
                    labels.add(nxt)
            if flow in ("return", "unconditional_branch", "indirect_branch", "exception"):
                break
            if flow == "interrupt" and ins.operands == "29h":  # __fastfail never returns
                break
            a = nxt
    ordered = [seen[k] for k in sorted(seen)]
    return ordered, labels


# --------------------------------------------------------------------------------------------
# convenience for r / .trap / .cxr


def current_instruction_lines(
    read: ReadFn,
    regs: dict[str, int],
    arch: str = "x64",
    symbolize: SymbolizeFn | None = None,
) -> list[str]:
    """The ``name:`` line and the instruction at pc with its memory note, as ``r`` ends."""
    if arch not in ("x64", "x86", "arm64"):
        return []
    pc = regs.get({"x64": "rip", "x86": "eip"}.get(arch, "pc"))
    if pc is None:
        return []
    insns = disassemble(read, pc, 1, arch, symbolize, regs)
    return render(insns, symbolize, 4 if arch == "x86" else 8)
