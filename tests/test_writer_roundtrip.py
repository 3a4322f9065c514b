"""Round trip: description -> writer -> bugcheck's reader, and kdmp-parser on the same file.

Every format the writer makes is opened with ``bugcheck.open`` and compared with
the description (header, crash context, physical pages, virtual reads and
translation). For x64 4-level dumps kdmp-parser, an independent C++ reader, must
agree too; it does not read 32-bit dumps nor walk 5-level tables, so those are
compared with the description only (the walker tests in test_writer_paging.py
check the generated tables independently).
"""

from __future__ import annotations

import random

import pytest

from bugcheck.dumpfile.writer import DumpDescription, write_dump
from bugcheck.errors import BadFileError, MemoryNotPresent

dumpfile = pytest.importorskip("bugcheck.dumpfile")
if not hasattr(dumpfile, "open_dump"):
    pytest.skip("the dump reader has not landed yet", allow_module_level=True)

import bugcheck  # noqa: E402

PAGE = 0x1000
KIND = {"full": "FULL", "complete_bitmap": "COMPLETE_BITMAP", "kernel_bitmap": "KERNEL_BITMAP"}


def _x64(paging="4level", large=False):
    rng = random.Random(11)
    top = 0xFF00_0000_0000_0000 if paging == "5level" else 0
    base = top | 0xFFFF_F800_1000_0000
    return DumpDescription(
        paging=paging,
        large_pages=large,
        build=22621,
        bugcheck_code=0x50,
        bugcheck_parameters=(0xFFFF_C000_DEAD_0000, 0, 0xFFFFF800_10001234, 2),
        system_time=0x01DA_1234_5678_9ABC,
        system_up_time=42,
        contexts=[{"rip": 0xFFFFF800_10001234, "rsp": 0xFFFF_8000_0000_1F00, "rax": 5}, {"rip": 1, "rsp": 2}],
        kd_debugger_data_block=base + 0x800,
        ps_loaded_module_list=base + 0x10,  # mapped: readers probe the paging mode with it
        ps_active_process_head=base + 0x20,
        mappings={
            base: rng.randbytes(0x2345),
            top | 0xFFFF_8000_0000_0000: rng.randbytes(0x2000),
            top | 0xFFFF_FA80_0060_0000: rng.randbytes(0x200000),
        },
        physical_pages={0x50000: b"physical only"},
        ram_size=48 << 20,
    )


def _x86(paging, large=False):
    rng = random.Random(12)
    return DumpDescription(
        machine="x86",
        paging=paging,
        large_pages=large,
        pae_pdpt_offset=0x20 if paging == "pae" else 0,
        build=7601,
        bugcheck_code=0x7F,
        bugcheck_parameters=(8, 0x80153000, 0, 0),
        contexts=[{"eip": 0x82A4_1234, "esp": 0x8015_2F00, "ebp": 0x8015_2F40, "ecx": 3}],
        kd_debugger_data_block=0x82B0_0000,
        ps_loaded_module_list=0x82A4_0010,
        ps_active_process_head=0x82A4_0020,
        mappings={
            0x82A4_0000: rng.randbytes(0x3010),
            0x8015_2000: rng.randbytes(0x1000),
            0x8080_0000: rng.randbytes(0x400000),
        },
        ram_size=40 << 20,
    )


CASES = {
    "x64-full": (_x64, {}, "full"),
    "x64-full-large": (_x64, {"large": True}, "full"),
    "x64-complete-bitmap": (_x64, {}, "complete_bitmap"),
    "x64-kernel-bitmap": (_x64, {}, "kernel_bitmap"),
    "x64-kernel-bitmap-large": (_x64, {"large": True}, "kernel_bitmap"),
    "x64-5level-kernel-bitmap": (_x64, {"paging": "5level"}, "kernel_bitmap"),
    "x86-pae-full": (_x86, {"paging": "pae"}, "full"),
    "x86-pae-full-large": (_x86, {"paging": "pae", "large": True}, "full"),
    "x86-nonpae-full": (_x86, {"paging": "nonpae"}, "full"),
    "x86-nonpae-full-large": (_x86, {"paging": "nonpae", "large": True}, "full"),
}


@pytest.fixture(scope="module", params=sorted(CASES))
def case(request, tmp_path_factory):
    make, kw, kind = CASES[request.param]
    desc = make(**kw)
    path = tmp_path_factory.mktemp("rt") / f"{request.param}.dmp"
    layout = write_dump(desc, path, kind)
    d = bugcheck.open(path)
    kd = None
    if desc.machine == "x64":
        kdmp_parser = pytest.importorskip("kdmp_parser")
        kd = kdmp_parser.KernelDumpParser(path)
    yield kind, desc, layout, d, kd
    d.close()


