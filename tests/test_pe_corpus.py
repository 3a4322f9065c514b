"""PE reader on the corpus images: headers, CodeView, version resource, exports, .pdata."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from bugcheck.symbols.pe import PeImage
from bugcheck.symbols.pe.unwind import GPR_NAMES
from corpus import corpus_file, corpus_root


def _x64_images():
    root = corpus_root()
    if root is None:
        return []
    paths = [p for p in sorted((root / "images").rglob("*")) if p.is_file()]
    paths += sorted((root / "symstore").glob("*.sys/*/*.sys"))
    return paths


@pytest.mark.parametrize("path", _x64_images(), ids=lambda p: p.name)
def test_every_runtime_function_decodes(path):
    img = PeImage.from_file(path)
    if img.machine != 0x8664:
        assert img.runtime_functions == []
        return
    funcs = img.runtime_functions
    assert funcs, "x64 image without .pdata"
    begins = [f.begin for f in funcs]
    assert begins == sorted(begins)
    for f in funcs:
        assert 0 < f.begin < f.end <= img.size_of_image
        ui = img.unwind_info(f)
        assert ui.version in (1, 2)
        assert sum(c.slots for c in ui.codes) == ui.count_of_codes
        assert img.lookup_function(f.begin) == f
        assert img.lookup_function(f.end - 1) == f
        depth, cur = 0, ui
        while cur.chained is not None:
            depth += 1
            cur = cur.chained_info
        assert depth <= 32
    assert img.lookup_function(0) is None


# ---- llvm-readobj --unwind as an independent decoder (works on debugpy's MSVC images) ----------

_READOBJ = shutil.which("llvm-readobj")


def _readobj_entries(path) -> dict[int, dict]:
    out = subprocess.run([_READOBJ, "--unwind", str(path)], capture_output=True, text=True, timeout=60).stdout
    entries = {}
    # Only complete blocks: llvm 14 may crash part-way (its output then ends mid-entry).
    for block in re.findall(r"\n  RuntimeFunction \{\n(.*?)\n  \}(?=\n)", out, re.S):
        start = int(re.search(r"StartAddress: \((0x[0-9A-F]+)\)", block).group(1), 16)
        info = {
            "end": int(re.search(r"EndAddress: \((0x[0-9A-F]+)\)", block).group(1), 16),
            "version": int(re.search(r"Version: (\d+)", block).group(1)),
            "flags": int(re.search(r"Flags \[ \((0x[0-9a-fA-F]+)\)", block).group(1), 16),
            "prolog": int(re.search(r"PrologSize: (\d+)", block).group(1)),
            "codes": re.findall(r"^\s+(0x[0-9A-F]+: .*)$", block, re.M),
        }
        fr = re.search(r"FrameRegister: (\S+)", block).group(1)
        info["frame_reg"] = None if fr == "-" else fr.lower()
        h = re.search(r"Handler: \((0x[0-9A-F]+)\)", block)
        info["handler"] = int(h.group(1), 16) if h else None
        ch = re.search(r"Chained \{\s*StartAddress: \((0x[0-9A-F]+)\)", block)
        info["chained"] = int(ch.group(1), 16) if ch else None
        entries[start] = info
    return entries


def _fmt(c) -> str:
    """One code in llvm-readobj's words."""
    name = c.name
    if c.op == 0:
        tail = f"reg={GPR_NAMES[c.reg].upper()}"
    elif c.op in (1, 2):
        tail = f"size={c.value}"
    elif c.op == 3:
        tail = f"reg={GPR_NAMES[c.reg].upper()}, offset=0x{c.value:X}"
    elif c.op in (4, 5):
        tail = f"reg={GPR_NAMES[c.reg].upper()}, offset=0x{c.value:X}"
    elif c.op in (8, 9):
        tail = f"reg=XMM{c.reg}, offset=0x{c.value:X}"
    else:
        tail = ""
    return f"0x{c.offset:02X}: {name} {tail}".rstrip()


@pytest.mark.skipif(_READOBJ is None, reason="llvm-readobj not installed")
@pytest.mark.parametrize("name", ["attach_amd64.dll", "inject_dll_amd64.exe"])
def test_unwind_codes_agree_with_llvm_readobj(name):
    path = corpus_file("images", "debugpy", name)
    img = PeImage.from_file(path)
    ref = _readobj_entries(path)
    assert len(ref) > 80
    ib = img.image_base
    checked = 0
    for f in img.runtime_functions:
        r = ref.get(ib + f.begin)
        if r is None:
            continue
        ui = img.unwind_info(f)
        assert ib + f.end == r["end"]
        assert (ui.version, ui.flags, ui.size_of_prolog) == (r["version"], r["flags"], r["prolog"])
        assert ui.frame_register_name == r["frame_reg"]
        assert [_fmt(c) for c in ui.codes] == r["codes"], hex(f.begin)
        assert (ib + ui.handler_rva if ui.handler_rva is not None else None) == r["handler"]
        assert (ib + ui.chained.begin if ui.chained else None) == r["chained"]
        checked += 1
    assert checked == len(ref)


