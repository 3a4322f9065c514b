"""x86 unwinding through frame data and FPO records of real PDBs, on stacks laid out in memory.

The XP SP3 PAE kernel PDB (xp-ntkrnlpa.pdb) does not match the corpus's XP
ntoskrnl image (other kernel, other GUID), so only its records are used here:
the functions' code is absent and return addresses are judged by module range
alone. The debugpy x86 DLL comes with its matching PDB, so there return
addresses must also follow a real call instruction in the image.
"""

from __future__ import annotations

import struct

import pytest

from bugcheck.memory.base import AddressSpace
from bugcheck.stack import fpo
from bugcheck.stack.walker import walk
from bugcheck.stack.x86 import ModuleRecords, fpo_at
from bugcheck.symbols.modules import ModuleInfo, assign_module_names
from bugcheck.symbols.resolver import ModuleSymbols, Resolver
from corpus import corpus_file

NT = 0x804D7000
STACK = 0xF8950000


class Mem(AddressSpace):
    """A few byte regions; everything else is a hole."""

    def __init__(self, regions: dict[int, bytes | bytearray]):
        self.regions = sorted((a, bytes(b)) for a, b in regions.items())

    def read_chunks(self, address, size):
        pos, end = address, address + size
        while pos < end:
            hit = next(((a, b) for a, b in self.regions if a <= pos < a + len(b)), None)
            if hit is not None:
                a, b = hit
                n = min(end, a + len(b)) - pos
                yield pos, b[pos - a : pos - a + n], n
            else:
                nxt = min([a for a, _ in self.regions if a > pos] + [end])
                yield pos, None, nxt - pos
            pos += n if hit is not None else nxt - pos


class FakeDump:
    machine, pointer_size, triage = "x86", 4, None

    def __init__(self, regions):
        self.virtual = Mem(regions)

    def read_virtual(self, va, n):
        return self.virtual.read(va, n)

    def read_virtual_padded(self, va, n):
        return self.virtual.read_padded(va, n)


def resolver_for(mods):
    """mods: [(file name, base, size, PdbFile or None, PeImage or None)]"""
    infos = assign_module_names([ModuleInfo(n, b, s) for n, b, s, _, _ in mods])
    by_base = {b: (pdb, img) for _, b, _, pdb, img in mods}

    def load(m):
        pdb, img = by_base[m.base]
        ms = ModuleSymbols(m, state="pdb symbols" if pdb else "no symbols")
        ms.symbols = pdb.symbols if pdb is not None else None
        ms.image = img
        return ms

    return Resolver(infos, load, 4)


@pytest.fixture(scope="module")
def xp():
    from bugcheck.symbols.pdb import open_pdb

    return open_pdb(corpus_file("symbols", "pdb", "xp-ntkrnlpa.pdb"))


def test_xp_pdb_is_not_the_corpus_image(xp):
    """Recorded so nobody pairs them: the image asks for another kernel's PDB."""
    from bugcheck.symbols.pe import PeImage

    cv = PeImage.from_file(corpus_file("images", "xp-sp3-ntoskrnl.exe")).codeview
    assert not xp.matches(cv.guid, cv.age)


