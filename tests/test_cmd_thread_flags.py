"""!thread [-p] [-t] [ADDR [FLAGS]] as kd documents it: 0x2 the block and wait states, 0x4 (with
0x2) the stack, default 0x6; -p the owning process first; -t ADDR is a thread id."""

from __future__ import annotations

import pytest

from corpus import corpus_session

THREAD = 0xFFFFC08BDE9E1640  # rizin's crashing thread, Cid 0004.0108


@pytest.fixture(scope="module")
def session():
    return corpus_session("rizin-triage_x64.dmp")


def _text(session, line):
    return session.run(line)[-1].text.splitlines()


def test_default_is_block_and_stack(session):
    lines = _text(session, "!thread")
    assert lines[0].startswith("THREAD ffffc08bde9e1640  Cid 0004.0108")
    assert any(ln.startswith("Child-SP") for ln in lines)
    assert _text(session, f"!thread {THREAD:x} 6") == lines


def test_flag_2_without_4_has_no_stack(session):
    lines = _text(session, "!thread -1 2")
    assert lines[1] == "Not impersonating"
    assert lines[-1].startswith("Priority 13 BasePriority 12")
    assert not any(ln.startswith("Child-SP") for ln in lines)


def test_flags_without_2_give_the_thread_line(session):
    for flags in ("0", "4", "8"):
        lines = _text(session, f"!thread -1 {flags}")
        assert len(lines) == 1 and lines[0].startswith("THREAD ffffc08bde9e1640"), flags


def test_p_shows_the_owning_process_first(session):
    r = session.run("!thread -p -1 2")[-1]
    lines = r.text.splitlines()
    assert lines[0] == "PROCESS ffffc08bdce94180"
    assert any(ln.strip() == "Image: System" for ln in lines[:5])
    assert r.data["process"]["image"] == "System"
    assert any(ln.startswith("THREAD ffffc08bde9e1640") for ln in lines)


def test_t_takes_a_thread_id(session):
    assert _text(session, "!thread -t 108 0") == _text(session, "!thread -1 0")
    r = session.run("!thread -t 99999")[-1]
    assert r.text == "Unable to find thread with Cid 99999"
