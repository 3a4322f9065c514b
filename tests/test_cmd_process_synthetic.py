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
        mem.region(table, 0x100)
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


# -- the walkthrough's notepad process and its first thread, field by field -------------------------
I8 = Type(Kind.BASE, "Int8B", 8, signed=True)
U2 = Type(Kind.BASE, "Uint2B", 2)
LI = Type(Kind.UNION, "_LARGE_INTEGER", 8, members=[Member("QuadPart", 0, I8)])
FAST_REF = Type(Kind.UNION, "_EX_FAST_REF", 8, members=[Member("Object", 0, PV), Member("Value", 0, U8)])
QUOTA = Type(Kind.ARRAY, "", 16, target=U8, count=2)
MMFLAGS = Type(Kind.STRUCT, "_MMSUPPORT_FLAGS", 4, members=[Member("MemoryPriority", 0, U1)])
MMINST = Type(
    Kind.STRUCT,
    "_MMSUPPORT_INSTANCE",
    0x40,
    members=[
        Member("PageFaultCount", 0x4, U4),
        Member("MinimumWorkingSetSize", 0x8, U8),
        Member("WorkingSetSize", 0x10, U8),
        Member("MaximumWorkingSetSize", 0x18, U8),
        Member("PeakWorkingSetSize", 0x20, U8),
        Member("Flags", 0x28, MMFLAGS),
    ],
)
MMFULL = Type(Kind.STRUCT, "_MMSUPPORT_FULL", 0x40, members=[Member("Instance", 0, MMINST)])
KPROCESS2 = Type(
    Kind.STRUCT,
    "_KPROCESS",
    0x48,
    members=[*KPROCESS.members, Member("UserTime", 0x38, U4), Member("KernelTime", 0x3C, U4)],
)
EPROCESS2 = Type(
    Kind.STRUCT,
    "_EPROCESS",
    0x200,
    members=[
        Member("Pcb", 0, KPROCESS2),
        *EPROCESS.members[1:],
        Member("Token", 0xA0, FAST_REF),
        Member("CreateTime", 0xA8, LI),
        Member("ProcessQuotaUsage", 0xB0, QUOTA),
        Member("VirtualSize", 0xC0, U8),
        Member("PeakVirtualSize", 0xC8, U8),
        Member("CloneRoot", 0xD0, PV),
        Member("NumberOfPrivatePages", 0xD8, U8),
        Member("NumberOfLockedPages", 0xE0, U8),
        Member("DeviceMap", 0xE8, PV),
        Member("CommitCharge", 0xF0, U8),
        Member("ModifiedPageCount", 0xF8, U4),
        Member("VadRoot", 0x100, PV),
        Member("VadCount", 0x108, U8),
        Member("Vm", 0x140, MMFULL),
    ],
)
APC = Type(Kind.STRUCT, "_KAPC_STATE", 0x30, members=[Member("Process", 0x20, PV)])
KTHREAD2 = Type(
    Kind.STRUCT,
    "_KTHREAD",
    0x100,
    members=[
        *KTHREAD.members,
        Member("InitialStack", 0x38, PV),
        Member("StackLimit", 0x40, PV),
        Member("StackBase", 0x48, PV),
        Member("KernelStack", 0x50, PV),
        Member("CallbackStack", 0x58, PV),
        Member("Alertable", 0x60, U4, bit_position=4, bit_length=1),
        Member("WaitBlockList", 0x68, PV),
        Member("WaitBlockCount", 0x70, U1),
        Member("WaitReason", 0x71, U1),
        Member("WaitMode", 0x72, U1),
        Member("PriorityDecrement", 0x73, U1),
        Member("IdealProcessor", 0x74, U4),
        Member("WaitTime", 0x78, U4),
        Member("ContextSwitches", 0x7C, U4),
        Member("UserTime", 0x80, U4),
        Member("KernelTime", 0x84, U4),
        Member("ApcState", 0x88, APC),
    ],
)
ETHREAD2 = Type(
    Kind.STRUCT,
    "_ETHREAD",
    0x140,
    members=[
        Member("Tcb", 0, KTHREAD2),
        Member("Cid", 0x100, CID),
        Member("ThreadListEntry", 0x110, LE),
        Member("Win32StartAddress", 0x120, PV),
        Member("ActiveImpersonationInfo", 0x128, U4, bit_position=3, bit_length=1),
        Member("ThreadIoPriority", 0x128, U4, bit_position=9, bit_length=3),
        Member("ThreadPagePriority", 0x128, U4, bit_position=12, bit_length=3),
        Member("IrpList", 0x130, LE),
    ],
)
IRP = Type(
    Kind.STRUCT,
    "_IRP",
    0x40,
    members=[
        Member("Type", 0, U2),
        Member("Size", 2, U2),
        Member("MdlAddress", 8, PV),
        Member("Flags", 0x10, U4),
        Member("ThreadListEntry", 0x20, LE),
    ],
)
WAIT_BLOCK = Type(Kind.STRUCT, "_KWAIT_BLOCK", 0x30, members=[Member("Object", 0x28, PV)])
KSD = Type(Kind.STRUCT, "_KUSER_SHARED_DATA", 0x330, members=[Member("TickCountQuad", 0x320, U8)])