def _chain(xp):
    """Seven frames through every method; returns (dump, resolver, start regs, expected frames)."""
    s = bytearray(0x1000)

    def put(va, *vals):
        struct.pack_into(f"<{len(vals)}I", s, va - STACK, *vals)

    fd_a = xp.frame_data_at(143043 + 5)  # KeFlushEntireTb: no frame pointer, ebx saved below the return
    fd_b = xp.frame_data_at(38462 + 0x20)  # CcCanIWrite: EBP frame, ebx at ebp-68
    fpo_c = fpo_at(xp.fpo, 436069 + 0x10)  # KiUnlockDispatcherDatabase: FPO, ebp used as a register
    fpo_d = fpo_at(xp.fpo, 433452 + 0x20)  # KiFlushNPXState: FPO, 4 dwords of locals, 1 parameter
    trap = fpo_at(xp.fpo, 419346 + 0x40)  # KiFastCallEntry: a trap frame record
    assert (fd_a.rva, fd_b.rva, fpo_c.rva, fpo_d.rva, trap.rva) == (143043, 38462, 436069, 433452, 419346)
    assert ".raSearch" in fd_a.program and fd_a.saved_regs_size == 4 and fd_a.params_size == 8
    assert fd_b.program.startswith("$T0 $ebp =") and "$ebx $T0 68 - ^ =" in fd_b.program
    assert fpo_c.uses_bp and fpo_c.saved_regs == 4 and fpo_c.frame_type == fpo.FRAME_FPO
    assert (fpo_d.locals_dwords, fpo_d.params_dwords, fpo_d.uses_bp) == (4, 1, False)
    assert trap.frame_type == fpo.FRAME_TRAP
    for rva in (436069 + 0x10, 433452 + 0x20, 419346 + 0x40, 92264):
        assert xp.frame_data_at(rva) is None
    assert fpo_at(xp.fpo, 92264) is None  # ExpReleaseLockRoutine+0x1a: no record at all

    pc = [NT + 143043 + 5, NT + 38462 + 0x20, NT + 436069 + 0x10, NT + 433452 + 0x20]
    pc += [NT + 419346 + 0x40, NT + 92264, NT + 0x1234]
    # frame 0 (fd_a): ebx, return address; esp0 = STACK+0x100
    put(STACK + 0x100, 0xB0B0B0B0, pc[1], 0xA1, 0xA2)  # with fd_a's two arguments above
    # frame 1 (fd_b): esp1 = +0x108 (fd_a's 8 bytes of arguments first), ebp1 = +0x180
    put(STACK + 0x180 - 68, 0xB1B1B1B1)
    put(STACK + 0x180, 0x12345678, pc[2])  # the ebp frame 2 runs with: a plain value (fpo_c uses ebp)
    # frame 2 (fpo_c): esp2 = +0x188; fd_b's 16 bytes of arguments, 4 saved registers, no locals
    put(STACK + 0x198, 0xED1, 0xED1, STACK + 0x300, 0xED1)  # saved: ebp is the second pushed
    put(STACK + 0x1A8, pc[3])
    # frame 3 (fpo_d): esp3 = +0x1AC; 16 bytes of locals, then its return address
    put(STACK + 0x1BC, pc[4])
    # frame 4 (trap record): esp4 = +0x1C0, ebp +0x300 carried through fpo_d
    put(STACK + 0x300, STACK + 0x380, pc[5])  # _KTRAP_FRAME: DbgEbp, DbgEip
    put(STACK + 0x33C, 0xDD, 0xCC, 0xAA)  # Edx, Ecx, Eax
    put(
        STACK + 0x354, 0xD4, 0x54, 0xB4, STACK + 0x380, 0, pc[5], 8, 0x10202
    )  # Edi..Ebp, ErrCode, Eip, cs, efl
    # frame 5 (no record: EBP chain): esp5 = +0x374, the trap frame's HardwareEsp slot
    put(STACK + 0x380, 0, pc[6])
    # frame 6: ebp 0 and nothing believable above: the walk ends there
    dump = FakeDump({STACK: s})
    res = resolver_for([("ntkrnlpa.exe", NT, 0x1F8000, xp, None)])
    regs = {"eip": pc[0], "esp": STACK + 0x100, "ebp": STACK + 0x180, "ebx": 0xB000, "esi": 5, "edi": 6}
    expected = [
        (pc[0], STACK + 0x100, STACK + 0x180, "context"),
        (pc[1], STACK + 0x108, STACK + 0x180, "frame_data"),
        (pc[2], STACK + 0x188, 0x12345678, "frame_data"),
        (pc[3], STACK + 0x1AC, STACK + 0x300, "fpo"),
        (pc[4], STACK + 0x1C0, STACK + 0x300, "fpo"),
        (pc[5], STACK + 0x374, STACK + 0x380, "trap_frame"),  # a kernel trap: esp was at HardwareEsp
        (pc[6], STACK + 0x388, 0, "frame_pointer"),
    ]
    return dump, res, regs, expected


