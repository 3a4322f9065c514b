"""Identifying the kernel symbol table of a minidump from three header addresses."""

from __future__ import annotations

import json
import struct
import time

import pytest

import bugcheck
from bugcheck.errors import BadFileError
from bugcheck.symbols.kernel_tables import (
    KernelTableIndex,
    identify_for_dump,
    identify_kernel_table,
    table_for_guid,
)
from corpus import all_dumps, corpus_file

EXPECTED = {
    "rizin-triage_x64.dmp": "5278AFF86C341677D7D7835C85B7B844",
    "ojusha-100623-4953-01.dmp": "79BE8C368BEC7DD9677EA9B355ACE784",
}


@pytest.fixture(scope="module")
def isf_root():
    return corpus_file("symbols", "isf")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ktcache")


@pytest.fixture(scope="module")
def index(isf_root, cache):
    return KernelTableIndex(isf_root, cache_dir=cache)


def _header_addresses(path):
    """The three addresses straight from DUMP_HEADER64, independent of the dump reader."""
    with open(path, "rb") as f:
        b = f.read(0x88)
    assert b[:8] == b"PAGEDU64"
    plm, pah = struct.unpack_from("<QQ", b, 0x20)
    (kdbg,) = struct.unpack_from("<Q", b, 0x80)
    return plm, pah, kdbg


def _dumps():
    out = []
    for p in all_dumps():
        try:
            d = bugcheck.open(p)
        except BadFileError:
            continue  # the zero-filled file in criticalrocket/ is not a dump at all
        out.append((p, d))
    return out


def test_index_covers_every_table(index):
    assert len(index.entries) == 79
    assert not index.problems
    assert all(e.rvas is not None for e in index.entries)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_known_matches(name, isf_root, cache, index):
    d = bugcheck.open(corpus_file("dumps", name))
    h = d.header
    assert (h.ps_loaded_module_list, h.ps_active_process_head, h.kd_debugger_data_block) == _header_addresses(
        d.path
    )
    nt = d.triage.drivers[0]
    assert nt.name.lower().endswith("ntoskrnl.exe")
    m = identify_kernel_table(
        isf_root,
        ps_loaded_module_list=h.ps_loaded_module_list,
        ps_active_process_head=h.ps_active_process_head,
        kd_debugger_data_block=h.kd_debugger_data_block,
        kernel_base=nt.base,
        cache_dir=cache,
    )
    assert m is not None
    assert m.guid == EXPECTED[name] and m.age == 1 and m.pdb_name == "ntkrnlmp.pdb"
    assert m.kernel_base == nt.base
    assert m.path.name == f"{EXPECTED[name]}-1.json.xz"
    assert "PsLoadedModuleList, PsActiveProcessHead and KdDebuggerDataBlock RVAs match" in m.reason
    assert EXPECTED[name] in m.reason
    # Without the base, the three addresses alone still single it out (and imply the same base).
    only = index.matches(h.ps_loaded_module_list, h.ps_active_process_head, h.kd_debugger_data_block)
    assert [x.guid for x in only] == [EXPECTED[name]] and only[0].kernel_base == nt.base
    # A wrong base is rejected.
    assert not index.matches(
        h.ps_loaded_module_list, h.ps_active_process_head, h.kd_debugger_data_block, nt.base + 0x1000
    )
    assert identify_for_dump(d, isf_root, cache_dir=cache).guid == EXPECTED[name]


def test_other_dumps_match_nothing(index, isf_root, cache):
    seen = 0
    for p, d in _dumps():
        if p.name in EXPECTED:
            continue
        h = d.header
        assert not index.matches(
            h.ps_loaded_module_list, h.ps_active_process_head, h.kd_debugger_data_block
        ), p
        assert identify_for_dump(d, isf_root, cache_dir=cache) is None
        seen += 1
    if seen == 0:
        pytest.skip("no other dumps in the corpus")
    assert seen >= 5