def test_header_and_context(case):
    kind, desc, layout, d, kd = case
    assert d.kind.name == KIND[kind]
    assert d.machine == desc.machine and d.pointer_size == desc.pointer_size
    h = d.header
    assert d.bugcheck_code == desc.bugcheck_code
    assert tuple(d.bugcheck_parameters) == desc.bugcheck_parameters
    assert h.directory_table_base == layout.directory_table_base
    assert (h.minor_version, h.number_processors) == (desc.build, desc.processors)
    assert h.kd_debugger_data_block == desc.kd_debugger_data_block
    assert (h.ps_loaded_module_list, h.ps_active_process_head) == (
        desc.ps_loaded_module_list,
        desc.ps_active_process_head,
    )
    assert (h.system_time, h.system_up_time) == (desc.system_time, desc.system_up_time)
    for name, value in desc.contexts[desc.crash_processor].items():
        assert d.crash_context.regs[name] == value, name
    if kd is not None:
        assert kd.header.BugCheckCode == h.bugcheck_code
        assert kd.context.Rip == d.crash_context.pc and kd.context.Rsp == d.crash_context.sp
        assert kd.directory_table_base == h.directory_table_base


def test_physical_pages_agree(case):
    _, _, layout, d, kd = case
    for pfn in layout.pages:
        want = layout.page_bytes(pfn)
        assert d.read_physical(pfn << 12, PAGE) == want, hex(pfn)
        if kd is not None:
            assert bytes(kd.read_physical_page(pfn << 12)) == want
    beyond = (layout.runs[-1][0] + layout.runs[-1][1]) << 12
    with pytest.raises(MemoryNotPresent):
        d.read_physical(beyond, 8)


def test_virtual_reads_and_translation_agree(case):
    _, desc, layout, d, kd = case
    for va in layout.va_to_pa:
        assert d.translate(va + 0x10) == layout.translate(va + 0x10), hex(va)
        if kd is not None and layout.paging == "4level":
            assert kd.translate_virtual(va + 0x10) == layout.translate(va + 0x10)
    for va, data in desc.mappings.items():
        assert d.read_virtual(va, len(data)) == data
        # A read straddling the last mapped byte into the zero padding.
        assert d.read_virtual(va + len(data) - 3, 3) == data[-3:]
    rng = random.Random(3)
    vas = sorted(layout.va_to_pa)
    for _ in range(200):
        va = rng.choice(vas) + rng.randrange(PAGE)
        n = rng.randrange(1, 0x1800)
        want = layout.read_virtual(va, n)
        if want is None:
            with pytest.raises(MemoryNotPresent):
                d.read_virtual(va, n)
        else:
            assert d.read_virtual(va, n) == want


def test_unmapped_virtual_memory_is_a_hole(case):
    _, desc, layout, d, _ = case
    va = max(desc.mappings)
    end = va + -(-len(desc.mappings[va]) // PAGE) * PAGE
    with pytest.raises(MemoryNotPresent) as exc:
        d.read_virtual(end - 8, 16)
    assert exc.value.address == end
    data, holes = d.read_virtual_padded(end - 8, 16)
    assert data[8:] == bytes(8) and holes == [(end, 8)]
    with pytest.raises(MemoryNotPresent):
        d.translate(end)


def test_truncated_dump_is_reported_not_crashed(tmp_path):
    desc = _x64()
    path = tmp_path / "cut.dmp"
    layout = write_dump(desc, path, "full")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    try:
        d = bugcheck.open(path)
    except BadFileError:
        return
    assert d.warnings
    with pytest.raises(MemoryNotPresent):
        d.read_physical((layout.runs[-1][0] + layout.runs[-1][1] - 1) << 12, 8)


@pytest.mark.parametrize(
    "machine",
    [
        "x64",
        "x86",
    ],
)
def test_every_processor_context_found_through_kd_data(tmp_path, machine):
    """Only the crash context is in the header; the others come from KiProcessorBlock -> PRCB."""
    if machine == "x64":
        ctxs = [
            {"rip": 0xFFFFF800_00001000 + i, "rsp": 0xFFFF8000_00002000 + 8 * i, "rax": i} for i in range(4)
        ]
        kw = {"kd_debugger_data_block": 0xFFFFF800_00100200, "mappings": {0xFFFFF800_00200000: b"kernel"}}
    else:
        ctxs = [{"eip": 0x80001000 + i, "esp": 0x80002000 + 8 * i, "eax": i} for i in range(3)]
        kw = {"kd_debugger_data_block": 0x80100200, "mappings": {0x80200000: b"kernel"}}
    desc = DumpDescription(machine=machine, contexts=ctxs, crash_processor=2, synthesize_kd_data=True, **kw)
    path = tmp_path / "smp.dmp"
    write_dump(desc, path, "full")
    d = bugcheck.open(path)
    got = d.contexts
    assert len(got) == len(ctxs)
    for want, ctx in zip(ctxs, got):
        for name, value in want.items():
            assert ctx.regs[name] == value
    assert d.crash_processor == 2
