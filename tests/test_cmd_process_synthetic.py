"""!process and !thread over hand-built kernel memory and types (no corpus needed).

Three processes on an active process list, with threads, laid out by member
offsets of hand-written types; the text must match kd's layout exactly, and a
list that loops must stop with a warning.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest

from bugcheck.commands.session import Session
from bugcheck.kernel.model import Kernel
from bugcheck.kernel.typed import Types
from bugcheck.memory.base import AddressSpace
from bugcheck.symbols.types import Kind, Member, Type

U1 = Type(Kind.BASE, "UChar", 1)
U4 = Type(Kind.BASE, "Uint4B", 4)
U8 = Type(Kind.BASE, "Uint8B", 8)
PV = Type(Kind.POINTER, "Ptr64", 8, target=None)
LE = Type(Kind.STRUCT, "_LIST_ENTRY", 16)
LE.members = [Member("Flink", 0, PV), Member("Blink", 8, PV)]
HDR = Type(Kind.STRUCT, "_DISPATCHER_HEADER", 0x18, members=[Member("Type", 0, U1)])
NAME = Type(Kind.ARRAY, "", 15, target=U1, count=15)
KPROCESS = Type(
    Kind.STRUCT,
    "_KPROCESS",
    0x40,
    members=[
        Member("Header", 0, HDR),
        Member("DirectoryTableBase", 0x28, U8),
        Member("BasePriority", 0x30, U1),
    ],
)
EPROCESS = Type(
    Kind.STRUCT,
    "_EPROCESS",
    0x100,
    members=[
        Member("Pcb", 0, KPROCESS),
        Member("UniqueProcessId", 0x40, PV),
        Member("ActiveProcessLinks", 0x48, LE),
        Member("InheritedFromUniqueProcessId", 0x58, PV),
        Member("Peb", 0x60, PV),
        Member("ObjectTable", 0x68, PV),
        Member("Session", 0x70, PV),
        Member("ImageFileName", 0x78, NAME),
        Member("ThreadListHead", 0x90, LE),
    ],
)
CID = Type(
    Kind.STRUCT, "_CLIENT_ID", 16, members=[Member("UniqueProcess", 0, PV), Member("UniqueThread", 8, PV)]
)
KTHREAD = Type(
    Kind.STRUCT,
    "_KTHREAD",
    0x80,
    members=[
        Member("Header", 0, HDR),
        Member("Teb", 0x18, PV),
        Member("Process", 0x20, PV),
        Member("State", 0x28, U1),
        Member("Priority", 0x29, U1),
        Member("BasePriority", 0x2A, U1),
        Member("Win32Thread", 0x30, PV),
    ],
)
ETHREAD = Type(
    Kind.STRUCT,
    "_ETHREAD",
    0xC0,
    members=[
        Member("Tcb", 0, KTHREAD),
        Member("Cid", 0x80, CID),
        Member("ThreadListEntry", 0x90, LE),
    ],
)
HANDLE_TABLE = Type(Kind.STRUCT, "_HANDLE_TABLE", 0x10, members=[Member("HandleCount", 8, U4)])
SESSION = Type(Kind.STRUCT, "_MM_SESSION_SPACE", 0x10, members=[Member("SessionId", 8, U4)])

TYPES = {t.name: t for t in (LE, HDR, KPROCESS, EPROCESS, CID, KTHREAD, ETHREAD, HANDLE_TABLE, SESSION)}

HEAD = 0xFFFFF80462A1E200
PROCS = [0xFFFF918952E6A040, 0xFFFF9189527E9080, 0xFFFF918953C01080]
THREADS = [0xFFFF91895309D080, 0xFFFF91895309E080]


class _Source:
    def find_type(self, name):
        return TYPES.get(name)


class SparseMem(AddressSpace):
    """Byte regions at arbitrary (kernel) addresses; everything else is absent."""

    def __init__(self):
        self.regions: dict[int, bytearray] = {}

    def region(self, base: int, size: int) -> None:
        self.regions[base] = bytearray(size)

    def put(self, address: int, fmt: str, *values) -> None:
        for base, buf in self.regions.items():
            if base <= address < base + len(buf):
                struct.pack_into(fmt, buf, address - base, *values)
                return
        raise AssertionError(f"no region at {address:#x}")

    def read_chunks(self, address, size):
        for base, buf in self.regions.items():
            if base <= address < base + len(buf):
                n = min(size, base + len(buf) - address)
                yield address, bytes(buf[address - base : address - base + n]), n
                if n < size:
                    yield from self.read_chunks(address + n, size - n)
                return
        yield address, None, size


def _link(mem, head, entries, link_off):
    chain = [head] + [e + link_off for e in entries] + [head]
    for a, b in zip(chain, chain[1:], strict=False):
        mem.put(a, "<Q", b)


def _build(loop: bool = False):
    mem = SparseMem()
    mem.region(HEAD, 0x10)
    facts = [
        # pid, parent, peb, dirbase, table, handles, session, name
        (4, 0, 0, 0x1AD000, 0xFFFFD80245E04A80, 2819, None, b"System"),
        (0x1E90, 0x15E8, 0xBB6F2AC000, 0x1D822D000, 0xFFFFD80249EB8040, 817, 2, b"notepad.exe"),
        (0x264, 0x24C, 0x7F1234000, 0x12A54E002, 0xFFFFD8024A000000, 73, 0, b"csrss.exe"),
    ]
    for addr, (pid, ppid, peb, dirbase, table, handles, sid, name) in zip(PROCS, facts, strict=True):
        mem.region(addr, EPROCESS.size)
        mem.put(addr, "<B", 3)
        mem.put(addr + 0x28, "<Q", dirbase)
        mem.put(addr + 0x30, "<B", 8)
        mem.put(addr + 0x40, "<Q", pid)
        mem.put(addr + 0x58, "<Q", ppid)
        mem.put(addr + 0x60, "<Q", peb)
        mem.put(addr + 0x68, "<Q", table)
        mem.put(addr + 0x78, "15s", name)
        mem.region(table, HANDLE_TABLE.size)
        mem.put(table + 8, "<I", handles)
        if sid is not None:
            sess = addr + 0x1000_0000
            mem.region(sess, SESSION.size)
            mem.put(sess + 8, "<I", sid)
            mem.put(addr + 0x70, "<Q", sess)
        _link(mem, addr + 0x90, [], 0x90)
    entries = list(PROCS)
    if loop:
        # the last process links back to the second, never to the head
        chain = [HEAD] + [e + 0x48 for e in entries]
        for a, b in zip(chain, chain[1:], strict=False):
            mem.put(a, "<Q", b)
        mem.put(entries[-1] + 0x48, "<Q", entries[1] + 0x48)
    else:
        _link(mem, HEAD, entries, 0x48)
    # notepad has two threads, one waiting in user mode, one ready
    np = PROCS[1]
    for i, t in enumerate(THREADS):
        mem.region(t, ETHREAD.size)
        mem.put(t, "<B", 6)
        mem.put(t + 0x18, "<Q", 0xBB6F2AD000 + i * 0x2000)
        mem.put(t + 0x20, "<Q", np)
        mem.put(t + 0x28, "<B", 1)
        mem.put(t + 0x29, "<B", 10)
        mem.put(t + 0x2A, "<B", 8)
        mem.put(t + 0x80, "<QQ", 0x1E90, 0x1E94 + 4 * i)
    _link(mem, np + 0x90, THREADS, 0x90)
    dump = SimpleNamespace(
        virtual=mem,
        pointer_size=8,
        machine="x64",
        header=SimpleNamespace(number_processors=1, ps_active_process_head=HEAD, system_time=0),
        crash_processor=0,
        contexts=[],
        triage=None,
        path="synthetic",
        read_virtual=lambda a, n: mem.read(a, n),
    )
    session = Session(dump)
    session.kernel = Kernel(dump, Types(_Source(), 8), lambda name: None)
    return session


EXPECTED_LIST = """\
**** NT ACTIVE PROCESS DUMP ****
PROCESS ffff918952e6a040
    SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: 0000
    DirBase: 001ad000  ObjectTable: ffffd80245e04a80  HandleCount: 2819.
    Image: System

