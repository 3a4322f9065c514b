"""Legacy kernel summary dumps (DumpType 2): SUMMARY_DUMP bitmap after the header."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import bugcheck
from bugcheck.dumpfile import DumpKind
from bugcheck.errors import BadFileError

PAGE = 0x1000


def build(wide: bool, pfns: list[int], nbits: int = 128) -> bytes:
    size = 0x2000 if wide else 0x1000
    hdr = bytearray(b"PAGE" * (size // 4))
    if wide:
        hdr[0:8] = b"PAGEDU64"
        struct.pack_into("<II", hdr, 8, 0xF, 7601)
        struct.pack_into("<III", hdr, 0x30, 0x8664, 1, 0xD1)
        struct.pack_into("<I", hdr, 0xF98, 2)
    else:
        hdr[0:8] = b"PAGEDUMP"
        struct.pack_into("<II", hdr, 8, 0xF, 2600)
        struct.pack_into("<III", hdr, 0x20, 0x14C, 1, 0xD1)
        struct.pack_into("<I", hdr, 0xF88, 2)
    bits = np.zeros(nbits, dtype=np.uint8)
    bits[pfns] = 1
    bitmap = np.packbits(bits, bitorder="little").tobytes()
    bits_at = 0x28 if wide else 0x20
    data_at = (size + bits_at + len(bitmap) + PAGE - 1) // PAGE * PAGE
    sub = bytearray(data_at - size)
    struct.pack_into("<4s4sIIII", sub, 0, b"SDMP", b"DUMP", 0, data_at, nbits, len(pfns))
    sub[bits_at : bits_at + len(bitmap)] = bitmap
    pages = b"".join(struct.pack("<I", p).ljust(PAGE, b"\xee") for p in pfns)
    return bytes(hdr) + bytes(sub) + pages


@pytest.mark.parametrize("wide", [True, False])
def test_summary_dump_pages(tmp_path, wide):
    pfns = [3, 4, 9, 100]
    path = tmp_path / "summary.dmp"
    path.write_bytes(build(wide, pfns))
    d = bugcheck.open(path)
    assert d.kind is DumpKind.SUMMARY
    assert d.kind.banner_line == "Kernel Summary Dump File: Only kernel address space is available"
    assert d.bugcheck_code == 0xD1
    for p in pfns:
        assert d.read_physical(p * PAGE, 4) == struct.pack("<I", p)
    assert not d.physical.is_present(5 * PAGE)
    assert d.warnings == []


def test_summary_truncated(tmp_path):
    raw = build(True, [3, 4, 9, 100])
    path = tmp_path / "cut.dmp"
    path.write_bytes(raw[: len(raw) - 2 * PAGE])
    d = bugcheck.open(path)
    assert d.warnings == ["WARNING: Dump file has been truncated.  Data may be missing."]
    assert d.physical.is_present(4 * PAGE) and not d.physical.is_present(9 * PAGE)


def test_summary_bitmap_past_eof(tmp_path):
    raw = bytearray(build(True, [1]))
    struct.pack_into("<I", raw, 0x2010, 1 << 30)  # bitmap size far beyond the file
    path = tmp_path / "bad.dmp"
    path.write_bytes(bytes(raw))
    with pytest.raises(BadFileError, match="bitmap"):
        bugcheck.open(path)
