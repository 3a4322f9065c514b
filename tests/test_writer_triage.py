"""Triage dumps from the writer, read back by bugcheck's reader and CLI.

The corpus has 64-bit triage dumps but no 32-bit one, so the writer makes both
widths and the reader must find every part (header, context, lists, data
blocks) where the TRIAGE_DUMP header says it is.
"""

from __future__ import annotations

import struct
import subprocess
import sys

import pytest

import bugcheck
from bugcheck.dumpfile import DumpKind
from bugcheck.dumpfile.writer import DumpDescription, TriageDriver, TriageParts, write_triage_dump

BLOCK64 = 0xFFFFF800_12345000
BLOCK32 = 0x8055B000
DRIVERS64 = [
    TriageDriver("ntoskrnl.exe", 0xFFFFF800_10000000, 0x1046000, 0x5E3B1A2C, 0xA1B2C3),
    TriageDriver("hal.dll", 0xFFFFF800_11200000, 0x6000, 0x11111111, 0x22),
    TriageDriver("myfault.sys", 0xFFFFF800_20000000, 0x9000, 0x4A5BC606, 0x33),
]
DRIVERS32 = [
    TriageDriver("ntoskrnl.exe", 0x804D7000, 0x1F8580, 0x48025EAB, 0xABCD),
    TriageDriver("myfault.sys", 0xF8A10000, 0x2000, 0x4A5BC606, 0x1234),
]


def _parts(machine: str) -> TriageParts:
    wide = machine == "x64"
    return TriageParts(
        prcb=bytes(0x100),
        thread=bytes(0x80),
        process=bytes(0x80),
        top_of_stack=0xFFFFF800_30001000 if wide else 0xF8954C00,
        stack=bytes((i * 3) & 0xFF for i in range(0x200)),
        drivers=DRIVERS64 if wide else DRIVERS32,
        broken_driver=len(DRIVERS64 if wide else DRIVERS32) - 1,
        unloaded_drivers=[("dam.sys", 0xF8A00000, 0xF8A08000), ("averyveryverylongname.sys", 0x1000, 0x2000)],
        mm=tuple(range(1, 14)),
        exception=(0xC0000005, 0x1234, (1, 2)),
    )


def _desc(machine: str) -> DumpDescription:
    if machine == "x64":
        regs = {"rip": 0xFFFFF800_20001234, "rsp": 0xFFFFF800_30001000, "rbp": 0x77, "rax": 0xDEAD}
        return DumpDescription(
            machine="x64",
            build=19041,
            bugcheck_code=0xD1,
            bugcheck_parameters=(0x10, 2, 0, 0xFFFFF800_20001234),
            system_time=0x01D6_0000_0000_0000,
            contexts=[regs],
            mappings={BLOCK64: bytes(range(256)) * 2},
        )
    regs = {"eip": 0xF8A10234, "esp": 0xF8954C00, "ebp": 0xF8954C40, "eax": 0xDEAD}
    return DumpDescription(
        machine="x86",
        build=2600,
        bugcheck_code=0x8E,
        bugcheck_parameters=(0xC0000005, 0xF8A10234, 0xF8954D00, 0),
        system_time=128930000000000000,
        contexts=[regs],
        mappings={BLOCK32: bytes(range(256))},
    )


@pytest.fixture(scope="module", params=["x64", "x86"])
def written(request, tmp_path_factory):
    machine = request.param
    path = tmp_path_factory.mktemp("triage") / f"mini-{machine}.dmp"
    size = write_triage_dump(_desc(machine), path, _parts(machine))
    assert size == path.stat().st_size
    return machine, path


def test_header(written):
    machine, path = written
    d = bugcheck.open(path).file
    raw = path.read_bytes()
    wide = machine == "x64"
    assert raw[:8] == (b"PAGEDU64" if wide else b"PAGEDUMP")
    assert d.kind is DumpKind.TRIAGE and d.machine == machine and d.pointer_size == (8 if wide else 4)
    assert d.header.dump_type == 4
    assert d.header.mini_dump_fields == 0x9FF  # all but the data page and debugger data
    assert d.header.exception.code == 0xC0000005 and d.header.exception.parameters == (1, 2)
    desc = _desc(machine)
    assert d.bugcheck_code == desc.bugcheck_code and d.bugcheck_parameters == desc.bugcheck_parameters
    t = d.triage
    assert t.header_offset == (0x2000 if wide else 0x1000)
    assert t.valid and t.size_of_dump == len(raw)
    assert d.warnings == []


def test_context(written):
    machine, path = written
    c = bugcheck.open(path).file.crash_context
    if machine == "x64":
        assert (c.pc, c.sp, c.regs["rax"], c.regs["rbp"]) == (
            0xFFFFF800_20001234,
            0xFFFFF800_30001000,
            0xDEAD,
            0x77,
        )
    else:
        assert (c.pc, c.sp, c.fp, c.regs["eax"]) == (0xF8A10234, 0xF8954C00, 0xF8954C40, 0xDEAD)


