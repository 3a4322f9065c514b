"""clang-built PE+PDB pairs: PDB layouts against clang's own record layout and llvm-pdbutil."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bugcheck.symbols.pdb import open_pdb
from bugcheck.symbols.types import Kind
from test_pdb_corpus import expected_layout, parse_types_dump

_spec = importlib.util.spec_from_file_location(
    "pdb_native_build", Path(__file__).parent / "native" / "build.py"
)
native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(native)


@pytest.fixture(scope="session", params=["x64", "x86"])
def pair(request, tmp_path_factory):
    if not native.tools_available():
        pytest.skip("clang-19 / lld-link-19 not installed")
    arch = request.param
    dll, pdb, layouts = native.build_pair(tmp_path_factory.mktemp(f"native_{arch}"), arch)
    return arch, dll, pdb, clang_layouts(layouts)


def clang_layouts(text: str) -> dict[str, tuple[int, list[int]]]:
    """record name -> (size in bits, field offsets in bits) from -fdump-record-layouts-simple."""
    out = {}
    for m in re.finditer(r"Type: (?:struct|union) (\S+)\n\nLayout: <ASTRecordLayout\n\s+Size:(\d+)\n.*?"
                         r"FieldOffsets: \[([0-9, ]*)\]>", text, re.S):  # fmt: skip
        offs = [int(x) for x in m.group(3).split(",") if x.strip()]
        out[m.group(1)] = (int(m.group(2)), offs)
    return out


# declared bitfield widths in layouts.c
BITS = {"Low": 3, "Mid": 7, "High": 22, "Wide": 40, "Rest": 24, "Tail": 1}


def test_layouts_match_clang(pair):
    arch, _dll, path, layouts = pair
    pdb = open_pdb(path)
    assert pdb.machine == arch
    assert {"_OUTER", "_FLAGS", "_INNER", "_VALUE"} <= set(layouts)
    for name in ("_OUTER", "_FLAGS", "_INNER", "_VALUE"):
        size_bits, offsets = layouts[name]
        t = pdb.types.find_type(name)
        assert t is not None and not t.incomplete
        assert t.size * 8 == size_bits, name
        assert len(t.members) == len(offsets), name
        for m, bit in zip(t.members, offsets, strict=True):
            assert m.offset * 8 + (m.bit_position or 0) == bit, (name, m.name)
            assert m.bit_length == BITS.get(m.name) if name in ("_FLAGS", "_OUTER") else m.bit_length is None
    assert pdb.types.find_type("_VALUE").kind is Kind.UNION


def test_type_shapes(pair):
    arch, _dll, path, _layouts = pair
    ps = 8 if arch == "x64" else 4
    pdb = open_pdb(path)
    outer = pdb.types.find_type("_OUTER")
    nxt = outer.member("Next").resolved_type()
    assert nxt.kind is Kind.POINTER and nxt.size == ps and nxt.resolved_target() is outer
    assert nxt.name == f"Ptr{ps * 8} _OUTER"
    grid = outer.member("Grid").resolved_type()
    assert (grid.kind, grid.count, grid.size, grid.name) == (Kind.ARRAY, 3, 60, "[3] [5] Int4B")
    row = grid.resolved_target()
    assert (row.count, row.size, row.resolved_target().name) == (5, 20, "Int4B")
    cb = outer.member("Callback").resolved_type()
    fn = cb.resolved_target()
    assert cb.kind is Kind.POINTER and fn.kind is Kind.FUNCTION
    assert fn.resolved_target().name == "Int4B" and fn.name == "int"
    assert cb.name == f"Ptr{ps * 8} int"
    assert [a.name if not hasattr(a, "resolve") else a.resolve().name for a in fn.arguments] == [
        f"Ptr{ps * 8} Void",
        "Uint4B",
    ]
    handlers = outer.member("Handlers").resolved_type()
    assert handlers.count == 4 and handlers.size == 4 * ps
    assert handlers.resolved_target().resolved_target().kind is Kind.FUNCTION
    inner = outer.member("Inner").resolved_type()
    assert inner.name == "_INNER" and inner.field_offset("Color") == 8
    color = inner.member("Color").resolved_type()
    assert color.kind is Kind.ENUM and color.size == 4
    assert color.enumerators == {0: "Red", 5: "Green", -1: "Blue", 0x7FFFFFFF: "Big"}
    values = outer.member("Values").resolved_type()
    assert values.count == 2 and values.resolved_target().name == "_VALUE"
    assert outer.field_offset("Values") == 80 if arch == "x64" else True
    opaque = pdb.types.find_type("_USES_FORWARD").member("Opaque").resolved_type().resolved_target()
    assert opaque.name == "_ONLY_FORWARD" and opaque.incomplete
    assert "_OUTER" in pdb.types.type_names()


def _exports(dll: Path) -> dict[str, int]:
    tool = shutil.which("llvm-readobj") or shutil.which("llvm-readobj-14")
    if tool is None:
        pytest.skip("llvm-readobj not installed")
    text = subprocess.run([tool, "--coff-exports", str(dll)], capture_output=True, text=True).stdout
    return {n: int(r, 16) for n, r in re.findall(r"Name: (\S+)\n\s+RVA: (0x[0-9A-Fa-f]+)", text)}


def test_symbols_match_exports(pair):
    arch, dll, path, _layouts = pair
    pdb = open_pdb(path)
    exports = _exports(dll)
    for name, rva in exports.items():
        plain = name.lstrip("_@").split("@")[0]
        s = pdb.symbols.symbol_by_name(plain)
        assert s is not None and s.rva == rva, name
        assert pdb.symbols.symbol_at(rva + (1 if s.is_function else 0)).rva == rva
    # static function: known from its private procedure symbol, with its size
    helper = pdb.symbols.symbol_by_name("helper")
    assert helper is not None and helper.is_function and helper.size > 0
    assert pdb.symbols.symbol_at(helper.rva + helper.size - 1).name == "helper"
    if arch == "x86":
        assert pdb.symbols.symbol_by_name("_StdcallFunction@8").name == "StdcallFunction"
        assert {s.name for s in pdb.symbols.symbols_matching("*call*function")} >= {
            "StdcallFunction",
            "FastcallFunction",
        }
    assert [s.name for s in pdb.symbols.symbols_matching("g_OUT?R")] == ["g_outer"]


def test_native_layouts_match_pdbutil(pair):
    if shutil.which("llvm-pdbutil") is None:
        pytest.skip("llvm-pdbutil not installed")
    _arch, _dll, path, _layouts = pair
    text = subprocess.run(
        ["llvm-pdbutil", "dump", "-types", str(path)], capture_output=True, text=True
    ).stdout
    recs = parse_types_dump(text)
    pdb = open_pdb(path)
    checked = 0
    for ti, r in recs.items():
        if r["kind"] in ("LF_STRUCTURE", "LF_UNION") and not r["forward"]:
            t = pdb.types.type_by_key(ti)
            assert t.size == r["size"]
            ours = [(m.name, m.offset, m.bit_position, m.bit_length) for m in t.members]
            assert ours == expected_layout(recs, ti)
            checked += 1
    assert checked >= 5


def test_global_data_types_and_identity(pair):
    _arch, _dll, path, _layouts = pair
    pdb = open_pdb(path)
    assert pdb.global_type("g_outer").name == "_OUTER"
    assert pdb.global_type("g_uses").name == "_USES_FORWARD"
    assert pdb.global_type("ExportedFunction") is None
    assert pdb.matches(pdb.guid, pdb.age) and pdb.matches(str(pdb.guid).upper(), pdb.age)
    assert not pdb.matches(pdb.guid, pdb.age + 1)