def test_xp_chain_through_every_method(xp):
    dump, res, regs, expected = _chain(xp)
    sw = walk(dump, res, None, regs, 64)
    got = [(f.pc, f.sp, f.context.get("ebp"), f.method) for f in sw.frames]
    assert got == expected
    # saved registers come back from where the programs say
    assert sw.frames[1].context["ebx"] == 0xB0B0B0B0
    assert sw.frames[2].context["ebx"] == 0xB1B1B1B1
    f5 = sw.frames[5].context
    assert [f5[r] for r in ("eax", "ecx", "edx", "ebx", "esi", "edi", "efl")] == [
        0xAA,
        0xCC,
        0xDD,
        0xB4,
        0x54,
        0xD4,
        0x10202,
    ]
    assert sw.frames[3].symbol == "nt!KiFlushNPXState+0x20"
    # the trap record's handler points ebp at the trap frame it built
    assert [f.trap_frame for f in sw.frames] == [None] * 4 + [STACK + 0x300, None, None]
    # Args to Child: the dwords right above each return address
    assert sw.frames[0].args[:2] == [0xA1, 0xA2]
    assert [f.return_address for f in sw.frames] == [e[0] for e in expected[1:]] + [0]
    assert sw.first_scan is None
    assert not sw.warnings
    # kv's record notes: [parameter, local, saved-register dwords]
    # (a function using EBP as a register shows the EBP it saved, which is its caller's frame
    # pointer: a published kd trace reads "fafa3d30 804fe997 nt!KiSwapContext+0x25 (FPO: [EBP
    # 0xfafa3d48] [0,0,4])" with the next frame's ChildEBP fafa3d48)
    assert expected[3][2] is not None
    assert [f.fpo for f in sw.frames] == [
        "FPO: [2,0,1]",
        "FPO: [Non-Fpo]",
        f"FPO: [EBP 0x{expected[3][2]:08x}] [0,0,4]",
        "FPO: [1,4,0]",
        f"FPO: [0,0] TrapFrame @ {STACK + 0x300:08x}",
        None,
        None,
    ]
    # ChildEBP: the slot below each return address; for EBP frames that is ebp itself
    assert [f.fp for f in sw.frames[:4]] == [STACK + 0x100, STACK + 0x180, STACK + 0x1A4, STACK + 0x1B8]


def test_chain_without_records_falls_back_to_ebp_and_scan(xp):
    """Without the PDB the FPO frames break the EBP chain: fewer frames, never invented ones."""
    dump, _, regs, expected = _chain(xp)
    res = resolver_for([("ntkrnlpa.exe", NT, 0x1F8000, None, None)])
    sw = walk(dump, res, None, regs, 64)
    assert sw.frames[0].pc == expected[0][0]
    assert "frame_data" not in [f.method for f in sw.frames] and "fpo" not in [f.method for f in sw.frames]
    assert len(sw.frames) < 64


@pytest.mark.parametrize(
    "program",
    [
        "$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + = +",  # operator without operands
        "$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 +",  # value left over, no $esp
        "$eip $T9 ^ = $esp 4 =",  # variable used before a value
        "$T0 .nonsense = $eip $T0 ^ = $esp $T0 4 + =",
        "$eip 0 ^ = $esp 8 =",  # reads absent memory
        "$eip 4 0 / = $esp 8 =",
        "$eip 4 3 @ = $esp 8 =",
        "$99 1 = $eip 1 = $esp 8 =",  # unknown CodeView register
        "4 5 = $eip 1 = $esp 8 =",  # assigning to a number
        "$eip $eip = $esp $esp 4 - =",  # a caller below the callee: not a frame
        "$T0 " * 2000,
        "",
        "\x00\xff ^ ^ ^",
    ],
)
def test_malformed_program_ends_walk_with_warning(xp, program):
    dump, res, regs, _ = _chain(xp)
    fd_a = xp.frame_data_at(143043 + 5)
    bad = type(fd_a)(**{**fd_a.__dict__, "program": program})
    records = ModuleRecords(res)
    real = records.__call__

    def lookup(pc):
        return bad if pc == regs["eip"] else real(pc)

    from bugcheck.stack.x86 import walk_x86

    sw = walk_x86(dump, res, None, regs, 64, records=lookup)
    assert sw.frames[0].pc == regs["eip"]
    assert len(sw.frames) <= 64
    if len(sw.frames) == 1:
        assert any("frame data" in w for w in sw.warnings)
    else:  # a program that runs but names no believable caller yields to the EBP chain
        assert sw.frames[1].method in ("frame_pointer", "scan")


