"""Module images placed in a re-packed dump, and the mapping/relocation code behind them.

rizin-triage_x64.dmp holds only scraps of its drivers; two of their files are in
the corpus symbol store. Re-packed with those images, every byte of the two
modules must read back as the triage dump captured it where it did, as the
relocated mapped file where the loader leaves the file's bytes (constant
ranges), and never from the file elsewhere (writable data, INIT, the import
address table, code the kernel rewrites): there it is zero or absent. The
relocation code itself is checked on a DLL built by clang/lld, against
llvm-readobj's list of fixups.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import numpy as np
import pytest

import bugcheck
from bugcheck.dumpfile.writer import repack
from bugcheck.errors import BadFileError
from bugcheck.kernel.modules import from_triage
from bugcheck.symbols.pe import PeImage, constant_ranges, mapped_image, module_images, relocations
from corpus import corpus_file, dump

ISF = ("symbols", "isf", "windows", "ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844-1.json.xz")
DRIVERS = ("amdppm.sys", "Wdf01000.sys")


@pytest.fixture(scope="module")
def rizin(tmp_path_factory):
    from bugcheck.symbols.isf import load_isf
    from bugcheck.symbols.store import SymbolStore

    src = bugcheck.open(dump("rizin-triage_x64.dmp"))
    table = load_isf(corpus_file(*ISF))
    store = SymbolStore(str(corpus_file("symstore")), offline=True, quiet=True)
    mods = {m.image_name.lower(): m for m in from_triage(src).modules}
    images = module_images(from_triage(src).modules, store)
    out = tmp_path_factory.mktemp("repack-images") / "rizin-images.dmp"
    repack(src, out, "kernel_bitmap", types=table, images=images)
    return src, bugcheck.open(out), store, mods, images


def test_only_modules_with_files_are_placed(rizin):
    _, _, _, mods, images = rizin
    assert sorted(images) == sorted(mods[n.lower()].base for n in DRIVERS)
    for n in DRIVERS:
        m = mods[n.lower()]
        assert (images[m.base].base, images[m.base].size) == (m.base, m.size)


def _captured(src, base: int, size: int):
    """The triage dump's own bytes over a range and a mask of which it holds (no fallback)."""
    data, holes = bytearray(size), []
    for addr, chunk, length in src.virtual.read_chunks(base, size):
        if chunk is None:
            holes.append((addr, length))
        else:
            data[addr - base : addr - base + length] = chunk
    captured = np.ones(size, dtype=bool)
    for start, n in holes:
        captured[start - base : start - base + n] = False
    return np.frombuffer(bytes(data), dtype=np.uint8), captured


def _section_mask(img, size: int, want) -> np.ndarray:
    mask = np.zeros(size, dtype=bool)
    for s in img.sections:
        if want(s):
            mask[s.virtual_address : s.virtual_address + (s.virtual_size or s.raw_size)] = True
    return mask


@pytest.mark.parametrize("name", DRIVERS)
def test_image_bytes_read_back_captured_bytes_win(rizin, name):
    src, packed, store, mods, _ = rizin
    m = mods[name.lower()]
    path = store.find_image(m.image_name, m.timestamp, m.size)
    with PeImage.from_file(path) as img:
        want = np.frombuffer(mapped_image(img, m.base), dtype=np.uint8)
        constant = np.zeros(m.size, dtype=bool)
        for rva, n in constant_ranges(img):
            constant[rva : rva + n] = True
        writable = _section_mask(img, m.size, lambda s: s.characteristics & 0x8000_0000)
        discardable = _section_mask(img, m.size, lambda s: s.characteristics & 0x0200_0000)
        iat_rva, iat_size = img.directory(12)
    tri, captured = _captured(src, m.base, m.size)
    raw, holes = packed.read_virtual_padded(m.base, m.size)
    got = np.frombuffer(raw, dtype=np.uint8)
    absent = np.zeros(m.size, dtype=bool)
    for start, n in holes:
        absent[start - m.base : start - m.base + n] = True
    # captured bytes win; constant bytes come from the file; nothing else does (zero or absent)
    expect = np.where(captured, tri, np.where(constant, want, 0))
    bad = np.flatnonzero(~absent & (got != expect))
    assert bad.size == 0, f"{name} +{bad[0]:#x} reads {got[bad[0]]:#x}, expected {expect[bad[0]]:#x}"
    assert not (absent & (captured | constant)).any()
    # the rule excludes what it must: writable data, INIT, the IAT are never taken from the file
    assert not (constant & (writable | discardable)).any()
    assert iat_size and not constant[iat_rva : iat_rva + iat_size].any()
    for mask in (writable, discardable):
        filled = mask & ~captured & (want != 0)
        assert filled.any() and not (got[filled] == want[filled]).all()
    # the check means something: both sources contribute, and where the triage dump kept the
    # loader's changes (resolved imports, rewritten calls, written data) the two differ
    assert 0 < captured.sum() < m.size and (constant & ~captured).sum() > 0x8000
    assert (tri[captured] != want[captured]).any()
    # in the constant ranges, what the triage dump captured is the file's bytes exactly
    both = captured & constant
    assert both.sum() > 0x1000 and (tri[both] == want[both]).all()