NOTEPAD = 0xFFFF9189527E9080
NP_THREAD = 0xFFFF91895309D080
KE_MAX_INC = 0xFFFFF80462AFC418
SHARED = 0xFFFFF78000000000
EVENT, QUEUE = 0xFFFF918953118260, 0xFFFF918952D83D80
CRASH_TIME = 132583451020698648


def _walkthrough_session(with_increment: bool = True, irp: int | None = None):
    types = {
        t.name: t for t in (LE, HDR, KPROCESS2, EPROCESS2, CID, KTHREAD2, ETHREAD2, HANDLE_TABLE, SESSION)
    }
    types |= {t.name: t for t in (WAIT_BLOCK, KSD, MMINST, MMFULL, IRP)}
    mem = SparseMem()
    p, t = NOTEPAD, NP_THREAD
    mem.region(p, EPROCESS2.size)
    for off, fmt, *vals in [
        (0, "<B", 3),
        (0x28, "<Q", 0x1D822D000),
        (0x30, "<B", 8),
        (0x40, "<Q", 0x1E90),
        (0x58, "<Q", 0x15E8),
        (0x60, "<Q", 0xBB6F2AC000),
        (0x68, "<Q", 0xFFFFD80249EB8040),
        (0x78, "15s", b"notepad.exe"),
        (0xA0, "<Q", 0xFFFFD8024A19C775),  # EX_FAST_REF: low bits are a reference count
        (0xA8, "<q", CRASH_TIME - 473_780_000),
        (0xB0, "<QQ", 430688, 39648),
        (0xC0, "<QQ", 2101500 << 20, (2101501 << 20) + 5),
        (0xD8, "<QQ", 2175, 2),
        (0xE8, "<Q", 0xFFFFD80247FE8CF0),
        (0xF0, "<Q", 3452),
        (0xF8, "<I", 340),
        (0x100, "<QQ", 0xFFFF918953A30A20, 285),
        (0x144, "<I", 14745),
        (0x148, "<QQQQ", 50, 11788, 345, 11793),
    ]:
        mem.put(p + off, fmt, *vals)
    mem.region(0xFFFFD80249EB8040, HANDLE_TABLE.size)
    mem.put(0xFFFFD80249EB8040 + 8, "<I", 817)
    sess = 0xFFFFD0000000A000
    mem.region(sess, SESSION.size)
    mem.put(sess + 8, "<I", 2)
    mem.put(p + 0x70, "<Q", sess)
    mem.region(t, ETHREAD2.size)
    wb = 0xFFFF91895309D200
    mem.region(wb, 2 * WAIT_BLOCK.size)
    mem.put(wb + 0x28, "<Q", EVENT)
    mem.put(wb + 0x30 + 0x28, "<Q", QUEUE)
    for obj, kind in ((EVENT, 1), (QUEUE, 4)):
        mem.region(obj, 0x18)
        mem.put(obj, "<B", kind)
    for off, fmt, *vals in [
        (0, "<B", 6),
        (0x18, "<Q", 0xBB6F2AD000),
        (0x20, "<Q", p),
        (0x28, "<BBB", 5, 10, 8),
        (0x30, "<Q", 0xFFFF9189523D0FC0),
        (0x38, "<QQQQQ", 0xFFFFD48F777BFFD0, 0xFFFFD48F777BA000, 0xFFFFD48F777C0000, 0xFFFFD48F777BEAD0, 0),
        (0x60, "<I", 0),
        (0x68, "<QBBBB", wb, 2, 6, 1, 0),
        (0x74, "<IIIII", 2, 3492, 10798, 9, 21),
        (0x88 + 0x20, "<Q", p),
        (0x100, "<QQ", 0x1E90, 0x1E94),
        (0x120, "<Q", 0x00007FF7E2E85A30),
        (0x128, "<I", (2 << 9) | (5 << 12)),
    ]:
        mem.put(t + off, fmt, *vals)
    _link(mem, p + 0x90, [t], 0x110)
    if irp is None:
        _link(mem, t + 0x130, [], 0x20)
    else:
        mem.region(irp, IRP.size)
        mem.put(irp, "<HH", 6, 0x94)
        mem.put(irp + 0x10, "<I", 0x884)
        _link(mem, t + 0x130, [irp], 0x20)
    mem.region(SHARED, KSD.size)
    mem.put(SHARED + 0x320, "<Q", 3504)
    symbols = {}
    if with_increment:
        mem.region(KE_MAX_INC, 4)
        mem.put(KE_MAX_INC, "<I", 156250)
        symbols["KeMaximumIncrement"] = KE_MAX_INC

    class Src:
        def find_type(self, name):
            return types.get(name)

    dump = SimpleNamespace(
        virtual=mem,
        pointer_size=8,
        machine="x64",
        header=SimpleNamespace(number_processors=1, ps_active_process_head=0, system_time=CRASH_TIME),
        crash_processor=0,
        contexts=[],
        triage=None,
        path="synthetic",
        read_virtual=lambda a, n: mem.read(a, n),
    )
    session = Session(dump)
    session.kernel = Kernel(dump, Types(Src(), 8), symbols.get)
    return session


