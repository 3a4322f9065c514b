"""Acceptance: the x64 walk on rizin-triage_x64.dmp against rizin's 36-frame answer key (MANIFEST.md).

nt's image is not in the corpus, so its frames come from prolog decoding and the
validated scan; amdppm and Wdf01000 are unwound from their .pdata (symbol store).
"""

from __future__ import annotations

import re

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.stack.walker import walk
from corpus import corpus_file, corpus_root, dump


def _answer_key() -> list[tuple[int, int]]:
    text = corpus_file("MANIFEST.md").read_text()
    block = text.split("Backtrace (rizin", 1)[1].split("```", 2)[1]
    rows = re.findall(r"^\s*\d+\s+0x([0-9a-f]+)\s+sp:\s+0x([0-9a-f]+)", block, re.M)
    return [(int(pc, 16), int(sp, 16)) for pc, sp in rows]


@pytest.fixture(scope="module")
def session():
    root = corpus_root()
    path = dump("rizin-triage_x64.dmp")
    s = Session(
        bugcheck.open(path),
        sympath=str(root / "symstore"),
        offline=True,
        symbols_dir=str(root / "symbols" / "isf"),
    )
    s.raise_errors = True
    return s


def _walk(session, ctx=None):
    t = session.slot("target")
    return walk(session.dump, t.resolver, t.kernel, ctx or session.dump.crash_context, 128, store=t.store)


def test_answer_key_parsed():
    key = _answer_key()
    assert len(key) == 36
    assert key[0] == (0xFFFFF8047BDF5A80, 0xFFFF850429890EE8)


def test_walk_from_crash_context(session):
    key = _answer_key()
    frames = [(f.pc, f.sp) for f in _walk(session).frames]
    # the first six nt frames are found without nt's unwind data (prolog decoding + scan)
    assert frames[:6] == key[:6]
    # every frame of the answer key is found, in order; stale return addresses the scan
    # cannot tell from real ones add extra frames between them
    it = iter(frames)
    assert all(k in it for k in key)
    extra = [fr for fr in frames if fr not in key]
    assert len(extra) <= 12, len(extra)
    # the kernel-mode trap frame built by KiSegmentNotPresentFault is found and followed ...
    trap = key.index((0xFFFFF8048B58334C, 0xFFFF850429892120))
    assert trap == 8
    i = frames.index(key[7])
    # ... and from there amdppm and Wdf01000 (frames 8..23) match exactly, from .pdata
    assert frames[i : i + 18] == key[7:25]
    sw = _walk(session)
    assert len(sw.frames) == len(frames)
    f7 = sw.frames[i]
    assert f7.trap_frame == 0xFFFF850429891F90
    assert sw.frames[i + 1].method == "trap_frame"
    assert {f.method for f in sw.frames[i + 2 : i + 17]} <= {"pdata", "epilog"}
    # frame numbers agree with rizin only up to the first stale return address the scan takes
    same_index = sum(1 for n, fr in enumerate(frames) if n < len(key) and fr == key[n])
    assert same_index == 6
    assert sw.warnings == ["WARNING: Stack unwind information not available. Following frames may be wrong."]


def test_cxr_then_k(session):
    key = _answer_key()
    out = session.run(".cxr ffff850429891720; k 11")
    assert "amdppm!WriteIoMemRawEx+0x70:" in out[0].text
    k = out[1]
    lines = k.text.splitlines()
    assert lines[0] == "*** Stack trace for last set context - .thread/.cxr resets it"
    assert lines[1] == " # Child-SP          RetAddr               Call Site"
    assert lines[2] == "00 ffff8504`29892120 fffff804`8b58313f     amdppm!WriteIoMemRawEx+0x70"
    frames = [(f["pc"], f["sp"]) for f in k.data["frames"]]
    assert frames == key[8 : 8 + 0x11]
    assert k.data["frames"][0]["method"] == "context_record"
    session.run(".cxr")
    assert session.context is session.dump.crash_context


def test_kv_layout_and_trap(session):
    r = session.run("kv 0x30")[0]
    lines = r.text.splitlines()
    assert lines[0] == (
        " # Child-SP          RetAddr               : Args to Child" + " " * 59 + ": Call Site"
    )
    # frame 0's Args to Child are KeBugCheckEx's four parameters, as WinDbg shows them
    assert lines[1] == (
        "00 ffff8504`29890ee8 fffff804`7be0f4e1     : 00000000`0000007e ffffffff`c0000005 "
        "fffff804`8b58334c ffff8504`29891ee8 : nt!KeBugCheckEx"
    )
    trap_lines = [ln for ln in lines if "(TrapFrame @ ffff8504`29891f90)" in ln]
    assert len(trap_lines) == 1 and "nt!KiSegmentNotPresentFault+0x335" in trap_lines[0]
    t = session.run(".trap ffff8504`29891f90")[0]
    assert t.text.splitlines()[:2] == [
        "NOTE: The trap frame does not contain all registers.",
        "Some register values may be zeroed or incorrect.",
    ]
    assert "rip=fffff8048b58334c rsp=ffff850429892120" in t.text
    k = session.run("k 2")[0]
    assert k.data["frames"][0]["pc"] == 0xFFFFF8048B58334C
    session.run(".cxr")


def test_stack_text_matches_kv_rows(session):
    """!analyze's STACK_TEXT rows carry the same Child-SP, RetAddr and args as kv."""
    from bugcheck.analysis.analyze import stack_text
    from bugcheck.commands.stack import session_walk

    session.reset_context()
    sw = session_walk(session, 5)
    lines = stack_text(session.slot("target").resolver, sw.frames, session.pointer_size)
    assert lines[0].startswith("ffff8504`29890ee8 fffff804`7be0f4e1     : 00000000`0000007e ")
    assert lines[0].endswith(" : nt!KeBugCheckEx")
    assert len(lines) == 5
