"""!running, !irql, !pcr, !prcb over two hand-built processors (no corpus needed)."""

from __future__ import annotations

from types import SimpleNamespace

from bugcheck.commands.session import Session
from bugcheck.kernel.model import Kernel
from bugcheck.kernel.typed import Types
from bugcheck.symbols.types import Kind, Member, Type
from test_cmd_process_synthetic import HDR, PV, U1, U4, U8, SparseMem

U2 = Type(Kind.BASE, "Uint2B", 2)
SLE = Type(Kind.STRUCT, "_SINGLE_LIST_ENTRY", 8, members=[Member("Next", 0, PV)])
LOCKQ = Type(Kind.STRUCT, "_KSPIN_LOCK_QUEUE", 16, members=[Member("Next", 0, PV), Member("Lock", 8, PV)])
DPC_LIST = Type(
    Kind.STRUCT, "_KDPC_LIST", 16, members=[Member("ListHead", 0, SLE), Member("LastEntry", 8, PV)]
)
DPC_DATA = Type(Kind.STRUCT, "_KDPC_DATA", 0x28, members=[Member("DpcList", 0, DPC_LIST)])
KDPC = Type(
    Kind.STRUCT, "_KDPC", 0x40, members=[Member("DpcListEntry", 8, SLE), Member("DeferredRoutine", 0x18, PV)]
)
PRCB = Type(
    Kind.STRUCT,
    "_KPRCB",
    0x200,
    members=[
        Member("CurrentThread", 0x8, PV),
        Member("NextThread", 0x10, PV),
        Member("IdleThread", 0x18, PV),
        Member("Number", 0x24, U4),
        Member("DebuggerSavedIRQL", 0x30, U1),
        Member("GroupSetMember", 0x38, U8),
        Member("Group", 0x40, U1),
        Member("GroupIndex", 0x41, U1),
        Member("InterruptCount", 0x44, U4),
        Member("KernelTime", 0x48, U4),
        Member("UserTime", 0x4C, U4),
        Member("DpcTime", 0x50, U4),
        Member("InterruptTime", 0x54, U4),
        Member("LockQueue", 0x60, Type(Kind.ARRAY, "", 17 * 16, target=LOCKQ, count=17)),
        Member("DpcData", 0x180, Type(Kind.ARRAY, "", 0x50, target=DPC_DATA, count=2)),
    ],
)
TIB = Type(
    Kind.STRUCT,
    "_NT_TIB",
    0x38,
    members=[
        Member(n, i * 8, PV)
        for i, n in enumerate(
            [
                "ExceptionList",
                "StackBase",
                "StackLimit",
                "SubSystemTib",
                "Version",
                "ArbitraryUserPointer",
                "Self",
            ]
        )
    ],
)
PCR = Type(
    Kind.STRUCT,
    "_KPCR",
    0x180 + PRCB.size,
    members=[
        Member("NtTib", 0, TIB),
        Member("Irql", 0x50, U1),
        Member("MajorVersion", 0x60, U2),
        Member("MinorVersion", 0x62, U2),
        Member("Prcb", 0x180, PRCB),
    ],
)
KTHREAD = Type(
    Kind.STRUCT, "_KTHREAD", 0x40, members=[Member("Header", 0, HDR), Member("Priority", 0x20, U1)]
)
ETHREAD = Type(Kind.STRUCT, "_ETHREAD", 0x40, members=[Member("Tcb", 0, KTHREAD)])
AFF = Type(Kind.STRUCT, "_KAFFINITY_EX", 0x10, members=[Member("Count", 0, U2), Member("Bitmap", 8, U8)])
TYPES = {t.name: t for t in (PRCB, PCR, KTHREAD, ETHREAD, AFF, KDPC, DPC_DATA, DPC_LIST, SLE, LOCKQ, TIB)}

PCRS = [0xFFFFF80526AD6000, 0xFFFFAA80EFED1000]
CUR0, NEXT0, IDLE0 = 0xFFFFDA0273EEA040, 0xFFFFDA02746490C0, 0xFFFFF80599BD15C0
IDLE1 = 0xFFFFAA80EFEDC340
BLOCK, ACTIVE, IDLE_SUMMARY = 0xFFFFF80599E00000, 0xFFFFF80599E01000, 0xFFFFF80599E02000
DPC, ROUTINE = 0xFFFFF80599E03000, 0xFFFFF80599123450


