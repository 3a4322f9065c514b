"""WinDbg's disassembly line format, checked on known instruction bytes."""

from __future__ import annotations

import glob

import pytest
from tests.corpus import corpus_file

from bugcheck import disasm

BASE = 0xFFFFF80060DA0000


def mem(code: bytes, at: int):
    """A reader over one block of bytes; everything else is absent."""

    def read(address: int, size: int) -> bytes:
        off = address - at
        if 0 <= off < len(code):
            return code[off : off + size]
        return b""

    return read


def myfault(address: int) -> str | None:
    if BASE <= address < BASE + 0x10000:
        return f"myfault+{address - BASE:#x}"
    if address == 0xFFFFF80062A00E70:
        return "nt!KeBugCheckEx"
    if address == 0xFFFFF80062B2A440:
        return "nt!KiInitialThread"
    return None


def line(code: str, at: int = BASE + 0x1981, **kw) -> str:
    raw = bytes.fromhex(code)
    ins = disasm.decode_one(raw, at, kw.pop("bitness", 64), kw.pop("symbolize", myfault), **kw)
    return ins.text(8 if "pointer_size" not in kw else kw["pointer_size"])


def test_walkthrough_faulting_instruction_with_absent_memory():
    regs = {"rip": BASE + 0x1981, "rbx": 0}
    code = bytes.fromhex("8b03")
    lines = disasm.current_instruction_lines(mem(code, BASE + 0x1981), regs, "x64", myfault)
    assert lines == [
        "myfault+0x1981:",
        "fffff800`60da1981 8b03            mov     eax,dword ptr [rbx] ds:00000000`00000000=????????",
    ]


def test_stack_operand_shows_selector_and_qword_value():
    rsp = 0xFFFFF88002F9BA48
    regs = {"rip": 0xFFFFF80002879F00, "rsp": rsp, "ss": 0x18, "ds": 0}
    code = bytes.fromhex("48894c2408")
    stack = (0xA).to_bytes(8, "little")

    def read(a, n):
        if a == rsp + 8:
            return stack[:n]
        return mem(code, 0xFFFFF80002879F00)(a, n)

    ins = disasm.decode_one(code, 0xFFFFF80002879F00, 64, None, regs, read)
    assert ins.text() == (
        "fffff800`02879f00 48894c2408      mov     qword ptr [rsp+8],rcx ss:0018:fffff880`02f9ba50=000000000000000a"
    )


@pytest.mark.parametrize(
    "code,text",
    [
        ("4883ec28", "sub     rsp,28h"),
        ("b8ffffffff", "mov     eax,0FFFFFFFFh"),
        ("b901000000", "mov     ecx,1"),
        (
            "65488b042588010000",
            "mov   rax,qword ptr gs:[188h]",
        ),  # kd shrinks the padding (published kd output)
        ("488b4c24f0", "mov     rcx,qword ptr [rsp-10h]"),
        ("8b0c81", "mov     ecx,dword ptr [rcx+rax*4]"),
        ("f0480fb10a", "lock cmpxchg qword ptr [rdx],rcx"),
        ("f3aa", "rep stos byte ptr [rdi]"),
        ("f348a5", "rep movs qword ptr [rdi],qword ptr [rsi]"),
        ("cc", "int     3"),
        ("c3", "ret"),
        ("0f1f440000", "nop     dword ptr [rax+rax]"),
    ],
)
def test_operand_spelling(code, text):
    got = line(code)
    raw_end = len("fffff800`60da1981 ") + max(16, len(code) + 1)
    assert got[raw_end:] == text


def test_byte_column_is_padded_to_sixteen():
    assert line("c3") == "fffff800`60da1981 c3              ret"
    # longer encodings eat into the mnemonic's padding, as kd does (published kd output:
    # "65488b0c2520000000 mov   rcx,qword ptr gs:[20h]"), leaving at least one blank
    assert line("65488b042588010000").startswith("fffff800`60da1981 65488b042588010000 mov   rax")


