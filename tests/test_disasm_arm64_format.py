"""ARM64 ``u`` lines from hand-assembled words and from published WinDbg output.

The expected lines marked "published" are copied from WinDbg/SOS listings
(Microsoft's Arm64EC ABI page, dotnet/coreclr issue 5778/5780, a dumpanalysis.org
post); the others are words assembled by hand from the ARM ARM encodings and
check the decisions documented in :mod:`bugcheck.disasm_arm64`.
"""

from __future__ import annotations

import re
import struct

import pytest

from bugcheck import disasm
from bugcheck.disasm_arm64 import decode_one, imm_text


def line(address: int, word: int, symbolize=None) -> str:
    return decode_one(struct.pack("<I", word), address, symbolize).text()


@pytest.mark.parametrize(
    "address,word,expected",
    [
        # Microsoft Learn, "Understanding Arm64EC ABI and assembly code" (kernelbase!GetMachineTypeAttributes)
        (0x180243810, 0xD503237F, "00000001`80243810 d503237f pacibsp"),
        (0x180243814, 0xA9BC7BFD, "00000001`80243814 a9bc7bfd stp         fp,lr,[sp,#-0x40]!"),
        (0x180243818, 0xA90153F3, "00000001`80243818 a90153f3 stp         x19,x20,[sp,#0x10]"),
        (0x18024381C, 0xA9025BF5, "00000001`8024381c a9025bf5 stp         x21,x22,[sp,#0x20]"),
        (0x180243820, 0xF9001BF9, "00000001`80243820 f9001bf9 str         x25,[sp,#0x30]"),
        (0x180243824, 0x910003FD, "00000001`80243824 910003fd mov         fp,sp"),
        (0x18024382C, 0xD10083FF, "00000001`8024382c d10083ff sub         sp,sp,#0x20"),
        # dotnet/coreclr issues 5778/5780 (SOS !u prints the debugger engine's disassembly)
        (0x7FF84862E698, 0xAA1503E0, "00007ff8`4862e698 aa1503e0 mov         x0,x21"),
        (0x7FF84862E6A0, 0x7100001F, "00007ff8`4862e6a0 7100001f cmp         w0,#0"),
        (0x7FF84862E654, 0x2A1F03E1, "00007ff8`4862e654 2a1f03e1 mov         w1,wzr"),
        (0x7FF84862E658, 0x52800020, "00007ff8`4862e658 52800020 mov         w0,#1"),
        (0x7FF84862E65C, 0xF94017A9, "00007ff8`4862e65c f94017a9 ldr         x9,[fp,#0x28]"),
        (0x7FF84862E660, 0x9100A129, "00007ff8`4862e660 9100a129 add         x9,x9,#0x28"),
        (0x7FF84862E664, 0x39000120, "00007ff8`4862e664 39000120 strb        w0,[x9]"),
        (0x7FF84862E668, 0x39000521, "00007ff8`4862e668 39000521 strb        w1,[x9,#1]"),
        (0x7FF84862E688, 0xD2861D01, "00007ff8`4862e688 d2861d01 mov         x1,#0x30E8"),
        (0x7FF84862E68C, 0xF2AE0121, "00007ff8`4862e68c f2ae0121 movk        x1,#0x7009 lsl #0x10"),
        (0x7FF84862E690, 0xF2C03FC1, "00007ff8`4862e690 f2c03fc1 movk        x1,#0x1FE lsl #0x20"),
        (0x7FF84862E694, 0xF9400021, "00007ff8`4862e694 f9400021 ldr         x1,[x1]"),
        # dumpanalysis.org, Crash Dump Analysis Patterns (Part 302)
        (0x7FF7D061AFDC, 0xF9533F69, "00007ff7`d061afdc f9533f69 ldr         x9,[x27,#0x2678]"),
        (0x7FF7D061AFE0, 0xD2800028, "00007ff7`d061afe0 d2800028 mov         x8,#1"),
        (0x7FF7D061AFE4, 0xF9000128, "00007ff7`d061afe4 f9000128 str         x8,[x9]"),
    ],
)
def test_published_windbg_lines(address, word, expected):
    assert line(address, word) == expected


def test_published_bl_with_symbol():
    # dotnet/coreclr issue 5780: the target is named, then given in parentheses
    name = "System.String.Equals(System.String, System.String)"

    def sym(a):
        return name if a == 0x7FF848623958 else None

    assert line(0x7FF84862E69C, 0x97FFD4AF, sym) == (
        f"00007ff8`4862e69c 97ffd4af bl          {name} (00007ff8`48623958)"
    )


