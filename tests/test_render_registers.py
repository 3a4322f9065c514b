"""The ``r`` / ``.trap`` register block, reproduced from the walkthrough's register values."""

from __future__ import annotations

from tests.corpus import corpus_file

from bugcheck import disasm
from bugcheck.render import registers as R

TRAP_REGS = {
    "rax": 0xC85C00F0,
    "rbx": 0,
    "rcx": 0xFFFFD80241E00340,
    "rdx": 0x890,
    "rsi": 0,
    "rdi": 0,
    "rip": 0xFFFFF80060DA1981,
    "rsp": 0xFFFFD48F77AF9970,
    "rbp": 2,
    "r8": 0xFFFFD8024ABBDC80,
    "r9": 0,
    "r10": 0xFFFFD80241E002C0,
    "r11": 0xFFFFD8024AA9BFF0,
    "r12": 0,
    "r13": 0,
    "r14": 0,
    "r15": 0,
    "efl": 0x00040286,
}

EXPECTED_TRAP = """\
NOTE: The trap frame does not contain all registers.
Some register values may be zeroed or incorrect.
rax=00000000c85c00f0 rbx=0000000000000000 rcx=ffffd80241e00340
rdx=0000000000000890 rsi=0000000000000000 rdi=0000000000000000
rip=fffff80060da1981 rsp=ffffd48f77af9970 rbp=0000000000000002
 r8=ffffd8024abbdc80  r9=0000000000000000 r10=ffffd80241e002c0
r11=ffffd8024aa9bff0 r12=0000000000000000 r13=0000000000000000
r14=0000000000000000 r15=0000000000000000
iopl=0         nv up ei ng nz na pe nc
myfault+0x1981:
fffff800`60da1981 8b03            mov     eax,dword ptr [rbx] ds:00000000`00000000=????????"""


def _trap_lines() -> list[str]:
    base = 0xFFFFF80060DA0000
    code = bytes.fromhex("8b03")

    def read(a, n):
        off = a - (base + 0x1981)
        return code[off : off + n] if 0 <= off < len(code) else b""

    def sym(a):
        return f"myfault+{a - base:#x}" if base <= a < base + 0x10000 else None

    return R.register_block(TRAP_REGS, "x64", trap=True) + disasm.current_instruction_lines(
        read, TRAP_REGS, "x64", sym
    )


def test_trap_block_byte_for_byte():
    assert "\n".join(_trap_lines()) == EXPECTED_TRAP


def test_trap_block_matches_the_walkthrough_text():
    """The walkthrough's copy lost its runs of spaces; compare token by token, line by line."""
    text = corpus_file("reference", "windbg-kernel-dump-walkthrough.txt").read_text(encoding="utf-8")
    start = text.index("2: kd> .trap ffffd48f`77af97e0")
    ref = text[start:].splitlines()[1:12]
    ref[-1] = ref[-1].split("The stack back trace")[0]
    ours = _trap_lines()
    assert [r.split() for r in ref] == [o.split() for o in ours]


def test_full_register_display_has_segments_line():
    regs = dict(TRAP_REGS, cs=0x10, ss=0x18, ds=0x2B, es=0x2B, fs=0x53, gs=0x2B)
    lines = R.register_block(regs, "x64")
    assert lines[0].startswith("rax=")
    assert lines[-1] == "cs=0010  ss=0018  ds=002b  es=002b  fs=0053  gs=002b             efl=00040286"


def test_flags_decoding():
    assert R.flags_text(0x246) == "nv up ei pl zr na pe nc"
    assert R.flags_text(0x202) == "nv up ei pl nz na po nc"
    assert R.flags_text(0x40286) == "nv up ei ng nz na pe nc"
    assert R.flags_text(0xCD5) == "ov dn di ng zr ac pe cy"
    assert R.iopl_flags_line(0x3202) == "iopl=3         nv up ei pl nz na po nc"


def test_x86_layout():
    regs = {"eax": 0, "ebx": 0, "ecx": 0, "edx": 0, "esi": 0, "edi": 0, "eip": 0x77F9F9DF}
    regs.update(esp=0x0012FB2C, ebp=0x0012FB78, efl=0x202, cs=0x1B, ss=0x23, ds=0x23, es=0x23, fs=0x38, gs=0)
    assert R.register_block(regs, "x86") == [
        "eax=00000000 ebx=00000000 ecx=00000000 edx=00000000 esi=00000000 edi=00000000",
        "eip=77f9f9df esp=0012fb2c ebp=0012fb78 iopl=0         nv up ei pl nz na po nc",
        "cs=001b  ss=0023  ds=0023  es=0023  fs=0038  gs=0000             efl=00000202",
    ]


def test_arm64_layout():
    regs = {f"x{i}": i for i in range(29)}
    regs.update(fp=0xFFFF800012345670, lr=0xFFFFF80312345678, sp=0xFFFF800012345600, pc=0xFFFFF803F3A20860)
    regs["cpsr"] = 0x60400005
    lines = R.register_block(regs, "arm64")
    assert len(lines) == 9
    assert (
        lines[0]
        == " x0=0000000000000000    x1=0000000000000001    x2=0000000000000002    x3=0000000000000003"
    )
    assert lines[7].startswith("x28=000000000000001c    fp=ffff800012345670    lr=fffff80312345678")
    assert lines[8] == " pc=fffff803f3a20860  psr=60400005 -ZC- EL1"


def test_single_registers_and_assignment():
    regs = dict(TRAP_REGS, cs=0x10)
    assert R.format_register(regs, "rax") == "rax=00000000c85c00f0"
    assert R.format_register(regs, "eax") == "eax=c85c00f0"
    assert R.format_register(regs, "al") == "al=f0"
    assert R.format_register(regs, "cs") == "cs=0010"
    assert R.format_register(regs, "efl") == "efl=00040286"
    assert R.format_register(regs, "zf") == "zf=0"
    assert R.format_register(regs, "nosuch") is None
    R.set_register(regs, "eax", 0x1234)
    assert regs["rax"] == 0x1234
    R.set_register(regs, "ah", 0xFF)
    assert regs["rax"] == 0xFF34
    R.set_register(regs, "zf", 1)
    assert regs["efl"] == 0x402C6
    R.set_register(regs, "r9", -1)
    assert regs["r9"] == 0xFFFFFFFFFFFFFFFF
