"""x86 EBP-chain walk on a synthetic 32-bit triage dump (no real one exists in the corpus)."""

from __future__ import annotations

import struct

import bugcheck
from bugcheck.commands.session import Session
from test_dump_triage32 import STACK_VA, build


def _dump(tmp_path):
    base = tmp_path / "base.dmp"
    build(base)  # the project's writer makes the 32-bit triage dump
    raw = bytearray(base.read_bytes())
    pattern = bytes((i * 7) & 0xFF for i in range(0x40))
    at = raw.find(pattern)  # the captured stack (TopOfStack = STACK_VA)
    assert at > 0
    chain = [
        (0x40, STACK_VA + 0x80, 0x804D8123),  # ebp in the context: STACK_VA + 0x40
        (0x80, STACK_VA + 0xC0, 0xF8A10456),
        (0xC0, 0, 0x804D9000),
    ]
    for off, next_ebp, ret in chain:
        struct.pack_into("<II", raw, at + off, next_ebp, ret)
    struct.pack_into("<III", raw, at + 0x48, 0x11, 0x22, 0x33)  # args of frame 0
    path = tmp_path / "x86.dmp"
    path.write_bytes(bytes(raw))
    return bugcheck.open(path)


def test_ebp_chain(tmp_path):
    d = _dump(tmp_path)
    s = Session(d)
    s.raise_errors = True
    r = s.run("kb")[0]
    frames = r.data["frames"]
    assert [(f["pc"], f["sp"]) for f in frames] == [
        (0x805D2B1A, STACK_VA),
        (0x804D8123, STACK_VA + 0x48),
        (0xF8A10456, STACK_VA + 0x88),
        (0x804D9000, STACK_VA + 0xC8),
    ]
    assert [f["method"] for f in frames] == ["context", "frame_pointer", "frame_pointer", "frame_pointer"]
    lines = r.text.splitlines()
    assert lines[0] == " # ChildEBP RetAddr  Args to Child              "
    assert lines[1].startswith(f"00 {STACK_VA + 0x40:08x} 804d8123 00000011 00000022 00000033 ")
    assert lines[3].startswith(f"02 {STACK_VA + 0xC0:08x} 804d9000 ")