@pytest.mark.parametrize("name", DRIVERS)
def test_image_parses_from_repacked_memory(rizin, name):
    _, packed, store, mods, _ = rizin
    m = mods[name.lower()]
    mem = PeImage.from_memory(packed.read_virtual, m.base)
    with PeImage.from_file(store.find_image(m.image_name, m.timestamp, m.size)) as f:
        assert mem.headers_complete and not mem.absent
        assert (mem.timestamp, mem.size_of_image) == (f.timestamp, f.size_of_image)
        assert [s.name for s in mem.sections] == [s.name for s in f.sections]
        assert len(mem.runtime_functions) == len(f.runtime_functions) > 100
        assert mem.image_base == m.base  # the loader writes the real base into the mapped header


# ---- relocation on a clang/lld-built DLL ------------------------------------------------------

PREFERRED = 0x1_8000_0000
ELSEWHERE = 0xFFFFF804_12340000


def _source(n: int = 700) -> str:
    # a pointer table over more than one page gives several relocation blocks
    items = ", ".join(("&counter", "&ptr", "(void *)helper", "&table")[i % 4] for i in range(n))
    return (
        "int counter = 5;\nint *ptr = &counter;\n"
        "static int helper(int a) { return a + counter; }\n"
        "int (*fn)(int) = helper;\n"
        f"void *table[{n}] = {{ {items} }};\n"
        "__declspec(dllexport) int get(int i) { return ((int *)table[i])[0] + fn(i) + *ptr; }\n"
    )


@pytest.fixture(scope="module")
def dll(tmp_path_factory):
    if not (shutil.which("clang-19") and shutil.which("lld-link-19") and shutil.which("llvm-readobj")):
        pytest.skip("clang-19 / lld-link-19 / llvm-readobj not installed")
    out = tmp_path_factory.mktemp("reloc")
    (out / "r.c").write_text(_source())
    run = dict(check=True, capture_output=True, timeout=120)
    subprocess.run(
        ["clang-19", "--target=x86_64-pc-windows-msvc", "-c", out / "r.c", "-o", out / "r.obj"], **run
    )
    subprocess.run(
        ["lld-link-19", "/nologo", "/dll", "/noentry", "/machine:x64", f"/base:{PREFERRED:#x}",
         f"/out:{out / 'r.dll'}", out / "r.obj"],
        **run,
    )  # fmt: skip
    listing = subprocess.run(["llvm-readobj", "--coff-basereloc", out / "r.dll"], text=True, **run).stdout
    sites = [
        int(a, 16) for t, a in re.findall(r"Type: (\w+)\s+Address: (0x[0-9A-Fa-f]+)", listing) if t == "DIR64"
    ]
    return out / "r.dll", sites


def test_relocations_match_llvm_readobj(dll):
    path, sites = dll
    with PeImage.from_file(path) as img:
        assert img.image_base == PREFERRED
        fixups = relocations(img)
    assert len(sites) > 700
    assert sorted(fixups) == sorted((rva, 8) for rva in sites)


def test_mapped_image_relocates_every_dir64_site(dll):
    path, sites = dll
    with PeImage.from_file(path) as img:
        home = mapped_image(img, PREFERRED)
        moved = mapped_image(img, ELSEWHERE)
        assert len(home) == len(moved) == img.size_of_image
        for s in img.sections:
            n = min(s.raw_size, s.virtual_size)
            assert home[s.virtual_address : s.virtual_address + n] == img.read(s.virtual_address, n)
            assert not any(home[s.virtual_address + n : s.virtual_address + s.virtual_size])
        delta = ELSEWHERE - PREFERRED
        for rva in sites:
            (orig,) = struct.unpack_from("<Q", img.read(rva, 8))
            assert PREFERRED <= orig < PREFERRED + img.size_of_image
            assert struct.unpack_from("<Q", moved, rva)[0] == (orig + delta) & (2**64 - 1)
        # nothing but the fixup sites and the header's ImageBase changes
        changed = np.flatnonzero(np.frombuffer(home, np.uint8) != np.frombuffer(moved, np.uint8))
        allowed = {rva + i for rva in sites for i in range(8)}
        (lfanew,) = struct.unpack_from("<I", home, 0x3C)
        allowed |= set(range(lfanew + 24 + 24, lfanew + 24 + 32))
        assert set(changed.tolist()) <= allowed and len(changed) > 700
        assert struct.unpack_from("<Q", moved, lfanew + 24 + 24)[0] == ELSEWHERE


