"""The Python API on rizin-triage_x64 with the corpus symbol store and ISF tables.

Values come from the dump header, the corpus answer keys (MANIFEST.md: crash
context rip=fffff8047bdf5a80 in nt!KeBugCheckEx, amdppm loaded at
fffff8048b580000) and cross-checks against the commands' own output.
"""

from __future__ import annotations

import pytest

from bugcheck import schemas
from bugcheck.api import CommandResult, Dump, Process, Thread, open_dump
from bugcheck.errors import MemoryNotPresent
from corpus import corpus_file, dump

CRASH_RIP = 0xFFFFF8047BDF5A80
AMDPPM_BASE = 0xFFFFF8048B580000


@pytest.fixture(scope="module")
def d():
    c = corpus_file("MANIFEST.md").parent
    with open_dump(
        dump("rizin-triage_x64.dmp"),
        sympath=str(c / "symstore"),
        symbols_dir=c / "symbols" / "isf",
        offline=True,
    ) as opened:
        yield opened


def test_api_file_facts_are_delegated(d):
    assert isinstance(d, Dump)
    assert d.machine == "x64" and d.pointer_size == 8
    assert d.kind.value == "triage"
    assert d.header.minor_version == 19041 and d.header.number_processors == 16
    assert d.bugcheck_code == 0x1000007E
    assert d.bugcheck_parameters[1] == 0xFFFFF8048B58334C
    assert d.crash_context.regs["rip"] == CRASH_RIP
    # an attribute Dump does not define itself comes from the DumpFile
    assert d.crash_processor == d.file.crash_processor
    assert d.triage is d.file.triage
    raw = d.read_virtual(CRASH_RIP, 5)
    assert raw == bytes.fromhex("48894c2408")  # mov qword ptr [rsp+8],rcx, as u @rip shows
    with pytest.raises(MemoryNotPresent):
        d.read_virtual(0x1000, 8)


def test_api_run_text_and_run_all(d):
    kv = d.run("kv")
    schemas.validate(kv, "bugcheck.stack/1")
    assert kv["frames"][0]["pc"] == CRASH_RIP
    assert kv["frames"][0]["symbol"] == "nt!KeBugCheckEx"
    results = d.run_all("vertarget; .bugcheck")
    assert [type(r) for r in results] == [CommandResult, CommandResult]
    assert [r.schema for r in results] == ["bugcheck.vertarget/1", "bugcheck.bugcheck/1"]
    assert results[1].data["code"] == 0x1000007E
    text = d.text("vertarget")
    assert "Windows 10 Kernel Version 19041 MP (16 procs) Free x64" in text
    # a failing command yields its error data, as --json prints it
    bad = d.run("nosuchcmd")
    assert "error" in bad
    schemas.validate(bad, "bugcheck.error/1")


def test_api_analyze(d):
    a = d.analyze()
    schemas.validate(a, "bugcheck.analysis/1")
    assert a["failure_bucket_id"] == "AV_amdppm!WriteIoMemRawEx"
    assert a["culprit"]["module"] == "amdppm"
    assert a["bugcheck"]["code"] == 0x1000007E
    assert a["stack"] and a["stack"][0]["symbol"].startswith("amdppm!WriteIoMemRawEx")
    assert a["fields"]["FAILURE_BUCKET_ID"] == a["failure_bucket_id"]


def test_api_modules(d):
    mods = d.modules()
    schemas.validate({"modules": mods}, "bugcheck.modules/1")
    by_name = {m["name"]: m for m in mods}
    assert by_name["amdppm"]["start"] == AMDPPM_BASE
    assert by_name["amdppm"]["image_name"] == "amdppm.sys"
    assert mods[0]["name"] == "nt" or "nt" in by_name
    assert len(mods) == len(d.run("lm")["modules"]) > 100


def test_api_processes_and_threads(d):
    procs = d.processes()
    assert procs and all(isinstance(p, Process) for p in procs)
    system = procs[0]
    assert system.pid == 4 and system.image == "System"
    info = system.to_dict()
    assert info["address"] == system.address and info["pid"] == 4
    # the same list !process 0 0 prints
    listed = d.run("!process 0 0")["processes"]
    assert [p["address"] for p in listed] == [p.address for p in procs]
    threads = system.threads()
    assert all(isinstance(t, Thread) for t in threads)
    assert d.process(4).address == system.address
    assert d.process(system.address).pid == 4


def test_api_current_thread_stack(d):
    t = d.current_thread()
    assert isinstance(t, Thread)
    shown = d.run("!thread")
    assert t.address == shown["address"] == d.triage.thread_address
    assert t.state == "RUNNING" and t.tid == shown["tid"]
    assert t.to_dict()["process"] == d.current_process().address
    frames = t.stack()
    walk = t.walk()
    schemas.validate(walk, "bugcheck.stack/1")
    assert frames == walk["frames"]
    # a running thread walks from its processor's context: the crash context here
    assert frames[0]["pc"] == CRASH_RIP and frames[0]["symbol"] == "nt!KeBugCheckEx"
    assert [f["pc"] for f in frames] == [f["pc"] for f in d.stack()]
    assert len(frames) > 10
    assert d.thread(t.address).address == t.address


def test_api_open_dump_is_lazy_about_symbols():
    with open_dump(dump("rizin-triage_x64.dmp")) as d:
        assert d.header.minor_version == 19041
        assert d._session is None  # nothing asked for symbols or commands yet
        d.run(".bugcheck")
        assert d._session is not None


def test_api_info_matches_the_commands(d):
    system = d.processes()[0]
    info = system.info()
    schemas.validate({"flags": 1, "process": info}, "bugcheck.process/1")
    assert info["address"] == system.address and info["image"] == "System"
    assert info == d.run(f"!process {system.address:x} 1")["process"]
    t = d.current_thread()
    tinfo = t.info()
    schemas.validate(tinfo, "bugcheck.thread/1")
    assert tinfo["address"] == t.address and tinfo["running_on"] == d.crash_processor
    # a process the dump lists but cannot read: None, and a note saying why
    broken = [p for p in d.processes() if p.pid is None]
    if broken:
        assert broken[0].info() is None
        assert any(f"{broken[0].address:#x}" in n for n in d.notes)


def test_api_unknown_attribute_is_an_attribute_error(d):
    with pytest.raises(AttributeError):
        d.no_such_attribute  # noqa: B018
