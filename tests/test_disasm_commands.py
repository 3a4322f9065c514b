"""``r``, ``u``, ``ub``, ``uf`` and ``dt`` through the session on a real triage dump with its ISF kernel table."""

from __future__ import annotations

import re

import pytest
from tests.corpus import corpus_file, dump

TABLE = "5278AFF86C341677D7D7835C85B7B844-1.json.xz"  # rizin-triage_x64's kernel (FACTS.md)


@pytest.fixture(scope="module")
def session():
    import bugcheck
    from bugcheck.commands.session import Session
    from bugcheck.symbols.isf import load_isf
    from bugcheck.symbols.resolver import ModuleSymbols, Resolver

    path = dump("rizin-triage_x64.dmp")
    table_path = corpus_file("symbols", "isf", "windows", "ntkrnlmp.pdb", TABLE)
    d = bugcheck.open(path)
    s = Session(d)
    s.raise_errors = True
    modules = list(s.symbols.modules)
    if not modules:
        pytest.skip("module list not available from this dump reader yet")
    table = load_isf(table_path)

    def loader(m):
        if m.index == 0:
            return ModuleSymbols(m, "symbol table", table, table)
        return ModuleSymbols(m, "no symbols")

    s.symbols = Resolver(modules, loader, s.pointer_size)
    return s


def run(s, cmd: str) -> str:
    (r,) = s.run(cmd)
    return r.text


def test_r_ends_with_the_current_instruction_and_its_stack_operand(session):
    lines = run(session, "r").splitlines()
    assert lines[0].startswith("rax=") and lines[6].startswith("iopl=")
    assert lines[7].startswith("cs=0010  ss=0018")
    assert lines[-2] == "nt!KeBugCheckEx:"
    rsp = session.context.regs["rsp"]
    value = int.from_bytes(session.read_virtual(rsp + 8, 8), "little")
    expect = (
        "fffff804`7bdf5a80 48894c2408      mov     qword ptr [rsp+8],rcx "
        f"ss:0018:{(rsp + 8) >> 32:08x}`{(rsp + 8) & 0xFFFFFFFF:08x}={value:016x}"
    )
    assert lines[-1] == expect


def test_r_single_register(session):
    rip = session.context.regs["rip"]
    assert run(session, "r rip") == f"rip={rip:016x}"


def test_u_and_ub_agree(session):
    forward = run(session, "u nt!KeBugCheckEx L4").splitlines()
    assert forward[0] == "nt!KeBugCheckEx:"
    assert len(forward) == 5
    fourth = int(forward[4].split()[0].replace("`", ""), 16)
    back = run(session, f"ub {fourth:x} L3").splitlines()
    assert [ln.split()[0] for ln in back[1:]] == [ln.split()[0] for ln in forward[1:4]]


def test_ub_ends_at_a_return_address_with_a_call(session):
    # frame 2 of rizin's answer key returns to __C_specific_handler+162
    text = run(session, "ub fffff8047bdcc052 L2").splitlines()
    assert re.search(r"\scall\s", text[-1])


def test_uf_covers_the_function(session):
    lines = run(session, "uf nt!KeBugCheckEx").splitlines()
    assert lines[0] == "nt!KeBugCheckEx:"
    assert any(" call " in ln for ln in lines)


def test_dt_layout_and_values(session):
    assert "          nt!_KTRAP_FRAME" in run(session, "dt nt!_KTRAP*").splitlines()
    lines = run(session, "dt nt!_KTRAP_FRAME").splitlines()
    assert lines[0] == "   +0x000 P1Home           : Uint8B"
    # without a module kd says where it found the type
    assert run(session, "dt _KTRAP_FRAME").splitlines()[:2] == ["nt!_KTRAP_FRAME", lines[0]]
    rsp = session.context.regs["rsp"]
    flink = int.from_bytes(session.read_virtual(rsp, 8), "little")
    blink = int.from_bytes(session.read_virtual(rsp + 8, 8), "little")
    lines = run(session, "dt nt!_LIST_ENTRY @rsp").splitlines()
    # kd opens a list entry at an address with its links (several published sessions, e.g.
    # "lkd> dt nt!_LIST_ENTRY fffff807`25e37f90" -> " [ 0xffffc509`c5488488 - 0xffffc509`cc9d6508 ]")
    assert (
        lines[0]
        == f" [ 0x{flink >> 32:08x}`{flink & 0xFFFFFFFF:08x} - 0x{blink >> 32:08x}`{blink & 0xFFFFFFFF:08x} ]"
    )
    assert lines[1].startswith(
        f"   +0x000 Flink            : 0x{flink >> 32:08x}`{flink & 0xFFFFFFFF:08x} _LIST_ENTRY"
    )
    assert run(session, "dt nt!_NoSuchType") == "Symbol nt!_NoSuchType not found."


def test_dt_options_after_the_address(session):
    """kd reads dt options anywhere on the line (DebugPrivilege: ``dt ntkrnlmp!_HEAP_VS_CONTEXT
    ffffe0099a6002c0 -r1`` expands members; ``dt nt!_EPROCESS ffff9003e19ae080 -y ThreadListHead``)."""
    thread = session.dump.triage.thread_address if hasattr(session.dump, "triage") else None
    if thread is None:
        pytest.skip("no thread address in this dump")
    before = run(session, f"dt -r1 nt!_KTHREAD {thread:x} ApcState").splitlines()
    after = run(session, f"dt nt!_KTHREAD {thread:x} -r1 ApcState").splitlines()
    assert after == before and len(after) > 2
    proc = session.dump.triage.process_address
    lines = run(session, f"dt nt!_EPROCESS {proc:x} -y ThreadListH").splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("   +0x") and " ThreadListHead : _LIST_ENTRY [ " in lines[0]
    )
