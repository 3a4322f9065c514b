"""!analyze text laid out as real WinDbg prints it, checked against published, uncollapsed output.

Sources (real kd/WinDbg sessions pasted verbatim):
- S1 DebugPrivilege/InsightEngineering, SYSTEM_THREAD_EXCEPTION_NOT_HANDLED (7e) walk-through
  (EvilDriver, build 22621): EXCEPTION_RECORD/CONTEXT, READ_ADDRESS, ERROR_CODE,
  EXCEPTION_PARAMETERn, EXCEPTION_STR, two blank lines after the key/value block and the stack.
- S2 HelloWorld-1017 blog "A Blue Screen Windows Error Because of Old Network Driver"
  (NETIO, D1, WinDbg 10.0.27871): the same blank lines, BUGCHECK_Pn in short hex,
  READ_ADDRESS before PROCESS_NAME for D1.
- S3 DebugPrivilege/InsightEngineering triage walk-through (myfault, D1, build 22621):
  READ_ADDRESS before PROCESS_NAME, TRAP_FRAME after it.
- S4 kernel 0x139 and man.sys 0x7E pastes (github): ``EXCEPTION_PARAMETER1:  0000000000000003``,
  ``READ_ADDRESS:  ffffffffffffffff `` (pointer-wide, trailing space).
- S5 MS docs (interpreting-bug-check-0xcb, -analyze samples) and the WinDbg KB pastes of the
  short form: ``Use !analyze -v ...``, ``BugCheck CB, {...}``, ``Probably caused by : ks.sys ( ks!KsProbeStreamIrp+333 )``.
- S6 x86 STACK_TEXT pastes (driver verifier doc, vsdatant 0x8E): ``ChildEBP RetAddr a1 a2 a3 site``,
  no colons; the unwind warning inside STACK_TEXT.
"""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.analysis.analyze import Analysis, _address_fields, stack_text
from bugcheck.commands.session import Session
from corpus import corpus_file, dump


def _session(name):
    d = bugcheck.open(dump(name))
    return Session(
        d, sympath=str(corpus_file("symstore")), offline=True, symbols_dir=str(corpus_file("symbols", "isf"))
    )


@pytest.fixture(scope="module")
def rizin():
    s = _session("rizin-triage_x64.dmp")
    (res,) = s.run("!analyze -v")
    return res.text.splitlines()


@pytest.fixture(scope="module")
def proxyrule():
    s = _session("proxyrule-011620-8250-01.dmp")
    (res,) = s.run("!analyze -v")
    return res.text.splitlines()


def _index(lines, prefix):
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


def test_two_blank_lines_after_key_values_block(rizin):
    """S1, S2: the last ``Value:`` line is followed by two blank lines, then BUGCHECK_CODE."""
    i = _index(rizin, "BUGCHECK_CODE:")
    assert rizin[i - 2 : i] == ["", ""]
    assert rizin[i - 3].startswith("    Value: ")
    assert rizin[i] == "BUGCHECK_CODE:  1000007e"


def test_two_blank_lines_after_stack_text(rizin):
    """S1, S2: the last STACK_TEXT row, two blank lines, SYMBOL_NAME."""
    i = _index(rizin, "SYMBOL_NAME:")
    assert rizin[i - 2 : i] == ["", ""]
    assert rizin[i - 3].endswith(": nt!KiStartSystemThread+0x28")


def test_exception_fields_7e(rizin):
    """S1: order and spelling of the exception fields after the CONTEXT block (x64, 7e)."""
    keys = [line.split(":", 1)[0] for line in rizin if line and line.split(":", 1)[0].isupper()]
    want = ["PROCESS_NAME", "WRITE_ADDRESS", "ERROR_CODE", "EXCEPTION_CODE_STR"]
    want += ["EXCEPTION_PARAMETER1", "EXCEPTION_PARAMETER2", "EXCEPTION_STR", "STACK_TEXT"]
    got = [k for k in keys if k in want]
    assert got == want
    assert "WRITE_ADDRESS:  ffffffffffffffff " in rizin
    msg = "The instruction at 0x%p referenced memory at 0x%p. The memory could not be %s."
    assert f"ERROR_CODE: (NTSTATUS) 0xc0000005 - {msg}" in rizin
    assert "EXCEPTION_PARAMETER1:  0000000000000001" in rizin
    assert "EXCEPTION_PARAMETER2:  ffffffffffffffff" in rizin
    assert "EXCEPTION_STR:  0xc0000005" in rizin
    assert _index(rizin, "CONTEXT:") < _index(rizin, "PROCESS_NAME:")


