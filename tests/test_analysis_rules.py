"""Triage rules: triage.ini parsing, matching precedence, user files, and culprit picking."""

from __future__ import annotations

import re

import pytest

from bugcheck.analysis.triage_rules import TriageRules, parse_rules, pick_culprit
from bugcheck.errors import BadFileError
from corpus import corpus_file

# the example file from WinDbg's documentation of triage.ini
DOC_SAMPLE = """\
module1=Person1
module2!functionA=Person2
module2!functionB=Person3
module2!funct*=Person4
module2!*=Person5
module3!singleFunction=Person6
mod*!functionC=Person7
"""


def test_parse_comments_blank_and_bad_lines():
    rules, warnings = parse_rules(
        "; comment\n# other\n\n[section]\nnoequals\n=x\nmod!f = Some One \n", "t.ini"
    )
    assert len(rules) == 1 and rules[0].owner == "SomeOne"
    assert len(warnings) == 2 and all(w.startswith("t.ini:") for w in warnings)


def test_precedence_as_documented():
    r = TriageRules.from_text(DOC_SAMPLE)
    assert r.owner("module1", "anything") == "Person1"
    assert r.owner("module1", None) == "Person1"
    assert r.owner("module2", "functionB") == "Person3"
    assert r.owner("module2", "functionC") == "Person4"  # funct* beats module2!*
    assert r.owner("module2", "other") == "Person5"
    assert r.owner("module3", "anotherFunction") == ""  # module known, function not: no owner
    assert r.owner("modX", "functionC") == "Person7"
    # without funct*, the module match module2!* wins over the function match mod*!functionC
    r2 = TriageRules.from_text(DOC_SAMPLE.replace("module2!funct*=Person4\n", ""))
    assert r2.owner("module2", "functionC") == "Person5"


def test_wildcards_and_default_keyword():
    r = TriageRules.from_text(
        "nt!Ke*=ignore\nnt!KeWait*=waits\nmo*d!x=lit\nnt!default=kernel\ndefault=Everyone\n"
    )
    assert r.owner("nt", "KeBugCheckEx") == "ignore"
    assert r.owner("nt", "KeWaitForSingleObject") == "waits"  # longer prefix wins
    assert r.owner("nt", "IofCallDriver") == "kernel"  # nt!default == nt!*
    assert r.owner("ntoskrnl.exe", "KeBugCheck2") == "ignore"  # kernel image names fold to nt
    assert r.owner("mod", "x") == "Everyone"  # a '*' inside a name is a literal
    assert r.owner("mo*d", "x") == "lit"
    assert r.owner("somedriver", "Foo") == "Everyone"
    assert r.owner("NT", "kebugcheckex") == "ignore"  # names match case-insensitively


def test_default_rules_mark_bugcheck_machinery_ignored():
    r = TriageRules.load(use_env=False)
    assert not r.warnings
    for func in (
        "KeBugCheckEx",
        "KeBugCheck2",
        "KiBugCheckDispatch",
        "KiPageFault",
        "KiExceptionDispatch",
        "KiGeneralProtectionFault",
        "KiSegmentNotPresentFault",
        "KiDispatchException",
        "RtlDispatchException",
        "RtlpExecuteHandlerForException",
        "_C_specific_handler",
        "__C_specific_handler",
        "_GSHandlerCheck_SEH",
        "KiInterruptDispatchNoLock",
    ):
        assert r.owner("nt", func) == "ignore", func
    assert r.owner("hal", "HalpBugCheckCallback") == "ignore"
    assert r.owner("myfault", None) == "MachineOwner"
    assert r.owner("nt", "IopXxxControlFile") == "MachineOwner"


def test_user_file_overrides_defaults(tmp_path, monkeypatch):
    user = tmp_path / "mine.ini"
    user.write_text("nt!KiPageFault=PagingTeam\nmyfault=NotMyFaultTeam\nnt!KeBugCheck*=ignore\n")
    r = TriageRules.load([user], use_env=False)
    assert r.owner("nt", "KiPageFault") == "PagingTeam"
    assert r.owner("myfault", "x") == "NotMyFaultTeam"
    assert r.owner("nt", "KiBugCheckDispatch") == "ignore"  # defaults not overridden stay
    other = tmp_path / "other.ini"
    other.write_text("default=Ops\n")
    monkeypatch.setenv("BUGCHECK_TRIAGE", str(other))
    r2 = TriageRules.load([user])
    assert r2.owner("somedriver", None) == "Ops"
    assert r2.owner("nt", "KiPageFault") == "PagingTeam"  # explicit paths come after the variable


def test_bad_user_files(tmp_path):
    binary = tmp_path / "bin.ini"
    binary.write_bytes(b"MZ\x00\x00\x90")
    with pytest.raises(BadFileError):
        TriageRules.load([binary], use_env=False)
    with pytest.raises(BadFileError):
        TriageRules.load([tmp_path / "missing.ini"], use_env=False)


def test_maybe_and_last_priorities():
    r = TriageRules.from_text("a=maybe_A\nb=last_B\nc=C\nx=ignore\n")
    frames = [("x", "f", 0), ("b", "f", 0), ("a", "f", 0), ("c", "f", 0)]
    assert pick_culprit(frames, r) == 3  # a definite owner lower down beats maybe_/last_
    assert pick_culprit(frames[:3], r) == 2  # maybe_ beats last_ above it
    assert pick_culprit(frames[:2], r) == 1
    assert pick_culprit([("x", "f", 0)], r) == 0  # everything ignored: the top usable frame
    assert pick_culprit([], r) is None


def test_minidump_without_symbols_picks_first_driver():
    r = TriageRules.load(use_env=False)
    frames = [("nt", None, 0x3F5A80), ("nt", None, 0x40F4E1), ("hal", None, 0x100), ("amdppm", None, 0x334C)]
    assert pick_culprit(frames, r) == 3
    # the walkthrough: nt trap frames above the faulting driver without symbols
    walk = [
        ("nt", "KeBugCheckEx", 0),
        ("nt", "KiBugCheckDispatch", 0x69),
        ("nt", "KiPageFault", 0x469),
        ("myfault", None, 0x1981),
        ("myfault", None, 0x1D3D),
        ("nt", "IofCallDriver", 0x55),
    ]
    assert pick_culprit(walk, r) == 3


def _rizin_frames() -> list[tuple[str | None, str | None, int]]:
    text = corpus_file("MANIFEST.md").read_text(encoding="utf-8")
    frames = []
    for m in re.finditer(r"^(\d+)\s+0x[0-9a-f]+ sp: 0x[0-9a-f]+\s+(.+)$", text, re.M):
        sym = m.group(2).strip()
        if sym.startswith("("):
            frames.append(("nt", None, 0))  # "(nt, an exception filter funclet)": no name known
            continue
        name, _, off = sym.partition("+")
        mod, bang, func = name.partition("!")
        if not bang:
            mod, func = "nt", name  # rizin prints kernel functions without the module
        frames.append((mod, func, int(off or "0")))
    return frames


def test_rizin_answer_key_culprit():
    frames = _rizin_frames()
    assert len(frames) == 36
    i = pick_culprit(frames, TriageRules.load(use_env=False))
    assert frames[i][:2] == ("amdppm", "WriteIoMemRawEx")
