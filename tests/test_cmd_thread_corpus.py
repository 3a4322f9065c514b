"""!thread on the corpus dumps with kernel types: the crash thread, checked against raw bytes.

The thread and process addresses come from the triage header; the process
pointer and thread state are read at the KDDEBUGGER_DATA64 offsets
(OffsetKThreadApcProcess, OffsetKThreadState), not through the kernel types.
"""

from __future__ import annotations

import json

import pytest

import bugcheck
from bugcheck.commands.session import Session
from corpus import corpus_file, dump

#: dump, expected Cid of the crash thread (rizin: System's worker 0004.0108)
CASES = [("rizin-triage_x64.dmp", "0004.0108"), ("ojusha-100623-4953-01.dmp", None)]


def _session(name):
    d = bugcheck.open(dump(name))
    return Session(
        d, sympath=str(corpus_file("symstore")), offline=True, symbols_dir=str(corpus_file("symbols", "isf"))
    )


@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request):
    name, cid = request.param
    return _session(name), cid


def test_current_thread_block(case):
    s, cid = case
    d = s.dump
    kd = d.kd_debugger_data
    thread = d.triage.thread_address
    process = int.from_bytes(d.read_virtual(thread + kd["OffsetKThreadApcProcess"], 8), "little")
    state = d.read_virtual(thread + kd["OffsetKThreadState"], 1)[0]
    assert state == 2  # the crashing thread is running
    (res,) = s.run("!thread")
    assert res.schema == "bugcheck.thread/1"
    lines = res.text.splitlines()
    first = lines[0]
    assert first.startswith(f"THREAD {thread:016x}  Cid ")
    if cid:
        assert f"  Cid {cid}  " in first
    assert first.endswith(f"RUNNING on processor {d.crash_processor or 0:x}")
    assert f"Owning Process            {process:016x}       Image:         System" in lines
    assert "Attached Process          N/A            Image:         N/A" in lines
    assert lines[2].startswith("DeviceMap                 ")
    stack = res.data["stack"]
    assert stack["limit"] < stack["current"] < stack["init"] < stack["base"]
    assert f"Stack Init {stack['init']:016x} Current {stack['current']:016x}" in lines
    assert res.data["owning_process"] == process
    json.dumps(res.data)


def test_thread_by_address_matches_current(case):
    s, _ = case
    (cur,) = s.run("!thread")
    (by_addr,) = s.run(f"!thread {s.dump.triage.thread_address:x}")
    assert by_addr.text == cur.text


def test_missing_increment_is_reported_like_kd(case):
    s, _ = case
    (res,) = s.run("!thread")
    # neither dump holds nt!KeMaximumIncrement or KUSER_SHARED_DATA: kd's two messages
    assert "ReadMemory error: Cannot get nt!KeMaximumIncrement value." in res.text
    assert "fffff78000000000: Unable to get shared data" in res.text
    assert res.data["ticks"] is None


def test_stack_follows_the_block_when_the_walker_is_present(case):
    s, _ = case
    (res,) = s.run("!thread")
    if res.data["stack_note"]:
        pytest.skip(res.data["stack_note"])
    lines = res.text.splitlines()
    # modern kd's wide RetAddr column (a published 10.0.2x !thread:
    # "ffff9405`d02eb7f8 fffff802`6042a6b5     tedrdrv+0x7e70")
    i = lines.index("Child-SP          RetAddr               Call Site")
    assert lines[i - 1].startswith("Priority ")
    assert lines[i + 1].endswith("     nt!KeBugCheckEx")
    assert lines[i + 1][17] == " " and lines[i + 1][35:40] == "     "