def test_read_address_pointer_wide_with_trailing_space(proxyrule):
    """S1, S4: ``READ_ADDRESS:  0000000000000000 `` (not ``0``)."""
    assert "READ_ADDRESS:  0000000000000000 " in proxyrule


def test_bugcheck_args_short_hex(proxyrule):
    """S2: ``BUGCHECK_P1: 8`` - one space, no padding; BUGCHECK_CODE has two spaces."""
    assert "BUGCHECK_CODE:  1000007e" in proxyrule
    assert "BUGCHECK_P1: ffffffffc0000005" in proxyrule


def test_unwind_warning_inside_stack_text(proxyrule):
    """S6: the warning sits between STACK_TEXT rows, not above ``Debugging Details``."""
    w = "WARNING: Stack unwind information not available. Following frames may be wrong."
    i = _index(proxyrule, "STACK_TEXT:")
    j = proxyrule.index(w)
    assert j > i
    assert w not in proxyrule[: _index(proxyrule, "Debugging Details:")]


def test_arg_address_precedes_process_name():
    """S2, S3: for D1/A/50 the address the argument names comes before PROCESS_NAME."""
    fields = _address_fields(0xD1, [0x8, 2, 0, 0xFFFFF8024E50C688], None, 8)
    assert fields == [("READ_ADDRESS", ["0000000000000008 "])]
    fields = _address_fields(0xA, [0x41414145, 2, 1, 0], None, 4)
    assert fields == [("WRITE_ADDRESS", ["41414145 "])]


def test_short_form():
    """S5: bare ``!analyze``."""
    a = Analysis(0xD1, [0xFFFFF80012345678, 2, 1, 0xFFFFF80011112222], "X", [""] * 4, _BOX)
    a.culprit = {"image_name": "MyDriver.sys", "symbol_name": "MyDriver!PreWrite+45"}
    lines = a.text(verbose=False).splitlines()
    assert lines[:5] == _BOX.splitlines()[:5]
    assert lines[5:] == [
        "",
        "Use !analyze -v to get detailed debugging information.",
        "",
        "BugCheck D1, {fffff80012345678, 2, 1, fffff80011112222}",
        "",
        "Probably caused by : MyDriver.sys ( MyDriver!PreWrite+45 )",
        "",
        "Followup:     MachineOwner",
        "---------",
    ]


def test_bare_analyze_is_short_and_v_is_verbose():
    s = _session("rizin-triage_x64.dmp")
    (short,) = s.run("!analyze")
    (verbose,) = s.run("!analyze -v")
    assert "Use !analyze -v to get detailed debugging information." in short.text
    assert "Debugging Details:" not in short.text
    assert "Debugging Details:" in verbose.text


class _F:
    def __init__(self, sp, fp, ret, args, symbol):
        self.sp, self.fp, self.return_address, self.args, self.symbol = sp, fp, ret, args, symbol
        self.pc = 0


def test_x86_stack_text_has_no_colons():
    """S6: ``af7bf8d0 90544692 87b4e430 00000001 44444444 vsdatant+0x1cbd0``."""
    f = _F(0xAF7BF8C0, 0xAF7BF8D0, 0x90544692, [0x87B4E430, 1, 0x44444444, 7], "vsdatant+0x1cbd0")
    assert stack_text(None, [f], 4) == ["af7bf8d0 90544692 87b4e430 00000001 44444444 vsdatant+0x1cbd0"]


