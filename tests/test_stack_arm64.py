"""ARM64: the frame-record walk on rizin-triage_arm64.dmp against rizin's five frames (MANIFEST.md)."""

from __future__ import annotations

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.stack.arm64_walk import strip_pac
from bugcheck.stack.walker import walk
from corpus import dump

# rizin: KeBugCheck2+452, PopPowerButtonWorkCallback+752, ExpWorkerThread+460,
# PspSystemThreadStartup+80, KiStartSystemThread+36 (no symbols for this kernel in the corpus)
EXPECTED_SP = [
    0xFFFFE00E0E4BC4A0,
    0xFFFFE00E0E4BC4B0,
    0xFFFFE00E0E4BCB20,
    0xFFFFE00E0E4BCCE0,
    0xFFFFE00E0E4BCD40,
]


def test_arm64_frames():
    d = bugcheck.open(dump("rizin-triage_arm64.dmp"))
    s = Session(d)
    sw = walk(d, s.symbols, s.kernel, d.crash_context)
    assert [f.sp for f in sw.frames] == EXPECTED_SP
    assert sw.frames[0].pc == 0xFFFFF803F32DE014
    assert all(f.method == "frame_pointer" for f in sw.frames[1:])
    # every caller pc is inside the kernel image, 4-byte aligned (an instruction after a bl)
    nt = s.symbols.module_at(sw.frames[0].pc)
    for f in sw.frames[1:]:
        assert s.symbols.module_at(f.pc) is nt and f.pc % 4 == 0


def test_arm64_k_command():
    d = bugcheck.open(dump("rizin-triage_arm64.dmp"))
    s = Session(d)
    r = s.run("k")[0]
    assert len(r.data["frames"]) == 5
    assert r.text.splitlines()[1].startswith("00 ffffe00e`0e4bc4a0 fffff803`f33442a0")


def test_strip_pac():
    assert strip_pac(0x0092_F803_F33442A0) == 0xFFFF_F803_F334_42A0
    assert strip_pac(0x0000_7FF8_1234_5678) == 0x7FF812345678