def test_evaluator_bounds_and_arithmetic():
    mem = {0x1000: 0xAABBCCDD}
    got = fpo.evaluate(
        "$T0 $esp 16 + = $T1 $T0 8 @ = $eip $T1 ^ = $esp $T1 4 + = $T2 7 3 % 2 * 1 - 10 / =",
        {"esp": 0xFF4, "eip": 1},
        mem.__getitem__,
        {},
    )
    assert got["$T0"] == 0x1004 and got["$T1"] == 0x1000
    assert fpo.registers_of(got) == {"eip": 0xAABBCCDD, "esp": 0x1004}
    assert got["$T2"] == 0  # (7 % 3) * 2 - 1 = 1; 1 / 10 = 0
    assert fpo.evaluate("$T0 0 4 - =", {}, mem.__getitem__)["$T0"] == 0xFFFFFFFC
    assert fpo.evaluate("$23 5 = $ebx $20 1 + =", {"ebx": 9}, mem.__getitem__) == {"$esi": 5, "$ebx": 10}
    with pytest.raises(fpo.ProgramError):
        fpo.evaluate(" ".join(["1"] * 100) + " =", {}, mem.__getitem__)
    with pytest.raises(fpo.ProgramError):
        fpo.evaluate("$T0 0 " + "^ " * 70 + "=", {}, lambda a: 0)


def test_classic_fpo_program():
    from bugcheck.symbols.pdb.dbi import FpoData

    r = FpoData(0x100, 0x50, 2, 3, 4, 3, False, True, 0)
    mem = {0x2000 + 8 + 12 - 8: 0xEB0, 0x2000 + 8 + 8 + 12: 0x804D1234}
    start = fpo.ra_search_start(r, 0x2000, 8)
    assert start == 0x2000 + 8 + 8 + 12
    got = fpo.evaluate(
        fpo.fpo_program(r), {"esp": 0x2000, "ebp": 1}, mem.__getitem__, fpo.constants_for(r, 8, start, start)
    )
    assert fpo.registers_of(got) == {"eip": 0x804D1234, "esp": start + 4, "ebp": 0xEB0}


DLL = 0x10000000


@pytest.fixture(scope="module")
def attach():
    from bugcheck.symbols.pdb import open_pdb
    from bugcheck.symbols.pe import PeImage

    img = PeImage.from_file(corpus_file("images", "debugpy", "attach_x86.dll"))
    pdb = open_pdb(corpus_file("symbols", "pdb", "debugpy", "attach_x86.pdb"))
    cv = img.codeview
    assert pdb.matches(cv.guid, cv.age)
    return img, pdb


