"""DUMP_FILE_ATTRIBUTES: the number, then a line per bit WinDbg names (0x8 on minidumps, 0x10 on
live dumps; a MEMORY.DMP's 0x21800 gets no name line in published outputs)."""

from __future__ import annotations

import dataclasses

import pytest

import bugcheck
from bugcheck.commands.session import Session, load_commands
from corpus import dump


@pytest.mark.parametrize(
    ("attrs", "lines"),
    [
        (0x1808, ["0x1808", "  Kernel Generated Triage Dump"]),
        (0x10, ["0x10", "  Live Generated Dump"]),
        (0x21800, ["0x21800"]),
    ],
)
def test_attribute_names(attrs, lines):
    load_commands()
    d = bugcheck.open(dump("proxyrule-011620-8250-01.dmp"))
    raw = d._dump if hasattr(d, "_dump") else d
    header = raw.header
    try:
        header.attributes = attrs
    except (AttributeError, dataclasses.FrozenInstanceError):
        object.__setattr__(header, "attributes", attrs)
    s = Session(d, offline=True)
    fields = s.run("!analyze -v")[-1].data["fields"]
    assert fields["DUMP_FILE_ATTRIBUTES"].splitlines() == lines
