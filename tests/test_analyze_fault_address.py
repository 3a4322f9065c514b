"""When the walk never reaches the faulting instruction and only a stack scan finds a driver
frame, the faulting address the bugcheck names decides the culprit; where the walk starts at
the fault (a context record), the frames decide, as before."""

from __future__ import annotations

import pytest

from corpus import all_dumps, corpus_session


def _fields(name):
    return corpus_session(name).run("!analyze -v")[-1].data["fields"]


def test_page_fault_in_nt_with_a_scanned_driver_frame():
    if not any(p.name == "111317-27812-01.dmp" for p in all_dumps()):
        pytest.skip("criticalrocket dumps not in the corpus")
    f = _fields("criticalrocket/111317-27812-01.dmp")
    # 0x50's Arg3, fffff801eddf9151, is the faulting instruction, in nt. Without nt's unwind data
    # the walk from KeBugCheckEx scans (a stray WdFilter+0xd000 among its frames), but the trap
    # frame that saved Arg3 is on the stack: found, it shows the faulting read of Arg1 (rax) and
    # the culprit is looked for from the faulting instruction on, as kd does after .trap
    assert f["BUGCHECK_P3"] == "fffff801eddf9151"
    trap = f["TRAP_FRAME"].splitlines()
    assert trap[0] == "ffffd0003558b4b0 -- (.trap 0xffffd0003558b4b0)"
    assert "rax=000000007ffe0320" in f["TRAP_FRAME"]
    assert "mov     rax,qword ptr [rax] ds:00000000`7ffe0320=????????????????" in f["TRAP_FRAME"]
    # the frame at the trap frame returns to the faulting instruction, whose frame follows
    # (STACK_TEXT, like kd's, carries no "(TrapFrame @ ...)" note)
    lines = f["STACK_TEXT"].splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("ffffd000`3558b4b0 "))
    assert lines[at].split()[1] == "fffff801`eddf9151"
    assert lines[at + 1].startswith("ffffd000`3558b640 ") and lines[at + 1].endswith(": nt+0x3f2151")
    assert f["MODULE_NAME"] == "nt" and f["SYMBOL_NAME"] == "nt+3f2151"
    assert f["FAILURE_BUCKET_ID"] == "AV_R_INVALID_nt!unknown_function"


def test_context_record_walks_keep_their_frames():
    # proxyrule's 0x7E: the walk starts at the exception address; winhvr comes from the frames
    assert _fields("proxyrule-011620-8250-01.dmp")["FAILURE_BUCKET_ID"] == "AV_winhvr!unknown_function"
