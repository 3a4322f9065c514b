"""Page-table walks on hand-built tables in a tiny in-memory physical space.

Each test writes the entries an OS would and checks the walk by the
architecture's index arithmetic, written out here independently of the walker.
"""

from __future__ import annotations

import pytest

from bugcheck.errors import MemoryNotPresent
from bugcheck.memory.paging import (
    VirtualMemory,
    X64La57Paging,
    X64Paging,
    X86PaePaging,
    X86Paging,
)
from bugcheck.memory.physical import BytesPhysicalMemory

P = 0x1  # valid
RW = 0x3  # valid + write
LARGE = 0x80
TRANSITION = 0x800
PROTOTYPE = 0x400


def idx(va, shift, bits=9):
    return (va >> shift) & ((1 << bits) - 1)


def test_x64_four_level_4k_page():
    mem = BytesPhysicalMemory()
    va = 0xFFFFF8047BDF5A80
    pml4, pdpt, pd, pt, page = 0x1000, 0x2000, 0x3000, 0x4000, 0x7000
    mem.write_u64(pml4 + 8 * idx(va, 39), pdpt | RW)
    mem.write_u64(pdpt + 8 * idx(va, 30), pd | RW)
    mem.write_u64(pd + 8 * idx(va, 21), pt | RW)
    mem.write_u64(pt + 8 * idx(va, 12), page | RW | (1 << 63))  # NX must not leak into the PFN
    mem.write(page + 0xA80, b"\xcc\xcc")
    pg = X64Paging(mem, pml4)
    w = pg.walk(va)
    assert [lv.name for lv in w.levels] == ["PXE", "PPE", "PDE", "PTE"]
    assert [lv.entry_address for lv in w.levels] == [
        pml4 + 8 * idx(va, 39),
        pdpt + 8 * idx(va, 30),
        pd + 8 * idx(va, 21),
        pt + 8 * idx(va, 12),
    ]
    assert w.levels[0].value == pdpt | RW
    assert w.physical == page + 0xA80 and w.page_size == 0x1000 and not w.transition
    assert pg.translate(va) == page + 0xA80
    vm = VirtualMemory(pg)
    assert vm.read(va, 2) == b"\xcc\xcc"
    # the neighbouring page is unmapped: a read crossing into it stops there
    with pytest.raises(MemoryNotPresent) as e:
        vm.read(va - 0xA80 + 0xFFE, 4)
    assert e.value.address == va - 0xA80 + 0x1000
    data, holes = vm.read_padded(va - 0xA80 + 0xFFE, 4)
    assert holes == [(va - 0xA80 + 0x1000, 2)] and len(data) == 4


def test_x64_not_present_reports_level():
    mem = BytesPhysicalMemory()
    va = 0xFFFF850429890EE8
    mem.write_u64(0x1000 + 8 * idx(va, 39), 0x2000 | RW)
    mem.write_u64(0x2000 + 8 * idx(va, 30), 0)  # PPE not present
    pg = X64Paging(mem, 0x1000)
    w = pg.walk(va)
    assert w.physical is None and len(w.levels) == 2 and "PPE" in w.reason
    with pytest.raises(MemoryNotPresent) as e:
        pg.translate(va)
    assert e.value.address == va
    # page table page absent from the dump: the walk says which entry was unreadable
    mem2 = BytesPhysicalMemory()
    mem2.write_u64(0x1000 + 8 * idx(va, 39), 0x9000 | RW)  # 0x9000 never written
    w2 = X64Paging(mem2, 0x1000).walk(va)
    assert w2.physical is None and w2.levels[-1].value is None
    assert w2.levels[-1].entry_address == 0x9000 + 8 * idx(va, 30)


def test_x64_non_canonical():
    pg = X64Paging(BytesPhysicalMemory(), 0x1000)
    assert pg.walk(0x0000_8000_0000_0000).physical is None
    assert "canonical" in pg.walk(0x0000_8000_0000_0000).reason


def test_x64_large_2mb_page():
    mem = BytesPhysicalMemory()
    va = 0xFFFFF80478345678
    mem.write_u64(0x1000 + 8 * idx(va, 39), 0x2000 | RW)
    mem.write_u64(0x2000 + 8 * idx(va, 30), 0x3000 | RW)
    mem.write_u64(0x3000 + 8 * idx(va, 21), 0x4000_0000 | RW | LARGE)
    w = X64Paging(mem, 0x1000).walk(va)
    assert len(w.levels) == 3 and w.page_size == 2 << 20
    assert w.physical == 0x4000_0000 + (va & 0x1F_FFFF)


