"""Kernel commands on dumps whose kernel symbols are not found: the debugger data block's offsets.

Expected values are read straight from the file: the triage header's thread and
PRCB snapshots at the offsets the KDDEBUGGER_DATA64 block lists, without the
type model or the kernel view.
"""

from __future__ import annotations

import struct

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.kernel.kdtypes import (
    ORIGIN,
    KdDebuggerTypes,
    fallback_of,
    prcb_address_from_list_heads,
    types_from_dump,
)
from bugcheck.kernel.objects import THREAD_STATES
from corpus import corpus_file, dump

UNTYPED = ["proxyrule-011620-8250-01.dmp", "noamhuang-033124-5078-01.dmp", "noamhuang-040124-5515-01.dmp"]
NOTE = "NOTE: the kernel's own symbols were not found"


def _session(name):
    d = bugcheck.open(dump(name))
    return Session(
        d,
        sympath=str(corpus_file("symstore")),
        offline=True,
        symbols_dir=str(corpus_file("symbols", "isf")),
    )


def _raw(name: str) -> bytes:
    return dump(name).read_bytes()


def _snapshot_u(raw: bytes, base: int, off: int, size: int) -> int:
    return int.from_bytes(raw[base + off : base + off + size], "little")


@pytest.fixture(scope="module", params=UNTYPED)
def case(request):
    s = _session(request.param)
    return request.param, s, _raw(request.param)


def test_fallback_types_are_used_only_without_kernel_symbols(case):
    _name, s, _raw_bytes = case
    src = fallback_of(s.kernel)
    assert src is not None and src.origin == ORIGIN
    kt = src.find_type("_KTHREAD")
    kd = s.dump.kd_debugger_data
    assert kt.field_offset("Teb") == kd["OffsetKThreadTeb"]
    assert kt.field_offset("ApcState.Process") == kd["OffsetKThreadApcProcess"]
    assert (
        src.find_type("_EPROCESS").field_offset("Pcb.DirectoryTableBase")
        == kd["OffsetEprocessDirectoryTableBase"]
    )
    assert src.find_type("_ETHREAD").size == kd["SizeEThread"]


def test_thread_shows_crash_thread_from_raw_offsets(case):
    name, s, raw = case
    d = s.dump
    tri, kd = d.triage, d.kd_debugger_data
    base = tri.thread_offset
    assert base and tri.thread_address
    teb = _snapshot_u(raw, base, kd["OffsetKThreadTeb"], 8)
    init = _snapshot_u(raw, base, kd["OffsetKThreadInitialStack"], 8)
    cur = _snapshot_u(raw, base, kd["OffsetKThreadKernelStack"], 8)
    sbase = _snapshot_u(raw, base, kd["OffsetKThreadStackBase"], 8)
    limit = _snapshot_u(raw, base, kd["OffsetKThreadStackLimit"], 8)
    state = raw[base + kd["OffsetKThreadState"]]
    proc = _snapshot_u(raw, base, kd["OffsetKThreadApcProcess"], 8)
    assert limit < cur < init < sbase  # a kernel stack, so the offsets are the right ones

    (res,) = s.run("!thread")
    lines = res.text.splitlines()
    assert lines[0].startswith(NOTE) and "_KTHREAD" in lines[0]
    assert lines[1].startswith(f"THREAD {tri.thread_address:016x}  Cid ????.????  Teb: {teb:016x} ")
    assert f"Win32Thread: {'?' * 16} {THREAD_STATES[state]}" in lines[1]
    assert f"Stack Init {init:016x} Current {cur:016x}" in lines
    assert f"Base {sbase:016x} Limit {limit:016x} Call {'?' * 16}" in lines
    assert any(ln.startswith("Owning Process") and f"{proc:016x}" in ln and "<Unknown>" in ln for ln in lines)
    assert "Priority ? BasePriority ? PriorityDecrement ? IoPriority ? PagePriority ?" in lines
    assert res.data["teb"] == teb and res.data["kernel_types"] == ORIGIN
    assert res.data["pid"] is None and res.data["tid"] is None
    # the crash thread's stack is walked from the crash context
    assert "Child-SP          RetAddr               Call Site" in lines


