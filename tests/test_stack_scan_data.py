"""A triage dump keeps the code at each return address (a block starts there) and some kernel
data too; a stack value pointing inside kept data, with no call instruction before it, is no
return address. ojusha's stack holds pointers into nt!MiSystemPartition's list heads, which the
scan used to list as frames."""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.commands.session import Session, load_commands
from bugcheck.stack.scan import CodeMap, call_before
from corpus import all_dumps, corpus_session


@pytest.fixture(scope="module")
def ojusha():
    return corpus_session("ojusha-100623-4953-01.dmp", store=False, raise_errors=True)


def test_no_frames_inside_kernel_data(ojusha):
    frames = ojusha.run("kv")[-1].data["frames"]
    names = [f["symbol"] or "" for f in frames]
    assert "nt!MiDeleteSubsectionPages+0x435" in names
    assert not any("MiSystemPartition" in n for n in names), names


def test_every_scanned_frame_returns_after_a_call_or_to_captured_code(ojusha):
    code = CodeMap(ojusha.dump, ojusha.symbols)
    assert code.code_captured
    for f in ojusha.run("kv")[-1].data["frames"]:
        ra = f["return_address"]
        if ra and f["method"] in ("scan", "prolog"):
            assert code.captured(ra) == 2 or call_before(code, ra)[0] is True, hex(ra)


def test_the_data_pointers_are_still_on_the_stack(ojusha):
    """The rule, not the stack, changed: the rejected values are there and point into data."""
    target = ojusha.slot("target")
    base = target._kernel_symbol("MiSystemPartition")
    sp = ojusha.crash_context.sp
    raw = ojusha.dump.read_virtual(sp, 0x400)
    values = [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]
    inside = [v for v in values if base <= v < base + 0x1000]
    assert inside
    code = CodeMap(ojusha.dump, ojusha.symbols)
    assert any(code.captured(v) == 1 and call_before(code, v)[0] is not True for v in inside)


def _criticalrocket():
    return [p for p in all_dumps() if p.parent.name == "criticalrocket"]


def test_classic_triage_dumps_are_not_taken_for_code_capturing_ones():
    """A classic triage dump (Windows 8.1, criticalrocket) keeps no code at return addresses; one
    kernel pointer repeated on the stack (its PRCB, a block of its own) must not make the scan
    demand captured code, which would drop every driver frame."""
    paths = _criticalrocket()
    if not paths:
        pytest.skip("criticalrocket dumps not in the corpus")
    load_commands()
    blamed = {}
    for p in paths:
        try:
            d = bugcheck.open(p)
        except bugcheck.errors.BugcheckError:
            continue  # the zero-filled file
        if d.bugcheck_code != 0xA0000001:
            continue
        s = Session(d, offline=True)
        assert not CodeMap(s.dump, s.symbols).code_captured, p.name
        blamed[p.name] = s.run("!analyze -v")[-1].data["fields"]["FAILURE_BUCKET_ID"]
    assert len(blamed) == 17
    assert all(v == "0xA0000001_atikmdag!unknown_function" for v in blamed.values()), blamed


def test_values_pointing_at_data_are_no_return_addresses(ojusha):
    """nt!MiState+0x1ac8 starts a kept block (as code at a return address would) but holds two
    zero bytes, and the MiSystemPartition list heads point at themselves: neither is code."""
    from bugcheck.stack.scan import code_follows

    code = CodeMap(ojusha.dump, ojusha.symbols)
    target = ojusha.slot("target")
    mistate = target._kernel_symbol("MiState") + 0x1AC8
    assert code.captured(mistate) == 2
    assert code_follows(code, mistate) is False
    names = [f["symbol"] or "" for f in ojusha.run("kv")[-1].data["frames"]]
    assert not any(n.startswith("nt!MiState") for n in names), names
    # every frame the walk kept reads as code where its bytes are present
    for f in ojusha.run("kv")[-1].data["frames"]:
        if f["return_address"]:
            assert code_follows(code, f["return_address"]) in (True, None)
