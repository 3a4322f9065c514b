"""Every corpus dump opens and reports the header values listed in the corpus MANIFEST.

Expected values are copied from MANIFEST.md / FACTS.md (independent sources), never
computed by this package.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import bugcheck
from bugcheck.dumpfile import TRUNCATED_WARNING, DumpKind
from bugcheck.errors import BadFileError, BugcheckError, MemoryNotPresent
from corpus import all_dumps, corpus_root, dump

# name: (DumpType, build, machine, cpus, code, params, crash time "YYYY-mm-dd HH:MM:SS" or "YYYY-mm-dd HH:MM")
MANIFEST = {
    "rizin-triage_x64.dmp": (
        4, 19041, 0x8664, 16, 0x1000007E,
        (0xFFFFFFFFC0000005, 0xFFFFF8048B58334C, 0xFFFF850429891EE8, 0xFFFF850429891720),
        "2021-02-21 01:38:22",
    ),
    "rizin-triage_arm64.dmp": (
        4, 22000, 0xAA64, 8, 0x1C8, (0x1B58, 0xFFFFF803F3A20860, 0, 0), "2021-09-14 02:51:58",
    ),
    "ojusha-100623-4953-01.dmp": (
        4, 19041, 0x8664, 12, 0x1A, (0x402, 0xFFFFA30EBF6F0090, 0x851AF68C0, 0xFFFFA30EBF6F7248),
        "2023-10-06 13:26:59",
    ),
    "noamhuang-033124-5078-01.dmp": (
        4, 19041, 0x8664, 24, 0x133, (1, 0x1E00, 0xFFFFF800576FB320, 0), "2024-03-31 12:12:36",
    ),
    "noamhuang-040124-5515-01.dmp": (
        4, 19041, 0x8664, 24, 0x1C7, (0, 0xFFFF85824E1B8000, 0xA9E69D15, 0x2268DA), "2024-03-31 18:50:12",
    ),
    "proxyrule-011620-8250-01.dmp": (
        4, 17763, 0x8664, 8, 0x1000007E,
        (0xFFFFFFFFC0000005, 0xFFFFF8044A24D2D4, 0xFFFF998071D4ED88, 0xFFFF998071D4E5D0),
        "2020-01-16 01:12:59",
    ),
    "francotrone64-082325-12593-01.dmp": (4, 26100, 0x8664, 16, 0x65, (0, 0, 0, 0), "2025-08-23 09:10"),
}  # fmt: skip

CRITICALROCKET_CODES = {
    0xA0000001: (5, 0, 0, 0),
    0x50: (0x7FFE0320, 0, 0xFFFFF801EDDF9151, 8),
    0x100000EA: (0xFFFFE00102F64880, 0, 0, 0),
}


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_manifest_header_values(name):
    dtype, build, machine, cpus, code, params, when = MANIFEST[name]
    d = bugcheck.open(dump(name))
    h = d.header
    assert h.signature + h.valid_dump == b"PAGEDU64"
    assert h.dump_type == dtype
    assert d.kind is DumpKind.TRIAGE
    assert d.kind.banner_line == "Mini Kernel Dump File: Only registers and stack trace are available"
    assert h.minor_version == build
    assert h.major_version == 0xF
    assert h.machine_image_type == machine
    assert d.machine == {0x8664: "x64", 0xAA64: "arm64"}[machine]
    assert d.pointer_size == 8
    assert h.number_processors == cpus
    assert d.bugcheck_code == code
    assert d.bugcheck_parameters == params
    fmt = "%Y-%m-%d %H:%M:%S" if when.count(":") == 2 else "%Y-%m-%d %H:%M"
    expected = datetime.strptime(when, fmt).replace(tzinfo=UTC)
    got = d.crash_time.replace(microsecond=0)
    if fmt.endswith("%M"):
        got = got.replace(second=0)
    assert got == expected
    assert d.physical is None
    assert d.triage is not None and d.triage.valid
    assert d.triage.drivers, "driver list is empty"


def test_criticalrocket_batch():
    root = corpus_root()
    if root is None:
        pytest.skip("corpus absent")
    files = sorted((root / "dumps" / "criticalrocket").glob("*.dmp"))
    if not files:
        pytest.skip("criticalrocket folder missing")
    codes = []
    for f in files:
        if f.name == "111217-47250-01.dmp":
            with pytest.raises(BadFileError, match="all zeros"):
                bugcheck.open(f)
            continue
        d = bugcheck.open(f)
        assert d.header.minor_version == 9600
        assert d.header.number_processors == 4
        assert d.header.dump_type == 4
        assert d.bugcheck_parameters == CRITICALROCKET_CODES[d.bugcheck_code]
        assert d.crash_time.year == 2017 and d.crash_time.month == 11
        codes.append(d.bugcheck_code)
    assert codes.count(0xA0000001) == 17
    assert codes.count(0x50) == 1 and codes.count(0x100000EA) == 1


def test_rizin_x64_crash_context():
    d = bugcheck.open(dump("rizin-triage_x64.dmp"))
    c = d.crash_context
    assert c.arch == "x64"
    assert c.regs["rip"] == 0xFFFFF8047BDF5A80 == c.pc
    assert c.regs["rsp"] == 0xFFFF850429890EE8 == c.sp
    assert d.contexts[0] is c
    assert d.crash_processor is not None


def test_rizin_arm64_crash_context():
    d = bugcheck.open(dump("rizin-triage_arm64.dmp"))
    c = d.crash_context
    assert d.machine == "arm64"
    assert c.arch == "arm64"
    assert c.pc == 0xFFFFF803F32DE014 == c.regs["pc"]
    assert c.sp == 0xFFFFE00E0E4BC4A0
    assert set(c.regs) >= {"x0", "x28", "fp", "lr", "sp", "pc", "cpsr"}


# rizin's answer-key backtrace for rizin-triage_x64.dmp (FACTS.md #3): every return address
# lies inside a captured block.
RIZIN_RETURN_ADDRESSES = [
    0xFFFFF8047BE0F4E1, 0xFFFFF8047BDCC052, 0xFFFFF8047BDFE942, 0xFFFFF8047BD2BF97,
    0xFFFFF8047BD2AB86, 0xFFFFF8047BE07BAC, 0xFFFFF8047BE031F5, 0xFFFFF8048B58334C, 0xFFFFF8048B58313F,
    0xFFFFF8048B583234, 0xFFFFF8048B5A0E8F, 0xFFFFF8048B5A83F6, 0xFFFFF8048B59F852, 0xFFFFF804799CC027,
    0xFFFFF80479966F81, 0xFFFFF804799CB227, 0xFFFFF804799C9E21, 0xFFFFF804799C99DA, 0xFFFFF804799CB6B1,
    0xFFFFF804799CB47A, 0xFFFFF804799D299E, 0xFFFFF8047995CC5F, 0xFFFFF8047995A866, 0xFFFFF8047BC52F55,
    0xFFFFF8047C1548A6, 0xFFFFF8047BCE0D1E, 0xFFFFF8047BD6AB7C, 0xFFFFF8047C123760, 0xFFFFF8047C12362F,
    0xFFFFF8047C126BDD, 0xFFFFF8047C1BDF0C, 0xFFFFF8047BD6C2EC, 0xFFFFF8047BC25975, 0xFFFFF8047BD17E25, 0xFFFFF8047BDFD0D8,
]  # fmt: skip


def test_rizin_return_addresses_in_data_blocks():
    d = bugcheck.open(dump("rizin-triage_x64.dmp"))
    t = d.triage
    assert t.shape == "large"
    starts = {b.address for b in t.data_blocks}
    assert len(RIZIN_RETURN_ADDRESSES) == 35
    assert all(d.virtual.is_present(pc, 1) for pc in RIZIN_RETURN_ADDRESSES)
    assert sum(pc in starts for pc in RIZIN_RETURN_ADDRESSES) >= 29
    # the stack is mapped at TopOfStack = crash rsp
    assert t.top_of_stack == 0xFFFF850429890EE8
    assert d.read_virtual(t.top_of_stack, 8) == d.virtual.read(t.top_of_stack, 8)


def test_rizin_drivers_and_debugger_data():
    d = bugcheck.open(dump("rizin-triage_x64.dmp"))
    t = d.triage
    by_name = {drv.name.lower().rsplit("\\", 1)[-1]: drv for drv in t.drivers}
    amd = by_name["amdppm.sys"]
    assert (amd.base, amd.size) == (0xFFFFF8048B580000, 0x3B000)  # MANIFEST, checked with WinDbg
    assert t.drivers[0].name.lower().endswith("ntoskrnl.exe")
    kd = d.kd_debugger_data
    assert kd["OwnerTag"] == "KDBG"
    assert kd["KernBase"] == t.drivers[0].base
    assert kd["PsLoadedModuleList"] == d.header.ps_loaded_module_list
    assert kd["PsActiveProcessHead"] == d.header.ps_active_process_head
    assert kd["SizeEProcess"] == 0xA40  # _EPROCESS size of the 19041 kernel (MANIFEST, ntdll PDB types)
    assert all(u.name and u.end > u.start for u in t.unloaded_drivers)
    assert t.mm["Version"] == 1
    # the debugger data copy is readable at its kernel address
    assert d.read_virtual(d.header.kd_debugger_data_block + 0x10, 4) == b"KDBG"


def test_classic_shape_names():
    d = bugcheck.open(dump("proxyrule-011620-8250-01.dmp"))
    t = d.triage
    assert t.shape == "classic"
    names = [drv.name.lower() for drv in t.drivers]
    assert names[0] == "ntoskrnl.exe"
    nt = t.drivers[0]
    # BlueScreenView on the crashed machine: fffff804`4a203000 size 0x00a6e000
    assert (nt.base, nt.size) == (0xFFFFF8044A203000, 0xA6E000)
    assert "winhvr.sys" in names and "vmswitch.sys" in names


def test_triage_has_no_physical_memory():
    d = bugcheck.open(dump("proxyrule-011620-8250-01.dmp"))
    with pytest.raises(MemoryNotPresent):
        d.read_physical(0x1000, 8)
    with pytest.raises(MemoryNotPresent):
        d.translate(0xFFFFF8044A203000)
    with pytest.raises(MemoryNotPresent):
        d.read_virtual(0x1234, 8)


def test_imhex_truncated_full_dump():
    d = bugcheck.open(dump("imhex-full-header-only.dmp"))
    h = d.header
    assert h.dump_type == 1 and d.kind is DumpKind.FULL
    assert h.minor_version == 19045 and h.number_processors == 4 and h.machine_image_type == 0x8664
    assert d.crash_time.replace(microsecond=0) == datetime(2024, 10, 12, 12, 57, 59, tzinfo=UTC)
    assert TRUNCATED_WARNING in d.warnings
    assert TRUNCATED_WARNING == "WARNING: Dump file has been truncated.  Data may be missing."
    assert d.physical is not None
    # nothing past the 16 KB header is present
    base = h.physical_memory_runs[0][0] * 0x1000
    with pytest.raises(MemoryNotPresent):
        d.read_physical(base + 0x10000000, 16)
    with pytest.raises(MemoryNotPresent):
        d.read_virtual(h.ps_loaded_module_list, 8)


def test_every_corpus_file_opens_or_fails_cleanly():
    for p in all_dumps():
        try:
            d = bugcheck.open(p)
        except BugcheckError:
            continue
        assert d.kind.banner_line
        d.crash_context  # noqa: B018 - must not raise