def test_call_and_jump_targets_are_symbolized():
    at = BASE + 0x1981
    rel = (0xFFFFF80062A00E70 - (at + 5)) & 0xFFFFFFFF
    assert line("e8" + rel.to_bytes(4, "little").hex(), at).endswith(
        "call    nt!KeBugCheckEx (fffff800`62a00e70)"
    )
    assert line("eb0d", at).endswith("jmp     myfault+0x1990 (fffff800`60da1990)")
    assert line("740d", at).endswith("je      myfault+0x1990 (fffff800`60da1990)")


def test_unsymbolized_target_is_a_bare_address():
    assert line("eb0d", 0x7FF6_12340000, symbolize=lambda a: None).endswith("jmp     00007ff6`1234000f")


def test_rip_relative_operands_are_symbolized():
    at = BASE + 0x1981
    disp = (0xFFFFF80062B2A440 - (at + 7)) & 0xFFFFFFFF
    text = line("488b05" + disp.to_bytes(4, "little").hex(), at)
    assert text.endswith("mov     rax,qword ptr [nt!KiInitialThread (fffff800`62b2a440)]")
    text = line("488d0d" + (0x100).to_bytes(4, "little").hex(), at, symbolize=lambda a: None)
    assert text.endswith("lea     rcx,[fffff800`60da1a88]")


def test_absent_code_bytes():
    insns = disasm.disassemble(lambda a, n: b"", BASE + 0x1981, 2, "x64", myfault)
    assert disasm.render(insns, myfault) == [
        "myfault+0x1981:",
        "fffff800`60da1981 ??              ???",
        "fffff800`60da1982 ??              ???",
    ]


def test_x86_layout_and_stack_selector():
    regs = {"eip": 0x80545A3C, "ebp": 0xF78CEC40, "ss": 0x10}
    code = bytes.fromhex("8b4508")
    ins = disasm.decode_one(
        code, 0x80545A3C, 32, None, regs, lambda a, n: b"\0" * n if a == 0xF78CEC48 else b""
    )
    assert ins.text(4) == "80545a3c 8b4508          mov     eax,dword ptr [ebp+8] ss:0010:f78cec48=00000000"
    s = disasm.decode_one(bytes.fromhex("f3a5"), 0x80545A3C, 32).text(4)
    assert s.endswith("rep movs dword ptr es:[edi],dword ptr [esi]")


def test_symbol_lines_appear_where_a_symbol_starts():
    at = 0xFFFFF80062A00E6F
    code = bytes.fromhex("c3" + "48894c2408")
    names = {at: "nt!Prev+0x1f", at + 1: "nt!KeBugCheckEx", at + 6: "nt!KeBugCheckEx+0x5"}
    insns = disasm.disassemble(mem(code, at), at, 2, "x64", names.get)
    assert disasm.render(insns, names.get) == [
        "nt!Prev+0x1f:",
        "fffff800`62a00e6f c3              ret",
        "nt!KeBugCheckEx:",
        "fffff800`62a00e70 48894c2408      mov     qword ptr [rsp+8],rcx",
    ]


def test_ub_lands_exactly_on_the_address():
    # sub rsp,28h ; mov ecx,1 ; xor eax,eax ; call $+5 ; <target>
    code = bytes.fromhex("4883ec28" + "b901000000" + "33c0" + "e800000000" + "c3")
    at = BASE + 0x1000
    target = at + len(code) - 1
    insns = disasm.disassemble_back(mem(code, at), target, 3, "x64", myfault)
    assert [i.mnemonic for i in insns] == ["mov", "xor", "call"]
    assert insns[-1].address + insns[-1].size == target
    insns = disasm.disassemble_back(mem(code, at), target, 4, "x64", myfault, function_start=at)
    assert insns[0].address == at and insns[0].mnemonic == "sub"


