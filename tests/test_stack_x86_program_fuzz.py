"""Frame programs come from untrusted PDBs: any token soup evaluates or fails with ProgramError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bugcheck.stack import fpo
from bugcheck.stack.x86 import X86Unwinder
from bugcheck.symbols.pdb.dbi import FrameData

TOKENS = [
    "$T0", "$T1", "$eip", "$esp", "$ebp", "$ebx", "$20", "$23", "$99", "$L", "$P", ".raSearch",
    ".raSearchStart", ".cbLocals", ".cbParams", ".cbSavedRegs", ".cbCalleeParams", ".bogus",
    "+", "-", "*", "/", "%", "@", "^", "=", "0", "4", "8", "4294967295", "-4", "0x10", "x", "",
]  # fmt: skip

programs = st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join) | st.text(max_size=200)


def _read(addr: int) -> int:
    if 0x1000 <= addr < 0x2000:
        return (addr * 2654435761) & 0xFFFFFFFF
    raise KeyError(addr)


@settings(max_examples=400, deadline=None)
@given(programs)
def test_evaluate_never_raises_anything_else(program):
    consts = fpo.constants_for(FrameData(0, 1, 8, 4, 0, program, 0, 4, 0), 0, 0x1100, 0x1100)
    try:
        got = fpo.evaluate(program, {"eip": 1, "esp": 0x1000, "ebp": 0x1800}, _read, consts)
    except fpo.ProgramError:
        return
    assert all(0 <= v <= 0xFFFFFFFF for v in got.values())


@settings(max_examples=200, deadline=None)
@given(programs)
def test_step_ends_or_moves_up(program):
    rec = FrameData(0x400000, 0x100, 8, 4, 0, program, 0, 4, 4)
    u = X86Unwinder(_read, lambda pc: rec if 0x400000 <= pc < 0x400100 else None)
    regs = {"eip": 0x400010, "esp": 0x1000, "ebp": 0x1800}
    s = u.step(regs, 0, call_site=False)
    assert s.regs is None or s.regs["esp"] > regs["esp"]