def _session(with_summaries: bool = True):
    mem = SparseMem()
    mem.region(BLOCK, 16)
    symbols = {"KiProcessorBlock": BLOCK}
    for i, pcr in enumerate(PCRS):
        prcb = pcr + 0x180
        mem.region(pcr, PCR.size)
        mem.put(BLOCK + 8 * i, "<Q", prcb)
        mem.put(pcr, "<QQQQQQQ", 0xFFFFF8059B297FB0 + i, 0xFFFFF8059B296000, 0, pcr, prcb, 0, 0)
        mem.put(pcr + 0x60, "<HH", 1, 1)
        mem.put(prcb + 0x24, "<I", i)
        mem.put(prcb + 0x40, "<BB", 0, i)
        mem.put(prcb + 0x38, "<Q", 1 << i)
        mem.put(prcb + 0x44, "<IIIII", 0x174C7, 0x574, 0x72, 0x12, 0x12)
    p0, p1 = PCRS[0] + 0x180, PCRS[1] + 0x180
    mem.put(p0 + 0x8, "<QQQ", CUR0, NEXT0, IDLE0)
    mem.put(p1 + 0x8, "<QQQ", IDLE1, 0, IDLE1)
    mem.put(p0 + 0x30, "<B", 2)
    mem.put(p1 + 0x30, "<B", 15)
    mem.put(p0 + 0x60 + 16 + 8, "<Q", 0xFFFFF80599E05002)  # LockQueue[1] owned by processor 0
    mem.region(DPC, KDPC.size)
    mem.put(p0 + 0x180, "<Q", DPC + 8)
    mem.put(DPC + 0x18, "<Q", ROUTINE)
    for t, pri in ((CUR0, 8), (NEXT0, 14), (IDLE1, 0)):
        mem.region(t, ETHREAD.size)
        mem.put(t, "<B", 6)
        mem.put(t + 0x20, "<B", pri)
    if with_summaries:
        mem.region(ACTIVE, 16)
        mem.put(ACTIVE + 8, "<Q", 3)
        mem.region(IDLE_SUMMARY, 16)
        mem.put(IDLE_SUMMARY + 8, "<Q", 2)
        symbols |= {"KeActiveProcessors": ACTIVE, "KiIdleSummary": IDLE_SUMMARY}

    class Src:
        def find_type(self, name):
            return TYPES.get(name)

    dump = SimpleNamespace(
        virtual=mem,
        pointer_size=8,
        machine="x64",
        header=SimpleNamespace(number_processors=2, ps_active_process_head=0, system_time=0),
        crash_processor=0,
        contexts=[],
        triage=None,
        path="synthetic",
        read_virtual=lambda a, n: mem.read(a, n),
    )
    s = Session(dump)
    s.kernel = Kernel(dump, Types(Src(), 8), symbols.get)
    return s


RUNNING = """
System Processors:  (0000000000000003)
  Idle Processors:  (0000000000000002)

       Prcbs             Current         (pri) Next            (pri) Idle
  0    fffff80526ad6180  ffffda0273eea040 ( 8) ffffda02746490c0 (14) fffff80599bd15c0  .O..............
"""


def test_running_table():
    s = _session()
    (res,) = s.run("!running")
    assert res.text == RUNNING
    assert res.data["mask_source"]["idle"] == "nt!KiIdleSummary"


def test_running_i_adds_the_idle_processor_without_a_next_thread():
    s = _session()
    (res,) = s.run("!running -i")
    assert res.text.splitlines()[-1] == (
        "  1    ffffaa80efed1180  ffffaa80efedc340 ( 0)                       ffffaa80efedc340  ................"
    )


def test_running_derives_the_masks_without_the_kernel_globals():
    s = _session(with_summaries=False)
    (res,) = s.run("!running")
    assert res.data["system_mask"] == 3 and res.data["idle_mask"] == 2
    assert res.data["mask_source"]["system"] == "processors with a PRCB"


def test_irql_names():
    s = _session()
    assert s.run("!irql")[0].text == "Debugger saved IRQL for processor 0x0 -- 2 (DISPATCH_LEVEL)"
    assert s.run("!irql 1")[0].text == "Debugger saved IRQL for processor 0x1 -- 15 (HIGH_LEVEL)"


def test_prcb_summary():
    s = _session()
    (res,) = s.run("!prcb 1")
    assert res.text == (
        "PRCB for Processor 1 at ffffaa80efed1180:\n"
        "Current IRQL -- 15\n"
        "Threads--  Current ffffaa80efedc340 Next 0000000000000000 Idle ffffaa80efedc340\n"
        "Processor Index 1 Number (0, 1) GroupSetMember 2\n"
        "Interrupt Count -- 000174c7\n"
        "Times -- Dpc    00000012 Interrupt 00000012 \n"
        "         Kernel 00000574 User      00000072 "
    )


def test_pcr_summary_with_a_queued_dpc():
    s = _session()
    (res,) = s.run("!pcr")
    lines = res.text.splitlines()
    assert lines[0] == "KPCR for Processor 0 at fffff80526ad6000:"
    assert lines[1] == "    Major 1 Minor 1"
    assert lines[2] == "\tNtTib.ExceptionList: fffff8059b297fb0"
    assert "\t               Prcb: fffff80526ad6180" in lines
    assert "\t      CurrentThread: ffffda0273eea040" in lines
    assert "\t                IDT: 0000000000000000" in lines
    assert lines[-1] == f"\t          DpcQueue:  0x{DPC:016x} 0x{ROUTINE:016x}"
    assert res.data["dpc_queue"] == [{"dpc": DPC, "routine": ROUTINE, "name": None}]
