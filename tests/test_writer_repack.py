"""Re-packing sparse virtual memory (a triage dump's blocks) as kernel bitmap or full dumps.

A real triage dump from the corpus is re-packed and the result opened with
bugcheck's reader and with kdmp-parser (which refuses triage dumps but reads
the re-packed file): every captured byte must read back at its virtual address.
"""

from __future__ import annotations

import pytest

from bugcheck.dumpfile.writer import blocks_to_mappings, dump_from_blocks, repack
from corpus import dump

PAGE = 0x1000


def test_blocks_merge_into_pages_first_block_wins():
    blocks = [
        (0xFFFFF800_00000FF0, b"A" * 0x20),  # straddles two pages
        (0xFFFFF800_00000FF8, b"B" * 0x10),  # overlaps the first: the first wins
        (0xFFFFF800_00001010, b"C" * 4),
    ]
    m = blocks_to_mappings(blocks)
    assert sorted(m) == [0xFFFFF800_00000000, 0xFFFFF800_00001000]
    lo, hi = m[0xFFFFF800_00000000], m[0xFFFFF800_00001000]
    assert lo[0xFF0:] == b"A" * 0x10 and not any(lo[:0xFF0])
    assert hi[:0x10] == b"A" * 0x10 and hi[0x10:0x14] == b"C" * 4 and not any(hi[0x14:])


def test_dump_from_blocks_reads_back(tmp_path):
    bugcheck = pytest.importorskip("bugcheck")
    kdmp_parser = pytest.importorskip("kdmp_parser")
    blocks = [(0xFFFFF800_12345678, bytes(range(256)) * 40), (0xFFFF_8000_0000_0000, b"stack" * 100)]
    path = tmp_path / "blocks.dmp"
    layout = dump_from_blocks(
        blocks, path, "kernel_bitmap", contexts=[{"rip": 0xFFFFF800_12345678}], bugcheck_code=0xA
    )
    d = bugcheck.open(path)
    k = kdmp_parser.KernelDumpParser(path)
    for va, data in blocks:
        assert d.read_virtual(va, len(data)) == data
        assert k.translate_virtual(va) == layout.translate(va)
    assert d.bugcheck_code == 0xA and d.crash_context.pc == 0xFFFFF800_12345678


@pytest.mark.parametrize("kind", ["kernel_bitmap", "full"])
def test_repack_real_triage_dump(tmp_path, kind):
    bugcheck = pytest.importorskip("bugcheck")
    kdmp_parser = pytest.importorskip("kdmp_parser")
    src = bugcheck.open(dump("rizin-triage_x64.dmp"))
    if not hasattr(src.virtual, "blocks"):
        pytest.skip("the triage reader does not expose its captured blocks")
    out = tmp_path / f"repacked-{kind}.dmp"
    layout = repack(src, out, kind)
    d = bugcheck.open(out)
    assert d.kind.name == {"kernel_bitmap": "KERNEL_BITMAP", "full": "FULL"}[kind]
    assert d.bugcheck_code == src.bugcheck_code == 0x1000007E
    assert tuple(d.bugcheck_parameters) == tuple(src.bugcheck_parameters)
    for field in (
        "minor_version",
        "number_processors",
        "kd_debugger_data_block",
        "ps_loaded_module_list",
        "ps_active_process_head",
        "system_time",
        "system_up_time",
        "suite_mask",
        "product_type",
    ):
        assert getattr(d.header, field) == getattr(src.header, field), field
    assert d.crash_context.regs["rip"] == src.crash_context.regs["rip"] == 0xFFFFF8047BDF5A80
    assert d.crash_context.regs["rsp"] == src.crash_context.regs["rsp"]
    # Every captured byte reads back at its virtual address, through generated page tables.
    n = 0
    for b in src.virtual.blocks:
        want = src.read_virtual(b.address, b.size)
        assert d.read_virtual(b.address, b.size) == want, hex(b.address)
        n += 1
    assert n > 1000
    k = kdmp_parser.KernelDumpParser(out)
    for va in list(layout.va_to_pa)[::25]:
        assert bytes(k.read_virtual_page(va)) == d.read_virtual(va, PAGE)
