"""The damage helper itself: recipes replay exactly, stay inside the file, and aim at real structures."""

from __future__ import annotations

import struct

import pytest

from corpus import corpus_root
from fuzz import mutate


def test_apply_operations():
    data = bytes(range(32))
    assert mutate.apply(data, (("cut", 5),)) == data[:5]
    out = mutate.apply(data, (("u32", 4, 0xFFFFFFFF), ("u16", 0, 0x1234), ("xor", 31, 0x80)))
    assert out[4:8] == b"\xff" * 4 and out[:2] == b"\x34\x12" and out[31] == 31 ^ 0x80
    # words past the end are skipped, never extend the file
    assert mutate.apply(data, (("u64", 30, 1),)) == data
    junk = mutate.apply(data, (("junk", 30, 100, 7),))
    assert len(junk) == 32 and junk[:30] == data[:30]
    assert junk == mutate.apply(data, (("junk", 30, 100, 7),))
    with pytest.raises(ValueError):
        mutate.apply(data, (("melt", 0),))


def test_describe_is_a_literal():
    recipe = (("u32", 0x2034, 0xFFFFFFFF), ("cut", 7))
    assert eval(mutate.describe(recipe)) == recipe  # noqa: S307 - our own literal


def test_triage_layout_and_recipes_are_seeded():
    root = corpus_root()
    if root is None:
        pytest.skip("test corpus not found")
    data = (root / "dumps" / "proxyrule-011620-8250-01.dmp").read_bytes()
    lay = mutate.dump_layout(data)
    assert lay.triage is not None and lay.triage["DriverCount"] == len(lay.drivers) > 0
    # the first driver's name offset points at a DUMP_STRING inside the file
    name_off = struct.unpack_from("<I", data, lay.drivers[0])[0]
    assert 0 < name_off < len(data)
    a = mutate.dump_recipes(data, 5, 40)
    assert a == mutate.dump_recipes(data, 5, 40) and a != mutate.dump_recipes(data, 6, 40)
    assert len(a) == 40
    kinds = {op[0] for r in a for op in r}
    assert {"cut", "u32", "junk"} <= kinds
    # the TRIAGE_DUMP words are among the targets
    triage_offsets = {off for _n, off, _w in lay.triage_fields}
    assert any(op[1] in triage_offsets for r in a for op in r if op[0] in ("u32", "u64"))


def test_problem_checker_flags_each_rule():
    """The CLI checks themselves: each broken rule is reported, a clean exit 2 is not."""
    from fuzz.runner import CliRun, problems

    f = ["/t/a.dmp"]
    assert problems(CliRun([], 2, "", "bugcheck: /t/a.dmp: truncated dump header\n", 0.1), f) == []
    assert problems(CliRun([], 0, "ok\n", "", 0.1), f) == []
    cases = {
        "no problem": CliRun([], 2, "", "bugcheck: /t/a.dmp: \n", 0.1),
        "does not name": CliRun([], 2, "", "bugcheck: /t/b.dmp: bad\n", 0.1),
        "stderr lines": CliRun([], 2, "", "bugcheck: /t/a.dmp: bad\nmore\n", 0.1),
        "exit status 1": CliRun([], 1, "", "", 0.1),
        "traceback": CliRun([], 0, "Traceback (most recent call last):\n  x\nKeyError: 1\n", "", 0.1),
        "internal error": CliRun([], 0, "bugcheck: internal error in 'kv': ValueError: x\n", "", 0.1),
        "out of memory": CliRun([], 0, "MemoryError\n", "", 0.1),
        "hang": CliRun([], None, "", "", 60.0, timed_out=True),
    }
    for want, run in cases.items():
        assert any(want in p for p in problems(run, f)), (want, problems(run, f))
    # a symbol name containing the word is not an out-of-memory report
    assert problems(CliRun([], 0, "nt!HalpMcaMemoryErrorRecord\n", "", 0.1), f) == []
