"""!pte, !vtop, db and !db on a kernel bitmap dump made by the project's writer."""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.dumpfile.writer import DumpDescription, write_dump

BASE = 0xFFFFF800_10000000
DATA = bytes(range(256)) * 32  # 8 KB


@pytest.fixture(scope="module")
def paged(tmp_path_factory):
    path = tmp_path_factory.mktemp("dumps") / "MEMORY.DMP"
    desc = DumpDescription(
        build=19041,
        bugcheck_code=0xD1,
        bugcheck_parameters=(0xFFFFD8024AAA8010, 2, 0, 0xFFFFF80060DA1981),
        contexts=[{"rip": BASE + 0x10, "rsp": BASE + 0x1000}],
        kd_debugger_data_block=BASE + 0x1800,
        ps_loaded_module_list=BASE + 0x10,
        ps_active_process_head=BASE + 0x20,
        mappings={BASE: DATA},
        physical_pages={0x50000: b"physical only!!!"},
        ram_size=48 << 20,
    )
    layout = write_dump(desc, path, "kernel_bitmap")
    d = bugcheck.open(path)
    if getattr(d, "paging", None) is None:
        pytest.skip("the reader exposes no paging walk for this dump")
    return Session(d), layout


def test_db_and_physical(paged):
    s, layout = paged
    (r,) = s.run(f"db {BASE + 0x10:x} L10")
    assert r.text == "fffff800`10000010  10 11 12 13 14 15 16 17-18 19 1a 1b 1c 1d 1e 1f  ................"
    (r,) = s.run("!db 50000 L10")
    assert r.text == "#   50000 70 68 79 73 69 63 61 6c-20 6f 6e 6c 79 21 21 21 physical only!!!"


def test_pte_matches_layout(paged):
    s, layout = paged
    va = BASE + 0x1234
    (r,) = s.run(f"!pte {va:x}")
    lines = r.text.splitlines()
    assert lines[0] == " " * 43 + f"VA {va:016x}"
    assert [c.split()[0] for c in lines[1].split("    ")] == ["PXE", "PPE", "PDE", "PTE"]
    pte_pfn = layout.va_to_pa[(va >> 12) << 12] >> 12
    assert r.data["levels"][-1]["value"] >> 12 & 0xFFFFFFFFFF == pte_pfn
    assert lines[3].split()[-2] == f"{pte_pfn:x}"
    assert lines[3].split()[-1].endswith("V")
    # the PTE's self-map address for the default (non-randomized) PTE base
    assert lines[1].endswith(f"PTE at {(0xFFFFF68000000000 + ((va & (1 << 48) - 1) >> 12) * 8):016X}")


def test_vtop(paged):
    s, layout = paged
    va = BASE + 0x1234
    (r,) = s.run(f"!vtop 0 {va:x}")
    pa = layout.va_to_pa[(va >> 12) << 12] | 0x234
    assert r.text.splitlines()[-1] == f"Virtual address {va:x} translates to physical address {pa:x}."
    (r,) = s.run(f"!vtop {layout.directory_table_base:x} 1000")
    assert "translation fails" in r.text


def test_x86_dump_prints_32_bit_columns(tmp_path):
    from bugcheck.commands.target import banner

    path = tmp_path / "x86.dmp"
    desc = DumpDescription(
        machine="x86",
        paging="pae",
        build=7601,
        bugcheck_code=0x7F,
        bugcheck_parameters=(8, 0x80153000, 0, 0),
        contexts=[{"eip": 0x82A4_1234, "esp": 0x8015_2F00, "ebp": 0x8015_2F40, "ecx": 3}],
        kd_debugger_data_block=0x82B0_0000,
        ps_loaded_module_list=0x82A4_0010,
        ps_active_process_head=0x82A4_0020,
        mappings={0x82A4_0000: bytes(range(256)) * 0x31},
        ram_size=40 << 20,
        system_up_time=1234567890,
    )
    write_dump(desc, path, "full")
    s = Session(bugcheck.open(path))
    lines = banner(s).text.splitlines()
    assert "Windows 7 Kernel Version 7601 UP Free x86 compatible" in lines
    assert "PsLoadedModuleList = 0x82a40010" in lines
    assert "System Uptime: 0 days 0:02:03.456" in lines
    out = [r.text for r in s.run(".bugcheck; db 82a40010 L10; dp 82a40000 L2; ? -1; !vtop 0 82a40010")]
    assert out[0] == "Bugcheck code 0000007F\nArguments 00000008 80153000 00000000 00000000"
    assert out[1] == "82a40010  10 11 12 13 14 15 16 17-18 19 1a 1b 1c 1d 1e 1f  ................"
    assert out[2] == "82a40000  03020100 07060504"
    assert out[3] == "Evaluate expression: -1 = ffffffff"
    assert out[4].splitlines()[-1].startswith("Virtual address 82a40010 translates to physical address ")
