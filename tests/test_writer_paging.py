"""Page tables and 32-bit dumps from the writer, walked by a tiny independent walker.

kdmp-parser 0.7.4 reads only 64-bit dumps and walks only 4-level x64 tables, so
32-bit ``PAGEDUMP`` files (PAE and non-PAE) are parsed here with plain struct
reads of DUMP_HEADER32 and their tables walked by the functions below; 5-level
x64 dumps use kdmp-parser for physical pages and the walker here for translation.
Each walk is compared with the description's mappings, not with the writer's
own bookkeeping.
"""

from __future__ import annotations

import random
import struct
import tracemalloc

import pytest

from bugcheck.dumpfile.writer import DumpDescription, write_dump

PAGE = 0x1000


class RunFile:
    """Physical memory of a run-based dump, read straight from the file."""

    def __init__(self, path, runs, data_offset):
        self.raw = path.read_bytes()
        self.map = {}
        off = data_offset
        for base, count in runs:
            for i in range(count):
                self.map[base + i] = off + i * PAGE
            off += count * PAGE

    def read(self, pa, n):
        off = self.map[pa >> 12] + (pa & 0xFFF)
        return self.raw[off : off + n]

    def u32(self, pa):
        return struct.unpack("<I", self.read(pa, 4))[0]

    def u64(self, pa):
        return struct.unpack("<Q", self.read(pa, 8))[0]


def walk_pae(mem, cr3, va):
    pdpte = mem.u64((cr3 & ~0x1F) + ((va >> 30) & 3) * 8)
    if not pdpte & 1:
        return None
    pde = mem.u64((pdpte & 0xFFFFFFFFF000) + ((va >> 21) & 0x1FF) * 8)
    if not pde & 1:
        return None
    if pde & 0x80:
        return (pde & 0xFFFFFFE00000) | (va & 0x1FFFFF)
    pte = mem.u64((pde & 0xFFFFFFFFF000) + ((va >> 12) & 0x1FF) * 8)
    return (pte & 0xFFFFFFFFF000) | (va & 0xFFF) if pte & 1 else None


def walk_nonpae(mem, cr3, va):
    pde = mem.u32((cr3 & ~0xFFF) + (va >> 22) * 4)
    if not pde & 1:
        return None
    if pde & 0x80:
        return (pde & 0xFFC00000) | (va & 0x3FFFFF)
    pte = mem.u32((pde & ~0xFFF) + ((va >> 12) & 0x3FF) * 4)
    return (pte & ~0xFFF) | (va & 0xFFF) if pte & 1 else None


def walk_x64(read_u64, dtb, va, levels):
    table = dtb & ~0xFFF
    for shift in (48, 39, 30, 21, 12)[5 - levels :]:
        entry = read_u64(table + ((va >> shift) & 0x1FF) * 8)
        if not entry & 1:
            return None
        frame = entry & 0x000FFFFFFFFFF000
        if shift in (30, 21) and entry & 0x80:
            return (frame & ~((1 << shift) - 1)) | (va & ((1 << shift) - 1))
        table = frame
    return table | (va & 0xFFF)


def _x86_description(paging, **kw):
    rng = random.Random(5)
    return DumpDescription(
        machine="x86",
        build=2600,
        paging=paging,
        bugcheck_code=0x8E,
        bugcheck_parameters=(0xC0000005, 0x804E1234, 0xF8A3C9D4, 0),
        system_time=0x01C9_0000_1234_5678,
        system_up_time=987654321,
        contexts=[
            {"eip": 0x804E1234, "esp": 0xF8A3C9D4, "ebp": 0xF8A3CA00, "eax": 0xDEADBEEF, "efl": 0x10286}
        ],
        kd_debugger_data_block=0x8054C2E0,
        ps_loaded_module_list=0x8055A420,
        ps_active_process_head=0x8055B158,
        mappings={
            0x80400000: rng.randbytes(0x400000),  # 4 MB aligned: a large page in either mode
            0xF8A3C000: rng.randbytes(0x2000),
            0x7FFE0000: b"KUSER",
            0xC0300000: rng.randbytes(0x1800),
        },
        ram_size=48 << 20,
        **kw,
    )


