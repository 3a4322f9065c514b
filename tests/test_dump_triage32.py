"""32-bit (PAGEDUMP) triage dumps, laid out here from TRIAGE_DUMP32's public description.

No real 32-bit minidump is in the corpus; this builds one the way the kernel
does (header page, TRIAGE_DUMP32 on the second page, 8-byte aligned parts)
and checks every part is found at its place.
"""

from __future__ import annotations

import struct

import pytest

import bugcheck
from bugcheck.dumpfile import DumpKind
from bugcheck.dumpfile.kddebugger import OFFSETS
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


def _dump_string(s: str) -> bytes:
    return struct.pack("<I", len(s)) + s.encode("utf-16-le") + b"\0\0"


def build() -> bytes:
    out = bytearray(0x1000 + 0x68)
    out[0:0x1000] = b"PAGE" * 0x400
    out[0:8] = b"PAGEDUMP"
    struct.pack_into(
        "<II4I3I", out, 8, 0xF, 2600, 0x39000, 0x81000000, 0x8055A420, 0x8055B0D8, 0x14C, 2, 0x8E
    )
    struct.pack_into("<4I", out, 0x2C, 0xC0000005, 0x805D2B1A, 0xF8954D00, 0)
    out[0x5C] = 1  # PaeEnabled
    struct.pack_into("<I", out, 0x60, KDBG_VA)
    ctx = bytearray(0x2CC)
    struct.pack_into("<I", ctx, 0, 0x1003F)
    struct.pack_into("<3I", ctx, 0xB4, STACK_VA + 0x40, 0x805D2B1A, 8)  # ebp, eip, cs
    struct.pack_into("<3I", ctx, 0xC0, 0x10246, STACK_VA, 0x10)  # efl, esp, ss
    out[0x320 : 0x320 + len(ctx)] = ctx
    struct.pack_into("<5I", out, 0x7D0, 0x80000003, 0, 0, 0x804E3592, 0)
    struct.pack_into("<6I", out, 0xF88, 4, 0xCFF, 0, 1, 0x100, 0)
    struct.pack_into("<QQ", out, 0xFB8, 12345 * 10_000_000, 128930000000000000)

    def put(data: bytes) -> int:
        off = len(out)
        out.extend(data)
        out.extend(bytes(-len(out) % 8))
        return off

    mm = put(struct.pack("<13I", 1, 0x34, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7))
    unl = put(
        struct.pack("<I", 1)
        + struct.pack("<HHI", 14, 14, 0)
        + "dam.sys".encode("utf-16-le").ljust(24, b"\0")
        + struct.pack("<II", 0xF8A00000, 0xF8A08000)
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
    process = bytes(range(256)) * (SIZE_EPROCESS // 256) + bytes(SIZE_EPROCESS % 256)
    prcb_off, process_off, thread_off = put(bytes(prcb)), put(process), put(bytes(thread))
    stack = bytes((i * 7) & 0xFF for i in range(0x400))
    stack_off = put(stack)
    names = ["ntoskrnl.exe", "myfault.sys"]
    bases = [(0x804D7000, 0x1F8580), (0xF8A10000, 0x2000)]
    drv_off = put(bytes(0x4C * len(names)))
    pool_off = len(out)
    name_offs = [put(_dump_string(n)) for n in names]
    for i, ((base, size), noff) in enumerate(zip(bases, name_offs, strict=True)):
        e = drv_off + 0x4C * i
        struct.pack_into("<I", out, e, noff)
        struct.pack_into("<I", out, e + 4 + 0x18, base)
        struct.pack_into("<I", out, e + 4 + 0x20, size)
        struct.pack_into("<II", out, e + 4 + 0x40, 0xABCD, 0x48025EAB)
    kd_off = put(bytes(kd))
    kpb_data_off = put(struct.pack("<II", 0xFFDFF000 + 0x120 - 0x1000, PRCB_VA))  # [0] bogus, [1] ours
    blocks_off = put(struct.pack("<QII", KPB_VA, kpb_data_off, 8))
    valid_off = put(b"TRGDDump")
    tri = [
        0, len(out), valid_off, 0x320, 0x7D0, mm, unl, prcb_off, process_off, thread_off, stack_off,
        len(stack), drv_off, len(names), pool_off, kd_off - pool_off, drv_off + 0x4C, 0xFFFFFFFF,
        STACK_VA, 0, 0, 0, kd_off, len(kd), blocks_off, 1,
    ]  # fmt: skip
    struct.pack_into("<26I", out, 0x1000, *tri)
    return bytes(out)


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    path = tmp_path_factory.mktemp("t32") / "mini32.dmp"
    path.write_bytes(build())
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
