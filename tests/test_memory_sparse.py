"""Sparse memory (triage data blocks) and file-backed physical memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bugcheck.errors import MemoryNotPresent
from bugcheck.memory.physical import BitmapPhysicalMemory, RunPhysicalMemory
from bugcheck.memory.sparse import Block, SparseMemory


def test_sparse_reads_and_holes():
    mem = SparseMemory([Block(0x1000, 4, b"ABCD"), Block(0x1008, 4, b"xxEFGHyy", offset=2)])
    assert mem.read(0x1001, 3) == b"BCD"
    assert mem.read(0x1008, 4) == b"EFGH"
    assert list(mem.read_chunks(0x0FFE, 0x10)) == [
        (0x0FFE, None, 2),
        (0x1000, b"ABCD", 4),
        (0x1004, None, 4),
        (0x1008, b"EFGH", 4),
        (0x100C, None, 2),
    ]
    with pytest.raises(MemoryNotPresent) as e:
        mem.read(0x1002, 4)
    assert e.value.address == 0x1004
    data, holes = mem.read_padded(0x1002, 8, fill=0x3F)
    assert data == b"CD????EF" and holes == [(0x1004, 4)]


def test_sparse_earlier_blocks_win_overlaps():
    mem = SparseMemory()
    mem.add(Block(0x2004, 4, b"NEW!", source="stack"))
    mem.add(Block(0x2000, 12, b"oldoldoldold", source="data block"))
    assert mem.read(0x2000, 12) == b"oldoNEW!dold"
    assert mem.block_at(0x2005).source == "stack"
    assert mem.block_at(0x2009).source == "data block"
    assert [b.address for b in mem.blocks_starting_at(0x2000)] == [0x2000]
    segs = mem.segments()
    assert [(s.address, s.size) for s in segs] == [(0x2000, 4), (0x2004, 4), (0x2008, 4)]


def test_sparse_32bit_wraps_addresses():
    mem = SparseMemory([Block(0x8000_0000, 2, b"hi")], address_bits=32)
    assert mem.read(0xFFFF_FFFF_8000_0000, 2) == b"hi"


def test_run_physical_memory():
    page = 0x1000
    buf = bytes(range(256)) * (3 * page // 256)
    # two runs: PFN 0x10 (1 page) and PFN 0x20..0x21 (2 pages), data from offset 0
    phys = RunPhysicalMemory(buf, [(0x20, 2), (0x10, 1)], data_offset=0)
    # runs are stored in header order: the reader sorts for lookup but keeps file order
    assert phys.page_offset(0x20) == 0
    assert phys.page_offset(0x21) == page
    assert phys.page_offset(0x10) == 2 * page
    assert phys.read(0x10 * page + 1, 2) == buf[2 * page + 1 : 2 * page + 3]
    assert phys.page_offset(0x11) is None
    assert not phys.truncated
    truncated = RunPhysicalMemory(buf[: page + 10], [(0x10, 3)], data_offset=0)
    assert truncated.truncated
    assert truncated.read(0x10 * page, 4) == buf[:4]
    with pytest.raises(MemoryNotPresent) as e:
        truncated.read(0x11 * page, 16)
    assert e.value.address == 0x11 * page + 10


def test_bitmap_physical_memory_rank_mapping():
    page = 0x1000
    pfns = [1, 2, 5, 64, 65, 200]
    bits = np.zeros(256, dtype=np.uint8)
    bits[pfns] = 1
    bitmap = np.packbits(bits, bitorder="little").tobytes()
    first = 0x2000
    buf = bytearray(first + len(pfns) * page)
    for rank, pfn in enumerate(pfns):
        buf[first + rank * page : first + rank * page + 4] = pfn.to_bytes(4, "little")
    phys = BitmapPhysicalMemory(bytes(buf), bitmap, 256, first)
    assert phys.present_page_count == 6
    for pfn in pfns:
        assert phys.read(pfn * page, 4) == pfn.to_bytes(4, "little")
    for pfn in (0, 3, 63, 199, 255, 256, 10_000):
        assert phys.page_offset(pfn) is None
    chunks = list(phys.read_chunks(1 * page, 5 * page))
    assert [(a, d is None, n) for a, d, n in chunks] == [
        (1 * page, False, page),
        (2 * page, False, page),
        (3 * page, True, 2 * page),
        (5 * page, False, page),
    ]


@given(
    st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 40), st.integers(0, 255)),
        max_size=30,
    )
)
@settings(max_examples=200, deadline=None)
def test_sparse_matches_byte_model(specs):
    """Bulk construction, incremental add and a per-byte model agree: earlier blocks win."""
    blocks = [Block(a, n, bytes([v]) * n, 0, f"b{i}") for i, (a, n, v) in enumerate(specs)]
    model: dict[int, int] = {}
    for a, n, v in specs:
        for x in range(a, a + n):
            model.setdefault(x, v)
    bulk = SparseMemory(blocks)
    inc = SparseMemory()
    for b in blocks:
        inc.add(b)
    want = bytes(model.get(x, 0xAA) for x in range(260))
    want_holes = [x for x in range(260) if x not in model]
    for mem in (bulk, inc):
        data, holes = mem.read_padded(0, 260, fill=0xAA)
        assert data == want
        assert [x for s, n in holes for x in range(s, s + n)] == want_holes
        segs = mem.segments()
        assert all(a.end <= b.address for a, b in zip(segs, segs[1:], strict=False))
