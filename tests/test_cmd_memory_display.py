"""db/dw/dd/dq/dc/da/du layouts, ranges and holes, on a hand-built dump and on a real triage dump."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.dumpfile.context import Context
from bugcheck.memory.sparse import Block, SparseMemory
from corpus import dump as corpus_dump

BASE = 0xFFFFF80062600000
MZ = bytes.fromhex("4d5a90000300000004000000ffff0000") + b"This is a test string\0" + bytes(range(0x40, 0x80))
WIDE = "Wide str".encode("utf-16-le") + b"\0\0"


class FakeDump:
    """Just enough of a DumpFile for the memory commands."""

    def __init__(self, pointer_size=8):
        blocks = [Block(BASE, len(MZ), MZ), Block(BASE + 0x1000, len(WIDE), WIDE)]
        self.virtual = SparseMemory(blocks)
        self.physical = SparseMemory([Block(0x1000, 0x20, bytes(range(0x20)))])
        self.physical.space = "physical"
        self.pointer_size = pointer_size
        self.machine = "x64" if pointer_size == 8 else "x86"
        self.path = Path("/fake.dmp")
        self.header = SimpleNamespace(number_processors=2)
        regs = {"rsp": BASE + 0x10, "rip": BASE}
        self.contexts = [Context("x64", dict(regs)), Context("x64", {"rsp": BASE, "rip": BASE + 4})]
        self.crash_context = self.contexts[0]
        self.crash_processor = 0
        self.bugcheck_code = 0xD1
        self.bugcheck_parameters = (1, 2, 3, 4)
        self.triage = None
        self.warnings = []

    def read_virtual(self, va, n):
        return self.virtual.read(va, n)

    def read_virtual_padded(self, va, n):
        return self.virtual.read_padded(va, n)


@pytest.fixture
def s():
    return Session(FakeDump())


def run(session, line):
    (r,) = session.run(line)
    return r.text


def test_db_layout(s):
    text = run(s, f"db {BASE:x} L20")
    assert text.splitlines() == [
        "fffff800`62600000  4d 5a 90 00 03 00 00 00-04 00 00 00 ff ff 00 00  MZ..............",
        "fffff800`62600010  54 68 69 73 20 69 73 20-61 20 74 65 73 74 20 73  This is a test s",
    ]


def test_db_default_length_and_continuation(s):
    first = run(s, f"db {BASE:x}").splitlines()
    assert len(first) == 8  # 0x80 bytes
    nxt = run(s, "db").splitlines()
    assert nxt[0].startswith("fffff800`62600080  ")


def test_db_holes_print_question_marks(s):
    # MZ is 0x66 bytes long: the line at +0x60 has 6 real bytes then holes
    line = run(s, f"db {BASE + 0x60:x} L10")
    assert line == "fffff800`62600060  7a 7b 7c 7d 7e 7f ?? ??-?? ?? ?? ?? ?? ?? ?? ??  z{|}~.??????????"
    absent = run(s, "db 1000 L8")
    assert absent == "00000000`00001000  ?? ?? ?? ?? ?? ?? ?? ??                          ????????"


def test_dw_dd_dq_dc(s):
    assert run(s, f"dw {BASE:x} L8") == "fffff800`62600000  5a4d 0090 0003 0000 0004 0000 ffff 0000"
    assert run(s, f"dd {BASE:x} L4") == "fffff800`62600000  00905a4d 00000003 00000004 0000ffff"
    assert run(s, f"dq {BASE:x} L2") == "fffff800`62600000  00000003`00905a4d 0000ffff`00000004"
    assert (
        run(s, f"dc {BASE:x} L4")
        == "fffff800`62600000  00905a4d 00000003 00000004 0000ffff  MZ.............."
    )
    assert run(s, "dd 1000 L2") == "00000000`00001000  ???????? ????????"
    assert run(s, "dq 1000 L1") == "00000000`00001000  ????????`????????"


def test_dd_default_count_is_32_dwords(s):
    assert len(run(s, f"dd {BASE:x}").splitlines()) == 8


def test_glued_arguments_and_ranges(s):
    # WinDbg lets the address touch the command name
    assert run(s, "db@rsp L4") == "fffff800`62600010  54 68 69 73" + " " * 38 + "This"
    # a range end is inclusive
    assert len(run(s, f"db {BASE:x} {BASE + 0x1F:x}").splitlines()) == 2
    assert run(s, f"dd {BASE:x} {BASE + 4:x}") == "fffff800`62600000  00905a4d 00000003"
    assert "Range error" in run(s, f"db {BASE + 10:x} {BASE:x}")


def test_range_limit_and_forced(s):
    assert "Range error" in run(s, "db 0 L20000000")
    assert "????" in run(s, "db 0 L?10")


def test_strings(s):
    assert run(s, f"da {BASE + 0x10:x}") == 'fffff800`62600010  "This is a test string"'
    assert run(s, f"du {BASE + 0x1000:x}") == 'fffff800`62601000  "Wide str"'


def test_physical(s):
    assert (
        run(s, "!db 1000 L10") == "#    1000 00 01 02 03 04 05 06 07-08 09 0a 0b 0c 0d 0e 0f ................"
    )
    assert run(s, "!dd #1000 L4") == "#    1000 03020100 07060504 0b0a0908 0f0e0d0c"


def test_pte_needs_page_tables(s):
    assert "Page tables are not available" in run(s, f"!pte {BASE:x}")


def test_processor_switch_changes_context(s):
    assert s.prompt == "0: kd> "
    run(s, "~1s")
    assert s.prompt == "1: kd> "
    assert s.evaluate("@rip") == BASE + 4
    assert "not a valid processor" in run(s, "~5s")


def test_triage_block_matches_file_bytes():
    path = corpus_dump("rizin-triage_x64.dmp")
    d = bugcheck.open(path)
    blocks = d.triage.data_blocks

    def alone(b):
        return b.size >= 0x20 and not any(
            o is not b and o.address < b.address + 0x20 and b.address < o.address + o.size for o in blocks
        )

    blk = next(b for b in blocks if alone(b))
    raw = path.read_bytes()[blk.offset : blk.offset + 0x20]
    s = Session(d)
    text = run(s, f"db {blk.address:x} L20")
    got = bytes(
        int(x, 16) for x in re.findall(r"\b[0-9a-f]{2}\b", " ".join(ln[19:66] for ln in text.splitlines()))
    )
    assert got == raw
    q = run(s, f"dq {blk.address:x} L1")
    assert (
        q.split("  ")[1]
        == f"{int.from_bytes(raw[:8], 'little') >> 32:08x}`{int.from_bytes(raw[:4], 'little'):08x}"
    )
    assert run(s, "db 10000 L4").endswith("?? ?? ?? ??" + " " * 38 + "????")


def test_dyb_and_dp(s):
    lines = run(s, f"dyb {BASE:x} L4").splitlines()
    assert lines == [
        " " * 19 + "76543210 76543210 76543210 76543210",
        " " * 19 + "-------- -------- -------- --------",
        "fffff800`62600000  01001101 01011010 10010000 00000000  4d 5a 90 00",
    ]
    assert run(s, f"dp {BASE:x} L1") == "fffff800`62600000  00000003`00905a4d"