def test_x64_huge_1gb_page():
    mem = BytesPhysicalMemory()
    va = 0xFFFFC08BDE9E1640
    mem.write_u64(0x1000 + 8 * idx(va, 39), 0x2000 | RW)
    mem.write_u64(0x2000 + 8 * idx(va, 30), 0x1_8000_0000 | RW | LARGE)
    w = X64Paging(mem, 0x1000).walk(va)
    assert len(w.levels) == 2 and w.page_size == 1 << 30
    assert w.physical == 0x1_8000_0000 + (va & 0x3FFF_FFFF)


def test_x64_transition_pte_is_in_ram():
    mem = BytesPhysicalMemory()
    va = 0xFFFFF80012345000
    mem.write_u64(0x1000 + 8 * idx(va, 39), 0x2000 | RW)
    mem.write_u64(0x2000 + 8 * idx(va, 30), 0x3000 | RW)
    mem.write_u64(0x3000 + 8 * idx(va, 21), 0x4000 | RW)
    mem.write_u64(0x4000 + 8 * idx(va, 12), 0x8000 | TRANSITION)  # valid=0, transition=1
    mem.write_u64(0x4000 + 8 * idx(va + 0x1000, 12), 0x9000 | TRANSITION | PROTOTYPE)
    mem.write(0x8010, b"T")
    pg = X64Paging(mem, 0x1000)
    w = pg.walk(va + 0x10)
    assert w.transition and w.physical == 0x8010
    assert VirtualMemory(pg).read(va + 0x10, 1) == b"T"
    # a prototype PTE does not name a physical page
    assert pg.walk(va + 0x1000).physical is None


def test_x64_five_level():
    mem = BytesPhysicalMemory()
    va = 0xFF12_3456_789A_BCDE  # canonical for 57 bits, not for 48
    tables = [0x1000, 0x2000, 0x3000, 0x4000, 0x5000]
    shifts = [48, 39, 30, 21, 12]
    for i, (t, s) in enumerate(zip(tables, shifts, strict=True)):
        nxt = tables[i + 1] if i + 1 < len(tables) else 0xA000
        mem.write_u64(t + 8 * idx(va, s), nxt | RW)
    w = X64La57Paging(mem, 0x1000).walk(va)
    assert [lv.name for lv in w.levels] == ["PML5E", "PXE", "PPE", "PDE", "PTE"]
    assert w.physical == 0xA000 + (va & 0xFFF)
    assert X64Paging(mem, 0x1000).walk(va).physical is None  # 4-level: not canonical


def test_x86_pae():
    mem = BytesPhysicalMemory()
    va = 0x8054_1234
    cr3 = 0x1020  # PDPT is 32-byte aligned, not page aligned
    mem.write_u64(cr3 + 8 * ((va >> 30) & 3), 0x3000 | P)
    mem.write_u64(0x3000 + 8 * idx(va, 21), 0x4000 | RW)
    mem.write_u64(0x4000 + 8 * idx(va, 12), 0x1_2345_6000 | RW)  # above 4 GB: PAE allows it
    w = X86PaePaging(mem, cr3).walk(va)
    assert [lv.name for lv in w.levels] == ["PDPTE", "PDE", "PTE"]
    assert w.levels[0].entry_address == cr3 + 8 * 2
    assert w.physical == 0x1_2345_6000 + 0x234
    # 2 MB large page
    va2 = 0x8060_0010
    mem.write_u64(0x3000 + 8 * idx(va2, 21), 0x0060_0000 | RW | LARGE)
    w2 = X86PaePaging(mem, cr3).walk(va2)
    assert w2.page_size == 2 << 20 and w2.physical == 0x0060_0010


def test_x86_non_pae():
    mem = BytesPhysicalMemory()
    va = 0x8054_1234
    mem.write_u32(0x1000 + 4 * (va >> 22), 0x2000 | RW)
    mem.write_u32(0x2000 + 4 * ((va >> 12) & 0x3FF), 0x7000 | RW)
    w = X86Paging(mem, 0x1000).walk(va)
    assert [lv.name for lv in w.levels] == ["PDE", "PTE"]
    assert w.levels[1].entry_address == 0x2000 + 4 * 0x141
    assert w.physical == 0x7234
    # 4 MB page
    va2 = 0x80C1_2345
    mem.write_u32(0x1000 + 4 * (va2 >> 22), 0x0C00_0000 | RW | LARGE)
    w2 = X86Paging(mem, 0x1000).walk(va2)
    assert w2.page_size == 4 << 20 and w2.physical == 0x0C00_0000 + (va2 & 0x3F_FFFF)
    # transition PTE
    va3 = 0x8054_2000
    mem.write_u32(0x2000 + 4 * ((va3 >> 12) & 0x3FF), 0x9000 | TRANSITION)
    assert X86Paging(mem, 0x1000).walk(va3 + 5).physical == 0x9005
