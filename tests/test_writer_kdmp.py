"""The dump writer checked by an independent reader, kdmp-parser (C++).

kdmp-parser 0.7.4 reads 64-bit full and bitmap dumps and walks x64 4-level
page tables (with 2 MB and 1 GB pages), so every x64 4-level dump the writer
makes is compared with what it reads: header fields, the crash context, the set
and content of physical pages, and virtual translation.
"""

from __future__ import annotations

import random

import pytest

from bugcheck.dumpfile.writer import DumpDescription, write_dump

kdmp_parser = pytest.importorskip("kdmp_parser")

KINDS = ["full", "complete_bitmap", "kernel_bitmap"]
KDMP_TYPE = {"full": 1, "complete_bitmap": 5, "kernel_bitmap": 6}

REGS = {
    "rax": 0x1111111111111111,
    "rbx": 0x2222222222222222,
    "rcx": 0x3333333333333333,
    "rdx": 0x4444444444444444,
    "rsi": 0x5555555555555555,
    "rdi": 0x6666666666666666,
    "rbp": 0xFFFF8000_00002F00,
    "rsp": 0xFFFF8000_00002E80,
    "rip": 0xFFFFF800_1234ABCD,
    "r8": 8,
    "r9": 9,
    "r10": 10,
    "r11": 11,
    "r12": 12,
    "r13": 13,
    "r14": 14,
    "r15": 0xF15,
    "efl": 0x40246,
    "cs": 0x10,
    "ss": 0x18,
}


