"""The load banner, vertarget, .bugcheck and .dumpdebug layouts."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from bugcheck.commands.session import Session
from bugcheck.commands.target import banner, format_filetime, format_uptime, os_name, suite_names
from bugcheck.dumpfile.kinds import DumpKind
from test_cmd_memory_display import FakeDump


def filetime(t: dt.datetime) -> int:
    delta = t - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


def walkthrough_dump():
    """The header facts of the walkthrough's NotMyFault MEMORY.DMP (session time shifted to UTC)."""
    d = FakeDump()
    d.path = "C:\\Windows\\MEMORY.DMP"
    d.kind = DumpKind.KERNEL_BITMAP
    d.header = SimpleNamespace(
        major_version=0xF,
        minor_version=19041,
        number_processors=3,
        product_type=1,
        suite_mask=0x110,
        ps_loaded_module_list=0xFFFFF8006322A230,
        system_time=filetime(dt.datetime(2021, 10, 7, 11, 33, 12, 945000, tzinfo=dt.UTC)),
        system_up_time=547550000,
        dump_type=5,
    )
    d.kd_debugger_data = {"KernBase": 0xFFFFF80062600000}
    return d


def test_banner_layout_matches_kd():
    s = Session(walkthrough_dump(), sympath="srv*")
    assert banner(s).text.splitlines()[:14] == [
        "Loading Dump File [C:\\Windows\\MEMORY.DMP]",
        "Kernel Bitmap Dump File: Kernel address space is available, User address space may not be available.",
        "",
        # MicrosoftDocs/windows-driver-docs#1151 (kd 10.0.18272): the validation summary comes first
        "************* Path validation summary **************",
        "Response                         Time (ms)     Location",
        "Deferred                                       srv*",
        "Symbol search path is: srv*",
        "Executable search path is: ",
        "Windows 10 Kernel Version 19041 MP (3 procs) Free x64",
        "Product: WinNt, suite: TerminalServer SingleUserTS",
        "Machine Name:",
        "Kernel base = 0xfffff800`62600000 PsLoadedModuleList = 0xfffff800`6322a230",
        "Debug session time: Thu Oct  7 11:33:12.945 2021 (UTC + 0:00)",
        "System Uptime: 0 days 0:00:54.755",
    ]


def test_banner_warnings_and_up():
    d = walkthrough_dump()
    d.header.number_processors = 1
    d.warnings = ["WARNING: Dump file has been truncated.  Data may be missing."]
    text = banner(Session(d)).text.splitlines()
    assert "Windows 10 Kernel Version 19041 UP Free x64" in text
    i = text.index("WARNING: Dump file has been truncated.  Data may be missing.")
    assert text[i - 1].startswith("System Uptime: ")


def test_banner_ends_with_kds_load_lines():
    """The tail of a real kd load (WinDbg 10.0.27871 on a 26100 minidump, blog "A Blue Screen
    Windows Error Because of Old Network Driver"): the symbol-loading dots, the user-symbols and
    unloaded-module lines, the !analyze hint, then the current instruction."""
    import bugcheck
    from corpus import corpus_file, dump

    d = bugcheck.open(dump("rizin-triage_x64.dmp"))
    s = Session(
        d, sympath=str(corpus_file("symstore")), offline=True, symbols_dir=str(corpus_file("symbols", "isf"))
    )
    text = banner(s).text.splitlines()
    i = text.index("Loading Kernel Symbols")
    assert text[i - 1].startswith("System Uptime: ")
    assert len(text[i + 1]) == 63 and set(text[i + 1]) == {"."}
    j = text.index("Loading User Symbols")
    assert all(len(x) == 64 for x in text[i + 2 : j - 1])
    assert text[j + 1] == "Loading unloaded module list"
    assert text[-3] == "For analysis of this file, run !analyze -v"
    assert text[-2] == "nt!KeBugCheckEx:"
    assert text[-1].startswith("fffff804`7bdf5a80 48894c2408      mov     qword ptr [rsp+8],rcx ss:0018:")


def test_helpers():
    assert os_name(9600) == "Windows 8.1" and os_name(26100) == "Windows 10" and os_name(7601) == "Windows 7"
    assert os_name(2600) == "Windows XP"
    assert suite_names(0x110) == "TerminalServer SingleUserTS"
    assert suite_names(0x310) == "TerminalServer SingleUserTS Personal"
    assert format_uptime(0) == "0 days 0:00:00.000"
    assert format_uptime((2 * 86400 + 3 * 3600 + 4 * 60 + 5) * 10_000_000 + 6_0000) == "2 days 3:04:05.006"
    t = filetime(dt.datetime(2024, 3, 31, 12, 12, 36, 724000, tzinfo=dt.UTC))
    assert format_filetime(t) == "Sun Mar 31 12:12:36.724 2024 (UTC + 0:00)"


def test_bugcheck_vertarget_dumpdebug():
    s = Session(walkthrough_dump())
    r = s.run(".bugcheck; vertarget; .dumpdebug")
    assert r[0].text.splitlines() == [
        "Bugcheck code 000000D1",
        "Arguments 00000000`00000001 00000000`00000002 00000000`00000003 00000000`00000004",
    ]
    assert r[1].text.splitlines()[0] == "Windows 10 Kernel Version 19041 MP (3 procs) Free x64"
    dd = r[2].text.splitlines()
    assert dd[0] == "----- 64 bit Kernel Dump Analysis"
    assert "MinorVersion        00004a61" in dd
    assert "PsLoadedModuleList  fffff800`6322a230" in dd
