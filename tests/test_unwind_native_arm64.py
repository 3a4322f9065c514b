"""ARM64 unwinding of clang-built functions at every instruction, against a tiny emulator.

tests/native_unwind/funcs_arm64.s: packed forms (CR=3 chained, CR=1 lr pair,
FP saves) and full .xdata (save_next, set_fp with dynamic allocation, alloc_l,
single-register pre-indexed saves, a machine frame).  Before each instruction
the unwinder must recover the caller's PC/SP and every nonvolatile register.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bugcheck.errors import MemoryNotPresent
from bugcheck.stack.unwind_arm64 import ImageLookup, virtual_unwind
from bugcheck.symbols.pe import PeImage

HERE = Path(__file__).resolve().parent / "native_unwind"
RET = 0xFFFFF803_F3A2_0860
S0 = 0xFFFFE00E_0E4B_C4A0
NONVOL = [f"x{i}" for i in range(19, 29)] + ["fp"] + [f"d{i}" for i in range(8, 16)]


@pytest.fixture(scope="module")
def dll(tmp_path_factory):
    if not (shutil.which("clang-19") and shutil.which("lld-link-19")):
        pytest.skip("clang-19 / lld-link-19 not installed")
    out = tmp_path_factory.mktemp("native_arm64")
    subprocess.run(
        ["sh", str(HERE / "build_arm64.sh"), str(out)], check=True, capture_output=True, timeout=120
    )
    return PeImage.from_file(out / "funcs_arm64.dll")


def _sx(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


class Machine:
    """The few A64 encodings funcs_arm64.s uses: stp/ldp, str/ldr, add/sub imm, movz, nop, ret, brk."""

    def __init__(self, regs):
        self.regs, self.mem = regs, {}

    def read(self, va: int, n: int) -> bytes:
        try:
            return bytes(self.mem[va + i] for i in range(n))
        except KeyError:
            raise MemoryNotPresent(va) from None

    def _name(self, r: int, fp: bool, sp31: bool = False) -> str:
        if fp:
            return f"d{r}"
        return {29: "fp", 30: "lr", 31: "sp" if sp31 else "xzr"}.get(r, f"x{r}")

    def _st(self, va, name):
        for i, b in enumerate((self.regs.get(name, 0) & (1 << 64) - 1).to_bytes(8, "little")):
            self.mem[va + i] = b

    def _ld(self, va, name):
        self.regs[name] = int.from_bytes(self.read(va, 8), "little")

    def step(self, w: int) -> bool:
        r = self.regs
        r_pc = r["pc"]
        if w in (0xD65F03C0,) or w >> 21 == 0x6A1:  # ret, brk
            return False
        if w == 0xD503201F:  # nop
            pass
        elif (w >> 27) & 7 == 0b101 and (w >> 30) in (1, 2):  # stp/ldp, 64-bit X or D
            fp = bool(w >> 26 & 1)
            mode, load = (w >> 23) & 7, w >> 22 & 1
            imm = _sx((w >> 15) & 0x7F, 7) * 8
            rt, rt2, rn = w & 31, (w >> 10) & 31, (w >> 5) & 31
            base = r[self._name(rn, False, True)]
            addr = base + imm if mode in (2, 3) else base
            for i, reg in enumerate((rt, rt2)):
                (self._ld if load else self._st)(addr + 8 * i, self._name(reg, fp))
            if mode in (1, 3):
                r[self._name(rn, False, True)] = base + imm
        elif (w >> 27) & 7 == 0b111 and w >> 30 == 3:  # ldr/str 64-bit X or D
            fp = bool(w >> 26 & 1)
            load = (w >> 22) & 3 == 1
            rt, rn = w & 31, (w >> 5) & 31
            base = r[self._name(rn, False, True)]
            if (w >> 24) & 3 == 1:
                addr, wb = base + ((w >> 10) & 0xFFF) * 8, None
            else:
                imm = _sx((w >> 12) & 0x1FF, 9)
                kind = (w >> 10) & 3
                addr = base + imm if kind == 3 else base
                wb = base + imm
            (self._ld if load else self._st)(addr, self._name(rt, fp))
            if wb is not None:
                r[self._name(rn, False, True)] = wb
        elif (w >> 23) & 0x3F == 0b100010 and w >> 31:  # add/sub immediate, 64-bit
            imm = ((w >> 10) & 0xFFF) << (12 if w >> 22 & 1 else 0)
            src = r[self._name((w >> 5) & 31, False, True)]
            r[self._name(w & 31, False, True)] = src - imm if w >> 30 & 1 else src + imm
        elif w >> 23 == 0b110100101:  # movz
            r[self._name(w & 31, False)] = ((w >> 5) & 0xFFFF) << (16 * ((w >> 21) & 3))
        else:
            raise AssertionError(f"emulator does not know {w:08x} at {r_pc:#x}")
        r["pc"] = r_pc + 4
        return True


def _initial():
    regs = {f"x{i}": 0x1000 + i for i in range(29)}
    regs.update({f"d{i}": 0x3FF0_0000_0000_0000 + i for i in range(32)})
    regs.update(fp=0xFFFFE00E_0E4B_D000, lr=RET, sp=S0)
    return regs


def _run(dll, name, expect, setup=lambda m: None):
    base = dll.image_base
    rva = next(e.rva for e in dll.exports if e.name == name)
    func = dll.lookup_function(rva)
    init = _initial()
    m = Machine(dict(init, pc=base + rva))
    setup(m)
    lookup = ImageLookup([(base, dll)])
    methods = []
    for _ in range(200):
        res = virtual_unwind(dict(m.regs), m.read, lookup)
        expect(res, init, m.regs["pc"])
        methods.append(res.method)
        w = int.from_bytes(dll.read(m.regs["pc"] - base, 4), "little")
        if not m.step(w):
            break
    assert func.contains(m.regs["pc"] - base)
    return methods


def _returns_to_caller(res, init, pc):
    ctx = res.context
    assert (hex(ctx["pc"]), hex(ctx["sp"])) == (hex(RET), hex(S0)), f"at {pc:#x}"
    for n in NONVOL:
        assert ctx[n] == init[n], f"{n} wrong after unwinding at {pc:#x}"


@pytest.mark.parametrize("name", ["g_chained", "g_lr", "g_fp", "g_full", "g_big"])
def test_unwind_at_every_instruction(dll, name):
    methods = _run(dll, name, _returns_to_caller)
    assert {"prolog", "epilog"} <= set(methods)
    assert {"packed", "xdata"} & set(methods)


def test_forms_present(dll):
    funcs = dll.arm64_functions
    assert sum(f.packed is not None for f in funcs) >= 3
    full = [f for f in funcs if f.packed is None]
    assert len(full) >= 3 and all(f.xdata.codes for f in full)
    for f in funcs:
        assert dll.lookup_function(f.begin) == f and dll.lookup_function(f.end - 4) == f


def test_machine_frame(dll):
    frame_sp, frame_pc = 0xFFFFE00E_0E4C_0000, 0xFFFFF803_F32D_E014

    def setup(m):
        for i, v in enumerate((frame_sp, frame_pc)):
            m.regs["x0"] = v
            m._st(S0 + 8 * i, "x0")
        m.regs["x0"] = 0x1000

    def expect(res, init, pc):
        assert res.method == "machframe"
        assert (res.context["pc"], res.context["sp"]) == (frame_pc, frame_sp)
        assert res.context["fp"] == init["fp"]

    _run(dll, "g_machframe", expect, setup)


def test_leaf_uses_lr(dll):
    res = virtual_unwind(
        {"pc": 0x10, "sp": S0, "lr": RET}, lambda a, n: b"", ImageLookup([(dll.image_base, dll)])
    )
    assert res.method == "leaf" and res.context["pc"] == RET and res.context["sp"] == S0


@pytest.mark.skipif(shutil.which("llvm-readobj") is None, reason="llvm-readobj not installed")
def test_pdata_fields_agree_with_llvm_readobj(dll):
    import re

    out = subprocess.run(
        ["llvm-readobj", "--unwind", dll.path], capture_output=True, text=True, timeout=60
    ).stdout
    blocks = re.findall(r"RuntimeFunction \{\n(.*?)\n  \}(?=\n)", out, re.S)
    assert len(blocks) == len(dll.arm64_functions)
    by_begin = {dll.image_base + f.begin: f for f in dll.arm64_functions}
    for b in blocks:

        def field(name, text=b):
            return re.search(rf"\b{name}: (\S+)", text).group(1)

        f = by_begin[int(field("Function"), 16)]
        if "ExceptionRecord" in b:
            xd = f.xdata
            assert f.packed is None and dll.image_base + f.xdata_rva == int(field("ExceptionRecord"), 16)
            assert xd.function_length == int(field("FunctionLength"))
            assert xd.e == (field("EpiloguePacked") == "Yes")
            if xd.e:
                assert xd.single_epilog_index == int(field("EpilogueOffset"))
            assert len(xd.codes) == int(field("ByteCodeLength"))
        else:
            p = f.packed
            assert p.function_length == int(field("FunctionLength"))
            assert (p.reg_f, p.reg_i, p.cr, p.frame_size) == (
                int(field("RegF")), int(field("RegI")), int(field("CR")), int(field("FrameSize"))
            )  # fmt: skip
            assert p.h == (field("HomedParameters") == "Yes")
