"""Unloaded drivers of a kernel dump: nt!MmUnloadedDrivers, read as WinDbg lists them.

A re-packed rizin triage dump (with the kernel's types) carries the triage
unloaded-driver list as the kernel's ring of records; ``lm`` and the load banner
must show it exactly as for the triage dump. Hand-made rings check the order
once the ring has wrapped, and that bad data warns instead of failing.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys

import pytest

import bugcheck
from bugcheck.dumpfile.writer import dump_from_blocks, repack
from bugcheck.kernel.modules import from_triage, from_unloaded_drivers
from bugcheck.kernel.typed import Types
from corpus import REPO_ROOT, corpus_file, dump

ISF = ("symbols", "isf", "windows", "ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844-1.json.xz")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from bugcheck.symbols.isf import load_isf

    src_path = dump("rizin-triage_x64.dmp")
    table = load_isf(corpus_file(*ISF))
    out = tmp_path_factory.mktemp("unloaded") / "rizin-kb.dmp"
    repack(bugcheck.open(src_path), out, "kernel_bitmap", types=table)
    return src_path, out, table


def _cli(path, command: str) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "bugcheck.cli", "-y", str(corpus_file("symstore")), "--offline",
         "--symbols-dir", str(corpus_file("symbols", "isf")), "-c", command, str(path)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout


def _unloaded_section(text: str) -> list[str]:
    lines = text.splitlines()
    i = lines.index("Unloaded modules:")
    out = []
    for line in lines[i + 1 :]:
        if not re.match(r"[0-9a-f]{8}`[0-9a-f]{8} ", line):
            break
        out.append(line)
    return out


def test_lm_unloaded_section_survives_repack(pair):
    src, packed, _ = pair
    want = _unloaded_section(_cli(src, "lm"))
    got_text = _cli(packed, "lm")
    assert "Kernel Bitmap Dump File" in got_text
    assert want and _unloaded_section(got_text) == want
    assert want[0].endswith("dam.sys") and want[-1].endswith("mcupdate.dll")  # most recent first


def test_banner_loads_unloaded_list_for_both(pair):
    src, packed, _ = pair
    for path in (src, packed):
        text = _cli(path, "q")
        lines = text.splitlines()
        assert "Loading unloaded module list" in lines, text
        i = lines.index("Loading unloaded module list")
        assert lines[i + 1] == "...."  # one dot per unloaded driver (4)


def test_ring_read_with_kernel_types(pair):
    src, packed, table = pair
    d = bugcheck.open(packed)
    assert d.triage is None and d.kd_debugger_data["MmUnloadedDrivers"]
    got, warnings = from_unloaded_drivers(d, Types(table, 8))
    want = from_triage(bugcheck.open(src)).unloaded
    assert [(u.name, u.start, u.end) for u in got] == [(u.name, u.start, u.end) for u in want]
    assert warnings == []


# ---- hand-made rings --------------------------------------------------------------------------

ARRAY_PTR = 0xFFFFF800_10000000  # nt!MmUnloadedDrivers
LAST = 0xFFFFF800_10000008  # nt!MmLastUnloadedDriver
ARRAY = 0xFFFFB000_20000000
NAMES = 0xFFFFB000_20010000
REC = 0x28  # the x64 record: UNICODE_STRING, two pointers, LARGE_INTEGER


def _ring(tmp_path, names: dict[int, str], last: int, *, array=ARRAY, bad_length: int | None = None):
    recs = bytearray(REC * 50)
    strings = bytearray()
    for slot, name in names.items():
        raw = name.encode("utf-16-le")
        length = len(raw) if slot != bad_length else 0x8000
        at = NAMES + len(strings)
        strings += raw + bytes(16 - len(raw) % 16)
        struct.pack_into("<HHIQQQQ", recs, slot * REC, length, len(raw), 0, at,
                         0xFFFFF800_30000000 + slot * 0x10000, 0xFFFFF800_30008000 + slot * 0x10000, slot)  # fmt: skip
    blocks = [
        (ARRAY_PTR, struct.pack("<Q", array)),
        (LAST, struct.pack("<I", last)),
        (ARRAY, bytes(recs)),
        (NAMES, bytes(strings)),
    ]
    path = tmp_path / "ring.dmp"
    dump_from_blocks(blocks, path, contexts=[{"rip": ARRAY_PTR}], bugcheck_code=1)
    return bugcheck.open(path)


def _symbol(name):
    return {"MmUnloadedDrivers": ARRAY_PTR, "MmLastUnloadedDriver": LAST}[name]


def test_wrapped_ring_lists_most_recent_first(tmp_path):
    d = _ring(tmp_path, {i: f"d{i}.sys" for i in range(50)}, 3)
    got, warnings = from_unloaded_drivers(d, Types(None, 8), _symbol)
    assert [u.name for u in got] == ["d2.sys", "d1.sys", "d0.sys", *(f"d{i}.sys" for i in range(49, 2, -1))]
    assert got[0].start == 0xFFFFF800_30020000 and got[0].end == 0xFFFFF800_30028000 and got[0].time == 2
    assert warnings == []


def test_partly_filled_ring_skips_empty_slots(tmp_path):
    d = _ring(tmp_path, {0: "a.sys", 1: "b.sys"}, 2)
    got, _ = from_unloaded_drivers(d, Types(None, 8), _symbol)
    assert [u.name for u in got] == ["b.sys", "a.sys"]


def test_bad_rings_warn(tmp_path):
    d = _ring(tmp_path, {0: "a.sys"}, 77)
    got, warnings = from_unloaded_drivers(d, Types(None, 8), _symbol)
    assert got == [] and "out of range" in warnings[0]

    d = _ring(tmp_path, {0: "a.sys", 1: "b.sys"}, 2, bad_length=1)
    got, warnings = from_unloaded_drivers(d, Types(None, 8), _symbol)
    assert [u.name for u in got] == ["a.sys"] and "1 unloaded module record" in warnings[0]

    d = _ring(tmp_path, {0: "a.sys"}, 1, array=0xFFFFC000_00000000)  # the array is not in the dump
    got, warnings = from_unloaded_drivers(d, Types(None, 8), _symbol)
    assert got == [] and "not in the dump" in warnings[0]


def test_no_globals_no_list(tmp_path):
    d = _ring(tmp_path, {0: "a.sys"}, 1)
    assert from_unloaded_drivers(d, Types(None, 8)) == ([], [])  # no debugger data, no symbols