def _attach_chain(attach, caller_pushed_args=True):
    """hash functor <- SuspendThreads <- DoAttach <- AttachAndRunPythonCode <- RunCodeInMemoryInAttachedDll.

    Return addresses are real call sites (a direct call to the callee ends there);
    each frame is laid out where its FRAMEDATA program looks for it.
    """
    img, pdb = attach
    s = bytearray(0x1000)

    def put(va, *vals):
        struct.pack_into(f"<{len(vals)}I", s, va - STACK, *vals)

    assert pdb.frame_data_at(0x3A9E).saved_regs_size == 4  # after ``push esi``
    suspend = pdb.frame_data_at(0x26EB)
    assert (suspend.locals_size, suspend.saved_regs_size) == (792, 16)
    assert pdb.frame_data_at(0x2F53).program.startswith("$T0 $ebp =")
    assert " 8 @ = " in pdb.frame_data_at(0x31D4).program and " 8 @ = " in pdb.frame_data_at(0x25D7).program
    pc = [DLL + 0x3A9E, DLL + 0x26EB, DLL + 0x2F53, DLL + 0x31D4, DLL + 0x25D7]
    # frame 0: saved esi, return address, the functor's one argument
    esp0 = STACK + 0x100
    put(esp0, 0x5151, pc[1], 0xA1)
    # frame 1 (SuspendThreads): 4 saved registers below 792 bytes of locals, then the return address
    esp1 = esp0 + 8
    ra1 = esp1 + (4 if caller_pushed_args else 0) + 16 + 792
    put(ra1 - 808, 0xED1, 0x5152, STACK + 0x600, 0xEB1)  # edi, esi, ebp, ebx
    put(ra1, pc[2])
    # frame 2 (DoAttach, EBP frame): ebp = +0x600
    put(STACK + 0x600 - 124, 0xED2, 0x5153, 0xEB2)
    put(STACK + 0x600, STACK + 0x704, pc[3])
    # frame 3 (AttachAndRunPythonCode, realigned): ebp = +0x704, saved registers below the 8-aligned base
    put(STACK + 0x700 - 48, 0xED3, 0x5154, 0xEB3)
    put(STACK + 0x704, STACK + 0x80C, pc[4])
    # frame 4 (RunCodeInMemoryInAttachedDll, realigned): ebp = +0x80C, a zero return address ends it
    put(STACK + 0x808 - 104, 0xED4, 0x5155, 0xEB4)
    put(STACK + 0x80C, 0, 0)
    dump = FakeDump({STACK: s})
    res = resolver_for([("attach_x86.dll", DLL, 0xB000, pdb, img)])
    regs = {"eip": pc[0], "esp": esp0, "ebp": 0xEB0, "ebx": 0xB0, "esi": 0x5150, "edi": 0xED0}
    expected = [
        (pc[0], esp0, 0xEB0, 0x5150, "context"),
        (pc[1], esp1, 0xEB0, 0x5151, "frame_data"),
        (pc[2], ra1 + 4, STACK + 0x600, 0x5152, "frame_data"),
        (pc[3], STACK + 0x608, STACK + 0x704, 0x5153, "frame_data"),
        (pc[4], STACK + 0x70C, STACK + 0x80C, 0x5154, "frame_data"),
    ]
    return dump, res, regs, expected


@pytest.mark.parametrize("pushed", [True, False], ids=["args-pushed", "args-in-locals"])
def test_msvc_dll_chain(attach, pushed):
    """``args-in-locals``: the caller did not push the callee's argument (it lives in its frame),
    so the return address sits 4 bytes below where the record alone puts it; the search
    finds it because only a call site is a believable return address."""
    dump, res, regs, expected = _attach_chain(attach, pushed)
    sw = walk(dump, res, None, regs, 64)
    got = [(f.pc, f.sp, f.context.get("ebp"), f.context.get("esi"), f.method) for f in sw.frames[:5]]
    assert got == expected
    assert [f.context.get("edi") for f in sw.frames[:5]] == [0xED0, 0xED0, 0xED1, 0xED2, 0xED3]
    assert [f.context.get("ebx") for f in sw.frames[:5]] == [0xB0, 0xB0, 0xEB1, 0xEB2, 0xEB3]
    assert len(sw.frames) == 5
    assert sw.frames[1].symbol.endswith("!SuspendThreads+0xa1")  # the first module is named nt
    assert sw.frames[0].args[0] == (0xA1 if pushed else 0xED1)


