"""ARM64 disassembly on rizin-triage_arm64.dmp: code captured around the crash pc and the return addresses."""

from __future__ import annotations

import re
import struct
import subprocess
import sys

import pytest
from tests.corpus import dump

from bugcheck import disasm

NAME = "rizin-triage_arm64.dmp"
PC = 0xFFFFF803F32DE014  # MANIFEST.md: pc, KeBugCheck2+452
KEBUGCHECK2_OFFSET = 452


@pytest.fixture(scope="module")
def target():
    import bugcheck

    d = bugcheck.open(dump(NAME))
    if getattr(d, "machine", None) != "arm64":
        pytest.skip("dump reader does not report an arm64 machine")
    return d


@pytest.fixture(scope="module")
def read(target):
    def read(address: int, size: int) -> bytes:
        try:
            data, holes = target.read_virtual_padded(address, size)
        except Exception:
            return b""
        if holes:
            return bytes(data[: max(0, holes[0][0] - address)])
        return bytes(data)

    return read


def capstone_reference(word: bytes, address: int):
    """Decode one word with capstone directly (detail mode), independent of the module under test."""
    import capstone

    arch = getattr(capstone, "CS_ARCH_AARCH64", None)
    if arch is None:
        arch = capstone.CS_ARCH_ARM64
    md = capstone.Cs(arch, capstone.CS_MODE_ARM)
    md.detail = True
    insns = list(md.disasm(word, address))
    return insns[0] if insns else None


def test_code_at_the_crash_pc_matches_capstone(target, read):
    assert target.read_virtual(PC, 4)  # the triage dump captured the code page around pc
    insns = disasm.disassemble(read, PC - 8, 6, arch="arm64")
    assert len(insns) == 6
    for ins in insns:
        raw = target.read_virtual(ins.address, 4)
        ref = capstone_reference(raw, ins.address)
        assert ref is not None
        word = struct.unpack("<I", raw)[0]
        text = ins.text()
        assert text.startswith(f"{disasm.hex_addr(ins.address)} {word:08x} "), text
        expected = "b" + ref.mnemonic[2:] if ref.mnemonic.startswith("b.") else ref.mnemonic
        assert ins.mnemonic == expected
        # mnemonic column is eleven wide, then one space
        assert text[27:38].rstrip() == ins.mnemonic
        if ref.mnemonic == "bl":
            # target from the word itself: imm26 sign-extended, times four
            imm26 = word & 0x3FFFFFF
            offset = (imm26 - (1 << 26) if imm26 & (1 << 25) else imm26) * 4
            assert ins.target == (ins.address + offset) & 0xFFFFFFFFFFFFFFFF
            assert ins.target == ref.operands[0].imm & 0xFFFFFFFFFFFFFFFF
            assert ins.operands.endswith(disasm.hex_addr(ins.target))


def test_instruction_before_each_return_address_is_a_call(target, read):
    from bugcheck.commands.session import Session

    s = Session(target)
    (r,) = s.run("k")
    frames = r.data["frames"]
    assert frames[0]["pc"] == PC
    checked = []
    for f in frames:
        ret = f["pc"]  # frame 0's pc is itself a return point: KeBugCheck2 called out and captured context
        before = disasm.disassemble(read, ret - 4, 1, arch="arm64")[0]
        if not before.present:
            continue  # the triage dump holds only some code pages
        assert before.mnemonic in ("bl", "blr"), before.text()
        checked.append((ret, before))
    assert len(checked) >= 2
    # PopPowerButtonWorkCallback+752 returns from a call whose target is KeBugCheck2 itself
    by_ret = dict(checked)
    caller = by_ret.get(frames[1]["pc"])
    assert caller is not None and caller.target == PC - KEBUGCHECK2_OFFSET


def test_ub_and_uf_on_the_dump(read):
    back = disasm.disassemble_back(read, PC, 4, arch="arm64")
    assert [i.address for i in back] == [PC - 16, PC - 12, PC - 8, PC - 4]
    assert back[-1].mnemonic == "bl"
    insns, labels = disasm.disassemble_function(read, PC - KEBUGCHECK2_OFFSET, arch="arm64")
    assert insns and insns[0].address == PC - KEBUGCHECK2_OFFSET
    assert all(i.address % 4 == 0 for i in insns)
    assert PC - KEBUGCHECK2_OFFSET in labels


def test_cli_u_and_r_print_code():
    path = dump(NAME)
    p = subprocess.run(
        [sys.executable, "-m", "bugcheck.cli", "-c", "u @pc L4; r", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = p.stdout + p.stderr
    if "Disassembly is not available for arm64" in out:
        pytest.xfail("commands/disassembly.py still refuses arm64 (_check_arch); see the disasm report")
    lines = re.findall(r"^fffff803`f32de0[0-9a-f]{2} [0-9a-f]{8} \S.*$", out, re.M)
    assert len(lines) >= 4, out
    assert lines[0].startswith("fffff803`f32de014 91010260 add         x0,x19,#0x40")
    # r ends with the current instruction once registers.py asks for it on arm64
    tail = out.rstrip().splitlines()[-1]
    if not tail.startswith("fffff803`f32de014"):
        pytest.xfail("commands/registers.py does not print the arm64 current instruction yet")
