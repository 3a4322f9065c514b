"""Bugcheck catalog: coverage, lookups, subtypes, and the WinDbg box layout."""

from __future__ import annotations

import re

import pytest

import bugcheck
from bugcheck.analysis.catalog import WRAP_WIDTH, all_codes, lookup, lookup_name, render_bugcheck_box
from bugcheck.errors import BadFileError, CommandError
from corpus import all_dumps, corpus_file

#: codes raised by display drivers themselves, which Microsoft does not document
UNDOCUMENTED = {0xA0000001}


def test_catalog_size_and_unique_names():
    entries = all_codes()
    assert len(entries) >= 300
    names = [e.name for e in entries]
    assert len(names) == len(set(names))
    codes = [e.code for e in entries]
    assert len(codes) == len(set(codes))
    for e in entries:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]+", e.name), e.name
        assert e.description.strip(), e.name
        assert len(e.args) in (0, 4), e.name
        for st in e.subtypes.values():
            assert st.description.strip() and len(st.args) == 3


@pytest.mark.parametrize(
    "code,name",
    [
        (0x1, "APC_INDEX_MISMATCH"),
        (0xA, "IRQL_NOT_LESS_OR_EQUAL"),
        (0x1E, "KMODE_EXCEPTION_NOT_HANDLED"),
        (0x3B, "SYSTEM_SERVICE_EXCEPTION"),
        (0x50, "PAGE_FAULT_IN_NONPAGED_AREA"),
        (0x65, "MEMORY1_INITIALIZATION_FAILED"),
        (0x7E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED"),
        (0xD1, "DRIVER_IRQL_NOT_LESS_OR_EQUAL"),
        (0x133, "DPC_WATCHDOG_VIOLATION"),
        (0x199, "KERNEL_STORAGE_SLOT_IN_USE"),
        (0x1C7, "STORE_DATA_STRUCTURE_CORRUPTION"),
        (0x1C8, "MANUALLY_INITIATED_POWER_BUTTON_HOLD"),
        (0x1000007E, "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M"),
        (0x1000008E, "KERNEL_MODE_EXCEPTION_NOT_HANDLED_M"),
        (0x100000EA, "THREAD_STUCK_IN_DEVICE_DRIVER_M"),
        (0xC0000218, "STATUS_CANNOT_LOAD_REGISTRY_FILE"),
        (0xC000021A, "WINLOGON_FATAL_ERROR"),
        (0xDEADDEAD, "MANUALLY_INITIATED_CRASH1"),
    ],
)
def test_known_names(code, name):
    info = lookup(code)
    assert info is not None and info.name == name
    assert lookup_name(name).code == code


def test_m_variants_share_base_info():
    base, var = lookup(0x7E), lookup(0x1000007E)
    assert var.name == base.name + "_M"
    assert var.description == base.description and var.args == base.args
    assert var.base_code == 0x7E
    # a flagged code without its own entry falls back to the base entry
    assert lookup(0x1000000A).name == "IRQL_NOT_LESS_OR_EQUAL"


def test_unknown_codes():
    assert lookup(0xA0000001) is None
    assert lookup(0x12345) is None
    text = render_bugcheck_box(0xA0000001, [5, 0, 0, 0])
    assert "Unknown bugcheck code (a0000001)\nUnknown bugcheck description\nArguments:\n" in text
    assert "Arg1: 0000000000000005\n" in text


def test_common_codes_have_argument_meanings():
    for code in (
        0x1,
        0xA,
        0x19,
        0x1A,
        0x1E,
        0x3B,
        0x50,
        0x7E,
        0x7F,
        0x8E,
        0x9F,
        0xA0,
        0xC2,
        0xC4,
        0xD1,
        0xEA,
    ):
        info = lookup(code)
        assert info.args and any(info.args), hex(code)
    for code in (
        0x101,
        0x109,
        0x116,
        0x124,
        0x133,
        0x139,
        0x1C7,
        0x1C8,
        0xEF,
        0xF4,
        0xF7,
        0xFC,
        0xBE,
        0xC000021A,
    ):
        assert any(lookup(code).args), hex(code)


def test_subtypes():
    mm = lookup(0x1A)
    assert mm.subtype_arg == 1 and 0x402 in mm.subtypes and 0x41284 in mm.subtypes
    m = mm.arg_meanings([0x41284, 1, 2, 3])
    assert "working set" in m[0]
    wd = lookup(0x133).arg_meanings([1, 0x1E00, 0xFFFFF800576FB320, 0])
    assert wd[0].startswith("The system cumulatively spent")
    assert wd[1] == "The watchdog period."
    assert "DPC_WATCHDOG_GLOBAL_TRIAGE_BLOCK" in wd[2] and wd[3] == ""
    single = lookup(0x133).arg_meanings([0, 0x501, 0x500, 0])
    assert single[1].startswith("The DPC time count")
    store = lookup(0x1C7)
    for case in (0, 1, 2, 3):
        assert case in store.subtypes
    assert "Page frame number" in store.arg_meanings([0, 1, 2, 3])[3]
    # an unlisted subtype keeps the generic meanings
    assert lookup(0x1A).arg_meanings([0xDEAD, 0, 0, 0])[0].startswith("Type of violation")


def test_box_layout_and_widths():
    text = render_bugcheck_box(0x133, [1, 0x1E00, 0xFFFFF800576FB320, 0])
    lines = text.splitlines()
    assert lines[0] == "*" * 79
    assert lines[1] == "*" + " " * 77 + "*"
    assert lines[2] == "*                        Bugcheck Analysis                                    *"
    assert lines[3] == lines[1] and lines[4] == lines[0] and lines[5] == ""
    assert lines[6] == "DPC_WATCHDOG_VIOLATION (133)"
    assert "Arg4: 0000000000000000" in lines
    # continuation lines of a long meaning are tab-indented
    i = next(n for n, s in enumerate(lines) if s.startswith("Arg1: "))
    assert lines[i + 1].startswith("\t")
    for e in all_codes():
        body = render_bugcheck_box(e.code, [0, 0, 0, 0]).splitlines()
        desc = body[7 : body.index("Arguments:")]
        assert desc and all(len(s) <= WRAP_WIDTH for s in desc), e.name
    assert "Arg1: 00000009," in render_bugcheck_box(0x139, [9, 0, 0, 0], pointer_size=4)


def _walkthrough_block() -> list[str]:
    text = corpus_file("reference", "windbg-kernel-dump-walkthrough.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("2: kd> !analyze -v") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("Arg4: "))
    block = lines[start : end + 1]
    # the page glued the next paragraph onto the Arg4 line
    block[-1] = block[-1].split("Because ")[0]
    return block


def test_d1_box_matches_walkthrough_structure():
    ref = _walkthrough_block()
    ours = render_bugcheck_box(0xD1, [0xFFFFD8024AAA8010, 2, 0, 0xFFFFF80060DA1981]).splitlines()
    ours = [s for s in ours if s.strip()]  # the page dropped blank lines and runs of spaces
    squash = [" ".join(s.split()) for s in ours]
    assert squash[:5] == ref[:5]
    assert squash[5] == ref[5] == "DRIVER_IRQL_NOT_LESS_OR_EQUAL (d1)"
    ref_args = ref[ref.index("Arguments:") :]
    our_args = ours[ours.index("Arguments:") :]
    assert our_args == ref_args
    # a description sits between the name line and Arguments:, as in WinDbg
    assert ref.index("Arguments:") > 6 and ours.index("Arguments:") > 6


def _dump_bugchecks():
    seen = {}
    for path in all_dumps():
        try:
            d = bugcheck.open(path)
        except BadFileError:
            continue  # the zero-filled file and the header-only fragment are not crashes
        code = d.bugcheck_code
        if not code:
            continue
        seen.setdefault(code, (path.name, tuple(d.bugcheck_parameters)))
    return seen


def test_every_corpus_bugcheck_is_cataloged():
    seen = _dump_bugchecks()
    if not seen:
        pytest.skip("no dumps in the corpus")
    for code, (name, params) in seen.items():
        if code in UNDOCUMENTED:
            assert lookup(code) is None
            continue
        if lookup(code) is None and bugcheck.open(corpus_file("dumps", name)).kind.name.startswith("FULL"):
            continue  # a full-dump header carrying filler text, not a bugcheck
        info = lookup(code)
        assert info is not None, f"{name}: bugcheck {code:#x} not in the catalog"
        meanings = info.arg_meanings(list(params))
        assert meanings[0], f"{name}: no meaning for Arg1 of {code:#x}"
        box = render_bugcheck_box(code, list(params))
        assert f"{info.name} ({code:x})" in box


def test_analyze_show_command():
    from bugcheck.commands.analyze_show import show
    from bugcheck.commands.session import Session

    session = Session(None)
    (res,) = session.run("!analyze -show 9f 3")
    assert res.data["name"] == "DRIVER_POWER_STATE_FAILURE" and res.data["args"] == [3, 0, 0, 0]
    lines = res.text.splitlines()
    assert lines[:2] == ["", "DRIVER_POWER_STATE_FAILURE (9f)"]
    assert "Arguments:" in lines
    assert lines[lines.index("Arguments:") + 1].startswith("Arg1: 0000000000000003, A device object")
    (res,) = session.run("!analyze -show 0x1c7 0 ffff85824e1b8000 a9e69d15 2268da")
    assert "Arg4: 00000000002268da, Page frame number of the corrupted page." in res.text
    (res,) = session.run("!analyze -show a0000001 5")
    assert res.data["known"] is False
    assert "Unknown bugcheck code (a0000001)" in res.text and "Arg1: 0000000000000005" in res.text
    with pytest.raises(CommandError):
        show(session, "1 2 3 4 5 6")
    with pytest.raises(CommandError):
        show(session, "")  # no code and no dump


def test_analyze_show_uses_the_dump_bugcheck():
    from bugcheck.commands.analyze_show import show
    from bugcheck.commands.session import Session

    d = bugcheck.open(corpus_file("dumps", "noamhuang-033124-5078-01.dmp"))
    res = show(Session(d), "")
    assert "DPC_WATCHDOG_VIOLATION (133)" in res.text
    assert "Arg2: 0000000000001e00, The watchdog period." in res.text