def _patched(src, tmp_path, name, edit) -> PeImage:
    raw = bytearray(src.read_bytes())
    edit(raw, struct.unpack_from("<I", raw, 0x3C)[0])
    p = tmp_path / name
    p.write_bytes(raw)
    return PeImage.from_file(p)


def test_mapped_image_refuses_implausible_sizes(dll, tmp_path):
    path, _ = dll

    def huge(raw, lfanew):
        struct.pack_into("<I", raw, lfanew + 24 + 56, 0x7000_0000)

    def outside(raw, lfanew):
        struct.pack_into("<I", raw, lfanew + 24 + 56, 0x2000)  # sections now run past SizeOfImage

    for name, edit, words in (("huge.dll", huge, "SizeOfImage"), ("outside.dll", outside, "outside")):
        img = _patched(path, tmp_path, name, edit)
        with img, pytest.raises(BadFileError, match=words) as e:
            mapped_image(img, ELSEWHERE)
        assert name in str(e.value)


def test_module_images_checks_the_file_header(dll, tmp_path):
    path, _ = dll
    with PeImage.from_file(path) as img:
        ts, size = img.timestamp, img.size_of_image

    class Store:
        def find_image(self, name, timestamp, size_of_image):
            return path if name == "r.dll" else None

    class Mod:
        def __init__(self, name, base, size, timestamp):
            self.image_name, self.base, self.size, self.timestamp = name, base, size, timestamp

    mods = [
        Mod("r.dll", ELSEWHERE, size, ts),
        Mod("r.dll", ELSEWHERE + 0x100000, size, ts ^ 1),  # the store answered with another build
        Mod("other.sys", ELSEWHERE + 0x200000, size, ts),  # no file
    ]
    got = module_images(mods, Store())
    assert list(got) == [ELSEWHERE]
    with PeImage.from_file(path) as img:
        whole = mapped_image(img, ELSEWHERE)
        ranges = constant_ranges(img)
    assert got[ELSEWHERE].ranges == [(ELSEWHERE + rva, n) for rva, n in ranges]
    for va, data in got[ELSEWHERE].placed():
        assert data == whole[va - ELSEWHERE : va - ELSEWHERE + len(data)]


def test_constant_ranges_of_a_built_dll(dll):
    """Headers and .text/.rdata are constant; .data (writable) is not; the IAT is cut out."""
    path, _ = dll
    with PeImage.from_file(path) as img:
        ranges = constant_ranges(img)
        spans = {s.name: (s.virtual_address, s.virtual_address + s.virtual_size) for s in img.sections}
        iat = img.directory(12)

    def covered(lo, hi):
        return any(rva <= lo and hi <= rva + n for rva, n in ranges)

    def touched(lo, hi):
        return any(rva < hi and lo < rva + n for rva, n in ranges)

    assert ranges == sorted(ranges) and all(n > 0 for _, n in ranges)
    assert all(a + n < b for (a, n), (b, _) in zip(ranges, ranges[1:], strict=False))
    assert covered(0, 0x200) and covered(*spans[".text"])
    assert not touched(*spans[".data"])
    if iat[1]:
        assert not touched(iat[0], iat[0] + iat[1])


def test_only_a_repack_says_its_zeros_are_uncaptured(tmp_path):
    """repack's dump comment marks the zero-filled capture (kd shows it at load); a dump the
    writer builds from whole pages carries no such comment and keeps strict code checks."""
    from bugcheck.dumpfile.dump import REPACK_COMMENT
    from bugcheck.dumpfile.writer import dump_from_blocks

    src = bugcheck.open(dump("rizin-triage_x64.dmp"))
    out = tmp_path / "rp.dmp"
    repack(src, out, "kernel_bitmap")
    packed = bugcheck.open(out)
    assert packed.header.comment == REPACK_COMMENT and packed.zero_filled
    assert not src.zero_filled
    plain = tmp_path / "plain.dmp"
    dump_from_blocks([(0xFFFF8000_00001000, b"\x90" * 0x1000)], plain, "kernel_bitmap")
    assert not bugcheck.open(plain).zero_filled


def test_the_banner_shows_the_repack_comment(tmp_path):
    import subprocess
    import sys

    src = bugcheck.open(dump("rizin-triage_x64.dmp"))
    out = tmp_path / "rp.dmp"
    repack(src, out, "kernel_bitmap")
    run = subprocess.run(
        [sys.executable, "-c", "import sys; from bugcheck.cli import main; sys.exit(main())"]
        + ["--offline", "-c", "r", str(out)],
        capture_output=True,
        text=True,
    )
    lines = run.stdout.splitlines()
    assert lines[1].startswith("Kernel Bitmap Dump File")
    assert lines[2] == "Comment: 'bugcheck re-pack of a triage dump: bytes it did not capture read as zero'"
