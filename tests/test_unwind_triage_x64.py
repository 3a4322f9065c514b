"""Acceptance: unwind amdppm -> Wdf01000 -> nt on rizin-triage_x64.dmp from the images' .pdata.

Stack memory comes from the dump; unwind data from the symbol-store images.
Until ``bugcheck.open`` can read a triage dump, a minimal data-block reader
here stands in (TRIAGE_DUMP at 0x2000, blocks = VA u64, offset u32, size u32).
"""

from __future__ import annotations

import struct

from bugcheck.errors import MemoryNotPresent
from bugcheck.stack.unwind_x64 import ImageLookup, virtual_unwind
from bugcheck.symbols.pe import PeImage
from corpus import corpus_file, dump

# The answer key in MANIFEST.md (rizin's backtrace), frames 8..24: (pc, sp).
EXPECTED = [
    (0xFFFFF8048B58334C, 0xFFFF850429892120),
    (0xFFFFF8048B58313F, 0xFFFF850429892150),
    (0xFFFFF8048B583234, 0xFFFF850429892180),
    (0xFFFFF8048B5A0E8F, 0xFFFF8504298921B0),
    (0xFFFFF8048B5A83F6, 0xFFFF850429892210),
    (0xFFFFF8048B59F852, 0xFFFF850429892340),
    (0xFFFFF804799CC027, 0xFFFF850429892380),
    (0xFFFFF80479966F81, 0xFFFF8504298923D0),
    (0xFFFFF804799CB227, 0xFFFF850429892410),
    (0xFFFFF804799C9E21, 0xFFFF850429892460),
    (0xFFFFF804799C99DA, 0xFFFF8504298924A0),
    (0xFFFFF804799CB6B1, 0xFFFF850429892530),
    (0xFFFFF804799CB47A, 0xFFFF8504298925A0),
    (0xFFFFF804799D299E, 0xFFFF850429892630),
    (0xFFFFF8047995CC5F, 0xFFFF850429892660),
    (0xFFFFF8047995A866, 0xFFFF8504298926D0),
    (0xFFFFF8047BC52F55, 0xFFFF850429892730),
]


class _TriageBlocks:
    """Minimal stand-in: the data blocks and the call-stack region of an x64 triage dump."""

    def __init__(self, path):
        self.data = path.read_bytes()
        t = 0x2000
        f = struct.unpack_from("<18I", self.data, t)
        (top,) = struct.unpack_from("<Q", self.data, t + 0x48)
        self.driver_list, self.driver_count = f[12], f[13]
        dbo, dbc = struct.unpack_from("<II", self.data, t + 0x78)
        self.blocks = [(top, f[10], f[11])]
        for i in range(dbc):
            self.blocks.append(struct.unpack_from("<QII", self.data, dbo + 16 * i))

    def read_virtual(self, va: int, n: int) -> bytes:
        for addr, off, size in self.blocks:
            if addr <= va and va + n <= addr + size:
                return self.data[off + va - addr : off + va - addr + n]
        raise MemoryNotPresent(va)

    def driver_base(self, timestamp: int, size: int) -> int | None:
        """DUMP_DRIVER_ENTRY64 (0x90 bytes): DllBase at +0x38, SizeOfImage +0x48, TimeDateStamp +0x88."""
        for i in range(self.driver_count):
            e = self.driver_list + 0x90 * i
            (base,) = struct.unpack_from("<Q", self.data, e + 0x38)
            (sz,) = struct.unpack_from("<I", self.data, e + 0x48)
            (ts,) = struct.unpack_from("<I", self.data, e + 0x88)
            if ts == timestamp and sz == size:
                return base
        return None


def _open_dump(path):
    try:
        import bugcheck

        d = bugcheck.open(path)
        d.read_virtual(EXPECTED[0][1], 8)
        return d, None
    except Exception:
        blocks = _TriageBlocks(path)
        return blocks, blocks


def _driver_base(d, blocks, image) -> int:
    if blocks is not None:
        base = blocks.driver_base(image.timestamp, image.size_of_image)
    else:
        base = next(
            (
                b
                for _n, b, s, ts, *_ in d.triage.drivers
                if ts == image.timestamp and s == image.size_of_image
            ),
            None,
        )
    assert base is not None, "image not found in the dump's driver list"
    return base


def test_unwind_amdppm_through_wdf_into_nt():
    path = dump("rizin-triage_x64.dmp")
    amd = PeImage.from_file(corpus_file("symstore", "amdppm.sys", "c9c030003b000", "amdppm.sys"))
    wdf = PeImage.from_file(corpus_file("symstore", "Wdf01000.sys", "a9a9d36ed1000", "Wdf01000.sys"))
    d, blocks = _open_dump(path)
    amd_base = _driver_base(d, blocks, amd)
    wdf_base = _driver_base(d, blocks, wdf)
    assert amd_base == 0xFFFFF8048B580000
    lookup = ImageLookup([(amd_base, amd), (wdf_base, wdf)])

    regs = {"rip": EXPECTED[0][0], "rsp": EXPECTED[0][1]}
    got = [(regs["rip"], regs["rsp"])]
    methods = []
    for _ in range(len(EXPECTED) - 1):
        r = virtual_unwind(regs, d.read_virtual, lookup, read_code=lookup.read_code)
        methods.append(r.method)
        regs = r.context
        got.append((regs["rip"], regs["rsp"]))
    assert [(hex(a), hex(b)) for a, b in got] == [(hex(a), hex(b)) for a, b in EXPECTED]
    # Every frame in amdppm/Wdf01000 has .pdata: none may be a leaf guess.
    assert set(methods) <= {"pdata", "epilog"}, methods


def test_frame8_is_found_by_pdata():
    amd = PeImage.from_file(corpus_file("symstore", "amdppm.sys", "c9c030003b000", "amdppm.sys"))
    f = amd.lookup_function(EXPECTED[0][0] - 0xFFFFF8048B580000)
    assert f is not None and f.begin <= 0x334C < f.end
    assert amd.lookup_function(amd.size_of_image + 0x100) is None
