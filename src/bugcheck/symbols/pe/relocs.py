"""Base relocations: where an image's absolute addresses sit, and their values at another base.

An image loaded away from its preferred ImageBase has every HIGHLOW (4-byte) or
DIR64 (8-byte) fixup site shifted by the difference; comparing a file with
memory (``!chkimg``) or mapping it at a module's base needs the same shift.
"""

from __future__ import annotations

import struct

DIR_BASERELOC = 5
#: relocation types: 3 = HIGHLOW (4 bytes), 10 = DIR64 (8 bytes)
_RELOC_WIDTH = {3: 4, 10: 8}
#: caps the table read from an untrusted file (a large driver's table is well under 1 MB)
MAX_RELOC_BYTES = 16 << 20


def relocations(image) -> list[tuple[int, int]]:
    """(rva, width) of every HIGHLOW/DIR64 fixup in the image's base relocation table."""
    rva, size = image.directory(DIR_BASERELOC)
    if not rva or not size:
        return []
    data = image.read_tolerant(rva, min(size, MAX_RELOC_BYTES))
    out = []
    pos = 0
    while pos + 8 <= len(data):
        page, block = struct.unpack_from("<II", data, pos)
        if block < 8 or pos + block > len(data):
            break
        for i in range(pos + 8, pos + block - 1, 2):
            (entry,) = struct.unpack_from("<H", data, i)
            width = _RELOC_WIDTH.get(entry >> 12)
            if width:
                out.append((page + (entry & 0xFFF), width))
        pos += block
    return out


def relocated_bytes(image, rva: int, size: int, delta: int, fixups: list[tuple[int, int]]) -> bytearray:
    """``size`` bytes of ``image`` at ``rva`` with every fixup in ``fixups`` shifted by ``delta``.

    A fixup straddling either end of the range is applied to the whole value and
    only its overlapping bytes kept, so adjacent ranges agree.
    """
    buf = bytearray(image.read_tolerant(rva, size))
    for frva, width in fixups:
        off = frva - rva
        if off + width <= 0 or off >= len(buf):
            continue
        # apply the fixup on a scratch copy covering the whole value, then take the overlap
        whole = bytearray(image.read_tolerant(frva, width))
        if len(whole) < width:
            continue
        fmt = "<Q" if width == 8 else "<I"
        (v,) = struct.unpack(fmt, whole)
        v = (v + delta) & ((1 << (width * 8)) - 1)
        fixed = struct.pack(fmt, v)
        for j in range(width):
            k = off + j
            if 0 <= k < len(buf):
                buf[k] = fixed[j]
    return buf


def apply_relocations(buf: bytearray, delta: int, fixups: list[tuple[int, int]]) -> int:
    """Shift every fixup lying wholly inside ``buf`` (a whole mapped image, RVA 0 at offset 0)
    by ``delta`` in place; returns how many were applied (sites past the end are skipped)."""
    if not delta:
        return 0
    applied = 0
    n = len(buf)
    for frva, width in fixups:
        if frva < 0 or frva + width > n:
            continue
        fmt = "<Q" if width == 8 else "<I"
        (v,) = struct.unpack_from(fmt, buf, frva)
        struct.pack_into(fmt, buf, frva, (v + delta) & ((1 << (width * 8)) - 1))
        applied += 1
    return applied