def test_scan_skips_values_that_follow_no_call(attach):
    """With no record and no EBP frame, a scan takes the first value that follows a call:
    code addresses that do not (a function start, mid-instruction bytes) are passed over."""
    img, pdb = attach
    s = bytearray(0x100)
    struct.pack_into("<5I", s, 0, 7, DLL + 0x3A99, DLL + 0x26EC, DLL + 0x26EB, 0)
    dump = FakeDump({STACK: s})
    res = resolver_for([("attach_x86.dll", DLL, 0xB000, None, img)])
    sw = walk(dump, res, None, {"eip": DLL + 0x3AA5, "esp": STACK, "ebp": 0}, 8)
    assert [(f.pc, f.sp, f.method) for f in sw.frames[:2]] == [
        (DLL + 0x3AA5, STACK, "context"),
        (DLL + 0x26EB, STACK + 0x10, "scan"),
    ]
    assert sw.first_scan == 1


def _records(*recs):
    from bugcheck.stack.x86 import fpo_at

    def lookup(pc):
        return fpo_at(sorted(recs, key=lambda r: r.rva), pc)

    return lookup


def test_return_address_at_next_function_start_belongs_to_the_caller_before():
    """A call that ends its function (noreturn) leaves a return address equal to the next
    function's first byte; that frame is the earlier function's, its record applies."""
    from bugcheck.stack.x86 import X86Unwinder
    from bugcheck.symbols.pdb.dbi import FrameData

    fpo_style = FrameData(
        0x1000, 0x10, 8, 0, 0, "$T0 .raSearch = $eip $T0 ^ = $esp $T0 4 + = $ebx $T0 4 - ^ =", 0, 4, 4
    )
    ebp_style = FrameData(
        0x1010, 0x20, 0, 0, 0, "$T0 $ebp = $eip $T0 4 + ^ = $ebp $T0 ^ = $esp $T0 8 + =", 3, 0, 4
    )
    mem = {0x500: 7, 0x504: 7, 0x508: 0xBB, 0x50C: 0x2222, 0x900: 0x950, 0x904: 0x3333}
    u = X86Unwinder(mem.__getitem__, _records(fpo_style, ebp_style))
    regs = {"eip": 0x1010, "esp": 0x500, "ebp": 0x900, "ebx": 1}
    st = u.step(regs, 0, call_site=True)
    assert (st.regs["eip"], st.regs["esp"], st.regs["ebx"], st.method) == (0x2222, 0x510, 0xBB, "frame_data")
    # the same pc as frame 0 is a function entry: only the return address is pushed
    mem[0x500] = 0x4444
    st = u.step(regs, 0, call_site=False)
    assert (st.regs["eip"], st.regs["esp"], st.regs["ebp"]) == (0x4444, 0x504, 0x900)
    # one instruction later the EBP program applies (ebp not set up yet is the caller's ebp)
    st = u.step(dict(regs, eip=0x1011), 0, call_site=False)
    assert (st.regs["eip"], st.regs["esp"], st.regs["ebp"]) == (0x3333, 0x908, 0x950)


def test_fpo_record_at_entry_and_in_body():
    from bugcheck.stack.x86 import X86Unwinder
    from bugcheck.symbols.pdb.dbi import FpoData

    rec = FpoData(0x2000, 0x40, 2, 1, 3, 2, False, True, 0)  # 2 locals, 1 param, ebx/ebp saved
    mem = {0x600: 0x5555, 0x700: 0xE0, 0x704: 0xEB, 0x708: 0, 0x70C: 0, 0x710: 0x6666}
    u = X86Unwinder(mem.__getitem__, _records(rec))
    st = u.step({"eip": 0x2000, "esp": 0x600, "ebp": 9}, 0, call_site=False)
    assert (st.regs["eip"], st.regs["esp"], st.regs["ebp"], st.method) == (0x5555, 0x604, 9, "fpo")
    # in the body, a callee with 4 bytes of arguments was unwound: esp points at them
    st = u.step({"eip": 0x2010, "esp": 0x6FC, "ebp": 9}, 4, call_site=True)
    assert (st.regs["eip"], st.regs["esp"], st.regs["ebp"], st.params) == (0x6666, 0x714, 0xE0, 4)


