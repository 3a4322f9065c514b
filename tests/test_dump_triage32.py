"""32-bit (PAGEDUMP) triage dumps made by the project's dump writer.

No real 32-bit minidump is in the corpus; the writer lays one out from
TRIAGE_DUMP32's public description (header page, TRIAGE_DUMP32 on the second
page, 8-byte aligned parts) and these tests check every part is found at its
place.
"""

from __future__ import annotations

import struct

import pytest

import bugcheck
from bugcheck.dumpfile import DumpKind
from bugcheck.dumpfile.kddebugger import OFFSETS
from bugcheck.dumpfile.writer import DumpDescription, TriageDriver, TriageParts, write_triage_dump
from bugcheck.errors import MemoryNotPresent

KDBG_VA = 0x8054C2E0
KPB_VA = 0x8055B000  # KiProcessorBlock array (captured as a data block)
PRCB_VA = 0xFFDFF120
THREAD_VA = 0x81F5A020
PROCESS_VA = 0x81FC2830
STACK_VA = 0xF8954C00
SIZE_PRCB, SIZE_EPROCESS, SIZE_ETHREAD = 0xC50, 0x260, 0x258
APC_PROCESS = 0x44


def _sx(v: int) -> int:
    return v | 0xFFFFFFFF_00000000 if v & 0x80000000 else v


def build(path) -> None:
    desc = DumpDescription(
        machine="x86",
        build=2600,
        pfn_database=0x81000000,
        ps_loaded_module_list=0x8055A420,
        ps_active_process_head=0x8055B0D8,
        processor_count=2,
        bugcheck_code=0x8E,
        bugcheck_parameters=(0xC0000005, 0x805D2B1A, 0xF8954D00, 0),
        kd_debugger_data_block=KDBG_VA,
        system_up_time=12345 * 10_000_000,
        system_time=128930000000000000,
        suite_mask=0x100,
        contexts=[
            {"ebp": STACK_VA + 0x40, "eip": 0x805D2B1A, "cs": 8, "efl": 0x10246, "esp": STACK_VA, "ss": 0x10}
        ],
        # KiProcessorBlock: [0] bogus, [1] ours
        mappings={KPB_VA: struct.pack("<II", 0xFFDFF000 + 0x120 - 0x1000, PRCB_VA)},
    )
    kd = bytearray(0x340)
    struct.pack_into("<QQ4sI", kd, 0, 0, 0, b"KDBG", len(kd))
    struct.pack_into("<Q", kd, OFFSETS["KernBase"], _sx(0x804D7000))
    struct.pack_into("<Q", kd, OFFSETS["PsLoadedModuleList"], _sx(0x8055A420))
    struct.pack_into("<Q", kd, OFFSETS["KiProcessorBlock"], _sx(KPB_VA))
    struct.pack_into("<H", kd, OFFSETS["OffsetKThreadApcProcess"], APC_PROCESS)
    struct.pack_into("<H", kd, OFFSETS["SizeEProcess"], SIZE_EPROCESS)
    struct.pack_into("<H", kd, OFFSETS["SizePrcb"], SIZE_PRCB)
    struct.pack_into("<H", kd, OFFSETS["OffsetPrcbCurrentThread"], 4)
    struct.pack_into("<H", kd, OFFSETS["OffsetPrcbNumber"], 0x10)
    struct.pack_into("<H", kd, OFFSETS["SizeEThread"], SIZE_ETHREAD)
    prcb = bytearray(SIZE_PRCB)
    struct.pack_into("<I", prcb, 4, THREAD_VA)
    prcb[0x10] = 1  # processor 1
    thread = bytearray(SIZE_ETHREAD)
    struct.pack_into("<I", thread, APC_PROCESS, PROCESS_VA)
    parts = TriageParts(
        directory_table_base=0x39000,
        pae=True,
        exception=(0x80000003, 0x804E3592, ()),
        mm=(1, 0x34, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7),
        unloaded_drivers=[("dam.sys", 0xF8A00000, 0xF8A08000)],
        prcb=bytes(prcb),
        process=bytes(range(256)) * (SIZE_EPROCESS // 256) + bytes(SIZE_EPROCESS % 256),
        thread=bytes(thread),
        top_of_stack=STACK_VA,
        stack=bytes((i * 7) & 0xFF for i in range(0x400)),
        drivers=[
            TriageDriver("ntoskrnl.exe", 0x804D7000, 0x1F8580, timestamp=0x48025EAB, checksum=0xABCD),
            TriageDriver("myfault.sys", 0xF8A10000, 0x2000),
        ],
        broken_driver=1,
        debugger_data=bytes(kd),
        triage_options=0xFFFFFFFF,
    )
    write_triage_dump(desc, path, parts)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    path = tmp_path_factory.mktemp("t32") / "mini32.dmp"
    build(path)
    return bugcheck.open(path)


def test_identity(d):
    assert d.kind is DumpKind.TRIAGE and d.machine == "x86" and d.pointer_size == 4
    assert d.header.minor_version == 2600 and d.header.pae_enabled == 1
    assert d.bugcheck_code == 0x8E and d.bugcheck_parameters == (0xC0000005, 0x805D2B1A, 0xF8954D00, 0)
    assert d.crash_time.year == 2009
    assert d.warnings == []


def test_context(d):
    c = d.crash_context
    assert c.arch == "x86"
    assert (c.pc, c.sp, c.fp) == (0x805D2B1A, STACK_VA, STACK_VA + 0x40)
    assert c.regs["efl"] == 0x10246 and c.regs["cs"] == 8


def test_lists(d):
    t = d.triage
    assert [(x.name, x.base, x.size) for x in t.drivers] == [
        ("ntoskrnl.exe", 0x804D7000, 0x1F8580),
        ("myfault.sys", 0xF8A10000, 0x2000),
    ]
    assert t.drivers[0].timestamp == 0x48025EAB and t.drivers[0].checksum == 0xABCD
    assert t.broken_driver.name == "myfault.sys"
    assert [(u.name, u.start, u.end) for u in t.unloaded_drivers] == [("dam.sys", 0xF8A00000, 0xF8A08000)]
    assert t.mm["CommitLimitMaximum"] == 7
    assert t.shape == "classic"


def test_snapshots_at_their_addresses(d):
    t = d.triage
    assert (t.thread_address, t.process_address, t.prcb_address) == (THREAD_VA, PROCESS_VA, PRCB_VA)
    assert t.processor_number == 1 and d.crash_processor == 1
    assert d.read_virtual(PROCESS_VA + 5, 3) == bytes([5, 6, 7])
    assert d.read_virtual(STACK_VA + 7, 2) == bytes([49, 56])
    assert d.read_virtual(PRCB_VA + 4, 4) == struct.pack("<I", THREAD_VA)
    # sign-extended addresses name the same bytes
    assert d.read_virtual(0xFFFFFFFF_00000000 | PROCESS_VA, 1) == b"\0"
    assert d.read_virtual(KDBG_VA + 0x10, 4) == b"KDBG"
    assert d.kd_debugger_data["KiProcessorBlock"] == _sx(KPB_VA)
    with pytest.raises(MemoryNotPresent):
        d.read_virtual(STACK_VA + 0x400, 1)