def test_process_current_prints_known_fields_and_placeholders(case):
    _name, s, raw = case
    d = s.dump
    tri, kd = d.triage, d.kd_debugger_data
    base = tri.process_offset
    peb = _snapshot_u(raw, base, kd["OffsetEprocessPeb"], 8)
    parent = _snapshot_u(raw, base, kd["OffsetEprocessParentCID"], 8)
    dirbase = _snapshot_u(raw, base, kd["OffsetEprocessDirectoryTableBase"], 8)
    (res,) = s.run("!process -1 7")
    lines = res.text.splitlines()
    assert lines[0].startswith(NOTE) and "_EPROCESS" in lines[0]
    assert lines[1] == f"PROCESS {tri.process_address:016x}"
    assert lines[2] == f"    SessionId: ????  Cid: ????    Peb: {peb:08x}  ParentCid: {parent:04x}"
    assert lines[3].startswith(f"    DirBase: {dirbase:08x}  ObjectTable: {'?' * 16}  ")
    assert lines[3].endswith("HandleCount: <Data Not Accessible>")
    assert lines[4] == "    Image: <Unknown>"
    assert "ThreadListHead is not in the dump's debugger data block" in res.text


def test_prcb_and_irql_where_the_prcb_is_known():
    name = "noamhuang-033124-5078-01.dmp"
    s = _session(name)
    raw = _raw(name)
    tri, kd = s.dump.triage, s.dump.kd_debugger_data
    assert tri.prcb_address
    current = _snapshot_u(raw, tri.prcb_offset, kd["OffsetPrcbCurrentThread"], 8)
    idle = _snapshot_u(raw, tri.prcb_offset, kd["OffsetPrcbIdleThread"], 8)
    number = _snapshot_u(raw, tri.prcb_offset, kd["OffsetPrcbNumber"], 2)
    (res,) = s.run("!prcb")
    lines = res.text.splitlines()
    assert lines[0].startswith(NOTE) and "_KPRCB CurrentThread" in lines[0]
    assert lines[1] == f"PRCB for Processor {number} at {tri.prcb_address:016x}:"
    assert lines[2] == f"Threads--  Current {current:016x} Next {'?' * 16} Idle {idle:016x}"
    assert lines[3] == f"Number {number} SetMember ????????"
    (res,) = s.run("!irql")
    assert res.schema == "bugcheck.error/1"
    assert "DebuggerSavedIRQL is not in the dump's debugger data block" in res.text
    (res,) = s.run("!running")
    row = next(r for r in res.data["rows"] if r["prcb"] == tri.prcb_address)
    assert row["current"] == current and row["idle"] == idle
    assert row["locks"] == "?" * 16 and row["next_unknown"] is True


def test_prcb_address_recovered_on_a_classic_triage_dump():
    """proxyrule records no PRCB address; the reader recovers it from the copy's empty list heads,
    and the PRCB's CurrentThread then equals the triage header's saved thread (independent facts)."""
    s = _session("proxyrule-011620-8250-01.dmp")
    tri = s.dump.triage
    assert (
        tri.prcb_address
        and (tri.prcb_address - s.dump.kd_debugger_data["OffsetPcrContainedPrcb"]) & 0xFFF == 0
    )
    (res,) = s.run("!prcb")
    assert f"at {tri.prcb_address:x}" in res.text
    assert f"Current {tri.thread_address:x}" in res.text


def test_typed_dump_is_unchanged():
    s = _session("rizin-triage_x64.dmp")
    assert fallback_of(s.kernel) is None
    for cmd in ("!thread", "!process -1 7", "!prcb", "!running", "!pcr"):
        (res,) = s.run(cmd)
        assert NOTE not in res.text, cmd
        assert "kernel_types" not in str(res.data)[:2000], cmd
    (res,) = s.run("!thread")
    assert res.data["pid"] is not None and "Cid ????" not in res.text


# -- the type source on its own ----------------------------------------------------------------
def _kd(**over):
    kd = {
        "OffsetKThreadTeb": 0xF0,
        "OffsetKThreadKernelStack": 0x58,
        "OffsetKThreadState": 0x184,
        "OffsetKThreadBStore": 0,
        "OffsetKThreadApcProcess": 0xB8,
        "SizeEThread": 0x898,
        "SizeEProcess": 0xA40,
        "OffsetEprocessPeb": 0x550,
        "SizePrcb": 0x100,
        "OffsetPrcbCurrentThread": 0x8,
        "OffsetPrcbNumber": 0x24,
        "OffsetPrcbIdleThread": 0x200,  # outside SizePrcb: damaged, dropped
        "SizePcr": 0x8040,
        "OffsetPcrContainedPrcb": 0x180,
    }
    kd.update(over)
    return kd