def test_damaged_frame_data_falls_back_to_the_ebp_chain(xp):
    """A PDB whose frame data cannot be decoded is set aside; the EBP chain still works."""

    class Broken:
        machine = "x86"

        def frame_data_at(self, rva):
            raise struct.error("truncated record")

    class Syms:
        """The real public symbols, with a PDB object whose frame data is damaged."""

        _pdb = Broken()

        def __getattr__(self, name):
            return getattr(xp.symbols, name)

    dump, _, regs, expected = _chain(xp)
    res = resolver_for([("ntkrnlpa.exe", NT, 0x1F8000, None, None)])
    res.load(res.modules[0]).symbols = Syms()
    records = ModuleRecords(res)
    assert records(NT + 0x2000) is None and records.pdb_for(res.modules[0]) is None
    sw = walk(dump, res, None, dict(regs, eip=NT + 92264, esp=STACK + 0x2F0, ebp=STACK + 0x300), 8)
    assert [(f.pc, f.method) for f in sw.frames[:3]] == [
        (NT + 92264, "context"),
        (expected[5][0], "frame_pointer"),
        (expected[6][0], "frame_pointer"),
    ]


def test_trap_handler_by_name_without_records(xp):
    """No FPO record, but nt!KiTrap0E is a trap handler: its ebp is the _KTRAP_FRAME it built."""
    from bugcheck.stack.x86 import walk_x86

    dump, res, _, expected = _chain(xp)
    trap0e = NT + xp.symbols.symbol_by_name("KiTrap0E").rva
    regs = {"eip": trap0e + 0x40, "esp": STACK + 0x2F0, "ebp": STACK + 0x300}
    sw = walk_x86(dump, res, None, regs, 8, records=lambda pc: None)
    assert sw.frames[0].symbol == "nt!KiTrap0E+0x40"
    assert sw.frames[0].trap_frame == STACK + 0x300
    assert (sw.frames[1].pc, sw.frames[1].sp, sw.frames[1].method) == (
        expected[5][0],
        STACK + 0x374,
        "trap_frame",
    )
    # a function of another name with the same ebp is just an EBP frame
    sw = walk_x86(dump, res, None, dict(regs, eip=NT + 92264), 8, records=lambda pc: None)
    assert (sw.frames[1].sp, sw.frames[1].method, sw.frames[0].trap_frame) == (
        STACK + 0x308,
        "frame_pointer",
        None,
    )


def test_trap_frame_registers_user_mode_and_implausible():
    from bugcheck.stack.x86 import TRAP_FRAME_X86, trap_frame_registers

    mem = dict.fromkeys(range(0x1000, 0x1080, 4), 0)
    mem.update({0x1068: 0x7C90E4F4, 0x106C: 0x1B, 0x1070: 0x246, 0x1074: 0x0012FF00, 0x1060: 0x0012FF40})
    got = trap_frame_registers(mem.__getitem__, 0x1000, TRAP_FRAME_X86)
    assert (got["eip"], got["esp"], got["ebp"], got["cs"]) == (0x7C90E4F4, 0x0012FF00, 0x0012FF40, 0x1B)
    mem[0x106C] = 0  # no code segment: not a trap frame
    assert trap_frame_registers(mem.__getitem__, 0x1000, TRAP_FRAME_X86) is None
    assert trap_frame_registers(mem.__getitem__, 0x5000, TRAP_FRAME_X86) is None  # unreadable


EXE = 0x00400000


@pytest.fixture(scope="module")
def inject():
    from bugcheck.symbols.pdb import open_pdb
    from bugcheck.symbols.pe import PeImage

    img = PeImage.from_file(corpus_file("images", "debugpy", "inject_dll_x86.exe"))
    pdb = open_pdb(corpus_file("symbols", "pdb", "debugpy", "inject_dll_x86.pdb"))
    assert pdb.matches(img.codeview.guid, img.codeview.age)
    return img, pdb


