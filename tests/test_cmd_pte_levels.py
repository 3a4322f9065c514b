"""!pte on 5-level paging and on addresses that cannot be walked (writer-made dumps)."""

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.dumpfile.writer import DumpDescription, write_dump

TOP = 0xFF00_0000_0000_0000  # a 57-bit kernel address space


def _session(tmp_path, paging):
    top = TOP if paging == "5level" else 0
    base = top | 0xFFFF_F800_1000_0000
    desc = DumpDescription(
        paging=paging,
        build=22621,
        bugcheck_code=0x50,
        bugcheck_parameters=(0, 0, 0, 0),
        contexts=[{"rip": base + 0x10, "rsp": base + 0x1000}],
        kd_debugger_data_block=base + 0x800,
        ps_loaded_module_list=base + 0x10,
        ps_active_process_head=base + 0x20,
        mappings={base: bytes(range(256)) * 16},
        ram_size=32 << 20,
    )
    layout = write_dump(desc, tmp_path / f"{paging}.dmp", "kernel_bitmap")
    return Session(bugcheck.open(tmp_path / f"{paging}.dmp").file), layout, base


def test_five_level_pte_shows_every_level_down_to_the_pte(tmp_path):
    s, layout, base = _session(tmp_path, "5level")
    (r,) = s.run(f"!pte {base + 0x123:x}")
    names = [lv["name"] for lv in r.data["levels"]]
    assert names == ["PML5E", "PXE", "PPE", "PDE", "PTE"]
    assert r.data["physical"] == layout.translate(base + 0x123)
    assert "PTE at phys" in r.text and "PML5E at phys" in r.text


def test_four_level_pte_unchanged(tmp_path):
    s, layout, base = _session(tmp_path, "4level")
    (r,) = s.run(f"!pte {base:x}")
    assert [lv["name"] for lv in r.data["levels"]] == ["PXE", "PPE", "PDE", "PTE"]
    assert r.data["physical"] == layout.translate(base)


def test_noncanonical_address_says_why(tmp_path):
    s, _layout, _base = _session(tmp_path, "4level")
    (r,) = s.run("!pte ffffa8000600000")
    assert r.text.strip() and r.data["levels"] == [] and r.data["reason"]