def test_lists(written):
    machine, path = written
    t = bugcheck.open(path).file.triage
    want = DRIVERS64 if machine == "x64" else DRIVERS32
    assert [(x.name, x.base, x.size, x.timestamp, x.checksum) for x in t.drivers] == [
        (w.name, w.base, w.size, w.timestamp, w.checksum) for w in want
    ]
    assert t.broken_driver.name == "myfault.sys"
    # DUMP_UNLOADED_DRIVERS keeps 12 characters of the name
    assert [(u.name, u.start, u.end) for u in t.unloaded_drivers] == [
        ("dam.sys", 0xF8A00000, 0xF8A08000),
        ("averyveryver", 0x1000, 0x2000),
    ]
    assert t.mm["Version"] == 1 and t.mm["CommitLimitMaximum"] == 13


def test_memory(written):
    machine, path = written
    d = bugcheck.open(path).file
    block = BLOCK64 if machine == "x64" else BLOCK32
    assert d.read_virtual(block + 0x10, 4) == bytes([0x10, 0x11, 0x12, 0x13])
    top = _parts(machine).top_of_stack
    assert d.read_virtual(top + 5, 2) == bytes([15, 18])
    assert [(b.address, b.size) for b in d.triage.data_blocks] == [
        (block, 0x200 if machine == "x64" else 0x100)
    ]


def test_cli_banner_lm_db(written):
    machine, path = written
    block = BLOCK64 if machine == "x64" else BLOCK32
    addr = f"{block:x}"
    out = subprocess.run(
        [sys.executable, "-m", "bugcheck.cli", "-c", f"lm; db {addr} L10", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Mini Kernel Dump File" in text
    width = 8 if machine == "x86" else 16
    for drv in DRIVERS64 if machine == "x64" else DRIVERS32:
        start, end = f"{drv.base:0{width}x}", f"{drv.base + drv.size:0{width}x}"
        if width == 16:
            start, end = f"{start[:8]}`{start[8:]}", f"{end[:8]}`{end[8:]}"
        (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{start} {end}")]
        stem = drv.name.rsplit(".", 1)[0]
        assert line.split()[2] == ("nt" if stem == "ntoskrnl" else stem)
    assert "dam.sys" in text.split("Unloaded modules:", 1)[1]
    assert "00 01 02 03 04 05 06 07-08 09 0a 0b 0c 0d 0e 0f" in text


def test_rejects_bad_parts(tmp_path):
    with pytest.raises(ValueError):
        write_triage_dump(_desc("x86"), tmp_path / "x.dmp", TriageParts(broken_driver=0))
    with pytest.raises(ValueError):
        write_triage_dump(_desc("x86"), tmp_path / "x.dmp", TriageParts(mm=(1, 2)))


def test_minimal_dump_opens(tmp_path):
    path = tmp_path / "bare.dmp"
    write_triage_dump(DumpDescription(machine="x86", contexts=[{"eip": 0x80001000}]), path)
    d = bugcheck.open(path).file
    assert d.kind is DumpKind.TRIAGE and d.crash_context.pc == 0x80001000
    assert d.triage.drivers == [] and d.triage.valid
    assert struct.unpack_from("<I", path.read_bytes(), 0xF88)[0] == 4


def test_debugger_data_locates_snapshots_x64(tmp_path):
    """With a KDDEBUGGER_DATA64 copy the reader finds the thread through the PRCB and the
    process through the thread, so the snapshots show at their virtual addresses."""
    from bugcheck.dumpfile.kddebugger import OFFSETS

    kdbg, thread_va, process_va = 0xFFFFF800_10C00000, 0xFFFF_A001_2345_6080, 0xFFFF_A001_1111_2040
    kd = bytearray(0x340)
    struct.pack_into("<QQ4sI", kd, 0, 0, 0, b"KDBG", len(kd))
    struct.pack_into("<H", kd, OFFSETS["OffsetKThreadApcProcess"], 0x98)
    struct.pack_into("<H", kd, OFFSETS["OffsetPrcbCurrentThread"], 8)
    struct.pack_into("<H", kd, OFFSETS["SizePrcb"], 0x200)
    struct.pack_into("<H", kd, OFFSETS["SizeEThread"], 0x100)
    struct.pack_into("<H", kd, OFFSETS["SizeEProcess"], 0x100)
    prcb = bytearray(0x200)
    struct.pack_into("<Q", prcb, 8, thread_va)
    thread = bytearray(0x100)
    struct.pack_into("<Q", thread, 0x98, process_va)
    process = bytes(range(256))
    desc = DumpDescription(
        machine="x64", contexts=[{"rip": 0xFFFFF800_10001000}], kd_debugger_data_block=kdbg
    )
    parts = TriageParts(prcb=bytes(prcb), thread=bytes(thread), process=process, debugger_data=bytes(kd))
    path = tmp_path / "kd64.dmp"
    write_triage_dump(desc, path, parts)
    d = bugcheck.open(path).file
    assert d.header.mini_dump_fields & 0x400
    t = d.triage
    assert (t.thread_address, t.process_address) == (thread_va, process_va)
    assert (t.prcb_size, t.thread_size, t.process_size) == (0x200, 0x100, 0x100)
    assert d.read_virtual(process_va + 0x41, 2) == b"\x41\x42"
    assert d.read_virtual(kdbg + 0x10, 4) == b"KDBG"
