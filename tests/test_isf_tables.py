"""ISF (Volatility 3) symbol tables loaded into the shared type model, checked against the raw JSON."""

from __future__ import annotations

import json
import lzma
import time

import pytest

from bugcheck.errors import BadFileError
from bugcheck.symbols.isf import load_isf
from bugcheck.symbols.types import Kind
from corpus import corpus_file

TABLE = ("symbols", "isf", "windows", "ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844-1.json.xz")


@pytest.fixture(scope="module")
def table_path():
    return corpus_file(*TABLE)


@pytest.fixture(scope="module")
def raw(table_path):
    with lzma.open(table_path) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def table(table_path, tmp_path_factory):
    return load_isf(table_path, cache_dir=tmp_path_factory.mktemp("isfcache"))


def test_kernel_struct_sizes_match_json_and_manifest(table, raw):
    for name in ("_EPROCESS", "_KTHREAD", "_KTRAP_FRAME", "_KPRCB", "_ETHREAD", "_KPROCESS"):
        t = table.find_type(name)
        assert t is not None and t.name == name
        assert t.size == raw["user_types"][name]["size"]
        assert t.kind is Kind.STRUCT
    # 19041 sizes (MANIFEST: identical to the ntdll PDB's kernel types)
    assert table.find_type("_EPROCESS").size == 0xA40
    assert table.find_type("_KTHREAD").size == 0x430
    assert table.find_type("_KTRAP_FRAME").size == 0x190


def test_every_member_offset_matches_json(table, raw):
    for name in ("_EPROCESS", "_KTHREAD", "_KTRAP_FRAME", "_KPRCB", "_KPROCESS"):
        t = table.find_type(name)
        fields = raw["user_types"][name]["fields"]
        assert {m.name for m in t.members} == set(fields)
        for m in t.members:
            assert m.offset == fields[m.name]["offset"], (name, m.name)
            d = fields[m.name]["type"]
            if d["kind"] == "bitfield":
                assert (m.bit_position, m.bit_length) == (d["bit_position"], d["bit_length"])
            else:
                assert m.bit_position is None
        offs = [(m.offset, m.bit_position or 0) for m in t.members]
        assert offs == sorted(offs)  # layout order, as dt lists them


def test_member_types_and_paths(table):
    ep = table.find_type("_EPROCESS")
    assert ep.field_offset("Pcb.DirectoryTableBase") == 0x28
    assert ep.field_offset("ActiveProcessLinks") == 0x448
    pid = ep.member("UniqueProcessId").resolved_type()
    assert pid.kind is Kind.POINTER and pid.size == 8 and pid.name == "Ptr64 Void"
    name = ep.member("ImageFileName").resolved_type()
    assert name.kind is Kind.ARRAY and name.count == 15 and name.size == 15
    assert name.resolved_target().name == "UChar"
    links = ep.member("ActiveProcessLinks").resolved_type()
    assert links.name == "_LIST_ENTRY" and links.size == 16
    flink = links.member("Flink").resolved_type()
    assert flink.kind is Kind.POINTER and flink.resolved_target().name == "_LIST_ENTRY"
    tf = table.find_type("_KTRAP_FRAME")
    rip = tf.member("Rip").resolved_type()
    assert rip.kind is Kind.BASE and rip.name == "Uint8B" and rip.size == 8 and not rip.signed


def test_base_type_names_are_windbg_spellings(table):
    assert table.find_type("Uint4B").size == 4
    assert table.find_type("Int8B").signed
    assert table.find_type("UChar").size == 1
    assert table.find_type("Wchar").size == 2
    kt = table.find_type("_KTHREAD")
    seen = set()
    for m in kt.members:
        t = m.resolved_type()
        if t.kind is Kind.BASE:
            seen.add(t.name)
    assert seen <= {
        "Char",
        "UChar",
        "Int2B",
        "Uint2B",
        "Int4B",
        "Uint4B",
        "Int8B",
        "Uint8B",
        "Wchar",
        "Float",
        "Double",
    }
    assert "Uint4B" in seen


def test_enums_and_unions(table, raw):
    name = "_POOL_TYPE"
    e = table.find_type(name)
    assert e.kind is Kind.ENUM and e.size == raw["enums"][name]["size"]
    assert e.enumerators[0] == "NonPagedPool"
    un = [n for n, v in raw["user_types"].items() if v["kind"] == "union"][0]
    assert table.find_type(un).kind is Kind.UNION


