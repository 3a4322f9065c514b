"""x64 UNWIND_INFO decoding and unwinding on hand-assembled unwind data (forms clang does not emit)."""

from __future__ import annotations

import struct

import pytest

from bugcheck.errors import BadFileError, MemoryNotPresent
from bugcheck.stack.unwind_x64 import UnwindError, virtual_unwind
from bugcheck.symbols.pe.image import PeImage
from bugcheck.symbols.pe.unwind import (
    UWOP_EPILOG,
    UWOP_PUSH_NONVOL,
    RuntimeFunction,
    UnwindFormatError,
    decode_unwind_info,
)

BASE = 0x140000000


def _info(version, flags, prolog, codes: list[tuple[int, int, int]], frame=0, tail=b"") -> bytes:
    """codes: one (byte0, op, info) tuple per 16-bit slot (operand slots too)."""
    raw = b"".join(bytes([off, op | (info << 4)]) for off, op, info in codes)
    if len(codes) % 2:
        raw += b"\0\0"
    return bytes([version | (flags << 3), prolog, len(codes), frame]) + raw + tail


def _reader(blob: bytes, at: int = 0x1000):
    def read(rva, n):
        if rva < at or rva + n > at + len(blob):
            raise BadFileError("blob", f"RVA {rva:#x} outside")
        return blob[rva - at : rva - at + n]

    return read


def test_version2_epilog_codes_are_decoded_and_skipped():
    # push rbx (offset 1); sub rsp, 0x20 (offset 5); v2 epilog codes: size 6 at end, one more 0x30 back.
    blob = _info(
        2, 0, 5, [(6, UWOP_EPILOG, 1), (0, 0, 0), (0x30, UWOP_EPILOG, 0), (0, 0, 0), (5, 2, 3), (1, 0, 3)]
    )
    ui = decode_unwind_info(0x1000, _reader(blob))
    assert ui.version == 2 and ui.epilog_size == 6 and ui.epilog_offsets == [6, 0x30]
    assert [c.name for c in ui.codes] == ["EPILOG", "EPILOG", "ALLOC_SMALL", "PUSH_NONVOL"]
    stack = {0x8000 + 0x20: 0xB0B, 0x8000 + 0x28: 0xCA11E4}
    func = RuntimeFunction(0x2000, 0x2100, 0x1000)

    def read(va, n):
        return struct.pack("<Q", stack[va])

    code = b"\x90" * 16  # body: not an epilog

    res = virtual_unwind(
        {"rip": BASE + 0x2010, "rsp": 0x8000, "rbx": 1},
        read,
        lambda a: (BASE, func, ui),
        read_code=lambda a, n: code[:n],
    )
    assert (res.context["rip"], res.context["rsp"], res.context["rbx"]) == (0xCA11E4, 0x8030, 0xB0B)
    assert res.method == "pdata"


def test_prolog_offsets_gate_codes():
    blob = _info(1, 0, 5, [(5, 2, 3), (1, UWOP_PUSH_NONVOL, 3)])
    ui = decode_unwind_info(0x1000, _reader(blob))
    func = RuntimeFunction(0x2000, 0x2100, 0x1000)
    mem = {0x8000: 0xAAAA, 0x8008: 0xBBBB}

    def read(va, n):
        return struct.pack("<Q", mem[va])

    # After push rbx only (rip at offset 1): rsp points at saved rbx, return address above it.
    res = virtual_unwind({"rip": BASE + 0x2001, "rsp": 0x8000}, read, lambda a: (BASE, func, ui))
    assert (res.context["rbx"], res.context["rip"], res.context["rsp"]) == (0xAAAA, 0xBBBB, 0x8010)
    # At the first instruction: nothing executed.
    res = virtual_unwind({"rip": BASE + 0x2000, "rsp": 0x8008}, read, lambda a: (BASE, func, ui))
    assert (res.context["rip"], res.context["rsp"]) == (0xBBBB, 0x8010) and "rbx" not in res.restored


