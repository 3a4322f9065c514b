"""ARM64 decoding in WinDbg's layout, on top of capstone (iced-x86 has no ARM64).

WinDbg's ARM64 ``u`` line is the address, the 32-bit instruction word as eight
hex digits, the mnemonic padded to eleven columns and the operands with no
space after commas::

    fffff803`f32de014 d63f0200 blr         x16
    00000001`80243814 a9bc7bfd stp         fp,lr,[sp,#-0x40]!
    00007ff8`4862e69c 97ffd4af bl          Name (00007ff8`48623958)
    00007ff8`4862e68c f2ae0121 movk        x1,#0x7009 lsl #0x10

Capstone speaks GNU/LLVM syntax, so its text is rewritten here into the
Microsoft dialect: ``fp``/``lr`` for x29/x30, immediates 0..9 in decimal and
the rest as upper-case ``0x`` hex, shift/extend modifiers joined to their
operand by a space rather than a comma, ``bne`` instead of ``b.ne``, and PC-relative
targets (branches, ``adr``/``adrp``, literal loads) as ``module!name+0x12
(address)`` the way the x64 path writes them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import capstone as _cs

from bugcheck.disasm import Insn, hex_addr

SymbolizeFn = Callable[[int], "str | None"]

WORD = 4

# capstone 5 calls the architecture ARM64, capstone 6 AARCH64
_ARCH = getattr(_cs, "CS_ARCH_AARCH64", None)
if _ARCH is None:
    _ARCH = _cs.CS_ARCH_ARM64
_MODE = getattr(_cs, "CS_MODE_ARM", 0)

_MD = None


def _engine():
    """One shared capstone handle; text only (detail mode costs time and differs between versions)."""
    global _MD
    if _MD is None:
        md = _cs.Cs(_ARCH, _MODE)
        md.detail = False
        _MD = md
    return _MD


class Arm64Insn(Insn):
    """An :class:`Insn` whose byte column is the little-endian instruction word."""

    @property
    def size(self) -> int:
        return WORD

    @property
    def word(self) -> int | None:
        return int.from_bytes(self.raw, "little") if self.present and len(self.raw) == WORD else None

    def text(self, pointer_size: int = 8) -> str:
        w = self.word
        raw = f"{w:08x}" if w is not None else "??"
        line = f"{hex_addr(self.address, pointer_size)} {raw:<8} {self.mnemonic:<11}"
        if self.operands:
            line += " " + self.operands
        if self.effective:
            line += " " + self.effective
        return line.rstrip()


# --------------------------------------------------------------------------------------------
# text rewriting

_SHIFTS = "lsl|lsr|asr|ror|msl|uxtb|uxth|uxtw|uxtx|sxtb|sxth|sxtw|sxtx"
_SHIFT_JOIN = re.compile(rf", ({_SHIFTS})\b")
_IMM = re.compile(r"#(-?)(0x[0-9a-fA-F]+|\d+)(?![.\w])")
_REG29 = re.compile(r"\bx29\b")
_REG30 = re.compile(r"\bx30\b")

#: PC-relative forms whose last ``#imm`` is an absolute address after capstone's decoding
_BRANCH_COND = {"cbz", "cbnz", "tbz", "tbnz"}
_ADDRESS_OPS = {"b", "bl", "adr", "adrp"} | _BRANCH_COND
_LITERAL_LOADS = {"ldr", "ldrsw", "prfm"}
#: Windows' __fastfail is ``brk #0xF003``; the kernel never returns from it
_FASTFAIL = "#0xF003"


def imm_text(value: int) -> str:
    """``#8``, ``#0x10``, ``#-0x40``: decimal below ten, upper-case hex otherwise."""
    sign = "-" if value < 0 else ""
    v = -value if value < 0 else value
    return f"#{sign}{v}" if v < 10 else f"#{sign}0x{v:X}"


def _imm_sub(m: re.Match) -> str:
    text = m.group(2)
    v = int(text, 16) if text.lower().startswith("0x") else int(text)
    return imm_text(-v if m.group(1) else v)


def _ms_mnemonic(mnemonic: str) -> str:
    """``b.ne`` -> ``bne`` as the Microsoft disassembler spells conditional branches."""
    if mnemonic.startswith("b.") and len(mnemonic) > 2:
        return "b" + mnemonic[2:]
    return mnemonic


