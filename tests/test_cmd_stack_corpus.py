"""Every corpus dump: kv, .thread, ~1s and .trap run through Session.run without errors."""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.errors import BugcheckError
from corpus import all_dumps

DUMPS = all_dumps()


def _open(path):
    try:
        return bugcheck.open(path)
    except BugcheckError:
        return None  # e.g. the zero-filled file: not a dump, covered by the dump reader's tests


def _ok(result) -> None:
    text = result.text or ""
    assert "internal error" not in text and "Traceback" not in text, text
    assert result.schema != "bugcheck.error/1" or "not in this dump" in text or "Unable" in text, text


@pytest.mark.parametrize("path", DUMPS, ids=[p.name for p in DUMPS])
def test_stack_commands(path):
    d = _open(path)
    if d is None:
        pytest.skip("not a crash dump")
    s = Session(d)
    s.raise_errors = True
    kv = s.run("kv")[0]
    _ok(kv)
    frames = kv.data["frames"]
    assert frames, kv.text
    lines = kv.text.splitlines()
    assert lines[0].lstrip().startswith(("#", "ChildEBP"))
    assert frames[0]["pc"] == d.crash_context.pc
    # stack pointers grow (a trap frame into user mode is the one exception)
    for a, b in zip(frames, frames[1:]):
        assert b["sp"] > a["sp"] or b["pc"] < 0x8000_0000_0000
    _ok(s.run(".thread")[0])
    home = s.processor
    if s.processor_count > 1:
        other = 1 if home != 1 else 0
        r = s.run(f"~{other}s")[0]
        _ok(r)
        assert s.prompt == f"{other}: kd> "
        _ok(s.run("k")[0])
        s.run(f"~{home}s")
        assert s.context is s.crash_context
    tf = next((f["trap_frame"] for f in frames if f["trap_frame"]), None)
    if tf is not None:
        r = s.run(f".trap {tf:#x}")[0]
        _ok(r)
        assert r.text.startswith("NOTE: The trap frame does not contain all registers.")
        k = s.run("k")[0]
        _ok(k)
        assert k.text.startswith("*** Stack trace for last set context")
        s.run(".cxr")
    _ok(s.run(".frame 0")[0])
