"""FAILURE_BUCKET_ID families, SYMBOL_NAME / BUCKET_ID_FUNC_OFFSET, and FAILURE_ID_HASH."""

from __future__ import annotations

import re

from bugcheck.analysis.bucket import (
    Culprit,
    bucket_id_func_offset,
    bugcheck_family,
    failure_bucket_id,
    failure_id_hash,
    symbol_name,
)
from corpus import corpus_file

GUID = re.compile(r"\{[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\}")


def test_facts_hash_example():
    # FACTS.md #1, checked against WinDbg output
    assert failure_id_hash("AV_myfault!unknown_function") == "{9745090a-9bce-ccba-c096-ca6e9ca04c64}"
    facts = corpus_file("reference", "FACTS.md").read_text(encoding="utf-8")
    m = re.search(r"`(AV_[^`]+)` → `(\{[0-9a-f-]+\})`", facts)
    assert m is not None
    assert failure_id_hash(m.group(1)) == m.group(2)


def test_hash_properties():
    h = failure_id_hash("0x1A_402_nt!MiFoo")
    assert GUID.fullmatch(h)
    assert failure_id_hash("0x1a_402_NT!mifoo") == h  # the bucket is lower-cased first
    assert failure_id_hash("0x1A_402_nt!MiFoo", mode="um") != h


def _walkthrough_fields() -> dict[str, str]:
    text = corpus_file("reference", "windbg-kernel-dump-walkthrough.txt").read_text(encoding="utf-8")
    fields = {}
    for key in (
        "SYMBOL_NAME",
        "MODULE_NAME",
        "BUCKET_ID_FUNC_OFFSET",
        "FAILURE_BUCKET_ID",
        "FAILURE_ID_HASH",
    ):
        m = re.search(rf"^{key}: (\S+)$", text, re.M)
        assert m is not None, key
        fields[key] = m.group(1)
    return fields


def test_walkthrough_d1_bucket():
    ref = _walkthrough_fields()
    culprit = Culprit("myfault.sys", None, 0x1981)  # no symbols for myfault: module offset
    bucket = failure_bucket_id(0xD1, [0xFFFFD8024AAA8010, 2, 0, 0xFFFFF80060DA1981], culprit)
    assert bucket == ref["FAILURE_BUCKET_ID"]
    assert failure_id_hash(bucket) == ref["FAILURE_ID_HASH"]
    assert symbol_name(culprit) == ref["SYMBOL_NAME"]
    assert bucket_id_func_offset(culprit) == ref["BUCKET_ID_FUNC_OFFSET"]


def test_families():
    av = [0xFFFFFFFFC0000005, 0xFFFFF8048B58334C, 0, 0]
    assert bugcheck_family(0xA, [0, 2, 1, 0]) == "AV"
    assert bugcheck_family(0x1000007E, av) == "AV"
    assert bugcheck_family(0x3B, [0xC0000005, 0, 0, 0]) == "AV"
    assert bugcheck_family(0x7E, [0xC0000094, 0, 0, 0]) == "0x7E_c0000094"
    assert bugcheck_family(0x1E, [0x80000003, 0, 0, 0]) == "0x1E_80000003"
    assert bugcheck_family(0x1A, [0x402, 1, 2, 3]) == "0x1A_402"
    assert bugcheck_family(0x9F, [3, 0, 0, 0]) == "0x9F_3"
    assert bugcheck_family(0x133, [1, 0x1E00, 0, 0]) == "0x133_DPC"
    assert bugcheck_family(0x133, [0, 0x501, 0x500, 0], in_interrupt=True) == "0x133_ISR"
    assert bugcheck_family(0x50, [0x7FFE0320, 0, 0xFFFFF801EDDF9151, 8]) == "AV_R_INVALID"
    assert bugcheck_family(0x50, [0x7FFE0320, 1, 0, 0]) == "AV_W_INVALID"
    assert bugcheck_family(0x50, [0x7FFE0320, 3, 0, 0]) == "AV_W_INVALID"
    assert bugcheck_family(0x1C8, [7000, 0, 0, 0]) == "0x1C8"
    assert bugcheck_family(0xA0000001, [5, 0, 0, 0]) == "0xA0000001"


def test_bucket_with_and_without_symbols():
    c = Culprit("amdppm", "WriteIoMemRawEx", 0x70)
    av = [0xFFFFFFFFC0000005, 0xFFFFF8048B58334C, 0, 0]
    assert failure_bucket_id(0x1000007E, av, c) == "AV_amdppm!WriteIoMemRawEx"
    assert symbol_name(c) == "amdppm!WriteIoMemRawEx+70"
    assert bucket_id_func_offset(c) == "70"
    assert (
        failure_bucket_id(0x1A, [0x402, 0, 0, 0], Culprit("nt", None, 0x20F3))
        == "0x1A_402_nt!unknown_function"
    )
    assert failure_bucket_id(0x1C8, [7000, 0, 0, 0], None) == "0x1C8_UNKNOWN"