def _flow(mnemonic: str, operands: str) -> str:
    """The iced-style flow kind the shared ``uf`` walker understands."""
    m = mnemonic
    if m in ("ret", "retaa", "retab", "eret", "eretaa", "eretab"):
        return "return"
    if m == "b":
        return "unconditional_branch"
    if m in ("bl",):
        return "call"
    if m in ("blr", "blraa", "blraaz", "blrab", "blrabz"):
        return "indirect_call"
    if m in ("br", "braa", "braaz", "brab", "brabz"):
        return "indirect_branch"
    if m.startswith("b.") or m in _BRANCH_COND:
        return "conditional_branch"
    if m == "udf" or (m == "brk" and operands.upper() == _FASTFAIL.upper()):
        return "exception"
    if m in ("brk", "svc", "hvc", "smc"):
        return "interrupt"
    return "next"


def _sym_text(target: int, symbolize: SymbolizeFn | None) -> str:
    name = None
    if symbolize is not None:
        try:
            name = symbolize(target)
        except Exception:  # a resolver problem must not break the listing
            name = None
    addr = hex_addr(target, 8)
    return f"{name} ({addr})" if name else addr


def _rewrite(mnemonic: str, op_str: str, symbolize: SymbolizeFn | None) -> tuple[str, str, int | None]:
    """Capstone (mnemonic, operands) -> WinDbg's (mnemonic, operands, pc-relative target)."""
    ops = op_str.strip()
    target = None
    addr_form = mnemonic in _ADDRESS_OPS or mnemonic.startswith("b.")
    if not addr_form and mnemonic in _LITERAL_LOADS and "[" not in ops:
        addr_form = True
    head, addr_text = ops, None
    if addr_form:
        # the target is the last operand: ``x1, #0x...`` or just ``#0x...``
        k = ops.rfind("#")
        if k >= 0:
            try:
                target = int(ops[k + 1 :], 0) & 0xFFFFFFFFFFFFFFFF
            except ValueError:
                target = None
            if target is not None:
                head, addr_text = ops[:k], _sym_text(target, symbolize)
    head = _SHIFT_JOIN.sub(r" \1", head)
    head = head.replace(", ", ",")
    head = _IMM.sub(_imm_sub, head)
    head = _REG29.sub("fp", head)
    head = _REG30.sub("lr", head)
    if addr_text is not None:
        head += addr_text
    return _ms_mnemonic(mnemonic), head, target


# --------------------------------------------------------------------------------------------
# decoding


def decode_one(code: bytes, address: int, symbolize: SymbolizeFn | None = None) -> Arm64Insn:
    """The instruction word at the start of ``code``; absent -> ``??``/``???``, undefined -> ``???``."""
    address &= 0xFFFFFFFFFFFFFFFF
    if len(code) < WORD:
        return Arm64Insn(address, b"", "???", "", present=False)
    raw = bytes(code[:WORD])
    mnemonic = op_str = None
    try:
        for i in _engine().disasm_lite(raw, address, 1):
            _addr, _size, mnemonic, op_str = i
            break
    except _cs.CsError:
        mnemonic = None
    if not mnemonic:
        return Arm64Insn(address, raw, "???", "")
    flow = _flow(mnemonic, _IMM.sub(_imm_sub, op_str.strip()))
    mn, operands, target = _rewrite(mnemonic, op_str, symbolize)
    return Arm64Insn(address, raw, mn, operands, "", flow, target)


def fetch_words(read: Callable[[int, int], bytes], address: int, count: int) -> list[bytes | None]:
    """``count`` instruction words from ``address``; None where memory is absent (read page by page)."""
    out: list[bytes | None] = []
    a = address & 0xFFFFFFFFFFFFFFFF
    while len(out) < count:
        page_end = (a | 0xFFF) + 1
        want = min(count - len(out), max(1, (page_end - a) // WORD))
        try:
            data = read(a, want * WORD) or b""
        except Exception:
            data = b""
        got = min(len(data) // WORD, want)
        for k in range(got):
            out.append(bytes(data[k * WORD : (k + 1) * WORD]))
        if got < want:
            out.append(None)  # the word that begins where the present bytes stop
            got += 1
        a = (a + got * WORD) & 0xFFFFFFFFFFFFFFFF
    return out[:count]