def test_uf_orders_blocks_and_labels_targets():
    # test ecx,ecx ; je +3 ; mov eax,1 ; ret(target) -- the je lands on ret
    code = bytes.fromhex("85c9" + "7405" + "b801000000" + "c3" + "cccc")
    at = BASE + 0x2000
    insns, labels = disasm.disassemble_function(mem(code, at), at, "x64", myfault)
    assert [i.mnemonic for i in insns] == ["test", "je", "mov", "ret"]
    assert at + 9 in labels and at + 4 in labels
    text = disasm.render(insns, myfault, 8, labels)
    assert text[0] == "myfault+0x2000:"
    assert "myfault+0x2009:" in text and text[-1].endswith("ret")


def test_uf_respects_a_function_range():
    code = bytes.fromhex("eb00" + "c3")
    at = BASE + 0x3000
    insns, _ = disasm.disassemble_function(mem(code, at), at, "x64", None, lambda a: (at, at + 2))
    assert [i.address for i in insns] == [at]


def test_real_driver_functions_decode_to_their_pdata_ends():
    from bugcheck.symbols.pe.image import PeImage

    root = corpus_file("symstore", "amdppm.sys")
    paths = glob.glob(str(root / "*" / "amdppm.sys"))
    if not paths:
        pytest.skip("amdppm.sys missing from the corpus slice")
    img = PeImage.from_file(paths[0])
    funcs = img.runtime_functions
    assert len(funcs) > 100
    for f in funcs[:200]:
        code = img.read(f.begin, f.end - f.begin)
        insns = disasm.disassemble(mem(code, f.begin), f.begin, 100_000, "x64", None, None, f.end)
        assert all(i.mnemonic != "???" for i in insns), hex(f.begin)
        assert insns[-1].address + insns[-1].size == f.end
    first = funcs[0]
    code = img.read(first.begin, 32)
    lines = disasm.render(disasm.disassemble(mem(code, first.begin), first.begin, 2, "x64", None), None)
    assert lines[0] == "00000000`00001008 48ba0000000000400000 mov rdx,400000000000h"  # kd: padding shrinks
    assert lines[1] == "00000000`00001012 4885155f200100  test    qword ptr [00000000`00013078],rdx"


def test_x86_absolute_operands():
    names = {0x80553000: "nt!KeTickCount"}.get

    def x86(code):
        return disasm.decode_one(bytes.fromhex(code), 0x80500000, 32, names).text(4)

    assert x86("a100305580") == "80500000 a100305580      mov     eax,dword ptr [nt!KeTickCount (80553000)]"
    assert x86("ff1500305580").endswith("call    dword ptr [nt!KeTickCount (80553000)]")
    assert x86("64a124010000").endswith("mov     eax,dword ptr fs:[00000124h]")
    assert x86("8b0d24f1dfff").endswith("mov     ecx,dword ptr ds:[FFDFF124h]")
    assert x86("e8fbffffff").endswith("call    80500000")


def test_ub_steps_over_undecodable_bytes_and_absent_memory():
    # 0x06 is invalid in 64-bit mode; kd shows it as ??? and keeps going
    code = bytes.fromhex("06" + "33c0" + "c3")
    at = BASE + 0x4000
    insns = disasm.disassemble_back(mem(code, at), at + 4, 3, "x64", None)
    assert [i.mnemonic for i in insns] == ["???", "xor", "ret"]
    # nothing readable below the address: nothing to show
    assert disasm.disassemble_back(lambda a, n: b"", at, 4, "x64", None) == []


def test_instruction_cut_by_absent_memory_reads_as_absent():
    cut = disasm.decode_one(bytes.fromhex("4889"), 0x1000, 64)
    assert cut.text() == "00000000`00001000 ??              ???"
    bad = disasm.decode_one(bytes.fromhex("06") + b"\x90" * 14, 0x1000, 64)
    assert bad.text() == "00000000`00001000 06              ???"
