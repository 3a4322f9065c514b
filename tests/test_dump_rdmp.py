"""The newer dump types 8/9/10 ('RDMP' header + PFN ranges), checked against kdmp-parser.

No real file of these types is available, so one is laid out here from the
public description of the format and read by both kdmp-parser and bugcheck.
"""

from __future__ import annotations

import struct

import pytest

import bugcheck
from bugcheck.dumpfile import DumpKind
from bugcheck.errors import BadFileError, MemoryNotPresent

PAGE = 0x1000
RANGES = [(0x10, 2), (0x100, 1), (0x40, 3)]  # (first PFN, count), in file order


def _page(pfn: int) -> bytes:
    return struct.pack("<Q", pfn) * (PAGE // 8)


def build(dump_type: int, ranges=RANGES, first_page=0x3000) -> bytes:
    hdr = bytearray(b"PAGE" * (0x2000 // 4))
    hdr[0:8] = b"PAGEDU64"
    struct.pack_into("<II", hdr, 8, 0xF, 22621)
    struct.pack_into("<Q", hdr, 0x10, 0x10 * PAGE)  # DTB: a page of ours (all entries invalid)
    struct.pack_into("<III", hdr, 0x30, 0x8664, 2, 0xE2)
    struct.pack_into("<4Q", hdr, 0x40, 1, 2, 3, 4)
    ctx = bytearray(0x4D0)
    struct.pack_into("<II", ctx, 0x30, 0x10001F, 0x1F80)  # ContextFlags, MxCsr
    struct.pack_into("<I", ctx, 0x118, 0x1F80)  # FltSave.MxCsr must equal MxCsr for kdmp-parser
    struct.pack_into("<Q", ctx, 0xF8, 0xFFFFF80012345678)
    hdr[0x348 : 0x348 + len(ctx)] = ctx
    struct.pack_into("<I", hdr, 0xF98, dump_type)
    meta_size = first_page - 0x2040 + 0x20
    rd = bytearray(first_page - 0x2000)
    struct.pack_into("<I4s4sIQQ", rd, 0, 0x40, b"RDMP", b"DUMP", 0, meta_size, first_page)
    if dump_type == 10:  # NumberOfRanges, two unknown shorts, TotalNumberOfPages
        struct.pack_into("<IHHQ", rd, 0x20, len(ranges), 0, 0, sum(n for _, n in ranges))
    for i, (pfn, n) in enumerate(ranges):
        struct.pack_into("<QQ", rd, 0x30 + 16 * i, pfn, n)
    body = b"".join(_page(pfn + k) for pfn, n in ranges for k in range(n))
    return bytes(hdr) + bytes(rd) + body


@pytest.mark.parametrize(
    "dump_type,kind",
    [(8, DumpKind.KERNEL_MEMORY), (9, DumpKind.KERNEL_AND_USER), (10, DumpKind.COMPLETE_MEMORY)],
)
def test_rdmp_matches_kdmp_parser(tmp_path, dump_type, kind):
    kdmp_parser = pytest.importorskip("kdmp_parser")
    path = tmp_path / f"t{dump_type}.dmp"
    path.write_bytes(build(dump_type))
    d = bugcheck.open(path)
    assert d.kind is kind and d.kind.banner_line
    assert d.bugcheck_code == 0xE2 and d.bugcheck_parameters == (1, 2, 3, 4)
    assert d.crash_context.pc == 0xFFFFF80012345678
    ref = kdmp_parser.KernelDumpParser(path)
    pfns = [pfn + k for pfn, n in RANGES for k in range(n)]
    for pfn in pfns:
        want = ref.read_physical_page(pfn * PAGE)
        assert want is not None and bytes(want) == _page(pfn)
        assert d.read_physical(pfn * PAGE, PAGE) == bytes(want)
    for pfn in (0, 0x12, 0x43, 0x101):
        assert ref.read_physical_page(pfn * PAGE) is None
        with pytest.raises(MemoryNotPresent):
            d.read_physical(pfn * PAGE, 8)


def test_rdmp_bad_header(tmp_path):
    raw = bytearray(build(8))
    raw[0x2004:0x2008] = b"XXXX"
    path = tmp_path / "bad.dmp"
    path.write_bytes(bytes(raw))
    with pytest.raises(BadFileError, match="RDMP"):
        bugcheck.open(path)