def test_warm_lookup_is_instant(isf_root, cache, index):
    t = time.perf_counter()
    again = KernelTableIndex(isf_root, cache_dir=cache)
    assert again.from_cache
    assert time.perf_counter() - t < 0.2
    assert [e.rvas for e in again.entries] == [e.rvas for e in index.entries]


def test_cached_index_serves_other_working_directories(isf_root, cache, index, tmp_path, monkeypatch):
    """The index is kept per folder; a later run reaching the folder by another relative path
    (another working directory) must get paths that exist from there."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "isf").symlink_to(isf_root, target_is_directory=True)
    again = KernelTableIndex("isf", cache_dir=cache)
    assert again.from_cache
    assert again.entries and all(e.path.is_file() for e in again.entries)
    assert all(str(e.path).startswith(str(tmp_path / "isf")) for e in again.entries)


def test_by_guid(isf_root, index):
    p = table_for_guid(isf_root, "5278aff8-6c34-1677-d7d7-835c85b7b844", 1)
    assert p is not None and p.name == "5278AFF86C341677D7D7835C85B7B844-1.json.xz"
    assert table_for_guid(isf_root / "windows" / "ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844", 1) == p
    assert table_for_guid(isf_root, "5278AFF86C341677D7D7835C85B7B844", 2) is None
    assert table_for_guid(isf_root, "../../etc/passwd", 1) is None
    assert index.by_guid("79BE8C368BEC7DD9677EA9B355ACE784", 1) is not None


def _table(folder, guid, rvas, extra=None):
    syms = {
        "PsLoadedModuleList": {"address": rvas[0]},
        "PsActiveProcessHead": {"address": rvas[1]},
        "KdDebuggerDataBlock": {"address": rvas[2]},
    }
    doc = {
        "base_types": {},
        "enums": {},
        "metadata": {},
        "symbols": syms,
        "user_types": extra or {},
    }
    d = folder / "windows" / "ntkrnlmp.pdb"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{guid}-1.json").write_text(json.dumps(doc, indent=1))


def test_synthetic_folder_ambiguity_and_invalidation(tmp_path):
    folder = tmp_path / "tables"
    cache = tmp_path / "cache"
    base = 0xFFFFF80000000000
    _table(folder, "A" * 32, (0x1000, 0x2000, 0x3000))
    # a decoy: a member named like the symbol in user_types must not be taken for it
    decoy = {
        "_KDDEBUGGER_DATA64": {"kind": "struct", "size": 8, "fields": {"PsLoadedModuleList": {"offset": 72}}}
    }
    _table(folder, "B" * 32, (0x1100, 0x2000, 0x3000), decoy)
    addrs = dict(
        ps_loaded_module_list=base + 0x1000,
        ps_active_process_head=base + 0x2000,
        kd_debugger_data_block=base + 0x3000,
    )
    m = identify_kernel_table(folder, cache_dir=cache, **addrs)
    assert m is not None and m.guid == "A" * 32 and m.kernel_base == base
    # a second table with the same three RVAs makes the answer ambiguous: no guess
    _table(folder, "C" * 32, (0x1000, 0x2000, 0x3000))
    assert identify_kernel_table(folder, cache_dir=cache, **addrs) is None
    assert len(KernelTableIndex(folder, cache_dir=cache).matches(*addrs.values())) == 2
    # unaligned implied base: no match
    assert (
        identify_kernel_table(
            folder,
            cache_dir=cache,
            ps_loaded_module_list=base + 0x1008,
            ps_active_process_head=base + 0x2008,
            kd_debugger_data_block=base + 0x3008,
        )
        is None
    )


def test_unreadable_table_is_reported_not_fatal(tmp_path):
    folder = tmp_path / "t"
    _table(folder, "A" * 32, (0x1000, 0x2000, 0x3000))
    bad = folder / "windows" / "ntkrnlmp.pdb" / ("D" * 32 + "-1.json.xz")
    bad.write_bytes(b"\xfd7zXZ\x00garbage")
    ix = KernelTableIndex(folder, cache_dir=tmp_path / "c")
    assert [e.guid for e in ix.entries] == ["A" * 32]
    assert len(ix.problems) == 1 and "D" * 32 in ix.problems[0]