def test_every_type_builds(table, raw):
    names = table.type_names()
    assert set(raw["user_types"]) | set(raw["enums"]) == set(names)
    for n in names:
        t = table.find_type(n)
        for m in t.members:
            m.resolved_type()


def test_symbols(table, raw):
    kb = table.symbol_by_name("KeBugCheckEx")
    assert kb.rva == raw["symbols"]["KeBugCheckEx"]["address"]
    assert table.symbol_by_name("kebugcheckex").name == "KeBugCheckEx"
    assert table.symbol_at(kb.rva + 0x10).name == "KeBugCheckEx"
    assert table.symbol_at(kb.rva).name == "KeBugCheckEx"
    assert table.symbol_by_name("NoSuchSymbolAnywhere") is None
    ms = table.symbols_matching("kebugcheck*")
    assert {"KeBugCheck", "KeBugCheckEx"} <= {s.name for s in ms}
    assert all(s.name.lower().startswith("kebugcheck") for s in ms)
    assert table.pdb_info == ("5278AFF86C341677D7D7835C85B7B844", 1, "ntkrnlmp.pdb")


def test_repeat_load_is_fast_and_equal(table_path, tmp_path):
    t0 = time.perf_counter()
    a = load_isf(table_path, cache_dir=tmp_path)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = load_isf(table_path, cache_dir=tmp_path)
    again = time.perf_counter() - t0
    assert list(tmp_path.iterdir())
    assert again < 0.1, f"cached load took {again:.3f}s (first {first:.3f}s)"
    assert a.find_type("_KPRCB").size == b.find_type("_KPRCB").size
    assert a.symbol_by_name("PsLoadedModuleList") == b.symbol_by_name("PsLoadedModuleList")


def test_plain_and_gzip_tables(tmp_path):
    import gzip

    doc = {
        "metadata": {"format": "6.1.0"},
        "base_types": {
            "unsigned long": {"kind": "int", "size": 4, "signed": False, "endian": "little"},
            "pointer": {"kind": "int", "size": 4, "signed": False, "endian": "little"},
        },
        "enums": {},
        "symbols": {"Foo": {"address": 16}},
        "user_types": {
            "_S": {
                "kind": "struct",
                "size": 8,
                "fields": {
                    "A": {"offset": 0, "type": {"kind": "base", "name": "unsigned long"}},
                    "P": {
                        "offset": 4,
                        "type": {"kind": "pointer", "subtype": {"kind": "struct", "name": "_S"}},
                    },
                },
            }
        },
    }
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    g = tmp_path / "t.json.gz"
    g.write_bytes(gzip.compress(json.dumps(doc).encode()))
    for path in (p, g):
        t = load_isf(path, use_cache=False)
        s = t.find_type("_S")
        assert [m.name for m in s.members] == ["A", "P"]
        ptr = s.member("P").resolved_type()
        assert ptr.name == "Ptr32 _S" and ptr.size == 4
        assert ptr.resolved_target() is s


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"[1, 2, 3]",
        b'{"symbols": [1]}',
        b'{"symbols": {}, "user_types": {"_X": {"kind": "struct", "size": 4, "fields": {"a": {"offset": "zero"}}}}}',
        b'{"symbols": {}, "user_types": {"_X": {"kind": "struct", "size": 4, "fields": '
        b'{"a": {"offset": 0, "type": {"kind": "weird"}}}}}}',
    ],
)
def test_malformed_tables_raise_bad_file(tmp_path, content):
    p = tmp_path / "bad.json"
    p.write_bytes(content)
    with pytest.raises(BadFileError):
        t = load_isf(p, use_cache=False)
        for n in t.type_names():
            t.find_type(n)


def test_truncated_xz_raises_bad_file(table_path, tmp_path):
    data = table_path.read_bytes()
    p = tmp_path / "cut.json.xz"
    p.write_bytes(data[: len(data) // 3])
    with pytest.raises(BadFileError):
        load_isf(p, use_cache=False)


def test_damaged_cache_is_rebuilt(table_path, tmp_path):
    load_isf(table_path, cache_dir=tmp_path)
    (cached,) = list(tmp_path.iterdir())
    cached.write_bytes(b"\x00garbage")
    t = load_isf(table_path, cache_dir=tmp_path)
    assert t.find_type("_KTHREAD").size == 0x430
    import marshal

    doc = marshal.loads(cached.read_bytes())
    doc["order"] = [10**9]
    cached.write_bytes(marshal.dumps(doc))
    t = load_isf(table_path, cache_dir=tmp_path)
    assert t.symbol_at(t.symbol_by_name("KeBugCheckEx").rva).name == "KeBugCheckEx"
