"""x86 frame data from a clang-built DLL without frame pointers, against the code itself.

The DLL is compiled here (clang-19 -O2 -fomit-frame-pointer, lld-link /debug);
lld writes FRAMEDATA programs for every function. The stack for a chain of
calls is laid out by following each function's instructions from its entry to
the chosen pc (pushes, stack allocations, argument pushes before a call), so
the expected caller registers come from the code, not from the records the
unwinder reads.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from bugcheck.stack.walker import walk
from test_stack_x86_pdb import FakeDump, resolver_for

iced = pytest.importorskip("iced_x86")

SOURCE = r"""
__declspec(noinline) int leaf(volatile int *p, int n) {
    volatile int buf[8];
    int s = 0;
    for (int i = 0; i < n; i++) { buf[i & 7] = p[i]; s += buf[(i * 3) & 7]; }
    return s;
}
__declspec(noinline) int middle(int *p, int n, int k) {
    int a = 0, b = 1, c = 2;
    volatile int local[4];
    for (int i = 0; i < k; i++) {
        local[i & 3] = leaf(p + i, n) + a;
        a += local[(i + 1) & 3] * b; b ^= a + c; c += b;
    }
    return a + b + c;
}
__declspec(noinline) int __stdcall outer(int *p, int n) {
    int r = 0;
    for (int j = 0; j < 3; j++) r += middle(p, n, j + r);
    return r * 7 + middle(p, r, n);
}
__declspec(dllexport) int entry(int *p, int n) { return outer(p, n) + 1; }
"""

BASE = 0x10000000
STACK = 0x0012E000
REGS = ("ebp", "ebx", "edi", "esi")


@pytest.fixture(scope="module")
def dll(tmp_path_factory):
    clang, lld = shutil.which("clang-19"), shutil.which("lld-link-19")
    if not clang or not lld:
        pytest.skip("clang-19 / lld-link-19 not installed")
    d = tmp_path_factory.mktemp("clang86")
    (d / "f.c").write_text(SOURCE)
    flags = ["--target=i686-pc-windows-msvc", "-O2", "-fomit-frame-pointer", "-g", "-gcodeview"]
    subprocess.run([clang, *flags, "-c", "f.c", "-o", "f.obj"], cwd=d, check=True, capture_output=True)
    link = [lld, "/dll", "/debug", "/noentry", "/nodefaultlib", "/out:f.dll", "/pdb:f.pdb", "f.obj"]
    subprocess.run(link, cwd=d, check=True, capture_output=True)
    from bugcheck.symbols.pdb import open_pdb
    from bugcheck.symbols.pe import PeImage

    img, pdb = PeImage.from_file(d / "f.dll"), open_pdb(d / "f.pdb")
    assert pdb.matches(img.codeview.guid, img.codeview.age)
    assert pdb.frame_data, "lld wrote no frame data"
    return img, pdb


def _start(pdb, name):
    return pdb.symbols.symbol_by_name(name).rva


def _frame_at(img, start: int, stop: int):
    """(bytes below the entry esp at ``stop``, {register: its save slot's depth}) by following
    the straight-line code from ``start``; branches are not taken (the prologs here have none)."""
    data = img.read(start, stop - start + 16)
    depth, saved = 0, {}
    R, M, K = iced.Register, iced.Mnemonic, iced.OpKind
    names = {R.EBP: "ebp", R.EBX: "ebx", R.EDI: "edi", R.ESI: "esi"}
    for insn in iced.Decoder(32, data, ip=start):
        if insn.ip >= stop:
            break
        if insn.mnemonic == M.PUSH:
            depth += 4
            if (
                insn.op0_kind == K.REGISTER
                and insn.op0_register in names
                and not saved.get(names[insn.op0_register])
            ):
                saved[names[insn.op0_register]] = depth
        elif insn.mnemonic == M.POP:
            depth -= 4
        elif (
            insn.op0_kind == K.REGISTER
            and insn.op0_register == R.ESP
            and insn.op1_kind
            in (
                K.IMMEDIATE8TO32,
                K.IMMEDIATE32,
            )
        ):
            imm = insn.immediate(1) & 0xFFFFFFFF
            depth += imm if insn.mnemonic == M.SUB else -imm if insn.mnemonic == M.ADD else 0
    return depth, saved


def _first_call(img, start: int, end: int, target: int) -> int:
    """Address of the first direct call from [start, end) to ``target``."""
    for insn in iced.Decoder(32, img.read(start, end - start), ip=start):
        if insn.flow_control == iced.FlowControl.CALL and insn.near_branch_target == target:
            return insn.ip
    raise AssertionError(f"no call to {target:#x}")


def test_clang_chain_matches_the_code(dll):
    img, pdb = dll
    leaf, middle, outer, entry = (_start(pdb, n) for n in ("leaf", "middle", "outer", "entry"))
    # frame 0: leaf inside its loop; then each caller stopped at its call to the callee
    pcs = [leaf + 0x40]
    stops = [leaf + 0x40]
    for caller, callee in ((middle, leaf), (outer, middle), (entry, outer)):
        call = _first_call(img, caller, caller + 0x80, callee)
        stops.append(call)
        pcs.append(call + iced.Decoder(32, img.read(call, 16), ip=call).decode().len)
    starts = [leaf, middle, outer, entry]
    s = bytearray(0x800)
    esp = STACK + 0x100
    regs = {"eip": BASE + pcs[0], "esp": esp, "ebp": 0x100, "ebx": 0x200, "edi": 0x300, "esi": 0x400}
    expected = []
    cur = dict(regs)
    for k in range(4):
        expected.append((cur["eip"], cur["esp"], tuple(cur[r] for r in REGS)))
        depth, saved = _frame_at(img, starts[k], stops[k])
        entry_esp = cur["esp"] + depth
        nxt = dict(cur)
        for r, at in saved.items():
            value = 0x1000 * (k + 1) + REGS.index(r) + 1  # what the caller had in r
            struct.pack_into("<I", s, entry_esp - at - STACK, value)
            nxt[r] = value
        ret = BASE + pcs[k + 1] if k < 3 else 0
        struct.pack_into("<I", s, entry_esp - STACK, ret)
        nxt.update(eip=ret, esp=entry_esp + 4)
        cur = nxt
    assert _frame_at(img, leaf, leaf + 0x40)[0] == 48  # 4 pushes and 32 bytes of locals
    dump = FakeDump({STACK: s})
    res = resolver_for([("f.dll", BASE, img.size_of_image, pdb, img)])
    sw = walk(dump, res, None, regs, 32)
    got = [(f.pc, f.sp, tuple(f.context[r] for r in REGS)) for f in sw.frames]
    assert got == expected
    assert [f.method for f in sw.frames] == ["context", "frame_data", "frame_data", "frame_data"]
    assert [f.symbol.split("!")[1].split("+")[0] for f in sw.frames] == ["leaf", "middle", "outer", "entry"]


def test_clang_prolog_sub_ranges(dll):
    """In the middle of a prolog only the registers pushed so far are restored."""
    img, pdb = dll
    leaf = _start(pdb, "leaf")
    for n_pushed in range(5):
        pc = leaf + n_pushed  # each push is one byte
        rec = pdb.frame_data_at(pc)
        assert rec.saved_regs_size == 4 * n_pushed and rec.locals_size == 0
        s = bytearray(0x100)
        depth, saved = _frame_at(img, leaf, pc)
        assert depth == 4 * n_pushed
        for r, at in saved.items():
            struct.pack_into("<I", s, 0x40 + depth - at, 0xAA00 + REGS.index(r))
        struct.pack_into("<I", s, 0x40 + depth, BASE + 0x1135)  # a return address into outer
        dump = FakeDump({STACK: s})
        res = resolver_for([("f.dll", BASE, img.size_of_image, pdb, img)])
        regs = {"eip": BASE + pc, "esp": STACK + 0x40, "ebp": 1, "ebx": 2, "edi": 3, "esi": 4}
        sw = walk(dump, res, None, regs, 2)
        f1 = sw.frames[1]
        assert (f1.pc, f1.sp, f1.method) == (BASE + 0x1135, STACK + 0x44 + depth, "frame_data")
        for r in REGS:
            want = 0xAA00 + REGS.index(r) if r in saved else regs[r]
            assert f1.context[r] == want, (n_pushed, r)