PROCESS ffff9189527e9080
    SessionId: 2  Cid: 1e90    Peb: bb6f2ac000  ParentCid: 15e8
    DirBase: 1d822d000  ObjectTable: ffffd80249eb8040  HandleCount: 817.
    Image: notepad.exe

PROCESS ffff918953c01080
    SessionId: 0  Cid: 0264    Peb: 7f1234000  ParentCid: 024c
    DirBase: 12a54e002  ObjectTable: ffffd8024a000000  HandleCount:  73.
    Image: csrss.exe
"""


def test_process_list_text_is_kd_layout():
    s = _build()
    (res,) = s.run("!process 0 0")
    assert res.schema == "bugcheck.processes/1"
    assert res.text == EXPECTED_LIST
    assert [p["pid"] for p in res.data["processes"]] == [4, 0x1E90, 0x264]
    assert res.data["warning"] is None


def test_process_list_filtered_by_image_name():
    s = _build()
    (res,) = s.run("!process 0 0 NOTEPAD.EXE")
    assert res.text.splitlines()[1] == "PROCESS ffff9189527e9080"
    assert len(res.data["processes"]) == 1


def test_looping_process_list_stops_with_a_warning():
    s = _build(loop=True)
    (res,) = s.run("!process 0 0")
    assert [p["address"] for p in res.data["processes"]] == PROCS
    assert res.data["warning"] and "loops" in res.data["warning"]
    assert res.text.splitlines()[-1].startswith("WARNING: ")


def test_process_by_pid_and_thread_list():
    s = _build()
    (res,) = s.run("!process 1e90 4")
    lines = res.text.splitlines()
    assert lines[0] == "Searching for Process with Cid == 1e90"
    assert lines[1] == "PROCESS ffff9189527e9080"
    threads = [ln for ln in lines if ln.startswith("        THREAD ")]
    assert threads == [
        "        THREAD ffff91895309d080  Cid 1e90.1e94  Teb: 000000bb6f2ad000 "
        "Win32Thread: 0000000000000000 READY",
        "        THREAD ffff91895309e080  Cid 1e90.1e98  Teb: 000000bb6f2af000 "
        "Win32Thread: 0000000000000000 READY",
    ]


def test_process_by_address_reads_the_eprocess():
    s = _build()
    (res,) = s.run(f"!process {PROCS[2]:x} 0")
    assert res.data["process"]["image"] == "csrss.exe"
    assert "Searching" not in res.text


@pytest.mark.parametrize("cmd", ["!thread ffff91895309e080"])
def test_thread_block(cmd):
    s = _build()
    (res,) = s.run(cmd)
    lines = res.text.splitlines()
    assert lines[0].startswith("THREAD ffff91895309e080  Cid 1e90.1e98  Teb: 000000bb6f2af000 ")
    assert "Owning Process            ffff9189527e9080       Image:         notepad.exe" in lines
    assert "Attached Process          N/A            Image:         N/A" in lines
    assert res.data["priority"] == 10 and res.data["base_priority"] == 8


def test_not_a_thread_is_refused():
    s = _build()
    (res,) = s.run(f"!thread {PROCS[0]:x}")
    assert res.schema == "bugcheck.error/1"
    assert "not a thread" in res.text
