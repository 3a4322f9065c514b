"""Unwind clang-built functions at every instruction, against a tiny emulator.

tests/native_unwind/funcs.s holds hand-written functions whose unwind data
clang encodes from ``.seh`` directives (pushes, small/large/huge allocations,
frame pointer with dynamic allocation, saves near and far, xmm saves, tail
call, chained info, machine frames).  Each function runs from its entry on an
emulated stack; before every instruction the unwinder must recover the
caller's RIP/RSP and every nonvolatile register.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import iced_x86 as ix
import pytest

from bugcheck.errors import MemoryNotPresent
from bugcheck.stack.unwind_x64 import ImageLookup, virtual_unwind
from bugcheck.symbols.pe import GPR_NAMES, PeImage

HERE = Path(__file__).resolve().parent / "native_unwind"
RET = 0x00007FF6_12340ABC
S0 = 0x0000_00E5_7FFF_0F48  # rsp at entry (as after a call: 8 mod 16)
OLD_RSP = 0x0000_00E5_7FFF_8000
NONVOL = ("rbx", "rbp", "rsi", "rdi", "r12", "r13", "r14", "r15", "xmm6", "xmm7")
REG = {getattr(ix.Register, n.upper()): n for n in GPR_NAMES}
REG.update({getattr(ix.Register, f"XMM{i}"): f"xmm{i}" for i in range(16)})


@pytest.fixture(scope="module")
def dll(tmp_path_factory):
    if not (shutil.which("clang-19") and shutil.which("lld-link-19")):
        pytest.skip("clang-19 / lld-link-19 not installed")
    out = tmp_path_factory.mktemp("native")
    subprocess.run(["sh", str(HERE / "build.sh"), str(out)], check=True, capture_output=True, timeout=120)
    return PeImage.from_file(out / "funcs.dll")


class Machine:
    """Just enough x64 to run prologs, bodies and epilogs of funcs.s."""

    def __init__(self, regs, mem):
        self.regs, self.mem = regs, mem

    def read(self, va: int, n: int) -> bytes:
        try:
            return bytes(self.mem[va + i] for i in range(n))
        except KeyError:
            raise MemoryNotPresent(va) from None

    def store(self, va: int, value: int, n: int) -> None:
        for i, b in enumerate(value.to_bytes(n, "little")):
            self.mem[va + i] = b

    def load(self, va: int, n: int) -> int:
        return int.from_bytes(self.read(va, n), "little")

    def ea(self, ins) -> int:
        return self.regs[REG[ins.memory_base]] + ins.memory_displacement

    def step(self, ins) -> bool:
        """Execute ``ins``; False when control leaves the function (ret, jmp, int3)."""
        r, m = self.regs, ix.Mnemonic
        mn = ins.mnemonic
        if mn == m.PUSH:
            r["rsp"] -= 8
            self.store(r["rsp"], r[REG[ins.op0_register]], 8)
        elif mn == m.POP:
            r[REG[ins.op0_register]] = self.load(r["rsp"], 8)
            r["rsp"] += 8
        elif mn in (m.SUB, m.ADD) and ins.op0_register == ix.Register.RSP:
            r["rsp"] += -ins.immediate(1) if mn == m.SUB else ins.immediate(1)
        elif mn == m.LEA:
            r[REG[ins.op0_register]] = self.ea(ins)
        elif mn == m.MOV and ins.op0_kind == ix.OpKind.MEMORY:
            self.store(self.ea(ins), r[REG[ins.op1_register]], 8)
        elif mn == m.MOV and ins.op1_kind == ix.OpKind.MEMORY:
            r[REG[ins.op0_register]] = self.load(self.ea(ins), 8)
        elif mn == m.MOV:
            r[REG[ins.op0_register]] = ins.immediate(1)
        elif mn == m.MOVAPS and ins.op0_kind == ix.OpKind.MEMORY:
            self.store(self.ea(ins), r[REG[ins.op1_register]], 16)
        elif mn == m.MOVAPS:
            r[REG[ins.op0_register]] = self.load(self.ea(ins), 16)
        elif mn == m.XORPS and ins.op0_register == ins.op1_register:
            r[REG[ins.op0_register]] = 0
        elif mn == m.NOP:
            pass
        elif mn in (m.RET, m.JMP, m.INT3):
            return False
        else:
            raise AssertionError(f"emulator does not know {ins}")
        r["rip"] = ins.next_ip
        return True


def _initial():
    regs = {n: 0x1000_0000_0000 + 0x1111 * (i + 1) for i, n in enumerate(GPR_NAMES)}
    regs["xmm6"] = 0x66666666_66666666_06060606_06060606
    regs["xmm7"] = 0x77777777_77777777_07070707_07070707
    return regs


def _run(dll, name, setup, expect, skip=lambda ip: False):
    base = dll.image_base
    rva = next(e.rva for e in dll.exports if e.name == name)
    func = dll.lookup_function(rva)
    code = dll.read(rva, 0x200)
    init = _initial()
    regs = dict(init, rip=base + rva, rsp=S0)
    m = Machine(regs, {})
    setup(m)
    lookup = ImageLookup([(base, dll)])
    checked = 0
    for ins in ix.Decoder(64, code, ip=base + rva):
        if not func.contains(ins.ip - base) and dll.lookup_function(ins.ip - base) is None:
            break
        if not skip(ins.ip):
            res = virtual_unwind(dict(m.regs), m.read, lookup, read_code=lookup.read_code)
            expect(res, init, ins)
            checked += 1
        if not m.step(ins):
            break
    return checked


def _call_frame(m):
    m.store(S0, RET, 8)


def _returns_to_caller(res, init, ins):
    ctx = res.context
    assert (hex(ctx["rip"]), hex(ctx["rsp"])) == (hex(RET), hex(S0 + 8)), f"at {ins.ip:#x} {ins}"
    for n in NONVOL:
        assert ctx[n] == init[n], f"{n} wrong after unwinding at {ins.ip:#x} {ins}"


@pytest.mark.parametrize("name", ["f_push", "f_frame", "f_large", "f_huge", "f_tail"])
def test_unwind_at_every_instruction(dll, name):
    assert _run(dll, name, _call_frame, _returns_to_caller) >= 6


def test_codes_cover_every_kind(dll):
    ops = set()
    for f in dll.runtime_functions:
        ui = dll.unwind_info(f)
        ops |= {(c.op, c.info if c.op in (1, 10) else 0) for c in ui.codes}
    assert ops >= {(0, 0), (1, 0), (1, 1), (2, 0), (3, 0), (4, 0), (5, 0), (8, 0), (9, 0), (10, 0), (10, 1)}
    assert any(dll.unwind_info(f).chained for f in dll.runtime_functions)


def test_epilog_and_tail_call_are_detected(dll):
    base = dll.image_base
    methods = {}

    def record(res, init, ins):
        _returns_to_caller(res, init, ins)
        methods[ins.ip] = (str(ins), res.method)

    _run(dll, "f_tail", _call_frame, record)
    _run(dll, "f_frame", _call_frame, record)
    by_text = {t: meth for t, meth in methods.values()}
    assert by_text["ret"] == "epilog"
    assert by_text["lea rsp,[rbp+20h]"] == "epilog"
    assert any(t.startswith("jmp") and meth == "epilog" for t, meth in methods.values())
    assert by_text["nop"] == "pdata"
    assert base


def test_chained_fragment(dll):
    base = dll.image_base
    rva = next(e.rva for e in dll.exports if e.name == "f_chain")
    parent = dll.lookup_function(rva)
    child = next(f for f in dll.runtime_functions if dll.unwind_info(f).chained == parent)
    body_nop = next(
        i.ip for i in ix.Decoder(64, dll.read(child.begin, child.end - child.begin), ip=base + child.begin)
        if i.mnemonic == ix.Mnemonic.NOP
    )  # fmt: skip

    # The child's own teardown (add rsp / pop r12) ends no function: no RtlVirtualUnwind-style
    # unwinder can describe it from these codes, so those two instructions are not checked.
    def skip(ip):
        return body_nop < ip < base + child.end

    assert _run(dll, "f_chain", _call_frame, _returns_to_caller, skip) >= 10


@pytest.mark.parametrize("name, errcode", [("f_machframe", False), ("f_machframe_code", True)])
def test_machine_frame(dll, name, errcode):
    def setup(m):
        at = S0
        if errcode:
            m.store(at, 0xE0, 8)
            at += 8
        for i, v in enumerate((RET, 0x10, 0x246, OLD_RSP, 0x18)):
            m.store(at + 8 * i, v, 8)

    def expect(res, init, ins):
        ctx = res.context
        assert (hex(ctx["rip"]), hex(ctx["rsp"])) == (hex(RET), hex(OLD_RSP)), f"at {ins}"
        assert res.method == "machframe"
        assert (ctx["cs"], ctx["efl"], ctx["ss"]) == (0x10, 0x246, 0x18)
        assert ctx["rax"] == init["rax"]

    assert _run(dll, name, setup, expect) >= 2


def test_leaf_without_pdata(dll):
    m = Machine({"rip": 0x1234, "rsp": S0}, {})
    m.store(S0, RET, 8)
    res = virtual_unwind(m.regs, m.read, ImageLookup([(dll.image_base, dll)]))
    assert res.method == "leaf" and res.context["rip"] == RET and res.context["rsp"] == S0 + 8


@pytest.mark.skipif(shutil.which("llvm-readobj") is None, reason="llvm-readobj not installed")
def test_exports_agree_with_llvm_readobj(dll):
    import re

    out = subprocess.run(
        ["llvm-readobj", "--coff-exports", dll.path], capture_output=True, text=True, timeout=60
    )
    ref = {
        int(o): (n or None, int(r, 16))
        for o, n, r in re.findall(r"Ordinal: (\d+)\n\s+Name: (\S*)\n\s+RVA: (0x[0-9A-F]+)", out.stdout)
    }
    ours = {e.ordinal: e for e in dll.exports}
    assert set(ours) == set(ref)
    for ordinal, (name, rva) in ref.items():
        e = ours[ordinal]
        assert e.name == name
        if e.forwarder:
            assert e.rva == 0 and e.forwarder == "ntdll.RtlUnwind" and name == "Forwarded"
            assert dll.read(rva, len(e.forwarder)) == e.forwarder.encode()
        else:
            assert e.rva == rva
    assert ours[40].name is None and ours[40].rva == next(x.rva for x in dll.exports if x.name == "f_large")
