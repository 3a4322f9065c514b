"""Re-packing details behind the format parity: the module list and the debugger data block.

A triage dump's driver list becomes ``_KLDR_DATA_TABLE_ENTRY`` records in the
re-packed dump; a debugger data block the triage dump holds only as a copy is
put back at KdDebuggerDataBlock. Checked on a second real dump (ojusha, whose
kernel has its own table) and on small hand-made inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

import bugcheck
from bugcheck.dumpfile.writer import repack
from bugcheck.kernel.modules import from_loaded_module_list, from_triage
from bugcheck.kernel.typed import Types
from corpus import corpus_file, dump

ISF = ("symbols", "isf", "windows", "ntkrnlmp.pdb")
RIZIN_TABLE = "5278AFF86C341677D7D7835C85B7B844-1.json.xz"
OJUSHA_TABLE = "79BE8C368BEC7DD9677EA9B355ACE784-1.json.xz"


def _table(name):
    from bugcheck.symbols.isf import load_isf

    return load_isf(corpus_file(*ISF, name))


def test_ojusha_module_list_survives_repack(tmp_path):
    src = bugcheck.open(dump("ojusha-100623-4953-01.dmp"))
    table = _table(OJUSHA_TABLE)
    out = tmp_path / "ojusha-kb.dmp"
    repack(src, out, "kernel_bitmap", types=table)
    d = bugcheck.open(out)
    walked = from_loaded_module_list(d, Types(table, 8))
    assert walked is not None and walked.source == "PsLoadedModuleList"
    want = from_triage(src)
    got = [(m.name, m.base, m.size, m.timestamp, m.checksum, m.path) for m in walked.modules]
    assert got == [(m.name, m.base, m.size, m.timestamp, m.checksum, m.path) for m in want.modules]
    assert len(got) > 50 and walked.warnings == []
    assert d.header.ps_loaded_module_list == src.header.ps_loaded_module_list
    assert d.kd_debugger_data["PsLoadedModuleList"] == d.header.ps_loaded_module_list


@dataclass
class _Block:
    address: int
    data: bytes
    size: int = 0

    def __post_init__(self):
        self.size = len(self.data)


@dataclass
class _Triage:
    drivers: list = field(default_factory=list)


class _Header:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class _FakeTriage:
    """Just what repack reads from an opened triage dump."""

    machine = "x64"
    pointer_size = 8
    bugcheck_code = 0xD1
    bugcheck_parameters = (1, 2, 0, 0xFFFFF804_11111111)
    crash_processor = 0

    def __init__(self, blocks, kd, drivers, head, kdbg):
        self.virtual = type("V", (), {"blocks": blocks})()
        self.kd_debugger_data = kd
        self.triage = _Triage(drivers)
        self.contexts = []
        self.crash_context = type(
            "C", (), {"regs": {"rip": 0xFFFFF804_11111111, "rsp": 0xFFFF8000_00001F00}}
        )()
        self.header = _Header(
            minor_version=19041,
            major_version=0xF,
            number_processors=1,
            kd_debugger_data_block=kdbg,
            ps_loaded_module_list=head,
            ps_active_process_head=0,
            pfn_database=0,
            system_time=0,
            system_up_time=0,
            product_type=1,
            suite_mask=0x110,
        )


def test_repack_restores_debugger_block_and_builds_module_list(tmp_path):
    table = _table(RIZIN_TABLE)
    base = 0xFFFFF804_7BA00000
    head = base + table.symbol_by_name("PsLoadedModuleList").rva
    kdbg = base + table.symbol_by_name("KdDebuggerDataBlock").rva
    drivers = [
        ("\\SystemRoot\\system32\\ntoskrnl.exe", base, 0x1046000, 0x0D8322E6, 0xA5928C),
        ("\\SystemRoot\\system32\\hal.dll", base - 0x2000000, 0x6000, 0x1A7C0EE9, 0xCE9F),
        ("\\SystemRoot\\System32\\drivers\\Wdf01000.sys", base - 0x1000000, 0xD1000, 0x9A2F1C3B, 0xD0F1A),
    ]
    kd = {
        "OwnerTag": "KDBG",
        "Size": 0x380,
        "KernBase": base,
        "PsLoadedModuleList": head,
        "MmPageSize": 0x1000,
    }
    # The captured memory has the stack but neither the list head nor the debugger block.
    blocks = [_Block(0xFFFF8000_00001000, bytes(range(256)) * 16)]
    src = _FakeTriage(blocks, kd, drivers, head, kdbg)
    out = tmp_path / "fake-kb.dmp"
    repack(src, out, "kernel_bitmap", types=table)
    d = bugcheck.open(out)
    assert d.read_virtual(0xFFFF8000_00001000, 0x1000) == bytes(range(256)) * 16
    assert d.kd_debugger_data is not None
    assert d.kd_debugger_data["KernBase"] == base
    assert d.kd_debugger_data["PsLoadedModuleList"] == head
    assert d.kd_debugger_data["Size"] == 0x380
    walked = from_loaded_module_list(d, Types(table, 8))
    assert [(m.image_name, m.base, m.size, m.timestamp, m.checksum) for m in walked.modules] == [
        ("ntoskrnl.exe", base, 0x1046000, 0x0D8322E6, 0xA5928C),
        ("hal.dll", base - 0x2000000, 0x6000, 0x1A7C0EE9, 0xCE9F),
        ("Wdf01000.sys", base - 0x1000000, 0xD1000, 0x9A2F1C3B, 0xD0F1A),
    ]
    assert walked.modules[2].path == drivers[2][0]


def test_repack_without_types_keeps_memory_as_captured(tmp_path):
    table = _table(RIZIN_TABLE)
    base = 0xFFFFF804_7BA00000
    head = base + table.symbol_by_name("PsLoadedModuleList").rva
    src = _FakeTriage([_Block(0xFFFF8000_00001000, b"x" * 64)], None, [("nt", base, 0x1000, 0, 0)], head, 0)
    out = tmp_path / "plain.dmp"
    repack(src, out, "kernel_bitmap")
    d = bugcheck.open(out)
    with pytest.raises(bugcheck.errors.MemoryNotPresent):
        d.read_virtual(head, 8)


@pytest.mark.parametrize("command", ["!analyze -v", "kv", "!running -t", "!thread", "r"])
def test_ojusha_answers_survive_repack(tmp_path_factory, command):
    """The second real crash with a kernel table: neither form holds nt's image or headers, so
    its frames come from the validated scan, which must judge both forms alike."""
    from bugcheck.commands.session import Session, load_commands

    out = tmp_path_factory.getbasetemp() / "ojusha-parity.dmp"
    src = bugcheck.open(dump("ojusha-100623-4953-01.dmp"))
    if not out.exists():
        repack(src, out, "kernel_bitmap", types=_table(OJUSHA_TABLE))
    load_commands()
    isf = str(corpus_file("symbols", "isf"))
    got = []
    for d in (src, bugcheck.open(out)):
        s = Session(d, offline=True, symbols_dir=isf)
        s.raise_errors = True
        got.append(s.run(command)[-1].data)
    tri, rep = got
    if command == "!analyze -v":
        tri, rep = dict(tri["fields"]), dict(rep["fields"])
        tri.pop("KEY_VALUES_STRING"), rep.pop("KEY_VALUES_STRING")  # the analysis time
        assert tri["FAILURE_BUCKET_ID"] == "0x1A_402_nt!MiDeleteSubsectionPages"
    assert tri == rep
