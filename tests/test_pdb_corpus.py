"""PDB reader against llvm-pdbutil (the oracle) on every corpus PDB."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
import uuid
from functools import lru_cache
from pathlib import Path

import pytest

from bugcheck.symbols.pdb import open_pdb
from corpus import corpus_file, corpus_root

PDBUTIL = shutil.which("llvm-pdbutil")


def corpus_pdbs() -> list[Path]:
    root = corpus_root()
    if root is None:
        return []
    found = list((root / "symbols" / "pdb").rglob("*.pdb")) + list((root / "symstore").rglob("*.pdb"))
    return sorted(p for p in found if p.is_file())


PDBS = corpus_pdbs()
IDS = [p.name for p in PDBS]


def need_pdbutil():
    if PDBUTIL is None:
        pytest.skip("llvm-pdbutil not installed")


@lru_cache(maxsize=64)
def run_pdbutil(path: str, *args: str) -> str | None:
    r = subprocess.run([PDBUTIL, *args, path], capture_output=True, text=True, errors="replace", timeout=120)
    if r.returncode != 0 or "Unexpected error" in r.stderr:
        return None
    return r.stdout


def pdbutil(path: str, *args: str) -> str:
    out = run_pdbutil(path, *args)
    if out is None:
        pytest.skip(f"llvm-pdbutil {' '.join(args)} cannot read {Path(path).name}")
    return out


# --- oracle text parsers --------------------------------------------------------------

_REC = re.compile(r"^\s+(0x[0-9A-F]+) \| (LF_\w+) \[size = \d+\](?: `(.*)`)?$")
_SIZEOF = re.compile(r"sizeof (\d+)$")
_FWD = re.compile(r"forward ref \(-> (0x[0-9A-F]+)\)")
_FIELDS = re.compile(r"field list: (0x[0-9A-F]+|<no type>)")
_MEMBER = re.compile(r"- LF_MEMBER \[name = `(.*)`, Type = (0x[0-9A-F]+).*, offset = (\d+), attrs")
_BITF = re.compile(r"type = (0x[0-9A-F]+).*, bit offset = (\d+), # bits = (\d+)")
_INDEX = re.compile(r"- LF_INDEX \[continuation = (0x[0-9A-F]+)\]")


def parse_types_dump(text: str) -> dict[int, dict]:
    """Type records from ``llvm-pdbutil dump -types``: kind, name, size, forward target, members."""
    recs: dict[int, dict] = {}
    cur: dict | None = None
    for line in text.splitlines():
        m = _REC.match(line)
        if m:
            cur = {"kind": m.group(2), "name": m.group(3), "lines": []}
            recs[int(m.group(1), 16)] = cur
            continue
        if cur is not None:
            cur["lines"].append(line)
    for rec in recs.values():
        body = "\n".join(rec["lines"])
        if m := _SIZEOF.search(body):
            rec["size"] = int(m.group(1))
        rec["forward"] = "forward ref" in body
        if m := _FWD.search(body):
            rec["definition"] = int(m.group(1), 16)
        if m := _FIELDS.search(body):
            rec["fields"] = None if m.group(1) == "<no type>" else int(m.group(1), 16)
        if rec["kind"] == "LF_FIELDLIST":
            rec["members"] = [(n, int(t, 16), int(o)) for n, t, o in _MEMBER.findall(body)]
            rec["continuation"] = [int(x, 16) for x in _INDEX.findall(body)]
        if rec["kind"] == "LF_BITFIELD" and (m := _BITF.search(body)):
            rec["bitfield"] = (int(m.group(2)), int(m.group(3)))
    return recs


def expected_layout(recs: dict[int, dict], ti: int) -> list[tuple[str, int, int | None, int | None]]:
    out = []
    fl = recs[ti].get("fields")
    seen = set()
    while fl is not None and fl not in seen and fl in recs:
        seen.add(fl)
        for name, t, off in recs[fl]["members"]:
            bf = recs.get(t, {}).get("bitfield") if t >= 0x1000 else None
            out.append((name, off, bf[0] if bf else None, bf[1] if bf else None))
        cont = recs[fl].get("continuation")
        fl = cont[0] if cont else None
    return out


def parse_publics(text: str) -> list[tuple[str, int, int]]:
    out = []
    name = None
    for line in text.splitlines():
        m = re.search(r"\| S_PUB32 \[size = \d+\] `(.*)`$", line)
        if m:
            name = m.group(1)
            continue
        m = re.search(r"addr = (\d+):(\d+)", line)
        if m and name is not None:
            out.append((name, int(m.group(1)), int(m.group(2))))
            name = None
    return out


def parse_publics_yaml(text: str) -> list[tuple[str, int, int]]:
    """S_PUB32 records from ``llvm-pdbutil pdb2yaml -publics-stream`` (works where ``dump`` crashes)."""
    out = []
    for off, seg, name in re.findall(
        r"Kind:\s+S_PUB32\n\s+PublicSym32:\n(?:\s+Flags:.*\n)?\s+Offset:\s+(\d+)\n\s+Segment:\s+(\d+)\n"
        r"\s+Name:\s+(.*)\n",
        text,
    ):
        name = name.strip()
        if name[:1] == "'" and name[-1:] == "'":
            name = name[1:-1].replace("''", "'")
        elif name[:1] == '"':
            name = name[1:-1]
        out.append((name, int(seg), int(off)))
    return out


def parse_section_vas(text: str) -> list[int]:
    return [int(x, 16) for x in re.findall(r"^\s+([0-9A-F]+) virtual address$", text, re.M)]


# --- tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PDBS, ids=IDS)
def test_identity_matches_pdbutil(path):
    need_pdbutil()
    text = pdbutil(str(path), "dump", "-summary")
    guid = re.search(r"GUID: \{([0-9A-F-]+)\}", text).group(1)
    age = int(re.search(r"Age: (\d+)", text).group(1))
    with open_pdb(path) as pdb:
        assert pdb.guid == uuid.UUID(guid)
        assert pdb.info_age == age
        yaml = subprocess.run([PDBUTIL, "pdb2yaml", "-dbi-stream", str(path)], capture_output=True, text=True)
        m = re.search(r"DbiStream:\n(?:.*\n)*?\s+Age:\s+(\d+)", yaml.stdout)
        if m:
            assert pdb.age == int(m.group(1))


def test_manifest_identities():
    """The GUID/age pairs MANIFEST.md lists (DBI age is the symbol-server age)."""
    pdb = open_pdb(corpus_file("symbols", "pdb", "xp-ntkrnlpa.pdb"))
    assert pdb.guid == uuid.UUID("30B5FB31-AE7E-4ACA-ABA7-50AA241FF331")
    assert (pdb.info_age, pdb.age) == (2, 1)
    assert pdb.symstore_key == "30B5FB31AE7E4ACAABA750AA241FF3311"
    pdb = open_pdb(corpus_file("symbols", "pdb", "win10-19041-ntdll-x64-a.pdb"))
    assert (pdb.info_age, pdb.age, pdb.machine) == (3, 1, "x64")
    pdb = open_pdb(corpus_file("symstore", "amdppm.pdb", "1C19FDDB27BB3399D9B45973EFEAFCF31", "amdppm.pdb"))
    assert pdb.symstore_key == "1C19FDDB27BB3399D9B45973EFEAFCF31"


@pytest.mark.parametrize("path", PDBS, ids=IDS)
def test_publics_match_pdbutil(path):
    need_pdbutil()
    text = run_pdbutil(str(path), "dump", "-publics")
    if text is not None:
        expected = parse_publics(text)
    else:  # llvm-pdbutil 14 crashes dumping publics of the XP PDB; its YAML view still works
        expected = parse_publics_yaml(pdbutil(str(path), "pdb2yaml", "-publics-stream"))
    vas = parse_section_vas(pdbutil(str(path), "dump", "-section-headers"))
    with open_pdb(path) as pdb:
        ours = pdb.symbols.publics()
        assert len(ours) == len(expected)
        got = {(p.name, p.section, p.offset): p for p in ours}
        rng = random.Random(1)
        sample = expected if len(expected) <= 3000 else rng.sample(expected, 3000)
        for name, seg, off in sample:
            p = got.get((name, seg, off))
            assert p is not None, f"{name} {seg}:{off} missing"
            if pdb.omap_from_src is None and 1 <= seg <= len(vas):
                assert p.rva == vas[seg - 1] + off, name
        # every public with an RVA resolves back to a symbol at that RVA
        for p in rng.sample(ours, min(300, len(ours))):
            if p.rva is not None:
                s = pdb.symbols.symbol_at(p.rva)
                assert s is not None and s.rva == p.rva


@pytest.mark.parametrize("path", PDBS, ids=IDS)
def test_type_layouts_match_pdbutil(path):
    need_pdbutil()
    recs = parse_types_dump(pdbutil(str(path), "dump", "-types"))
    with open_pdb(path) as pdb:
        types = pdb.types
        assert len(types) == len(recs)
        udts = [ti for ti, r in recs.items() if r["kind"] in ("LF_STRUCTURE", "LF_CLASS", "LF_UNION")]
        defs = [ti for ti in udts if not recs[ti]["forward"]]
        rng = random.Random(2)
        for ti in rng.sample(defs, min(400, len(defs))):
            t = types.type_by_key(ti)
            assert t.name == recs[ti]["name"]
            assert t.size == recs[ti]["size"], t.name
            exp = expected_layout(recs, ti)
            ours = [(m.name, m.offset, m.bit_position, m.bit_length) for m in t.members]
            names = {e[0] for e in exp}
            # base classes and vtable pointers are extra members in our model
            ours = [o for o in ours if o[0] in names]
            assert ours == exp, t.name
        # forward references resolve to the definition llvm-pdbutil names
        fwd = [ti for ti in udts if recs[ti]["forward"] and "definition" in recs[ti]]
        for ti in rng.sample(fwd, min(200, len(fwd))):
            assert types.definition_of(ti) == recs[ti]["definition"]


@pytest.mark.parametrize("name", ["win10-19041-ntdll-x64-a.pdb", "win10-19041-ntdll-x64-b.pdb"])
def test_ntdll_kernel_types(name):
    pdb = open_pdb(corpus_file("symbols", "pdb", name))
    sizes = {n: pdb.types.find_type(n).size for n in ("_EPROCESS", "_KTHREAD", "_KTRAP_FRAME")}
    assert sizes == {"_EPROCESS": 0xA40, "_KTHREAD": 0x430, "_KTRAP_FRAME": 0x190}
    ep = pdb.types.find_type("_EPROCESS")
    assert ep.member("Pcb").resolved_type().name == "_KPROCESS"
    assert ep.field_offset("Pcb.DirectoryTableBase") == 0x28
    pid = ep.member("UniqueProcessId").resolved_type()
    assert (pid.kind.value, pid.size, pid.name) == ("pointer", 8, "Ptr64 Void")
    kt = pdb.types.find_type("_KTHREAD")
    bits = [(m.name, m.offset, m.bit_position, m.bit_length) for m in kt.members if m.bit_length]
    assert ("Alertable", 0x74, 4, 1) in bits
    assert kt.member("Alerted").resolved_type().name == "[2] UChar"


def test_xp_kernel_types_and_symbols():
    """llvm-pdbutil 14 cannot read this old TPI version; check well-known XP SP3 x86 facts."""
    pdb = open_pdb(corpus_file("symbols", "pdb", "xp-ntkrnlpa.pdb"))
    assert pdb.machine == "x86" and pdb.pointer_size == 4
    ep = pdb.types.find_type("_EPROCESS")
    assert ep.size == 0x260
    assert ep.member("UniqueProcessId").offset == 0x84
    assert ep.member("ActiveProcessLinks").offset == 0x88
    s = pdb.symbols.symbol_by_name("KeBugCheckEx")
    assert s is not None and s.is_function
    assert pdb.symbols.symbol_at(s.rva + 3).name == "KeBugCheckEx"
    # x86 decoration is stripped as WinDbg shows it; the decorated form still resolves
    assert pdb.symbols.symbol_by_name("_KeBugCheckEx@20") == s
    assert any(x.name == "KeBugCheckEx" for x in pdb.symbols.symbols_matching("kebugcheck*"))


def test_x86_frame_data_matches_pdbutil():
    need_pdbutil()
    path = corpus_file("symbols", "pdb", "win10-wow64-wntdll-x86-a.pdb")
    text = pdbutil(str(path), "dump", "-fpo")
    new = text.split("New FPO Data")[1]
    rows = re.findall(r"^([0-9A-F]{8}) \|\s+(\d+) \|\s+(\d+) \|\s+(\d+) \|.*\| (\$.*)$", new, re.M)
    pdb = open_pdb(path)
    ours = {(f.rva, f.code_size, f.locals_size, f.params_size, f.program.strip()) for f in pdb.frame_data}
    assert len(pdb.frame_data) == len(rows)
    for rva, code, loc, par, prog in rows[:2000]:
        assert (int(rva, 16), int(code), int(loc), int(par), prog.strip()) in ours
    old = re.findall(r"^([0-9A-F]{8}) \|\s+(\d+) \|", text.split("New FPO Data")[0], re.M)
    assert sorted((int(r, 16), int(c)) for r, c in old) == [(f.rva, f.code_size) for f in pdb.fpo]
    f = pdb.frame_data[10]
    assert pdb.frame_data_at(f.rva + f.code_size - 1).rva >= f.rva


@pytest.mark.parametrize("path", PDBS, ids=IDS)
def test_id_stream_matches_pdbutil(path):
    need_pdbutil()
    text = pdbutil(str(path), "dump", "-ids")
    m = re.search(r"Showing ([\d,]+) records", text)
    kinds = {int(t, 16): k for t, k in re.findall(r"^\s+(0x[0-9A-F]+) \| (LF_\w+) ", text, re.M)}
    with open_pdb(path) as pdb:
        assert len(pdb.ids) == (int(m.group(1).replace(",", "")) if m else 0)
        assert len(pdb.ids) == len(kinds)
        for ti in list(kinds)[:: max(1, len(kinds) // 300)]:
            leaf, _raw = pdb.ids.record(ti)
            assert LEAF_NAMES.get(leaf, kinds[ti]) == kinds[ti]


LEAF_NAMES = {0x1601: "LF_FUNC_ID", 0x1602: "LF_MFUNC_ID", 0x1603: "LF_BUILDINFO", 0x1604: "LF_SUBSTR_LIST",
              0x1605: "LF_STRING_ID", 0x1606: "LF_UDT_SRC_LINE", 0x1607: "LF_UDT_MOD_SRC_LINE"}  # fmt: skip


@pytest.mark.parametrize("path", PDBS, ids=IDS)
def test_modules_and_contributions_match_pdbutil(path):
    need_pdbutil()
    mods = re.findall(r"^\s*Mod (\d{4}) \| `(.*)`:", pdbutil(str(path), "dump", "-modules"), re.M)
    text = pdbutil(str(path), "dump", "-section-contribs")
    scs = re.findall(r"^\s+SC\[[^\]]*\]\s+\| mod = (\d+), (\d+):(\d+), size = (-?\d+)", text, re.M)
    with open_pdb(path) as pdb:
        assert [(f"{m.index:04d}", m.name) for m in pdb.dbi.modules] == mods
        ours = [(c.module, c.section, c.offset, c.size) for c in pdb.dbi.contributions]
        assert ours == [tuple(int(x) for x in sc) for sc in scs]


@pytest.mark.parametrize("path", PDBS, ids=IDS)
def test_section_map_matches_pdbutil(path):
    need_pdbutil()
    text = pdbutil(str(path), "dump", "-section-map")
    rows = re.findall(r"frame = (\d+), name = \d+\n\s+class = \d+, offset = (\d+), size = (\d+)", text)
    with open_pdb(path) as pdb:
        assert [(e.frame, e.offset, e.length) for e in pdb.dbi.section_map] == [
            tuple(map(int, r)) for r in rows
        ]
