"""KDDEBUGGER_DATA64 parsing (real triage copies) and the Windows 8+ encoding round trip."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bugcheck
from bugcheck.dumpfile.kddebugger import (
    OFFSETS,
    decode_kddebugger_data,
    encode_kddebugger_data,
    parse_kddebugger_data,
)
from corpus import dump


def test_field_offsets_fixed_by_the_debugger_interface():
    # offsets of KDDEBUGGER_DATA64 (wdbgexts.h) that other code relies on
    assert OFFSETS["KernBase"] == 0x18
    assert OFFSETS["PsLoadedModuleList"] == 0x48
    assert OFFSETS["KiProcessorBlock"] == 0x218
    assert OFFSETS["SizePrcb"] == 0x2B0
    assert OFFSETS["OffsetPrcbCurrentThread"] == 0x2B4
    assert OFFSETS["OffsetPrcbProcStateContext"] == 0x2BC
    assert OFFSETS["OffsetPrcbNumber"] == 0x2BE
    assert OFFSETS["OffsetPrcbContext"] == 0x338


@pytest.mark.parametrize(
    "name,size_eprocess,size_prcb",
    [("rizin-triage_x64.dmp", 0xA40, 0xAF00), ("ojusha-100623-4953-01.dmp", 0xA40, 0xAF00)],
)
def test_triage_copy(name, size_eprocess, size_prcb):
    d = bugcheck.open(dump(name))
    kd = d.kd_debugger_data
    assert kd["OwnerTag"] == "KDBG"
    assert kd["PsLoadedModuleList"] == d.header.ps_loaded_module_list
    assert kd["PsActiveProcessHead"] == d.header.ps_active_process_head
    assert kd["SizeEProcess"] == size_eprocess  # _EPROCESS of 19041 is 0xA40 (MANIFEST, PDB types)
    assert kd["SizePrcb"] == d.triage.prcb_size == size_prcb
    assert kd["MmPageSize"] == 0x1000
    # the kernel base from the debugger data is the first driver's base
    assert kd["KernBase"] == d.triage.drivers[0].base


def test_untagged_block_is_none():
    assert parse_kddebugger_data(bytes(0x400)) is None
    assert parse_kddebugger_data(b"short") is None


@given(
    words=st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=40),
    never=st.integers(0, (1 << 64) - 1),
    always=st.integers(0, (1 << 64) - 1),
    flag=st.integers(0, (1 << 64) - 1),
)
def test_encoding_round_trip(words, never, always, flag):
    raw = struct.pack(f"<{len(words)}Q", *words) + b"xyz"
    enc = encode_kddebugger_data(raw, never, always, flag)
    assert decode_kddebugger_data(enc, never, always, flag) == raw
    assert enc[-3:] == b"xyz"


def test_encoding_of_one_word():
    # worked by hand: w=0x10, never=0x0101, always=0xff, flag=0x100
    # rol(0x10 ^ 0x101, 1) = 0x222; ^0x100 = 0x322; bswap = 0x2203000000000000; ^0xff
    enc = encode_kddebugger_data(struct.pack("<Q", 0x10), 0x0101, 0xFF, 0x100)
    assert struct.unpack("<Q", enc)[0] == 0x22030000000000FF


def test_full_dump_encoded_block_decodes(tmp_path):
    writer = pytest.importorskip("bugcheck.dumpfile.writer")
    va = 0xFFFFF800_5C000200
    raw = bytearray(0x380)
    struct.pack_into("<QQ4sI", raw, 0, 0, 0, b"KDBG", len(raw))
    struct.pack_into("<Q", raw, OFFSETS["KernBase"], 0xFFFFF800_5A000000)
    struct.pack_into("<Q", raw, OFFSETS["PteBase"], 0xFFFFF680_00000000)
    keys = (0x1234_5678_9ABC_DEF1, 0x0FED_CBA9_8765_4321, 0xFFFFF800_5C7F0000)
    desc = writer.DumpDescription(
        contexts=[{"rip": 0xFFFFF800_5A001000, "rsp": 0xFFFF8000_00001000}],
        kd_debugger_data_block=va,
        mappings={va & ~0xFFF: bytes(0x200) + encode_kddebugger_data(bytes(raw), *keys)},
        ram_size=16 << 20,
    )
    path = tmp_path / "enc.dmp"
    writer.write_dump(desc, path, "full")
    d = bugcheck.open(path)
    assert d.kd_debugger_data is None  # still encoded
    assert d.decode_kd_debugger_data(1, 2, 3) is None  # wrong keys
    kd = d.decode_kd_debugger_data(*keys)
    assert kd["KernBase"] == 0xFFFFF800_5A000000 and kd["PteBase"] == 0xFFFFF680_00000000
    assert d.kd_debugger_data is kd
