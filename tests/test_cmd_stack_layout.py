"""k-family layouts: column widths, variants, frame counts, ``k =``, x86 rows (synthetic frames)."""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.commands.stack import render
from bugcheck.stack.frames import Frame, StackWalk
from corpus import corpus_root, dump


@pytest.fixture(scope="module")
def session():
    root = corpus_root()
    s = Session(
        bugcheck.open(dump("rizin-triage_x64.dmp")),
        sympath=str(root / "symstore"),
        offline=True,
        symbols_dir=str(root / "symbols" / "isf"),
    )
    s.raise_errors = True
    return s


def test_walkthrough_row_layout():
    """The walkthrough's kv rows, rebuilt from their values, come out character for character."""
    f7 = Frame(7, 0xFFFFF80062A08BB5, 0xFFFFD48F77AF9DD0, 0x7FF8F16ECE54, [0, 0, 0, 0])
    f7.symbol, f7.trap_frame = "nt!KiSystemServiceCopyEnd+0x25", 0xFFFFD48F77AF9E40
    f8 = Frame(8, 0x7FF8F16ECE54, 0x7AE6BDE8D8, 0, [0, 0, 0, 0], symbol="0x00007ff8`f16ece54")
    lines = render(StackWalk([f7, f8]), 8, args=True, verbose=True)
    assert lines[1] == (
        "07 ffffd48f`77af9dd0 00007ff8`f16ece54     : 00000000`00000000 00000000`00000000 "
        "00000000`00000000 00000000`00000000 : nt!KiSystemServiceCopyEnd+0x25 (TrapFrame @ ffffd48f`77af9e40)"
    )
    assert lines[2] == (
        "08 0000007a`e6bde8d8 00000000`00000000     : 00000000`00000000 00000000`00000000 "
        "00000000`00000000 00000000`00000000 : 0x00007ff8`f16ece54"
    )
    kb = render(StackWalk([f7]), 8, args=True, verbose=False)
    assert "TrapFrame" not in kb[1]
    k = render(StackWalk([f7]), 8, args=False, verbose=False)
    assert k == [
        " # Child-SP          RetAddr               Call Site",
        "07 ffffd48f`77af9dd0 00007ff8`f16ece54     nt!KiSystemServiceCopyEnd+0x25",
    ]


def test_x86_rows():
    f = Frame(
        0, 0x804F9F43, 0xF8AF9B8C, 0x80538E2F, [1, 2, 3, 4], symbol="nt!KeBugCheckEx+0x1b", fp=0xF8AF9BA8
    )
    assert render(StackWalk([f]), 4, args=True, verbose=True) == [
        " # ChildEBP RetAddr  Args to Child              ",
        "00 f8af9ba8 80538e2f 00000001 00000002 00000003 nt!KeBugCheckEx+0x1b",
    ]


def test_counts_and_variants(session):
    session.reset_context()
    k3 = session.run("k 3")[0]
    assert len(k3.data["frames"]) == 3
    # the last shown frame still has its return address (the walk goes one further)
    assert k3.data["frames"][2]["return_address"] != 0
    # the default depth is WinDbg's 256 frames (".kframes" changes it): the whole stack here
    assert session.run("k 0x100")[0].data["frames"] == session.run("k")[0].data["frames"]
    assert len(session.run("k")[0].data["frames"]) > 0x14
    assert session.run(".kframes")[0].text == "Default stack trace depth is 0n256 frames"
    session.run(".kframes 0x14")
    assert session.run("k 0x14")[0].data["frames"] == session.run("k")[0].data["frames"]
    session.run(".kframes 0x100")
    kc = session.run("kc 2")[0].text.splitlines()
    assert kc[0] == " # Call Site" and kc[1] == "00 nt!KeBugCheckEx"
    kf = session.run("kf 3")[0].text.splitlines()
    assert kf[0].startswith(" #   Memory  Child-SP")
    assert kf[-1].split()[1] == "40"  # 0xffff850429890f30 - 0xffff850429890ef0
    for variant in ("kb", "kn", "kp", "kL", "kP", "kbn", "kvn"):
        r = session.run(f"{variant} 2")[0]
        assert r.schema == "bugcheck.stack/1", (variant, r.text)


def test_explicit_context(session):
    r = session.run("k = 0 ffff850429892120 fffff8048b58334c 2")[0]
    assert [f["pc"] for f in r.data["frames"]] == [0xFFFFF8048B58334C, 0xFFFFF8048B58313F]
    assert not r.text.startswith("***")


def test_frame_and_processor_switch(session):
    session.reset_context()
    r = session.run(".frame 2")[0]
    assert r.text == "02 ffff8504`29890f30 fffff804`7bdfe942     nt!_C_specific_handler+0xa2"
    r = session.run("~3s")[0]
    assert session.prompt == "3: kd> "
    # processor 3 was idle: its registers are where its PRCB's Context pointer leads
    k = session.run("k")[0]
    assert k.data["frames"][0]["pc"] == 0xFFFFF8047BD8D14D
    assert k.data["frames"][0]["sp"] == 0xFFFF8504296456B0
    assert "PpmIdleGuestExecute" in k.text
    session.run("~0s")
    assert session.context is session.crash_context
    assert session.run("k 1")[0].data["frames"][0]["pc"] == 0xFFFFF8047BDF5A80


@pytest.mark.parametrize(
    "regs",
    [
        "0 0 0",
        "0 ffff850429890ee8 0",  # no pc
        "0 1000 fffff8047bdf5a80",  # stack not in the dump
        "0 ffff850429890ee8 1234",  # pc outside every module
        "ffffffffffffffff ffff850429892ff8 fffff8048b58334c",  # stack top: reads run off the end
        "0 ffff850429890ee9 fffff8047bdf5a81",  # misaligned sp, pc mid-instruction
    ],
)
def test_garbage_contexts_do_not_break_the_walk(session, regs):
    r = session.run(f"kv = {regs} 0x40")[0]
    assert r.schema == "bugcheck.stack/1", r.text
    frames = r.data["frames"]
    assert len(frames) <= 0x40
    for a, b in zip(frames, frames[1:]):
        assert b["sp"] > a["sp"]