def _noise(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def _description(large_pages: bool = False, **kw) -> DumpDescription:
    mappings = {
        0xFFFFF800_12340000: _noise(0x5123, 1),  # odd size: the last page is zero padded
        0xFFFF8000_00000000: _noise(0x3000, 2),
        0xFFFFF780_00000000: b"\x01" * 0x1000,  # KUSER_SHARED_DATA's address
        0x0000_7FF6_0000_0000: b"user page",
        0xFFFFFA80_00200000: _noise(0x200000, 3),  # one aligned 2 MB region
        0xFFFFFA80_00400000: bytes(0x1000),  # a mapped page of zeros
    }
    other = dict(REGS, rip=0xFFFFF800_00001000, rax=7)
    return DumpDescription(
        machine="x64",
        build=19041,
        bugcheck_code=0x1000007E,
        bugcheck_parameters=(0xFFFFFFFFC0000005, 0xFFFFF8048B58334C, 0xFFFF850429891EE8, 0xFFFF850429891720),
        system_time=0x01D707F2_6F1A2B3C,
        system_up_time=123456789,
        product_type=1,
        suite_mask=0x110,
        contexts=[other, REGS],
        crash_processor=1,
        kd_debugger_data_block=0xFFFFF800_5C000000,
        ps_loaded_module_list=0xFFFFF800_5C100000,
        ps_active_process_head=0xFFFFF800_5C200000,
        comment="synthetic dump for tests",
        mappings=mappings,
        physical_pages={0x9E000: b"raw physical page", 0x100000: _noise(0x2000, 4)},
        large_pages=large_pages,
        **{"ram_size": 64 << 20, **kw},
    )


@pytest.fixture(
    scope="module",
    params=[(k, lp) for k in KINDS for lp in (False, True)],
    ids=lambda p: f"{p[0]}-{'large' if p[1] else '4k'}",
)
def written(request, tmp_path_factory):
    kind, large = request.param
    desc = _description(large_pages=large)
    path = tmp_path_factory.mktemp("dumps") / f"{kind}.dmp"
    layout = write_dump(desc, path, kind)
    return kind, desc, layout, kdmp_parser.KernelDumpParser(path)


def test_header_fields(written):
    kind, desc, layout, k = written
    assert k.type.value == KDMP_TYPE[kind]
    h = k.header
    assert h.MajorVersion == 0xF and h.MinorVersion == 19041
    assert h.MachineImageType == 0x8664
    assert h.NumberProcessors == 2
    assert h.BugCheckCode == desc.bugcheck_code
    assert list(h.BugCheckCodeParameter) == list(desc.bugcheck_parameters)
    assert h.KdDebuggerDataBlock == desc.kd_debugger_data_block
    assert h.PsLoadedModuleList == desc.ps_loaded_module_list
    assert h.PsActiveProcessHead == desc.ps_active_process_head
    assert h.SystemTime == desc.system_time and h.SystemUpTime == desc.system_up_time
    assert h.ProductType == 1 and h.SuiteMask == 0x110
    assert k.directory_table_base == layout.directory_table_base
    assert bytes(h.Comment).split(b"\0")[0] == b"synthetic dump for tests"


def test_crash_context_is_the_crash_processors(written):
    _, _, _, k = written
    c = k.context
    for name, value in REGS.items():
        attr = {"efl": "EFlags", "cs": "SegCs", "ss": "SegSs"}.get(name, name.capitalize())
        assert getattr(c, attr) == value, name
    assert c.MxCsr == c.MxCsr2 == 0x1F80


def test_physical_page_set_and_contents(written):
    kind, _, layout, k = written
    got = set(k.pages.keys())
    if kind == "kernel_bitmap":
        expected = {pfn << 12 for pfn in layout.pages}
    else:
        expected = {(b + i) << 12 for b, c in layout.runs for i in range(c)}
    assert got == expected
    for pfn in layout.pages:
        assert bytes(k.read_physical_page(pfn << 12)) == layout.page_bytes(pfn), hex(pfn)
    if kind != "kernel_bitmap":
        # A page nobody wrote is present and zero (a hole of the sparse file).
        free = next(p for p in range(0x2000, 0x3000) if p not in layout.pages)
        assert bytes(k.read_physical_page(free << 12)) == bytes(0x1000)
    assert k.read_physical_page(layout.runs[-1][0] + layout.runs[-1][1] << 12) is None


def test_virtual_translation_agrees(written):
    _, desc, layout, k = written
    assert layout.va_to_pa
    for va, pa in layout.va_to_pa.items():
        assert k.translate_virtual(va + 0x123) == pa + 0x123, hex(va)
    for va, data in desc.mappings.items():
        for off in range(0, len(data), 0x1000):
            page = bytes(k.read_virtual_page(va + off))
            chunk = data[off : off + 0x1000]
            assert page[: len(chunk)] == chunk and not any(page[len(chunk) :])
    for hole in (0xFFFFF800_12346000, 0xFFFF8000_00003000, 0x1000, 0xFFFFFA80_00600000):
        assert k.translate_virtual(hole) is None


def test_large_pages_are_really_used(written):
    _, desc, layout, k = written
    if not desc.large_pages:
        assert layout.large_pages == {}
        return
    assert layout.large_pages == {0xFFFFFA80_00200000: 0x200000}
    pa = k.translate_virtual(0xFFFFFA80_00200000)
    assert pa % 0x200000 == 0
    assert k.translate_virtual(0xFFFFFA80_003FF008) == pa + 0x1FF008


def test_random_pages_spread_over_16gb_are_sparse(tmp_path):
    """A complete dump of a 16 GB machine is a sparse file: its pages are mostly holes."""
    desc = _description(ram_size=16 << 30, spread_seed=7)
    path = tmp_path / "big.dmp"
    layout = write_dump(desc, path, "complete_bitmap")
    st = path.stat()
    assert st.st_size > 16 << 30 - 1
    assert st.st_blocks * 512 < 64 << 20
    k = kdmp_parser.KernelDumpParser(path)
    pfns = sorted(layout.pages)
    assert pfns[-1] - pfns[0] > (1 << 20)  # spread, not packed at the start
    for pfn in pfns[:: max(1, len(pfns) // 50)]:
        assert bytes(k.read_physical_page(pfn << 12)) == layout.page_bytes(pfn)
    for va in list(layout.va_to_pa)[::40]:
        assert k.translate_virtual(va) == layout.va_to_pa[va]