def test_classic_fpo_record_of_a_crt_helper(inject):
    """_aulldiv (hand-written assembly) has only an FPO_DATA record: 2 dwords of locals
    (its two pushes), 4 dwords of parameters. Its caller's return address is a real call site."""
    img, pdb = inject
    rec = fpo_at(pdb.fpo, 28304 + 0x10)
    assert (rec.rva, rec.locals_dwords, rec.params_dwords) == (28304, 2, 4) and pdb.frame_data_at(
        28304 + 0x10
    ) is None
    s = bytearray(0x600)
    struct.pack_into("<7I", s, 0x100, 0x5E5E, 0xB0B0, EXE + 0x10A53, 10, 0, 3, 0)  # esi, ebx, ret, 2 x u64
    struct.pack_into("<II", s, 0x400, 0, 0)
    dump = FakeDump({STACK: s})
    res = resolver_for([("inject_dll_x86.exe", EXE, img.size_of_image, pdb, img)])
    regs = {"eip": EXE + 28304 + 0x10, "esp": STACK + 0x100, "ebp": STACK + 0x400}
    sw = walk(dump, res, None, regs, 8)
    f = sw.frames
    assert (f[1].pc, f[1].sp, f[1].method, f[1].context["ebp"]) == (
        EXE + 0x10A53,
        STACK + 0x10C,
        "fpo",
        STACK + 0x400,
    )
    assert f[1].symbol.endswith("!__crt_strtox::divide+0x2c3")
    assert f[0].args[:3] == [10, 0, 3]
    assert f[0].fpo == "FPO: [4,2,0]"


def test_in_prolog_only_what_is_pushed_counts(inject, xp):
    """Frame 0 stopped inside a prolog a single record describes: the finished frame is not
    there yet; the return address is the first call site at or above esp."""
    img, pdb = inject
    rec = fpo_at(pdb.fpo, 44928 + 1)  # _local_unwind4: push ebx; push esi; push edi (3-byte prolog)
    assert (rec.prolog_size, rec.saved_regs) == (3, 3)
    s = bytearray(0x200)
    struct.pack_into("<5I", s, 0x100, 0xB0B0, EXE + 0xB052, 0x11, 0x22, 0x33)  # ebx pushed, ret, args
    struct.pack_into("<I", s, 0x100 + 12, EXE + 0xB0E0)  # a stale call site where the full frame's would be
    dump = FakeDump({STACK: s})
    res = resolver_for([("inject_dll_x86.exe", EXE, img.size_of_image, pdb, img)])
    sw = walk(dump, res, None, {"eip": EXE + 44928 + 1, "esp": STACK + 0x100, "ebp": 0}, 2)
    assert (sw.frames[1].pc, sw.frames[1].sp, sw.frames[1].method) == (EXE + 0xB052, STACK + 0x108, "fpo")
    # past the prolog the record holds: the return address is above the three saved registers
    struct.pack_into("<4I", s, 0x100, 1, 2, 3, EXE + 0xB0E0)
    sw = walk(dump, res, None, {"eip": EXE + 44928 + 8, "esp": STACK + 0x100, "ebp": 0}, 2)
    assert (sw.frames[1].pc, sw.frames[1].sp) == (EXE + 0xB0E0, STACK + 0x110)

    # an EBP-frame record (XP's CcCanIWrite, 22-byte prolog) 3 bytes in: ebp pushed, not yet set up
    fd = xp.frame_data_at(38440 + 3)
    assert fd.rva == 38440 and fd.prolog_size == 22 and fd.program.startswith("$T0 $ebp =")
    s = bytearray(0x800)
    struct.pack_into("<II", s, 0x100, STACK + 0x500, NT + 0x5123)  # saved ebp, return address
    struct.pack_into("<II", s, 0x500, STACK + 0x600, 0)  # the caller's own frame
    dump = FakeDump({STACK: s})
    res = resolver_for([("ntkrnlpa.exe", NT, 0x1F8000, xp, None)])
    sw = walk(dump, res, None, {"eip": NT + 38440 + 3, "esp": STACK + 0x100, "ebp": STACK + 0x500}, 2)
    f1 = sw.frames[1]
    assert (f1.pc, f1.sp, f1.context["ebp"], f1.method) == (
        NT + 0x5123,
        STACK + 0x108,
        STACK + 0x500,
        "frame_data",
    )
    assert sw.first_scan is None
