"""PE images read from (simulated) dump memory, with absent pages; malformed files."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bugcheck.errors import BadFileError, MemoryNotPresent
from bugcheck.symbols.pe import PeImage
from corpus import corpus_file

BASE = 0xFFFFF80400000000


def _loaded(path) -> bytearray:
    """Lay the file out as the loader would: headers, then each section at its RVA."""
    img = PeImage.from_file(path)
    mem = bytearray(img.size_of_image)
    raw = path.read_bytes()
    mem[: img.size_of_headers] = raw[: img.size_of_headers]
    for s in img.sections:
        n = min(s.raw_size, s.virtual_size or s.raw_size)
        mem[s.virtual_address : s.virtual_address + n] = raw[s.raw_pointer : s.raw_pointer + n]
    return mem


def _reader(mem: bytes, absent_pages: set[int]):
    def read(va: int, n: int) -> bytes:
        off = va - BASE
        if off < 0 or off + n > len(mem):
            raise MemoryNotPresent(va)
        for page in range(off >> 12, ((off + n - 1) >> 12) + 1):
            if page in absent_pages:
                raise MemoryNotPresent(BASE + max(off, page << 12))
        return bytes(mem[off : off + n])

    return read


def test_memory_image_matches_file():
    path = corpus_file("symstore", "Wdf01000.sys", "a9a9d36ed1000", "Wdf01000.sys")
    f = PeImage.from_file(path)
    m = PeImage.from_memory(_reader(_loaded(path), set()), BASE)
    assert m.in_memory and m.base == BASE
    assert (m.timestamp, m.size_of_image, m.checksum) == (f.timestamp, f.size_of_image, f.checksum)
    assert m.pdb_key() == f.pdb_key()
    assert m.version_info.strings == f.version_info.strings
    assert m.runtime_functions == f.runtime_functions
    for func in f.runtime_functions[::50]:
        assert m.unwind_info(func).codes == f.unwind_info(func).codes
    assert m.absent == []


def test_memory_image_with_absent_pages():
    path = corpus_file("symstore", "Wdf01000.sys", "a9a9d36ed1000", "Wdf01000.sys")
    f = PeImage.from_file(path)
    mem = _loaded(path)
    pdata_rva, pdata_size = f.directory(3)
    rng = random.Random(7)
    pages = set(range(1, len(mem) >> 12))
    absent = set(rng.sample(sorted(pages), len(pages) // 3))
    absent.add(pdata_rva >> 12)  # at least one .pdata page is gone
    absent.discard(0)
    m = PeImage.from_memory(_reader(mem, absent), BASE)
    funcs = m.runtime_functions
    assert 0 < len(funcs) < len(f.runtime_functions)
    assert set(funcs) <= set(f.runtime_functions)
    assert any(start >> 12 in absent for start, _ in m.absent)
    # Unwind data on an absent page is reported as absent, never as a crash.
    for func in funcs:
        try:
            m.unwind_info(func)
        except MemoryNotPresent:
            pass
    m.version_info  # noqa: B018 - may be None, must not raise
    m.codeview  # noqa: B018


def test_headers_absent_raises_memory_not_present():
    with pytest.raises(MemoryNotPresent):
        PeImage.from_memory(_reader(bytes(0x2000), {0}), BASE)


def test_not_a_pe_in_memory():
    with pytest.raises(BadFileError):
        PeImage.from_memory(_reader(bytes(0x2000), set()), BASE)


def test_truncations_raise_bad_file(tmp_path):
    raw = corpus_file("images", "pshed.dll").read_bytes()
    for n in (0, 10, 0x40, 0x100, 0x200, 0x400, 0x1000, len(raw) // 2):
        p = tmp_path / f"t{n}.dll"
        p.write_bytes(raw[:n])
        try:
            img = PeImage.from_file(p)
            img.exports  # noqa: B018
            img.version_info  # noqa: B018
            img.codeview  # noqa: B018
            for func in img.runtime_functions:
                img.unwind_info(func)
        except BadFileError:
            pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_corrupted_images_never_crash(tmp_path, data):
    raw = bytearray(corpus_file("images", "debugpy", "attach_amd64.dll").read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, min(len(raw) - 1, 0x600)) | st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    p = tmp_path / "c.dll"
    p.write_bytes(raw)
    try:
        img = PeImage.from_file(p)
        img.exports  # noqa: B018
        img.version_info  # noqa: B018
        img.codeview  # noqa: B018
        img.debug_entries  # noqa: B018
        for func in img.runtime_functions[:200]:
            img.unwind_info(func)
    except BadFileError:
        pass


def test_images_in_a_real_triage_dump():
    """rizin-triage_x64 keeps only scraps of module headers: use what is there, never crash."""
    import bugcheck
    from corpus import dump

    d = bugcheck.open(dump("rizin-triage_x64.dmp"))
    drivers = {x.name.rsplit("\\", 1)[-1].lower(): x for x in d.triage.drivers}
    amd_file = PeImage.from_file(corpus_file("symstore", "amdppm.sys", "c9c030003b000", "amdppm.sys"))

    amd = PeImage.from_memory(d.read_virtual, drivers["amdppm.sys"].base)
    assert not amd.headers_complete and amd.absent
    assert (amd.machine_name, amd.timestamp) == ("x64", amd_file.timestamp)
    assert amd.symbol_key() is None
    assert amd.symbol_key(drivers["amdppm.sys"].size) == amd_file.symbol_key()
    assert amd.runtime_functions == [] and amd.pdb_key() is None

    with pytest.raises(MemoryNotPresent):
        PeImage.from_memory(d.read_virtual, drivers["wdf01000.sys"].base)

    nt = PeImage.from_memory(d.read_virtual, drivers["ntoskrnl.exe"].base)
    assert nt.headers_complete and nt.size_of_image == drivers["ntoskrnl.exe"].size
    assert nt.timestamp == drivers["ntoskrnl.exe"].timestamp
    assert nt.directory(3)[1] > 0 and nt.runtime_functions == []  # .pdata not captured
    assert any(start <= nt.directory(3)[0] < start + n for start, n in nt.absent)
    assert nt.lookup_function(0x1000) is None


def test_pdb_name_from_codeview_is_a_bare_file_name():
    from bugcheck.symbols.pe.image import CodeView

    def name(path):
        return CodeView("RSDS", None, 1, path).pdb_name

    assert name("d:\\os\\obj\\amd64fre\\amdppm.pdb") == "amdppm.pdb"
    assert name("../../etc/passwd") == "passwd"
    assert name("C:\\x\\..") == ""
    assert name("a:b\x01c<>.pdb") == "abc.pdb"
