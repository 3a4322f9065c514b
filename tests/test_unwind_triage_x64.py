"""Acceptance: unwind amdppm -> Wdf01000 -> nt on rizin-triage_x64.dmp from the images' .pdata.

Stack memory comes from the dump (``bugcheck.open(...).read_virtual``); unwind
data and code bytes from the symbol-store images.
"""

from __future__ import annotations

import bugcheck
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


def _driver_base(d, image) -> int:
    """The image's load address from the dump's driver list, matched by timestamp and size."""
    hits = [
        x.base for x in d.triage.drivers if x.timestamp == image.timestamp and x.size == image.size_of_image
    ]
    assert len(hits) == 1, "image not found (once) in the dump's driver list"
    return hits[0]


def test_unwind_amdppm_through_wdf_into_nt():
    path = dump("rizin-triage_x64.dmp")
    amd = PeImage.from_file(corpus_file("symstore", "amdppm.sys", "c9c030003b000", "amdppm.sys"))
    wdf = PeImage.from_file(corpus_file("symstore", "Wdf01000.sys", "a9a9d36ed1000", "Wdf01000.sys"))
    d = bugcheck.open(path)
    amd_base = _driver_base(d, amd)
    wdf_base = _driver_base(d, wdf)
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
