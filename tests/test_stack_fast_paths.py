"""The caches and fast paths behind ``!process 0 7`` answer exactly as the plain reads do.

Memory is a small file-backed physical space (so VirtualMemory's file fast paths run) with
one page left out of the dump; every fast answer is checked against the general path of the
base class or against a slot-by-slot reference written here.
"""

from __future__ import annotations

import struct

import pytest

from bugcheck.errors import MemoryNotPresent
from bugcheck.memory.base import AddressSpace
from bugcheck.memory.paging import VirtualMemory, X64Paging
from bugcheck.memory.physical import RunPhysicalMemory
from bugcheck.stack import walker
from bugcheck.stack.unwind_x64 import virtual_unwind
from bugcheck.symbols.pe.unwind import RuntimeFunction, decode_unwind_info

RW = 0x3
VA = 0xFFFF_8504_0000_0000  # three virtual pages from here; the middle one's frame is not in the dump
PML4, PDPT, PD, PT = 0x1000, 0x2000, 0x3000, 0x4000
FRAMES = (0x5000, 0x6000, 0x7000)


def idx(va, shift):
    return (va >> shift) & 0x1FF


def _space():
    """VirtualMemory over a run-based physical space; physical page 6 is absent from the file."""
    pages = {}

    def put(pa, data):
        page = pages.setdefault(pa >> 12, bytearray(0x1000))
        page[pa & 0xFFF : (pa & 0xFFF) + len(data)] = data

    put(PML4 + 8 * idx(VA, 39), struct.pack("<Q", PDPT | RW))
    put(PDPT + 8 * idx(VA, 30), struct.pack("<Q", PD | RW))
    put(PD + 8 * idx(VA, 21), struct.pack("<Q", PT | RW))
    for i, frame in enumerate(FRAMES):
        put(PT + 8 * idx(VA + i * 0x1000, 12), struct.pack("<Q", frame | RW))
    for frame in (FRAMES[0], FRAMES[2]):
        put(frame, bytes((frame >> 12) * 16 + k & 0xFF for k in range(0x1000)))
    present = [1, 2, 3, 4, 5, 7]
    buf = b"".join(bytes(pages.get(p, bytearray(0x1000))) for p in present)
    phys = RunPhysicalMemory(buf, [(1, 5), (7, 1)], 0)
    return VirtualMemory(X64Paging(phys, PML4))


class _Reference(AddressSpace):
    """The same memory through nothing but the base class's general path."""

    def __init__(self, vm):
        self.vm = vm

    def read_chunks(self, address, size):
        return self.vm.read_chunks(address, size)


@pytest.mark.parametrize(
    ("offset", "size"),
    [(0x10, 8), (0xFF8, 0x10), (0x800, 0x1000), (0x1FF8, 0x10), (0xF00, 0x1200), (0, 0x3000), (0x2FF0, 0x10)],
)
def test_virtual_reads_match_the_general_path(offset, size):
    vm = _space()
    ref = _Reference(vm)
    assert vm.read_padded(VA + offset, size) == ref.read_padded(VA + offset, size)
    try:
        want = ref.read(VA + offset, size)
    except MemoryNotPresent as e:
        with pytest.raises(MemoryNotPresent) as got:
            vm.read(VA + offset, size)
        assert got.value.address == e.address  # the first absent byte, as before
    else:
        assert vm.read(VA + offset, size) == want


class _Dump:
    def __init__(self, vm):
        self.virtual = vm

    def read_virtual(self, va, n):
        return self.virtual.read(va, n)

    def read_virtual_padded(self, va, n, fill=0):
        return self.virtual.read_padded(va, n, fill)


@pytest.mark.parametrize("offset", [0, 0x7F8, 0xFF8, 0x1000, 0x1FFC, 0x2000, 0x2FE0])
def test_stack_pages_answer_like_the_dump(offset):
    vm = _space()
    dump = _Dump(vm)
    mem = walker._StackMemory(dump)
    for n in (1, 8, 0x20):
        va = VA + offset
        try:
            want = dump.read_virtual(va, n)
        except MemoryNotPresent as e:
            with pytest.raises(MemoryNotPresent) as got:
                mem.read(va, n)
            assert got.value.address == e.address
        else:
            assert mem.read(va, n) == want
        assert mem.read_padded(va, n) == dump.read_virtual_padded(va, n)
    slots = mem.four_slots(VA + offset)
    raw, holes = dump.read_virtual_padded(VA + offset, 32)
    if slots is not None:
        assert not holes and slots == list(struct.unpack("<4Q", raw))
    elif offset <= 0xFE0 or offset >= 0x2000:
        assert holes or (offset & 0xFFF) > 0xFE0


def _slow_trap_frame(u, sp, rip, rsp, rip_off):
    return u._find_trap_frame_slow(sp, rip, rsp, rip_off)