WALKTHROUGH_PROCESS = """\
PROCESS ffff9189527e9080
    SessionId: 2  Cid: 1e90    Peb: bb6f2ac000  ParentCid: 15e8
    DirBase: 1d822d000  ObjectTable: ffffd80249eb8040  HandleCount: 817.
    Image: notepad.exe
    VadRoot ffff918953a30a20 Vads 285 Clone 0 Private 2175. Modified 340. Locked 2.
    DeviceMap ffffd80247fe8cf0
    Token                             ffffd8024a19c770
    ElapsedTime                       00:00:47.378
    UserTime                          00:00:00.000
    KernelTime                        00:00:00.000
    QuotaPoolUsage[PagedPool]         430688
    QuotaPoolUsage[NonPagedPool]      39648
    Working Set Sizes (now,min,max)  (11788, 50, 345) (47152KB, 200KB, 1380KB)
    PeakWorkingSetSize                11793
    VirtualSize                       2101500 Mb
    PeakVirtualSize                   2101501 Mb
    PageFaultCount                    14745
    MemoryPriority                    BACKGROUND
    BasePriority                      8
    CommitCharge                      3452
"""

WALKTHROUGH_THREAD = """\
THREAD ffff91895309d080  Cid 1e90.1e94  Teb: 000000bb6f2ad000 Win32Thread: ffff9189523d0fc0 WAIT: (UserRequest) UserMode Non-Alertable
    ffff918953118260  SynchronizationEvent
    ffff918952d83d80  QueueObject
Not impersonating
DeviceMap                 ffffd80247fe8cf0
Owning Process            ffff9189527e9080       Image:         notepad.exe
Attached Process          N/A            Image:         N/A
Wait Start TickCount      3492           Ticks: 12 (0:00:00:00.187)
Context Switch Count      10798          IdealProcessor: 2<PAD>
UserTime                  00:00:00.140
KernelTime                00:00:00.328
Win32 Start Address 0x00007ff7e2e85a30
Stack Init ffffd48f777bffd0 Current ffffd48f777bead0
Base ffffd48f777c0000 Limit ffffd48f777ba000 Call 0000000000000000
Priority 10 BasePriority 8 PriorityDecrement 0 IoPriority 2 PagePriority 5""".replace(  # noqa: E501
    "<PAD>",
    " " * 13,  # kd pads IdealProcessor to 14 columns: trailing blanks
)


def test_process_details_match_the_walkthrough():
    s = _walkthrough_session()
    (res,) = s.run(f"!process {NOTEPAD:x} 1")
    assert res.text + "\n" == WALKTHROUGH_PROCESS


def test_thread_block_matches_the_walkthrough():
    s = _walkthrough_session()
    (res,) = s.run(f"!thread {NP_THREAD:x}")
    text = res.text
    assert text.startswith(WALKTHROUGH_THREAD)
    assert res.data["wait_objects"] == [
        {"object": EVENT, "kind": "SynchronizationEvent"},
        {"object": QUEUE, "kind": "QueueObject"},
    ]
    assert res.data["ticks"] == 12


def test_process_flags_7_nests_the_thread_block():
    s = _walkthrough_session()
    (res,) = s.run(f"!process {NOTEPAD:x} 7")
    lines = res.text.splitlines()
    i = lines.index("    CommitCharge                      3452")
    assert lines[i + 1] == ""
    nested = ["        " + ln if ln else ln for ln in WALKTHROUGH_THREAD.splitlines()]
    assert lines[i + 2 : i + 2 + len(nested)] == nested


def test_missing_increment_prints_kds_error_line():
    s = _walkthrough_session(with_increment=False)
    (res,) = s.run(f"!thread {NP_THREAD:x}")
    lines = res.text.splitlines()
    assert "ReadMemory error: Cannot get nt!KeMaximumIncrement value." in lines
    assert "Wait Start TickCount      3492           Ticks: 12" in lines


