"""x86 frame programs from a PDB: the postfix language of FRAMEDATA and classic FPO_DATA.

A FRAMEDATA record carries a small postfix program (``$T0 .raSearch = $eip
$T0 ^ = $esp $T0 4 + =``) telling how to recover the caller's registers;
older images only have FPO_DATA (local, parameter and saved-register counts).
Both come from untrusted files, so the evaluator is bounded in program size,
stack depth and memory reads, and reports any problem as :class:`ProgramError`
instead of raising what Python would.

Semantics (as debuggers that read these records agree on):

- tokens are separated by blanks; ``$name`` is a variable (registers
  ``$eip $esp $ebp $ebx $esi $edi $eax $ecx $edx``, temporaries ``$T0``..,
  ``$L``/``$P``, and CodeView register numbers such as ``$23`` for esi that
  newer MSVC emits); ``.name`` is a constant of the record (``.raSearch``,
  ``.raSearchStart``, ``.cbLocals``, ``.cbParams``, ``.cbSavedRegs``,
  ``.cbCalleeParams``, ``.cbMaxStack``, ``.cbProlog``); numbers are decimal
  (or ``0x`` hex);
- ``+ - * / %`` are 32-bit unsigned arithmetic, ``@`` aligns down
  (``a b @`` = ``a & -b``), ``^`` reads the dword at an address, and
  ``name value =`` assigns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MASK32 = 0xFFFFFFFF
#: longest program text accepted (real ones stay under a few hundred characters)
MAX_PROGRAM = 4096
MAX_TOKENS = 512
MAX_STACK = 64
MAX_READS = 64

#: CodeView register numbers (CV_REG_*) of the x86 registers frame programs name
CV_REGISTERS = {
    17: "eax",
    18: "ecx",
    19: "edx",
    20: "ebx",
    21: "esp",
    22: "ebp",
    23: "esi",
    24: "edi",
    33: "eip",
}
REGISTERS = ("eip", "esp", "ebp", "ebx", "esi", "edi", "eax", "ecx", "edx")
_BINARY = {"+", "-", "*", "/", "%", "@"}

#: FPO_DATA cbFrame values
FRAME_FPO, FRAME_TRAP, FRAME_TSS, FRAME_NONFPO = 0, 1, 2, 3


class ProgramError(Exception):
    """A frame program that cannot be evaluated (malformed, or it reads absent memory)."""


def _name(token: str) -> str:
    """Canonical variable name: CodeView register numbers become register names."""
    body = token[1:]
    if body.isdigit():
        reg = CV_REGISTERS.get(int(body))
        if reg is None:
            raise ProgramError(f"unknown register number {token}")
        return "$" + reg
    return token


def tokenize(program: str) -> list[str]:
    if not isinstance(program, str):
        raise ProgramError("no program text")
    if len(program) > MAX_PROGRAM:
        raise ProgramError(f"program of {len(program)} characters is too long")
    tokens = program.split()
    if len(tokens) > MAX_TOKENS:
        raise ProgramError(f"program of {len(tokens)} tokens is too long")
    return tokens


def _number(token: str) -> int | None:
    t = token[1:] if token.startswith("-") else token
    try:
        if t.lower().startswith("0x"):
            v = int(t[2:], 16)
        elif t.isdigit():
            v = int(t, 10)
        else:
            return None
    except ValueError:
        return None
    return (-v if token.startswith("-") else v) & MASK32


def evaluate(
    program: str,
    regs: dict[str, int],
    read_u32: Callable[[int], int],
    constants: dict[str, int] | None = None,
) -> dict[str, int]:
    """Run ``program``; return every variable it assigned (``$eip``, ``$T0``...) with its value.

    ``regs`` are the callee frame's registers (plain names); ``read_u32`` reads a
    dword of stack memory and may raise anything: that becomes a ProgramError.
    """
    tokens = tokenize(program)
    variables: dict[str, int] = {"$" + k: v & MASK32 for k, v in regs.items() if k in REGISTERS}
    consts = {k: v & MASK32 for k, v in (constants or {}).items()}
    assigned: dict[str, int] = {}
    stack: list[tuple[str, int | str]] = []  # ("v", value) or ("n", variable name)
    reads = 0

    def value(item) -> int:
        kind, x = item
        if kind == "v":
            return x
        if x not in variables:
            raise ProgramError(f"{x} is used before it has a value")
        return variables[x]

    def pop():
        if not stack:
            raise ProgramError("operator without operands")
        return stack.pop()

    for tok in tokens:
        if len(stack) > MAX_STACK:
            raise ProgramError("expression stack too deep")
        if tok in _BINARY:
            b, a = value(pop()), value(pop())
            if tok == "+":
                r = a + b
            elif tok == "-":
                r = a - b
            elif tok == "*":
                r = a * b
            elif tok in ("/", "%"):
                if b == 0:
                    raise ProgramError("division by zero")
                r = a // b if tok == "/" else a % b
            else:  # "@": align down to a power-of-two boundary
                if b == 0 or b & (b - 1):
                    raise ProgramError(f"alignment {b} is not a power of two")
                r = a & -b
            stack.append(("v", r & MASK32))
        elif tok == "^":
            addr = value(pop())
            reads += 1
            if reads > MAX_READS:
                raise ProgramError("too many memory reads")
            try:
                got = read_u32(addr)
            except Exception as e:  # noqa: BLE001 - any read failure ends this program, named
                raise ProgramError(f"cannot read {addr:08x} ({type(e).__name__})") from None
            stack.append(("v", int(got) & MASK32))
        elif tok == "=":
            v = value(pop())
            kind, target = pop()
            if kind != "n":
                raise ProgramError("assignment to something that is not a variable")
            variables[target] = v
            assigned[target] = v
        elif tok.startswith("$") and len(tok) > 1:
            stack.append(("n", _name(tok)))
        elif tok.startswith(".") and len(tok) > 1:
            if tok not in consts:
                raise ProgramError(f"unknown constant {tok}")
            stack.append(("v", consts[tok]))
        else:
            n = _number(tok)
            if n is None:
                raise ProgramError(f"unknown token {tok[:32]!r}")
            stack.append(("v", n))
    if stack:
        raise ProgramError(f"{len(stack)} value(s) left over")
    return assigned


def registers_of(assigned: dict[str, int]) -> dict[str, int]:
    """The register part of an :func:`evaluate` result, by plain name."""
    return {k[1:]: v for k, v in assigned.items() if k[1:] in REGISTERS}


@dataclass
class FrameSizes:
    """The sizes a frame record gives, in bytes, whichever record kind it came from."""

    locals: int
    params: int
    saved_regs: int
    prolog: int = 0
    max_stack: int = 0


def sizes_of(record) -> FrameSizes:
    """FrameSizes of an FpoData (dword counts, register count) or a FrameData (bytes)."""
    if hasattr(record, "program"):
        return FrameSizes(
            record.locals_size,
            record.params_size,
            record.saved_regs_size,
            record.prolog_size,
            record.max_stack_size,
        )
    return FrameSizes(
        record.locals_dwords * 4, record.params_dwords * 4, record.saved_regs * 4, record.prolog_size
    )


def constants_for(record, callee_params: int, ra_search: int, ra_search_start: int) -> dict[str, int]:
    s = sizes_of(record)
    return {
        ".cbLocals": s.locals,
        ".cbParams": s.params,
        ".cbSavedRegs": s.saved_regs,
        ".cbProlog": s.prolog,
        ".cbMaxStack": s.max_stack,
        ".cbCalleeParams": callee_params,
        ".raSearch": ra_search,
        ".raSearchStart": ra_search_start,
    }


def ra_search_start(record, esp: int, callee_params: int) -> int:
    """Where the return address of a frame without a frame pointer is expected: above the
    callee's arguments still on the stack, the saved registers and the locals."""
    s = sizes_of(record)
    return (esp + callee_params + s.locals + s.saved_regs) & MASK32


def fpo_program(record) -> str:
    """The frame program a classic FPO_DATA record stands for.

    With ``fUseBP`` the function used ebp as a general register and saved it with
    the others; compilers push it second, so it sits 8 bytes below the top of the
    saved-register area (the convention debuggers rely on for these records).
    """
    prog = "$eip .raSearch ^ = $esp .raSearch 4 + ="
    if record.uses_bp and record.saved_regs >= 2:
        # first, while $esp is still the callee frame's
        prog = "$ebp $esp .cbCalleeParams + .cbSavedRegs + 8 - ^ = " + prog
    return prog