def test_bad_version_and_overrun_and_chain_loop():
    with pytest.raises(UnwindFormatError):
        decode_unwind_info(0x1000, _reader(_info(3, 0, 0, [])))
    with pytest.raises(UnwindFormatError):
        decode_unwind_info(0x1000, _reader(_info(1, 0, 4, [(4, 1, 1)])))  # ALLOC_LARGE needs 3 slots
    with pytest.raises(UnwindFormatError):
        decode_unwind_info(0x1000, _reader(_info(1, 0, 4, [(4, 12, 0)])))  # unknown op

    class Fake(PeImage):
        def __init__(self, blob):
            self.path = "fake.sys"
            self._blob = blob

        def read(self, rva, n):
            return _reader(self._blob)(rva, n)

    looped = _info(1, 4, 0, [], tail=struct.pack("<III", 0x2000, 0x2010, 0x1000))
    with pytest.raises(BadFileError, match="longer than"):
        Fake(looped).unwind_info(0x1000)


def test_missing_frame_register_and_absent_stack():
    # SET_FPREG with rbp, frame offset 0x10.
    blob = _info(1, 0, 4, [(4, 3, 0), (1, 0, 5)], frame=5 | (1 << 4))
    ui = decode_unwind_info(0x1000, _reader(blob))
    func = RuntimeFunction(0x2000, 0x2100, 0x1000)
    with pytest.raises(UnwindError):
        virtual_unwind({"rip": BASE + 0x2050, "rsp": 0x8000}, lambda a, n: bytes(n), lambda a: (BASE, func, ui),
                       read_code=lambda a, n: b"\x90" * n)  # fmt: skip

    def absent(va, n):
        raise MemoryNotPresent(va)

    with pytest.raises(MemoryNotPresent):
        virtual_unwind({"rip": BASE + 0x2050, "rsp": 0x8000, "rbp": 0x9010}, absent, lambda a: (BASE, func, ui),
                       read_code=lambda a, n: b"\x90" * n)  # fmt: skip
    # Code bytes absent: the epilog check is skipped, and said so.
    mem = {0x9000: 0x5555, 0x9008: 0x7777}
    res = virtual_unwind(
        {"rip": BASE + 0x2050, "rsp": 0x7000, "rbp": 0x9010},
        lambda va, n: struct.pack("<Q", mem[va]),
        lambda a: (BASE, func, ui),
        read_code=absent,
    )
    assert not res.epilog_checked
    assert (res.context["rbp"], res.context["rip"], res.context["rsp"]) == (0x5555, 0x7777, 0x9010)


def test_epilog_with_absent_stack_raises_instead_of_guessing():
    blob = _info(1, 0, 5, [(5, 2, 3), (1, UWOP_PUSH_NONVOL, 3)])
    ui = decode_unwind_info(0x1000, _reader(blob))
    func = RuntimeFunction(0x2000, 0x2100, 0x1000)
    epilog = bytes.fromhex("4883c420") + b"\x5b\xc3"  # add rsp, 20h; pop rbx; ret

    def absent(va, n):
        raise MemoryNotPresent(va)

    with pytest.raises(MemoryNotPresent):
        virtual_unwind({"rip": BASE + 0x2050, "rsp": 0x8000}, absent, lambda a: (BASE, func, ui),
                       read_code=lambda a, n: (epilog + bytes(64))[:n])  # fmt: skip
    mem = {0x8020: 0xB0B, 0x8028: 0x1234}
    res = virtual_unwind({"rip": BASE + 0x2050, "rsp": 0x8000}, lambda va, n: struct.pack("<Q", mem[va]),
                         lambda a: (BASE, func, ui), read_code=lambda a, n: (epilog + bytes(64))[:n])  # fmt: skip
    assert res.method == "epilog" and (res.context["rbx"], res.context["rip"], res.context["rsp"]) == (
        0xB0B, 0x1234, 0x8030)  # fmt: skip