def test_irp_list_follows_the_wait_objects():
    irp = 0xFFFF918955D36B80
    s = _walkthrough_session(irp=irp)
    (res,) = s.run(f"!thread {NP_THREAD:x}")
    lines = res.text.splitlines()
    i = lines.index("IRP List:")
    assert lines[i - 1] == "    ffff918952d83d80  QueueObject"
    assert lines[i + 1] == "    ffff918955d36b80: (0006,0094) Flags: 00000884  Mdl: 00000000"
    assert lines[i + 2] == "Not impersonating"


def test_handle_count_sums_the_free_lists_on_windows_8_and_later():
    free_list = Type(Kind.STRUCT, "_HANDLE_TABLE_FREE_LIST", 0x40, members=[Member("HandleCount", 0x18, U4)])
    table_t = Type(
        Kind.STRUCT,
        "_HANDLE_TABLE",
        0x80,
        members=[Member("FreeLists", 0x40, Type(Kind.ARRAY, "", 0x40, target=free_list, count=1))],
    )
    s = _build()
    mem = s.kernel.memory
    count_sym = 0xFFFFF80462AFC500
    mem.region(count_sym, 4)
    mem.put(count_sym, "<I", 2)  # two free lists in use although the type declares one
    table = 0xFFFFD80249EB8040
    mem.put(table + 0x40 + 0x18, "<I", 800)
    mem.put(table + 0x80 + 0x18, "<I", 17)
    types = dict(TYPES, _HANDLE_TABLE=table_t, _HANDLE_TABLE_FREE_LIST=free_list)

    class Src:
        def find_type(self, name):
            return types.get(name)

    s.kernel = Kernel(s.dump, Types(Src(), 8), {"ExpFreeListCount": count_sym}.get)
    (res,) = s.run(f"!process {PROCS[1]:x} 0")
    assert res.data["process"]["handle_count"] == 817
    assert "HandleCount: 817." in res.text
    s.kernel = Kernel(s.dump, Types(Src(), 8), lambda name: None)
    (res,) = s.run(f"!process {PROCS[1]:x} 0")
    assert "HandleCount: <Data Not Accessible>" in res.text


def test_x86_process_list_keeps_the_header_on_one_line():
    pv = Type(Kind.POINTER, "Ptr32", 4, target=None)
    le = Type(Kind.STRUCT, "_LIST_ENTRY", 8, members=[Member("Flink", 0, pv), Member("Blink", 4, pv)])
    kproc = Type(
        Kind.STRUCT,
        "_KPROCESS",
        0x20,
        members=[Member("Header", 0, HDR), Member("DirectoryTableBase", 0x18, U4)],
    )
    eproc = Type(
        Kind.STRUCT,
        "_EPROCESS",
        0x80,
        members=[
            Member("Pcb", 0, kproc),
            Member("UniqueProcessId", 0x20, pv),
            Member("ActiveProcessLinks", 0x24, le),
            Member("InheritedFromUniqueProcessId", 0x2C, pv),
            Member("Peb", 0x30, pv),
            Member("ObjectTable", 0x34, pv),
            Member("ImageFileName", 0x40, NAME),
        ],
    )
    ethread = Type(Kind.STRUCT, "_ETHREAD", 0x40, members=[Member("Tcb", 0, HDR)])
    types = {"_EPROCESS": eproc, "_KPROCESS": kproc, "_LIST_ENTRY": le, "_ETHREAD": ethread}
    mem = SparseMem()
    head, proc, table = 0x8055A158, 0x8A55F7C0, 0x8B202CC0
    mem.region(head, 8)
    mem.region(proc, eproc.size)
    mem.put(proc, "<B", 3)
    mem.put(proc + 0x18, "<I", 0x1A8000)
    mem.put(proc + 0x20, "<I", 4)
    mem.put(proc + 0x34, "<I", table)
    mem.put(proc + 0x40, "15s", b"System")
    mem.put(head, "<I", proc + 0x24)
    mem.put(proc + 0x24, "<I", head)

    class Src:
        def find_type(self, name):
            return types.get(name)

    dump = SimpleNamespace(
        virtual=mem,
        pointer_size=4,
        machine="x86",
        header=SimpleNamespace(number_processors=1, ps_active_process_head=head, system_time=0),
        crash_processor=0,
        contexts=[],
        triage=None,
        path="synthetic",
        read_virtual=lambda a, n: mem.read(a, n),
    )
    s = Session(dump)
    s.kernel = Kernel(dump, Types(Src(), 4), lambda name: None)
    (res,) = s.run("!process 0 0")
    assert res.text.splitlines()[1:4] == [
        "PROCESS 8a55f7c0  SessionId: none  Cid: 0004    Peb: 00000000  ParentCid: 0000",
        "    DirBase: 001a8000  ObjectTable: 8b202cc0  HandleCount: <Data Not Accessible>",
        "    Image: System",
    ]