# ---- CodeView vs the PDBs -------------------------------------------------------------------

_PDBUTIL = shutil.which("llvm-pdbutil")


def _pdb_guid_age(pdb) -> tuple[str, int]:
    out = subprocess.run(
        [_PDBUTIL, "dump", "-summary", str(pdb)], capture_output=True, text=True, timeout=60
    ).stdout
    guid = re.search(r"GUID: \{([0-9A-F-]+)\}", out).group(1).replace("-", "")
    age = int(re.search(r"Age: (\d+)", out).group(1))
    return guid, age


@pytest.mark.skipif(_PDBUTIL is None, reason="llvm-pdbutil not installed")
@pytest.mark.parametrize(
    "name", ["attach_amd64.dll", "attach_x86.dll", "inject_dll_amd64.exe", "inject_dll_x86.exe"]
)
def test_codeview_matches_pdb(name):
    img = PeImage.from_file(corpus_file("images", "debugpy", name))
    pdb_name, guid, age = img.pdb_key()
    assert pdb_name == name.rsplit(".", 1)[0] + ".pdb"
    pdb = corpus_file("symbols", "pdb", "debugpy", pdb_name)
    assert (guid, age) == _pdb_guid_age(pdb)
    assert img.codeview.store_key == f"{guid}{age:x}"


@pytest.mark.skipif(_PDBUTIL is None, reason="llvm-pdbutil not installed")
def test_azpshedpi_pdb_is_a_mismatch():
    img = PeImage.from_file(corpus_file("images", "AzPshedPi.sys"))
    name, guid, age = img.pdb_key()
    assert name == "AzPshedPi.pdb"
    assert guid.startswith("9468D0AB") and age == 30
    pdb_guid, pdb_age = _pdb_guid_age(corpus_file("symbols", "pdb", "AzPshedPi-mismatched.pdb"))
    assert (guid, age) != (pdb_guid, pdb_age)
    assert pdb_guid.startswith("610FC754")


# ---- headers, version resource, exports, keys --------------------------------------------------


def test_pshed_version_and_headers():
    img = PeImage.from_file(corpus_file("images", "pshed.dll"))
    assert img.machine_name == "x64" and img.is_pe32_plus
    vi = img.version_info
    assert vi.file_version[:3] == (10, 0, 27635)
    assert vi.strings["FileVersion"].startswith("10.0.27635")
    assert vi.strings.get("ProductVersion", "").startswith("10.0.27635")
    assert vi.strings.get("OriginalFilename", "").lower().startswith("pshed.dll")
    assert img.is_reproducible and img.repro_hash
    exports = {e.name: e for e in img.exports if e.name}
    assert "PshedIsSystemWheaEnabled" in exports or len(exports) > 10
    assert all(e.rva == 0 or img.section_for(e.rva) is not None for e in img.exports)
    assert img.symbol_key() == f"{img.timestamp:08X}{img.size_of_image:x}"


def test_xp_kernel_version_and_exports():
    img = PeImage.from_file(corpus_file("images", "xp-sp3-ntoskrnl.exe"))
    assert img.machine_name == "x86" and not img.is_pe32_plus
    vi = img.version_info
    assert vi.file_version == (5, 1, 2600, 5657)
    assert vi.strings["FileVersion"].startswith("5.1.2600.5657")
    names = {e.name for e in img.exports}
    assert {"KeBugCheckEx", "IoCallDriver", "PsInitialSystemProcess"} <= names
    assert img.export_dll_name.lower() == "ntoskrnl.exe"
    assert not img.is_reproducible


def test_symstore_keys_match_store_layout():
    for folder, name in (("amdppm.sys", "c9c030003b000"), ("Wdf01000.sys", "a9a9d36ed1000")):
        img = PeImage.from_file(corpus_file("symstore", folder, name, folder))
        assert img.symbol_key().lower() == name
    amd = PeImage.from_file(corpus_file("symstore", "amdppm.sys", "c9c030003b000", "amdppm.sys"))
    pdb_name, guid, age = amd.pdb_key()
    assert f"{pdb_name}/{guid}{age:x}" == "amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31"
    corpus_file("symstore", "amdppm.pdb", f"{guid}{age:x}", "amdppm.pdb")
