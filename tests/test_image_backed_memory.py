"""Reads the dump cannot answer come from the module's image, as WinDbg maps images on a minidump.

Only bytes the loader leaves as in the file are served (headers, read-only
sections minus the IAT and rewritten code); writable data, the IAT and modules
without an image file stay absent (``??``). The triage dump and its re-pack
(made with the same images) print the same lines.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from bugcheck.errors import MemoryNotPresent
from bugcheck.memory.fallback import RangeFallback
from bugcheck.memory.sparse import Block, SparseMemory
from corpus import corpus_file, dump

ISF = ("symbols", "isf", "windows", "ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844-1.json.xz")
U_LINE = "u amdppm!InitAcpiCpc L4"

# ---- the memory layer's hook, on a synthetic address space ----------------------------------------


class Source:
    """Constant bytes 0xAB over [lo, hi) of one module, counting how often it is asked."""

    def __init__(self, lo, hi):
        self.lo, self.hi, self.calls = lo, hi, 0

    def pieces(self, va, n):
        self.calls += 1
        lo, hi = max(va, self.lo), min(va + n, self.hi)
        return [(lo, b"\xab" * (hi - lo))] if lo < hi else []


def test_fallback_fills_holes_only_and_loads_lazily():
    mem = SparseMemory([Block(0x1000, 0x10, b"\x11" * 0x10)])
    loads = []
    sources = {0x1000: Source(0x1008, 0x1030)}

    def load(key):
        loads.append(key)
        return sources.get(key)

    fb = RangeFallback([(0x1000, 0x100, 0x1000), (0x5000, 0x100, 0x5000)], load)
    mem.set_fallback(fb)
    with pytest.raises(MemoryNotPresent):
        mem.read(0x9000, 4)  # outside every module: nothing is loaded
    assert loads == []
    assert mem.read(0x1000, 0x10) == b"\x11" * 0x10  # fully captured: the fallback is not asked
    assert loads == []
    # captured bytes win; the hole after them comes from the image
    assert mem.read(0x1000, 0x20) == b"\x11" * 0x10 + b"\xab" * 0x10
    data, holes = mem.read_padded(0x1028, 0x10)
    assert data == b"\xab" * 8 + b"\x00" * 8 and holes == [(0x1030, 8)]
    with pytest.raises(MemoryNotPresent) as e:
        mem.read(0x1028, 0x10)
    assert e.value.address == 0x1030
    assert not mem.is_present(0x1028, 0x10) and mem.is_present(0x1010, 0x20)
    # a module without a source is looked up once
    for _ in range(3):
        with pytest.raises(MemoryNotPresent):
            mem.read(0x5000, 8)
    assert loads == [0x1000, 0x5000]
    assert fb.loaded() == {0x1000: True, 0x5000: False}
    # captured blocks keep meaning what the dump holds
    assert [(b.address, b.size) for b in mem.blocks] == [(0x1000, 0x10)]
    assert [c is None for _, c, _ in mem.read_chunks(0x1000, 0x20)] == [False, True]


def test_fallback_spans_two_modules_and_respects_the_limit():
    mem = SparseMemory([])
    a, b = Source(0x1000, 0x2000), Source(0x2000, 0x3000)
    fb = RangeFallback([(0x2000, 0x1000, "b"), (0x1000, 0x1000, "a")], {"a": a, "b": b}.get)
    mem.set_fallback(fb)
    assert mem.read(0x1FF8, 0x10) == b"\xab" * 0x10
    capped = RangeFallback([(0x1000, 0x1000, "a"), (0x2000, 0x1000, "b")], {"a": a, "b": b}.get, limit=0x1000)
    mem.set_fallback(capped)
    assert mem.read_padded(0x1FF8, 0x10)[1] == [(0x2000, 8)]


# ---- rizin-triage_x64 and its re-pack through the command line ------------------------------------


def _cli(path, commands: list[str]) -> dict[str, list[str]]:
    args = [
        sys.executable, "-c", "import sys; from bugcheck.cli import main; sys.exit(main())",
        "-y", str(corpus_file("symstore")), "--offline",
        "--symbols-dir", str(corpus_file("symbols", "isf")),
        "-c", "; ".join(commands), str(path),
    ]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=300).stdout
    blocks: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("0: kd> "):
            current = blocks.setdefault(line[7:].strip(), [])
        elif current is not None:
            current.append(line)
    return blocks


@pytest.fixture(scope="module")
def rizin(tmp_path_factory):
    from bugcheck.dumpfile.dump import open_dump
    from bugcheck.dumpfile.writer import repack
    from bugcheck.kernel.modules import from_triage
    from bugcheck.symbols.isf import load_isf
    from bugcheck.symbols.pe import PeImage, module_images
    from bugcheck.symbols.store import SymbolStore

    path = dump("rizin-triage_x64.dmp")
    src = open_dump(path)
    store = SymbolStore(str(corpus_file("symstore")), offline=True, quiet=True)
    mods = from_triage(src).modules
    images = module_images(mods, store)
    out = tmp_path_factory.mktemp("image-backed") / "rizin-bitmap.dmp"
    repack(src, out, "kernel_bitmap", types=load_isf(corpus_file(*ISF)), images=images)

    def empty_page(va):
        return all(c is None for _, c, _ in src.virtual.read_chunks(va & ~0xFFF, 0x1000))

    amd = next(m for m in mods if m.image_name.lower() == "amdppm.sys")
    with PeImage.from_file(store.find_image(amd.image_name, amd.timestamp, amd.size)) as img:
        data = next(s for s in img.sections if s.name == ".data")
        data_va = next(
            amd.base + p
            for p in range(data.virtual_address, data.virtual_address + data.virtual_size, 0x1000)
            if empty_page(amd.base + p)
        )
        iat_rva, _ = img.directory(12)
        iat_file = img.read(iat_rva, 0x10)
    iat_va = amd.base + iat_rva
    assert all(c is None for _, c, _ in src.virtual.read_chunks(iat_va, 0x10))
    bare = next(
        m
        for m in mods[1:]
        if m.base not in images
        and empty_page(m.base)
        and store.find_image(m.image_name, m.timestamp, m.size) is None
    )
    lines = {
        "u": U_LINE,
        "data": f"db {data_va:x} L20",
        "iat": f"db {iat_va:x} L10",
        "bare": f"db {bare.base:x} L10",
        "head": f"db {amd.base:x} L10",
    }
    src.close()
    return lines, iat_file, _cli(path, list(lines.values())), _cli(out, list(lines.values()))


def _unknown(block: list[str]) -> bool:
    return bool(block) and all("?? ?? ?? ??" in line for line in block)


def test_u_disassembles_the_image_on_the_triage_dump(rizin):
    lines, _, tri, _ = rizin
    block = tri[lines["u"]]
    assert block[0] == "amdppm!InitAcpiCpc:"
    assert "mov     qword ptr [rsp+8],rbx" in block[1]
    assert len(block) == 5 and not any("??" in line for line in block)


def test_headers_come_from_the_image(rizin):
    lines, _, tri, _ = rizin
    assert tri[lines["head"]][0].split("  ")[1].startswith("4d 5a 90 00")


def test_writable_data_iat_and_imageless_modules_stay_absent(rizin):
    lines, _, tri, _ = rizin
    for key in ("data", "iat", "bare"):
        assert _unknown(tri[lines[key]]), (key, tri[lines[key]])


def test_repack_prints_the_same_lines(rizin):
    lines, iat_file, tri, rep = rizin
    for key in ("u", "data", "bare", "head"):
        assert rep[lines[key]] == tri[lines[key]], key
    # the IAT shares a page with captured bytes: the re-pack holds that page whole, its
    # uncaptured bytes read as zeros (the page-granularity difference), never as the file's
    iat = rep[lines["iat"]]
    assert len(iat) == 1 and any(iat_file)
    hexes = iat[0].split("  ")[1].replace("-", " ").split()
    assert all(h in ("??", "00") for h in hexes)


def test_read_captured_ignores_the_fallback():
    mem = SparseMemory([Block(0x1000, 8, b"\x11" * 8)])
    mem.set_fallback(RangeFallback([(0x1000, 0x100, "m")], {"m": Source(0x1000, 0x1100)}.get))
    assert mem.read_padded(0x1000, 0x10) == (b"\x11" * 8 + b"\xab" * 8, [])
    assert mem.read_captured(0x1000, 0x10) == (b"\x11" * 8 + b"\x00" * 8, [(0x1008, 8)])
    assert mem.read(0x1008, 8) == b"\xab" * 8  # the fallback is back afterwards
