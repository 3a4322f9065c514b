"""!process ADDR|CID: a kernel-space value is an EPROCESS address, never a process id."""

from __future__ import annotations

from corpus import corpus_session


def test_kernel_address_that_is_no_process():
    s = corpus_session("rizin-triage_x64.dmp")
    assert s.run("!process ffffffffdeadbeef 7")[-1].text == "ffffffffdeadbeef: Unable to get process contents"
    r = s.run("!process 9999 0")[-1]
    assert r.text.splitlines() == ["Searching for Process with Cid == 9999", "Unable to find process 9999"]
    assert s.run("!process ffffc08bdce94180 0")[-1].text.splitlines()[0] == "PROCESS ffffc08bdce94180"
