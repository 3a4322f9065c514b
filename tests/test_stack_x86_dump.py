"""``kb`` on a writer-made 32-bit full dump whose stack runs through FPO and frame-data functions.

The kernel in the dump is a header-only PE whose CodeView record names the
XP SP3 PAE kernel PDB (xp-ntkrnlpa.pdb, GUID and age copied from the PDB), so
bugcheck loads that PDB from the symbol path, walks PsLoadedModuleList with its
``_LDR_DATA_TABLE_ENTRY`` and unwinds with its FRAMEDATA and FPO records. The
stack is the one of test_stack_x86_pdb (every x86 method in one chain).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from bugcheck.dumpfile.writer import DumpDescription, write_dump
from corpus import corpus_file
from test_stack_x86_pdb import NT, STACK, _chain

NT_SIZE = 0x1F8000
LIST_HEAD = 0x806C0000
ENTRY = 0x81200000
KDBG = 0x80550000


def _kernel_header(pdb) -> bytes:
    """MZ/PE headers, one executable section, a debug directory and an RSDS record."""
    h = bytearray(0x1000)
    h[0:2] = b"MZ"
    struct.pack_into("<I", h, 0x3C, 0x80)
    h[0x80:0x84] = b"PE\0\0"
    struct.pack_into("<HHIIIHH", h, 0x84, 0x14C, 1, 0x48025EAB, 0, 0, 0xE0, 0x102)
    opt = 0x98
    struct.pack_into("<HBB", h, opt, 0x10B, 7, 10)
    struct.pack_into("<III", h, opt + 28, NT, 0x1000, 0x200)
    struct.pack_into("<II", h, opt + 56, NT_SIZE, 0x400)
    struct.pack_into("<H", h, opt + 68, 1)
    struct.pack_into("<I", h, opt + 92, 16)
    struct.pack_into("<II", h, opt + 96 + 6 * 8, 0x300, 28)  # debug directory
    sec = opt + 0xE0
    h[sec : sec + 8] = b".text\0\0\0"
    struct.pack_into("<IIII", h, sec + 8, NT_SIZE - 0x1000, 0x1000, NT_SIZE - 0x1000, 0x400)
    struct.pack_into("<I", h, sec + 36, 0x60000020)
    name = b"xp-ntkrnlpa.pdb\0"
    rsds = b"RSDS" + pdb.guid.bytes_le + struct.pack("<I", pdb.age) + name
    struct.pack_into("<IIHHIIII", h, 0x300, 0, 0x48025EAB, 0, 0, 2, len(rsds), 0x340, 0x340)
    h[0x340 : 0x340 + len(rsds)] = rsds
    return bytes(h)


def _module_list(pdb) -> tuple[bytes, bytes]:
    from bugcheck.kernel.typed import Types

    t = Types(pdb.types, 4).get("_LDR_DATA_TABLE_ENTRY")
    off = {f: t.field_offset(f) for f in ("DllBase", "SizeOfImage", "FullDllName", "BaseDllName")}
    e = bytearray(0x200)
    struct.pack_into("<II", e, 0, LIST_HEAD, LIST_HEAD)  # InLoadOrderLinks
    struct.pack_into("<II", e, off["DllBase"], NT, 0)
    struct.pack_into("<I", e, off["SizeOfImage"], NT_SIZE)
    name = "ntkrnlpa.exe".encode("utf-16-le")
    e[0x100 : 0x100 + len(name)] = name
    for f in ("FullDllName", "BaseDllName"):
        struct.pack_into("<HHI", e, off[f], len(name), len(name), ENTRY + 0x100)
    head = struct.pack("<II", ENTRY, ENTRY)
    return head, bytes(e)


@pytest.fixture(scope="module")
def dump_path(tmp_path_factory):
    from bugcheck.symbols.pdb import open_pdb

    pdb = open_pdb(corpus_file("symbols", "pdb", "xp-ntkrnlpa.pdb"))
    mem, _, regs, expected = _chain(pdb)
    head, entry = _module_list(pdb)
    ctx = dict(regs, efl=0x246, cs=8, ss=0x10, ds=0x23, es=0x23, fs=0x30, gs=0)
    desc = DumpDescription(
        machine="x86",
        paging="pae",
        build=2600,
        bugcheck_code=0x7F,
        bugcheck_parameters=(8, 0, 0, 0),
        contexts=[ctx],
        kernel_base=NT,
        kd_debugger_data_block=KDBG,
        synthesize_kd_data=True,
        ps_loaded_module_list=LIST_HEAD,
        mappings={NT: _kernel_header(pdb), LIST_HEAD: head, ENTRY: entry, STACK: mem.virtual.regions[0][1]},
        ram_size=64 << 20,
    )
    path = tmp_path_factory.mktemp("x86dump") / "fpo.dmp"
    write_dump(desc, path, "full")
    return path, expected


def child_ebp(expected) -> list[int]:
    """WinDbg's ChildEBP: the slot below each return address (the caller's esp - 8); the trap
    handler's frame shows its ebp (the trap frame), the last frame its ebp."""
    out = [e[1] - 8 for e in expected[1:]] + [expected[-1][2]]
    out[4] = STACK + 0x300
    return out


def _run(*args):
    return subprocess.run(
        [sys.executable, "-m", "bugcheck.cli", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_kb_through_frame_data_and_fpo(dump_path):
    path, expected = dump_path
    sympath = corpus_file("symbols", "pdb")
    p = _run("--offline", "-y", sympath, "--json", "-c", "kb", path)
    assert p.returncode == 0, p.stderr
    docs = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    kb = next(d for d in docs if d.get("command", "").startswith("kb"))
    frames = kb["data"]["frames"]
    assert [(f["pc"], f["sp"], f["method"]) for f in frames] == [(e[0], e[1], e[3]) for e in expected]
    assert [f["fp"] for f in frames] == child_ebp(expected)
    names = [f["symbol"] for f in frames]
    assert names[0] == "nt!KeFlushEntireTb+0x8"
    assert names[1] == "nt!CcCanIWrite+0x36"
    assert names[3] == "nt!KiFlushNPXState+0x20"


def test_kb_text(dump_path):
    path, expected = dump_path
    p = _run("--offline", "-y", corpus_file("symbols", "pdb"), "-c", "kb", path)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    at = next(i for i, x in enumerate(lines) if x.startswith(" # ChildEBP RetAddr  Args to Child"))
    rows = lines[at + 1 : at + 1 + len(expected)]
    # ChildEBP: the slot below the return address; RetAddr: the next frame's pc; then three dwords
    assert rows[0].startswith(f"00 {STACK + 0x100:08x} {expected[1][0]:08x} 000000a1 000000a2 ")
    assert rows[0].endswith("nt!KeFlushEntireTb+0x8")
    for i, row in enumerate(rows):
        assert row.split()[1:3] == [
            f"{child_ebp(expected)[i]:08x}",
            f"{expected[i + 1][0] if i + 1 < len(expected) else 0:08x}",
        ]