_BOX = "\n".join(
    [
        "*" * 79,
        "*" + " " * 77 + "*",
        "*                        Bugcheck Analysis                                    *",
        "*" + " " * 77 + "*",
        "*" * 79,
        "",
        "X (d1)",
        "Arguments:",
    ]
)


def test_trap_frame_block_has_one_note():
    """S3 (myfault D1): ``TRAP_FRAME:  ffffc60b87e8ed40 -- (.trap 0xffffc60b87e8ed40)``, the two NOTE
    lines once, the registers without the segment line, then ``Resetting default scope``."""
    from types import SimpleNamespace

    from bugcheck.analysis.analyze import trap_frame_lines

    def absent(addr, n):
        raise bugcheck.errors.MemoryNotPresent(addr)

    dump = SimpleNamespace(machine="x64", read_virtual_padded=absent)
    resolver = SimpleNamespace(symbol_for=lambda a: None)
    regs = {"rax": 0x1580702, "rip": 0xFFFFF805736312D0, "rsp": 0xFFFFC60B87E8EED0, "efl": 0x40242}
    lines = trap_frame_lines(None, dump, resolver, 0xFFFFC60B87E8ED40, regs)
    assert lines[:3] == [
        "ffffc60b87e8ed40 -- (.trap 0xffffc60b87e8ed40)",
        "NOTE: The trap frame does not contain all registers.",
        "Some register values may be zeroed or incorrect.",
    ]
    assert lines[3].startswith("rax=0000000001580702 rbx=0000000000000000 rcx=")
    assert lines[9] == "iopl=0         nv up ei pl zr na po nc"
    assert not any(line.startswith("cs=") for line in lines)
    assert lines[-1] == "Resetting default scope"
    assert sum(line.startswith("NOTE:") for line in lines) == 1


def test_osname_is_windows_10_on_windows_11_builds():
    """S1, S3 (22621) and S2 (26100) all print ``OSNAME:  Windows 10``."""
    from bugcheck.analysis.analyze import _os_name

    assert _os_name(22621) == "Windows 10"
    assert _os_name(26100) == "Windows 10"
    assert _os_name(19041) == "Windows 10"
    assert _os_name(7601) == "Windows 7"


def test_x86_trap_frame_block():
    """Published 32-bit TRAP_FRAMEs (AVGIDS 0x50, vsdatant 0x8E, win32k 0x50...):
    ``TRAP_FRAME:  a6c4a890 -- (.trap 0xffffffffa6c4a890)``, ``ErrCode = 00000000``, the x86
    register block with its segment line, no NOTE."""
    from types import SimpleNamespace

    from bugcheck.analysis.analyze import trap_frame_lines

    def absent(addr, n):
        raise bugcheck.errors.MemoryNotPresent(addr)

    dump = SimpleNamespace(machine="x86", pointer_size=4, read_virtual_padded=absent)
    resolver = SimpleNamespace(symbol_for=lambda a: None)
    regs = dict(eax=0x4E6C, ebx=0xC5E4, ecx=0x3179, edx=0, esi=0xFFFF8888, edi=0x8AAB0000, eip=0x82A40FD3)
    regs |= dict(esp=0xA6C4A904, ebp=0xA6C4A90C, efl=0x10206, cs=8, ss=0x10, ds=0x23, es=0x23, fs=0x30, gs=0)
    lines = trap_frame_lines(None, dump, resolver, 0xA6C4A890, regs, 0)
    assert lines[:5] == [
        "a6c4a890 -- (.trap 0xffffffffa6c4a890)",
        "ErrCode = 00000000",
        "eax=00004e6c ebx=0000c5e4 ecx=00003179 edx=00000000 esi=ffff8888 edi=8aab0000",
        "eip=82a40fd3 esp=a6c4a904 ebp=a6c4a90c iopl=0         nv up ei pl nz na pe nc",
        "cs=0008  ss=0010  ds=0023  es=0023  fs=0030  gs=0000             efl=00010206",
    ]
    assert lines[-1] == "Resetting default scope"
