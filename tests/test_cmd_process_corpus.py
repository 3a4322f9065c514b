"""!process on the triage dumps with kernel types: the current process from the saved EPROCESS."""

from __future__ import annotations

import json

import pytest

import bugcheck
from bugcheck.commands.session import Session
from corpus import corpus_file, dump

NAMES = ["rizin-triage_x64.dmp", "ojusha-100623-4953-01.dmp"]


@pytest.fixture(scope="module", params=NAMES)
def s(request):
    d = bugcheck.open(dump(request.param))
    return Session(
        d, sympath=str(corpus_file("symstore")), offline=True, symbols_dir=str(corpus_file("symbols", "isf"))
    )


def test_current_process_header(s):
    d = s.dump
    kd = d.kd_debugger_data
    proc = d.triage.process_address
    dirbase = int.from_bytes(d.read_virtual(proc + kd["OffsetEprocessDirectoryTableBase"], 8), "little")
    parent = int.from_bytes(d.read_virtual(proc + kd["OffsetEprocessParentCID"], 8), "little")
    (res,) = s.run("!process -1 0")
    assert res.schema == "bugcheck.process/1"
    lines = res.text.splitlines()
    assert lines[0] == f"PROCESS {proc:016x}"
    assert lines[1] == f"    SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: {parent:04x}"
    assert lines[2].startswith(f"    DirBase: {dirbase:08x}  ObjectTable: ")
    # the handle table's free lists are not in a triage dump
    assert lines[2].endswith("HandleCount: <Data Not Accessible>")
    assert lines[3] == "    Image: System"
    assert len(lines) == 4
    json.dumps(res.data)


def test_bare_process_uses_flags_3(s):
    (res,) = s.run("!process")
    text = res.text
    assert res.data["flags"] == 3
    assert "    VadRoot " in text and "    CommitCharge                      " in text
    # kd stops the thread list at the first ETHREAD a triage dump lacks, as a real
    # !process on a 22621 minidump shows ("        *** Error in reading nt!_ETHREAD @ ...")
    assert "        THREAD " in text or "\n\n        *** Error in reading nt!_ETHREAD @ " in text


def test_triage_process_details_match_kd():
    """Real !process on a triage dump (blog post "关于最近发生的事", 2025, 22621 minidump):
    the ReadMemory error indented, the shared-data error not, a zero ElapsedTime."""
    d = bugcheck.open(dump("rizin-triage_x64.dmp"))
    s = Session(
        d, sympath=str(corpus_file("symstore")), offline=True, symbols_dir=str(corpus_file("symbols", "isf"))
    )
    (res,) = s.run("!process")
    lines = res.text.splitlines()
    i = lines.index("    ReadMemory error: Cannot get nt!KeMaximumIncrement value.")
    assert lines[i - 1].startswith("    Token                             ")
    assert lines[i + 1] == "fffff78000000000: Unable to get shared data"
    assert lines[i + 2] == "    ElapsedTime                       00:00:00.000"
    assert lines[-2] == ""
    assert lines[-1].startswith("        *** Error in reading nt!_ETHREAD @ ")


def test_process_list_is_cut_short_with_a_warning_or_ends_at_the_head(s):
    (res,) = s.run("!process 0 0")
    assert res.text.startswith("**** NT ACTIVE PROCESS DUMP ****\nPROCESS ")
    first = res.data["processes"][0]
    assert first["pid"] == 4 and first["image"] == "System"
    assert res.data["processes"][0]["address"] == s.dump.triage.process_address


def test_process_by_pid(s):
    (res,) = s.run("!process 4 0")
    lines = res.text.splitlines()
    assert lines[0] == "Searching for Process with Cid == 4"
    assert lines[1] == f"PROCESS {s.dump.triage.process_address:016x}"