A = 0xFFFFF803F32DE000


def test_hand_assembled_words():
    # RET (X30): 1101011 0010 11111 000000 11110 00000
    assert line(A, 0xD65F03C0) == "fffff803`f32de000 d65f03c0 ret"
    # STP X29,X30,[SP,#-16]! : opc=10 101 0 011 L=0 imm7=-2 Rt2=30 Rn=31 Rt=29
    assert line(A, 0xA9BF7BFD) == "fffff803`f32de000 a9bf7bfd stp         fp,lr,[sp,#-0x10]!"
    # LDP X29,X30,[SP],#16 (post-index)
    assert line(A, 0xA8C17BFD) == "fffff803`f32de000 a8c17bfd ldp         fp,lr,[sp],#0x10"
    # BLR X16
    assert line(A, 0xD63F0200) == "fffff803`f32de000 d63f0200 blr         x16"
    # BR X17
    assert line(A, 0xD61F0220) == "fffff803`f32de000 d61f0220 br          x17"
    # ADD X0,X20,X19,LSL #2: the shift joins its register with a space
    assert line(A, 0x8B130A80) == "fffff803`f32de000 8b130a80 add         x0,x20,x19 lsl #2"
    # LDR W8,[X9,X8,LSL #2]
    assert line(A, 0xB8687928) == "fffff803`f32de000 b8687928 ldr         w8,[x9,x8 lsl #2]"
    # STUR X1,[X29,#-0x30]
    assert line(A, 0xF81D03A1) == "fffff803`f32de000 f81d03a1 stur        x1,[fp,#-0x30]"
    # MOVN W0,#0 -> mov w0,#-1
    assert line(A, 0x12800000) == "fffff803`f32de000 12800000 mov         w0,#-1"
    # BRK #0xF003 (__fastfail)
    assert line(A, 0xD43E0060) == "fffff803`f32de000 d43e0060 brk         #0xF003"


@pytest.mark.parametrize("imm26", [0, 1, 0x10, 0x1FFFFFF, 0x2000000, 0x3FFFFFF, 0x3F4AA6C])
def test_bl_target_arithmetic(imm26):
    word = 0x94000000 | imm26
    offset = (imm26 - (1 << 26) if imm26 & (1 << 25) else imm26) * 4
    target = (A + offset) & 0xFFFFFFFFFFFFFFFF
    ins = decode_one(struct.pack("<I", word), A)
    assert ins.mnemonic == "bl" and ins.flow == "call"
    assert ins.target == target
    assert ins.operands == disasm.hex_addr(target)
    named = decode_one(struct.pack("<I", word), A, lambda a: "nt!KeBugCheck2" if a == target else None)
    assert (
        named.text() == f"fffff803`f32de000 {word:08x} bl          nt!KeBugCheck2 ({disasm.hex_addr(target)})"
    )


def test_conditional_and_compare_branches():
    # B.NE +8 (imm19=2, cond=0001): the Microsoft spelling drops the dot
    ins = decode_one(struct.pack("<I", 0x54000041), A)
    assert ins.text() == "fffff803`f32de000 54000041 bne         fffff803`f32de008"
    assert ins.flow == "conditional_branch" and ins.target == A + 8
    # CBZ X1,-4 (imm19 = 0x7FFFF)
    ins = decode_one(struct.pack("<I", 0xB4FFFFE1), A)
    assert ins.mnemonic == "cbz" and ins.operands == "x1,fffff803`f32ddffc" and ins.target == A - 4
    # TBNZ W8,#0,+12
    ins = decode_one(struct.pack("<I", 0x37000068), A)
    assert ins.operands == "w8,#0,fffff803`f32de00c"
    # B -0x100 (imm26 negative): unconditional
    ins = decode_one(struct.pack("<I", 0x17FFFFC0), A)
    assert ins.mnemonic == "b" and ins.flow == "unconditional_branch" and ins.target == A - 0x100


def test_pc_relative_data_is_symbolized():
    # ADRP X8,+0x1000 pages: immlo=0 immhi=1 -> page of A + 0x1000
    ins = decode_one(struct.pack("<I", 0xB0000008), A, lambda a: "nt!KiData" if a == A + 0x1000 else None)
    assert ins.text() == "fffff803`f32de000 b0000008 adrp        x8,nt!KiData (fffff803`f32df000)"
    # LDR X3,literal +0x30
    ins = decode_one(struct.pack("<I", 0x58000183), A)
    assert ins.operands == "x3,fffff803`f32de030"