def _check_x86_header(raw, desc, pae):
    assert raw[:8] == b"PAGEDUMP"
    fields = struct.unpack_from("<IIIIIIIII4I", raw, 8)
    major, minor, dtb, _pfn, psl, psa, machine, ncpu, code = fields[:9]
    assert (major, minor, machine, ncpu, code) == (0xF, 2600, 0x14C, 1, 0x8E)
    assert fields[9:] == desc.bugcheck_parameters
    assert (psl, psa) == (desc.ps_loaded_module_list, desc.ps_active_process_head)
    assert raw[0x5C] == (1 if pae else 0)
    assert struct.unpack_from("<I", raw, 0x60)[0] == desc.kd_debugger_data_block
    ctx = 0x320
    assert struct.unpack_from("<I", raw, ctx)[0] & 0x10000  # CONTEXT_i386
    eip, cs, efl, esp = struct.unpack_from("<IIII", raw, ctx + 0xB8)
    assert (eip, efl, esp) == (0x804E1234, 0x10286, 0xF8A3C9D4)
    assert struct.unpack_from("<I", raw, ctx + 0xB0)[0] == 0xDEADBEEF
    assert struct.unpack_from("<I", raw, 0xF88)[0] == 1
    assert struct.unpack_from("<qq", raw, 0xFB8) == (desc.system_up_time, desc.system_time)
    nruns, npages = struct.unpack_from("<II", raw, 0x64)
    runs = [struct.unpack_from("<II", raw, 0x6C + i * 8) for i in range(nruns)]
    assert npages == sum(c for _, c in runs)
    assert len(raw) == 0x1000 + npages * PAGE
    return dtb, runs


@pytest.mark.parametrize(
    "paging,large,pdpt_off",
    [("pae", False, 0), ("pae", True, 0x60), ("nonpae", False, 0), ("nonpae", True, 0)],
)
def test_x86_full_dump(tmp_path, paging, large, pdpt_off):
    desc = _x86_description(paging, large_pages=large, pae_pdpt_offset=pdpt_off)
    path = tmp_path / "x86.dmp"
    write_dump(desc, path, "full")
    raw = path.read_bytes()
    dtb, runs = _check_x86_header(raw, desc, paging == "pae")
    assert dtb & 0xFFF == pdpt_off
    mem = RunFile(path, runs, 0x1000)
    walk = walk_pae if paging == "pae" else walk_nonpae
    for va, data in desc.mappings.items():
        for off in range(0, len(data), PAGE):
            pa = walk(mem, dtb, va + off + 0x10)
            assert pa is not None, hex(va + off)
            chunk = data[off : off + PAGE]
            assert mem.read(pa - 0x10, len(chunk)) == chunk
    for hole in (0x0, 0x80000000, 0xF8A3E000, 0xC0302000, 0x7FFE1000):
        assert walk(mem, dtb, hole) is None, hex(hole)
    big = walk(mem, dtb, 0x80400000)
    large_size = 0x200000 if paging == "pae" else 0x400000
    if large:
        assert big % large_size == 0 and walk(mem, dtb, 0x80400000 + large_size - 4) == big + large_size - 4
    # User pages carry the user bit in their directory entry; kernel pages do not.
    for va, user in ((0x7FFE0000, True), (0xF8A3C000, False)):
        if paging == "pae":
            pdpte = mem.u64((dtb & ~0x1F) + (va >> 30) * 8)
            pde = mem.u64((pdpte & ~0xFFF) + ((va >> 21) & 0x1FF) * 8)
        else:
            pde = mem.u32((dtb & ~0xFFF) + (va >> 22) * 4)
        assert bool(pde & 4) == user, hex(va)


def test_x64_five_level_paging(tmp_path):
    kdmp_parser = pytest.importorskip("kdmp_parser")
    rng = random.Random(9)
    mappings = {
        0xFF00_0000_0000_0000 | 0xFFFFF80000000: rng.randbytes(0x3000),  # above the 48-bit range
        0xFFFF_F800_1000_0000: rng.randbytes(0x1000),
        0x0000_7F00_0000_0000 << 8: b"a user page above 128 TB",
    }
    desc = DumpDescription(
        paging="5level", mappings=mappings, contexts=[{"rip": 0xFFFFF80010000000}], ram_size=32 << 20
    )
    path = tmp_path / "la57.dmp"
    layout = write_dump(desc, path, "kernel_bitmap")
    k = kdmp_parser.KernelDumpParser(path)

    def read_u64(pa):
        page = k.read_physical_page(pa & ~0xFFF)
        return struct.unpack_from("<Q", bytes(page), pa & 0xFFF)[0]

    dtb = k.directory_table_base
    assert dtb == layout.directory_table_base
    for va, data in mappings.items():
        for off in range(0, len(data), PAGE):
            pa = walk_x64(read_u64, dtb, va + off, 5)
            chunk = data[off : off + PAGE]
            assert bytes(k.read_physical_page(pa))[: len(chunk)] == chunk
    assert walk_x64(read_u64, dtb, 0xFF00_0000_0000_0000 | 0xFFFFF80003000, 5) is None
    assert walk_x64(read_u64, dtb, 0xFFFF_F800_1000_1000, 5) is None