@pytest.mark.parametrize("slot", [0x40, 0x168, 0xF00, 0xFF0, 0x1010])
def test_trap_frame_search_matches_the_slot_by_slot_search(slot):
    """Rip/Rsp planted at ``slot`` (and a decoy with the wrong Rsp just below it)."""
    pages = bytearray(0x2000)
    rip, rsp = 0xFFFFF8047BE074B5, 0xFFFF85040000FCA0
    struct.pack_into("<Q", pages, slot - 0x20, rip)  # decoy: Rsp slot does not match
    struct.pack_into("<Q", pages, slot, rip)
    struct.pack_into("<Q", pages, slot + 0x18, rsp)

    class Dump:
        def read_virtual(self, va, n):
            off = va - VA
            if off < 0 or off + n > len(pages):
                raise MemoryNotPresent(max(va, VA + len(pages)))
            return bytes(pages[off : off + n])

        def read_virtual_padded(self, va, n, fill=0):
            off = va - VA
            data = bytes(pages[max(0, off) : max(0, off + n)]).ljust(n, b"\0")
            end = VA + len(pages)
            holes = [] if va + n <= end else [(max(va, end), va + n - max(va, end))]
            return data, holes

    u = walker._Unwinder.__new__(walker._Unwinder)
    u.stack = walker._StackMemory(Dump())
    u.read = u.stack.read
    u.types = None
    rip_off = 0x168
    for sp in (VA, VA + 8, VA + 0x100):
        fast = u._find_trap_frame(sp, rip, rsp)
        slow = _slow_trap_frame(u, sp, rip, rsp, rip_off)
        assert fast == slow


def _unwind_info(codes, prolog, frame=0):
    raw = b"".join(bytes([off, op | (info << 4)]) for off, op, info in codes)
    if len(codes) % 2:
        raw += b"\0\0"
    blob = bytes([1, prolog, len(codes), frame]) + raw
    return decode_unwind_info(0x1000, lambda rva, n: blob[rva - 0x1000 : rva - 0x1000 + n])


def test_unwind_with_caches_matches_without():
    """Plans and epilog facts kept per address give what a fresh unwind gives, for body,
    prolog and epilog addresses, and absent code stays 'epilog not checked'."""
    base = 0x140000000
    func = RuntimeFunction(0x2000, 0x2040, 0x1000)
    # push rbx (1); push rsi (2); sub rsp, 0x28 (6)
    ui = _unwind_info([(6, 2, 4), (2, 0, 6), (1, 0, 3)], prolog=6)
    code = bytearray(b"\x90" * 0x60)
    code[0x30:0x37] = b"\x48\x83\xc4\x28\x5e\x5b\xc3"  # add rsp,0x28; pop rsi; pop rbx; ret
    stack = {0x8000 + 8 * k: 0x1000 + k for k in range(16)}

    def read(va, n):
        return b"".join(struct.pack("<Q", stack[va + k]) for k in range(0, n, 8))

    def read_code(va, n):
        off = va - base - 0x2000
        if off >= 0x38:
            raise MemoryNotPresent(va)
        return bytes(code[off : off + n])

    cache = {}
    for rip_off in (0, 1, 2, 6, 0x10, 0x30, 0x34, 0x35, 0x36, 0x38):
        regs = {"rip": base + 0x2000 + rip_off, "rsp": 0x8000, "rbx": 7, "rsi": 9}
        for _ in range(2):  # the second round is served from the cache
            fresh = virtual_unwind(regs, read, lambda a: (base, func, ui), read_code=read_code)
            kept = virtual_unwind(
                regs, read, lambda a: (base, func, ui), read_code=read_code, epilog_cache=cache
            )
            assert (kept.context, kept.restored, kept.method, kept.epilog_checked) == (
                fresh.context,
                fresh.restored,
                fresh.method,
                fresh.epilog_checked,
            )
    assert (
        virtual_unwind(
            {"rip": base + 0x2030, "rsp": 0x8000}, read, lambda a: (base, func, ui), read_code=read_code
        ).method
        == "epilog"
    )


def test_trap_frame_read_in_one_unpack_matches_field_by_field():
    from bugcheck.stack import trapframe

    raw = bytes((i * 37 + 11) & 0xFF for i in range(trapframe.X64_TRAP_FRAME_SIZE))
    got = trapframe.read_trap_frame(lambda a, n: raw[:n], 0x1000)
    want = {
        reg: int.from_bytes(raw[off : off + n], "little") for reg, n, off in trapframe._TRAP_FIELDS.values()
    }
    for r in ("r12", "r13", "r14", "r15"):
        want.setdefault(r, 0)
    want.setdefault("ss", 0x18)
    assert got == want and list(got) == list(want)  # same values, same register order
    short = trapframe.read_trap_frame(lambda a, n: raw[:0x100], 0x1000)  # a cut-short read
    assert "rip" not in short and short["rax"] == want["rax"]