def test_immediates():
    assert [imm_text(v) for v in (0, 9, 10, 0x10, 0x1FE, -1, -9, -10, -0x40)] == [
        "#0",
        "#9",
        "#0xA",
        "#0x10",
        "#0x1FE",
        "#-1",
        "#-9",
        "#-0xA",
        "#-0x40",
    ]


def test_flow_kinds():
    kinds = {
        0xD65F03C0: "return",
        0x94000001: "call",
        0xD63F0200: "indirect_call",
        0xD61F0220: "indirect_branch",
        0x14000001: "unconditional_branch",
        0xD43E0060: "exception",  # brk #0xF003
        0xD43E0000: "interrupt",  # brk #0xF000 (debug break)
        0x910003FD: "next",
    }
    for word, kind in kinds.items():
        assert decode_one(struct.pack("<I", word), A).flow == kind, hex(word)


def test_absent_and_undefined():
    absent = decode_one(b"", A)
    assert not absent.present and absent.text() == "fffff803`f32de000 ??       ???"
    short = decode_one(b"\xc0\x03", A)
    assert not short.present
    bad = decode_one(b"\xff\xff\xff\xff", A)
    assert bad.present and bad.text() == "fffff803`f32de000 ffffffff ???"


def _memory(base: int, words: list[int]):
    blob = b"".join(struct.pack("<I", w) for w in words)

    def read(address: int, size: int) -> bytes:
        if not base <= address < base + len(blob):
            return b""
        off = address - base
        return blob[off : off + size]

    return read


FUNC = [
    0xA9BF7BFD,  # stp fp,lr,[sp,#-0x10]!
    0x910003FD,  # mov fp,sp
    0xB4000061,  # cbz x1,+12
    0x94000010,  # bl +0x40
    0x14000002,  # b +8
    0xD2800000,  # mov x0,#0          (target of cbz)
    0xA8C17BFD,  # ldp fp,lr,[sp],#0x10  (target of b)
    0xD65F03C0,  # ret
    0xD43E0060,  # brk #0xF003 (never reached)
]


def test_u_ub_uf_through_the_shared_entry_points():
    read = _memory(A, FUNC)
    insns = disasm.disassemble(read, A, 3, arch="arm64")
    assert [i.mnemonic for i in insns] == ["stp", "mov", "cbz"]
    # u runs into absent memory: ?? lines, not an exception
    tail = disasm.disassemble(read, A + 4 * (len(FUNC) - 1), 3, arch="arm64")
    assert [i.present for i in tail] == [True, False, False]
    assert tail[1].text().endswith("??       ???")
    # u with an end address
    assert len(disasm.disassemble(read, A, 0, arch="arm64", end=A + 0x10)) == 4
    back = disasm.disassemble_back(read, A + 0x10, 3, arch="arm64")
    assert [i.address for i in back] == [A + 4, A + 8, A + 0xC]
    # nothing present below the function: ub gives what is there
    assert [i.address for i in disasm.disassemble_back(read, A + 4, 4, arch="arm64")] == [A]
    insns, labels = disasm.disassemble_function(read, A, arch="arm64")
    assert [i.address for i in insns] == [A + 4 * k for k in range(8)]
    assert labels == {A, A + 0xC, A + 0x14, A + 0x18}
    lines = disasm.render(insns, lambda a: "drv!F" if a == A else None, 8, labels)
    assert lines[0] == "drv!F:" and lines[1].startswith("fffff803`f32de000 a9bf7bfd stp ")


def test_current_instruction_line_uses_pc():
    read = _memory(A, FUNC)
    lines = disasm.current_instruction_lines(read, {"pc": A + 4, "x0": 1}, "arm64", lambda a: "drv!F+0x4")
    assert lines == ["drv!F+0x4:", "fffff803`f32de004 910003fd mov         fp,sp"]
    assert disasm.current_instruction_lines(read, {"x0": 1}, "arm64") == []


def test_any_word_gives_one_well_formed_line():
    import random

    rng = random.Random(20260524)
    shape = re.compile(r"^fffff803`f32de000 [0-9a-f]{8} (\S+)( +\S.*)?$")
    for _ in range(5000):
        word = rng.getrandbits(32)
        ins = decode_one(struct.pack("<I", word), A)
        m = shape.match(ins.text())
        assert m, (hex(word), ins.text())
        assert ", " not in ins.operands and not re.search(r"\bx(29|30)\b", ins.operands)
        assert not ins.mnemonic.startswith("b.")
        if ins.target is not None:
            assert ins.operands.endswith(disasm.hex_addr(ins.target))
