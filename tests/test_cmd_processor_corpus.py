"""!running, !irql, !prcb, !pcr on the corpus dumps that have kernel types.

Expected values are read from the dump bytes independently of the kernel
types: KiProcessorBlock comes from the debugger data block, and the PRCB's
CurrentThread/IdleThread offsets from the block's own offset table.
"""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.errors import MemoryNotPresent
from corpus import corpus_file, dump

TYPED = ["rizin-triage_x64.dmp", "ojusha-100623-4953-01.dmp"]


def _session(name):
    d = bugcheck.open(dump(name))
    return Session(
        d,
        sympath=str(corpus_file("symstore")),
        offline=True,
        symbols_dir=str(corpus_file("symbols", "isf")),
    )


@pytest.fixture(scope="module", params=TYPED)
def s(request):
    return _session(request.param)


def _u64(d, va):
    return int.from_bytes(d.read_virtual(va, 8), "little")


def _raw_processors(d):
    """(prcb, current, idle) per processor from KiProcessorBlock and KDDEBUGGER_DATA64 offsets."""
    kd = d.kd_debugger_data
    out = []
    for i in range(d.header.number_processors):
        prcb = _u64(d, kd["KiProcessorBlock"] + 8 * i)
        try:
            cur = _u64(d, prcb + kd["OffsetPrcbCurrentThread"])
        except MemoryNotPresent:
            cur = None
        try:
            idle = _u64(d, prcb + kd["OffsetPrcbIdleThread"])
        except MemoryNotPresent:
            idle = None
        out.append((prcb, cur, idle))
    return out


def test_running_lists_every_processor_with_its_current_thread(s):
    (res,) = s.run("!running -i")
    assert res.schema == "bugcheck.running/1"
    raw = _raw_processors(s.dump)
    rows = res.data["rows"]
    assert len(rows) == s.dump.header.number_processors
    for row, (prcb, cur, idle) in zip(rows, raw, strict=True):
        assert (row["prcb"], row["current"], row["idle"]) == (prcb, cur, idle)
    assert res.data["system_mask"] == (1 << len(raw)) - 1
    lines = res.text.splitlines()
    assert lines[1] == f"System Processors:  ({(1 << len(raw)) - 1:016x})"
    assert lines[4] == "       Prcbs             Current         (pri) Next            (pri) Idle"
    crash = s.dump.crash_processor or 0
    prcb, cur, idle = raw[crash]
    row_line = next(ln for ln in lines if ln.startswith(f"{crash:3d}    "))
    assert row_line.startswith(f"{crash:3d}    {prcb:016x}  {cur:016x} (")
    assert row_line.endswith(f"{idle:016x}  ................")


def test_running_without_i_hides_idle_processors(s):
    (res,) = s.run("!running")
    crash = s.dump.crash_processor or 0
    shown = [r["index"] for r in res.data["rows"]]
    assert crash in shown
    for r in res.data["rows"]:
        assert r["current"] != r["idle"]


def test_rizin_has_sixteen_processors():
    s = _session("rizin-triage_x64.dmp")
    (res,) = s.run("!running -i")
    assert len(res.data["rows"]) == 16
    assert res.data["rows"][0]["current"] == s.dump.triage.thread_address


def test_irql_and_prcb(s):
    crash = s.dump.crash_processor or 0
    prcb = _raw_processors(s.dump)[crash][0]
    (irql,) = s.run("!irql")
    assert irql.schema == "bugcheck.irql/1"
    assert irql.data["processor"] == crash and 0 <= irql.data["irql"] <= 15
    assert irql.text.startswith(f"Debugger saved IRQL for processor {crash:#x} -- {irql.data['irql']} (")
    (res,) = s.run("!prcb")
    lines = res.text.splitlines()
    assert lines[0] == f"PRCB for Processor {crash} at {prcb:016x}:"
    assert lines[1] == f"Current IRQL -- {irql.data['irql']}"
    assert lines[2].startswith(f"Threads--  Current {s.dump.triage.thread_address:016x} Next ")
    assert lines[3].startswith(f"Processor Index {crash} Number (0, {crash}) GroupSetMember ")
    assert res.data["prcb"] == prcb


def test_pcr_locates_the_pcr_around_the_prcb(s):
    crash = s.dump.crash_processor or 0
    prcb = _raw_processors(s.dump)[crash][0]
    (res,) = s.run("!pcr")
    # x64 Windows 10: the PRCB is embedded at _KPCR+0x180 (KDDEBUGGER_DATA64.OffsetPcrContainedPrcb)
    pcr = prcb - s.dump.kd_debugger_data["OffsetPcrContainedPrcb"]
    assert res.text.splitlines()[0] == f"KPCR for Processor {crash} at {pcr:016x}:"
    assert f"\t               Prcb: {prcb:016x}" in res.text.splitlines()
    assert res.data["threads"]["CurrentThread"] == s.dump.triage.thread_address


def test_bad_processor_number(s):
    (res,) = s.run("!prcb 99")
    assert res.text == "Cannot get PRCB address"
    (res,) = s.run("!irql 99")
    assert res.text == "Cannot get PRCB address"


@pytest.mark.parametrize(
    "cmd", ["!running", "!running -t", "!irql", "!pcr", "!prcb", "!thread", "!process 0 0"]
)
def test_without_kernel_types_each_command_says_so(cmd):
    """No kernel symbols for proxyrule: each command works from the dump's own KDDEBUGGER_DATA64
    offsets where it can, and says plainly what it cannot do."""
    s = _session("proxyrule-011620-8250-01.dmp")
    s.raise_errors = True
    (res,) = s.run(cmd)
    assert "internal error" not in res.text and "Traceback" not in res.text
    assert res.text.startswith("NOTE: the kernel's own symbols were not found")
    assert "KDDEBUGGER_DATA64" in res.text.splitlines()[0]
    if cmd == "!irql":  # the debugger data block has no offset for the saved IRQL
        assert "DebuggerSavedIRQL is not in the dump's debugger data block" in res.text
    if cmd == "!thread":
        # the crash thread: the triage header's saved thread address
        d = s.dump
        assert f"THREAD {d.triage.thread_address:x}" in res.text and "Cid ????.????" in res.text
