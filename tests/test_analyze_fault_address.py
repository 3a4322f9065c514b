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
    # 0x50's Arg3, fffff801eddf9151, is the faulting instruction: it lies in nt; the stack from
    # KeBugCheckEx has no trap frame to it, and its first driver frame (WdFilter+0xd000, a
    # page-aligned value found by scanning) follows no call
    assert f["BUGCHECK_P3"] == "fffff801eddf9151"
    assert f["MODULE_NAME"] == "nt"
    assert f["FAILURE_BUCKET_ID"] == "AV_R_INVALID_nt!unknown_function"
    assert "WdFilter+0xd000" in f["STACK_TEXT"]


def test_context_record_walks_keep_their_frames():
    # proxyrule's 0x7E: the walk starts at the exception address; winhvr comes from the frames
    assert _fields("proxyrule-011620-8250-01.dmp")["FAILURE_BUCKET_ID"] == "AV_winhvr!unknown_function"