def test_streaming_does_not_hold_the_ram(tmp_path):
    """A 16 GB complete dump is written with a few MB of Python memory."""
    desc = DumpDescription(
        mappings={0xFFFFF800_00000000 + i * 0x10000: bytes([i & 0xFF]) * 0x1000 for i in range(2000)},
        ram_size=16 << 30,
        spread_seed=1,
    )
    tracemalloc.start()
    try:
        write_dump(desc, tmp_path / "big.dmp", "complete_bitmap")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 48 << 20
    assert (tmp_path / "big.dmp").stat().st_size > 16 << 30


@pytest.mark.parametrize(
    "kw,kind,message",
    [
        ({"mappings": {0x0000_8000_0000_0000: b"x"}}, "full", "canonical"),
        ({"mappings": {0xFFFFF800_00000000: bytes(0x2000), 0xFFFFF800_00001000: b"x"}}, "full", "overlap"),
        ({"mappings": {0xFFFFF800_00000010: b"x"}}, "full", "aligned"),
        ({"machine": "x86", "mappings": {0x80000000: b"x"}}, "kernel_bitmap", "full"),
        ({"mappings": {0xFFFFF800_00000000: bytes(0x100000)}, "ram_size": 0x80000}, "full", "RAM"),
        ({"contexts": [{"xyz": 1}]}, "full", "unknown"),
        ({"machine": "x86", "paging": "4level"}, "full", "pae"),
        ({"machine": "x86", "pae_pdpt_offset": 0x10}, "full", "32-byte"),
        ({"physical_pages": {0x4000_0000: b"x"}}, "full", "outside"),
        ({}, "triage", "kind"),
    ],
)
def test_bad_descriptions_are_refused(tmp_path, kw, kind, message):
    with pytest.raises(ValueError, match=message):
        write_dump(DumpDescription(**kw), tmp_path / "bad.dmp", kind)


def test_x86_kd_data_chain_walked_independently(tmp_path):
    """KDBG tag, sign-extended KiProcessorBlock, and each PRCB's context, read through the PAE walker."""
    ctxs = [{"eip": 0x80001000 + i, "esp": 0x80002000 + 8 * i} for i in range(3)]
    desc = DumpDescription(
        machine="x86",
        contexts=ctxs,
        kd_debugger_data_block=0x80100200,
        synthesize_kd_data=True,
        mappings={0x80200000: b"x"},
        ram_size=16 << 20,
    )
    path = tmp_path / "kd.dmp"
    write_dump(desc, path, "full")
    raw = path.read_bytes()
    nruns = struct.unpack_from("<I", raw, 0x64)[0]
    runs = [struct.unpack_from("<II", raw, 0x6C + i * 8) for i in range(nruns)]
    mem = RunFile(path, runs, 0x1000)
    dtb = struct.unpack_from("<I", raw, 0x10)[0]

    def vread(va, n):
        return mem.read(walk_pae(mem, dtb, va), n)

    kdbg = 0x80100200
    assert vread(kdbg + 0x10, 4) == b"KDBG"
    kpb = struct.unpack("<Q", vread(kdbg + 0x218, 8))[0]
    assert kpb >> 32 == 0xFFFFFFFF  # x86 pointers are stored sign-extended
    ctx_off = struct.unpack("<H", vread(kdbg + 0x2BC, 2))[0]
    for i, want in enumerate(ctxs):
        prcb = struct.unpack("<I", vread((kpb & 0xFFFFFFFF) + 4 * i, 4))[0]
        eip, _cs, _efl, esp = struct.unpack("<IIII", vread(prcb + ctx_off + 0xB8, 16))
        assert (eip, esp) == (want["eip"], want["esp"])