def test_source_names_members_as_the_kernel_does():
    src = KdDebuggerTypes(_kd(), 8)
    eth = src.find_type("_ETHREAD")
    assert eth.field_offset("Tcb.Teb") == 0xF0
    assert eth.field_offset("Tcb.Header.Type") == 0
    assert eth.field_offset("Tcb.ApcState.Process") == 0xB8
    assert src.find_type("_KPRCB").member("IdleThread") is None
    assert src.find_type("_KPRCB").member("Number").resolved_type().name == "Uint2B"
    assert src.find_type("_KTHREAD").member("BStore") is None
    assert src.find_type("_KPCR").field_offset("Prcb") == 0x180
    assert src.find_type("_KTRAP_FRAME") is None
    assert "_EPROCESS" in src.type_names()
    assert src.known["_KTHREAD"] == ["KernelStack", "ApcState.Process", "Teb", "State"]
    note = src.note(("_KPRCB",))
    assert "_KPRCB CurrentThread, Number" in note


def test_source_on_x86_uses_x86_names_and_sizes():
    src = KdDebuggerTypes(_kd(OffsetPcrContainedPrcb=0x120), 4)
    assert src.find_type("_KPCR").field_offset("PrcbData") == 0x120
    assert src.find_type("_KPRCB").member("Number").resolved_type().size == 1
    assert src.find_type("_KTHREAD").member("Teb").resolved_type().size == 4


def test_no_block_no_source():
    class D:
        kd_debugger_data = None
        triage = None
        pointer_size = 8

    assert types_from_dump(D()) is None
    D.kd_debugger_data = {"OwnerTag": "KDBG", "Size": 0x80}
    assert types_from_dump(D()) is None


def test_hostile_offsets_are_bounded():
    big = struct.unpack("<I", b"\xff\xff\xff\x7f")[0]
    src = KdDebuggerTypes(_kd(OffsetKThreadTeb=big, SizeEThread=big, OffsetEprocessPeb=-4), 8)
    assert src.find_type("_KTHREAD").member("Teb") is None
    assert src.find_type("_ETHREAD").size == 0
    assert src.find_type("_EPROCESS").member("Peb") is None


# -- a PRCB copy's own address from its empty list heads ---------------------------------------
@pytest.mark.parametrize(
    "name", ["noamhuang-033124-5078-01.dmp", "rizin-triage_x64.dmp", "rizin-triage_arm64.dmp"]
)
def test_prcb_address_from_list_heads_matches_the_recorded_one(name):
    d = bugcheck.open(dump(name))
    raw = _raw(name)
    d = getattr(d, "dump", d)
    tri = d.triage
    copy = raw[tri.prcb_offset : tri.prcb_offset + tri.prcb_size]
    contained = d.kd_debugger_data["OffsetPcrContainedPrcb"]
    assert tri.prcb_address
    assert prcb_address_from_list_heads(copy, 8, contained) == tri.prcb_address


def test_prcb_address_from_list_heads_on_a_classic_triage_dump():
    name = "proxyrule-011620-8250-01.dmp"
    d = bugcheck.open(dump(name))
    d = getattr(d, "dump", d)
    tri = d.triage
    # the dump records no PRCB address (no KiProcessorBlock entry, no captured copy): the
    # reader falls back to the list-head vote, which gives a PCR-aligned address
    copy = _raw(name)[tri.prcb_offset : tri.prcb_offset + tri.prcb_size]
    addr = prcb_address_from_list_heads(copy, 8, d.kd_debugger_data["OffsetPcrContainedPrcb"])
    assert addr is not None and (addr - 0x180) % 0x1000 == 0
    assert tri.prcb_address == addr
    # the copy's CurrentThread is the crash thread the triage header names
    off = d.kd_debugger_data["OffsetPrcbCurrentThread"]
    assert int.from_bytes(copy[off : off + 8], "little") == tri.thread_address


def test_prcb_address_from_list_heads_needs_agreement():
    assert prcb_address_from_list_heads(b"", 8) is None
    assert prcb_address_from_list_heads(b"A" * 0x1000, 8) is None  # equal words, no common base
    base = 0xFFFF800000001180
    buf = bytearray(0x400)
    for i in range(0, 0x200, 0x10):  # 32 empty LIST_ENTRYs
        struct.pack_into("<QQ", buf, i, base + i, base + i)
    assert prcb_address_from_list_heads(bytes(buf), 8) == base
    assert prcb_address_from_list_heads(bytes(buf), 8, contained_offset=0x180) == base
    assert prcb_address_from_list_heads(bytes(buf), 8, contained_offset=0x100) is None
    assert prcb_address_from_list_heads(bytes(buf[:0x40]), 8) is None  # too few votes
