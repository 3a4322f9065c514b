"""`.process ADDR` reads user-mode addresses through that process's page tables (writer-made dump)."""

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.dumpfile.writer import write_dump
from corpus import corpus_file

USER_VA = 0x7FF6_1234_0000
TABLE = ("symbols", "isf", "windows", "ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844-1.json.xz")


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    from bugcheck.dumpfile.synth.kernel import build_kernel
    from bugcheck.symbols.isf import load_isf

    table = load_isf(corpus_file(*TABLE))
    k = build_kernel(table, processes=3, threads_per_process=1)
    path = tmp_path_factory.mktemp("dumps") / "MEMORY.DMP"

    def write():
        desc = k.description()
        desc.mappings[USER_VA] = b"USER PAGE OF THE CRASH'S PROCESS".ljust(0x1000, b"\0")
        return write_dump(desc, path, "kernel_bitmap")

    layout = write()
    # the second process gets the dump's real page tables (which map USER_VA); the layout is
    # deterministic, so writing again keeps the same directory table base
    ep = table.find_type("_EPROCESS")
    target = k.processes[1]
    k.memory.set(target.address, ep, "Pcb.DirectoryTableBase", layout.directory_table_base)
    assert write().directory_table_base == layout.directory_table_base
    d = bugcheck.open(path).file
    s = Session(d, offline=True, symbols_dir=str(corpus_file("symbols", "isf")))
    return s, k, target


def test_process_switches_user_address_translation(session):
    s, k, target = session
    other = k.processes[2]
    (r,) = s.run(f".process {other.address:x}")
    assert "Implicit process is now" in r.text
    (r,) = s.run(f"db {USER_VA:x} L10")
    assert "??" in r.text  # that process's (synthetic) page tables do not map it
    (r,) = s.run(f".process /p /r {target.address:x}")
    (r,) = s.run(f"da {USER_VA:x}")
    assert "USER PAGE OF THE CRASH'S PROCESS" in r.text
    # kernel addresses read the same in every process
    (r,) = s.run(f"dq {target.address:x} L1")
    assert "?" not in r.text.split("  ", 1)[1]
