"""Malformed and truncated dumps: only BugcheckError subclasses may escape, whatever the bytes."""

from __future__ import annotations

import os
import struct
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bugcheck
from bugcheck.errors import BugcheckError
from corpus import corpus_root

_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _exercise(data: bytes) -> None:
    fd, path = tempfile.mkstemp(suffix=".dmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            d = bugcheck.open(path)
        except BugcheckError:
            return
        try:
            _ = d.kind.banner_line, d.machine, d.pointer_size, d.bugcheck_parameters, d.crash_time
            ctx = d.crash_context
            _ = d.contexts, d.kd_debugger_data, d.warnings
            for va in (ctx.pc, ctx.sp, d.header.ps_loaded_module_list, d.header.kd_debugger_data_block):
                d.read_virtual_padded(va, 64)
                try:
                    d.read_virtual(va, 8)
                except BugcheckError:
                    pass
                try:
                    d.translate(va)
                except BugcheckError:
                    pass
            if d.paging is not None:
                d.paging.walk(ctx.pc)
            if d.triage is not None:
                _ = d.triage.drivers, d.triage.unloaded_drivers, d.triage.shape
        finally:
            d.close()
    finally:
        os.unlink(path)


def _seed(name: str, limit: int) -> bytes:
    root = corpus_root()
    if root is None:
        pytest.skip("corpus absent")
    p = root / "dumps" / name
    if not p.exists():
        pytest.skip(f"missing {p}")
    with open(p, "rb") as f:
        return f.read(limit)


@_SETTINGS
@given(cut=st.integers(min_value=0, max_value=176411))
def test_truncated_triage(cut):
    _exercise(_seed("proxyrule-011620-8250-01.dmp", 176411)[:cut])


@_SETTINGS
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=0x2080 + 0x80), st.binary(min_size=1, max_size=8)),
        min_size=1,
        max_size=12,
    ),
    table_edits=st.lists(
        st.tuples(st.integers(min_value=0, max_value=176411 - 8), st.binary(min_size=1, max_size=8)),
        max_size=8,
    ),
)
def test_mutated_triage(edits, table_edits):
    buf = bytearray(_seed("proxyrule-011620-8250-01.dmp", 176411))
    for off, b in edits + table_edits:
        buf[off : off + len(b)] = b
    _exercise(bytes(buf))


_DUMP_TYPES = st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0xFFFFFFFF])
_MACHINES = st.sampled_from([0x8664, 0x14C, 0xAA64, 0x1234])


@_SETTINGS
@given(
    wide=st.booleans(),
    dump_type=_DUMP_TYPES,
    machine=_MACHINES,
    body=st.binary(min_size=0, max_size=0x3000),
    sub=st.sampled_from([b"SDMPDUMP", b"FDMPDUMP", b"PAGEPAGE", b"TRGDDump", b"@\0\0\0RDMPDUMP"]),
    nums=st.lists(st.integers(min_value=0, max_value=(1 << 64) - 1), min_size=8, max_size=8),
)
def test_synthetic_headers(wide, dump_type, machine, body, sub, nums):
    size = 0x2000 if wide else 0x1000
    hdr = bytearray(b"PAGE" * (size // 4))
    hdr[0:8] = b"PAGEDU64" if wide else b"PAGEDUMP"
    if wide:
        struct.pack_into("<I", hdr, 0x30, machine)
        struct.pack_into("<I", hdr, 0xF98, dump_type)
        struct.pack_into("<IQ", hdr, 0x88, nums[0] & 0xFF, nums[1])
        struct.pack_into("<QQ", hdr, 0x98, nums[2] >> 40, nums[3] >> 44)
        struct.pack_into("<Q", hdr, 0x10, nums[4] & 0xFFFFFFFFF000)
    else:
        struct.pack_into("<I", hdr, 0x20, machine)
        struct.pack_into("<I", hdr, 0xF88, dump_type)
        struct.pack_into("<II", hdr, 0x64, nums[0] & 0xFF, nums[1] & 0xFFFFFFFF)
        struct.pack_into("<II", hdr, 0x6C, nums[2] >> 44, nums[3] >> 52)
        struct.pack_into("<I", hdr, 0x10, nums[4] & 0xFFFFF000)
        hdr[0x5C] = nums[5] & 1
    tail = bytearray(sub + body)
    # plausible-looking bitmap header fields so the bitmap path is reached
    if sub.startswith(b"@") and len(tail) >= 0x20:
        # RDMP: MetadataSize, FirstPageOffset
        struct.pack_into("<QQ", tail, 0x10, (nums[6] & 0xFFFF) * 16, nums[7] & 0xFFFFF000)
    elif len(tail) >= 0x38:
        struct.pack_into("<QQQ", tail, 0x20, nums[6] & 0xFFFFF000, nums[7] & 0xFFFF, nums[7] >> 48)
    _exercise(bytes(hdr) + bytes(tail))


@_SETTINGS
@given(data=st.binary(max_size=0x2100))
def test_arbitrary_bytes(data):
    _exercise(data)
    _exercise(b"PAGEDU64" + data)
    _exercise(b"PAGEDUMP" + data)


def test_zero_and_empty_files():
    with pytest.raises(BugcheckError, match="all zeros"):
        _open_bytes(bytes(0x3000))
    with pytest.raises(BugcheckError, match="empty"):
        _open_bytes(b"")
    with pytest.raises(BugcheckError, match="not a crash dump"):
        _open_bytes(b"MZ" + bytes(100))
    with pytest.raises(BugcheckError, match="MDMP"):
        _open_bytes(b"MDMP" + bytes(100))


def _open_bytes(data: bytes):
    fd, path = tempfile.mkstemp(suffix=".dmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return bugcheck.open(path)
    finally:
        os.unlink(path)
