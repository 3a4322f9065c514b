"""Typed views and bounded list walking over hand-built memory and types."""

import struct

import pytest

from bugcheck.errors import MemoryNotPresent
from bugcheck.kernel.typed import StructView, Types, walk_list
from bugcheck.memory.base import AddressSpace
from bugcheck.symbols.types import Kind, Member, Type

U4 = Type(Kind.BASE, "Uint4B", 4)
I4 = Type(Kind.BASE, "Int4B", 4, signed=True)
U8 = Type(Kind.BASE, "Uint8B", 8)
LE = Type(Kind.STRUCT, "_LIST_ENTRY", 16)
LE.members = [
    Member("Flink", 0, Type(Kind.POINTER, "Ptr64", 8, target=LE)),
    Member("Blink", 8, Type(Kind.POINTER, "Ptr64", 8, target=LE)),
]
REC = Type(
    Kind.STRUCT,
    "_REC",
    0x30,
    members=[
        Member("Id", 0, U4),
        Member("Neg", 4, I4),
        Member("Flags", 8, U4, bit_position=3, bit_length=2),
        Member("Links", 0x10, LE),
        Member("Value", 0x20, U8),
    ],
)


class _Types:
    def find_type(self, name):
        return {"_REC": REC, "_LIST_ENTRY": LE}.get(name)


class _Mem(AddressSpace):
    def __init__(self, size=0x1000):
        self.buf = bytearray(size)

    def read_chunks(self, address, size):
        if address + size <= len(self.buf):
            yield address, bytes(self.buf[address : address + size]), size
        else:
            ok = max(0, len(self.buf) - address)
            if ok:
                yield address, bytes(self.buf[address : address + ok]), ok
            yield address + ok, None, size - ok


def _put(m, addr, fmt, *v):
    struct.pack_into(fmt, m.buf, addr, *v)


def test_fields_and_bitfields():
    m = _Mem()
    _put(m, 0x100, "<IiI", 7, -5, 0b11000)
    _put(m, 0x120, "<Q", 0x1122334455667788)
    v = StructView(m, 0x100, REC, Types(_Types()))
    assert v.field("Id") == 7
    assert v.field("Neg") == -5
    assert v.field("Flags") == 3
    assert v.field("Value") == 0x1122334455667788
    assert v.address_of("Links.Blink") == 0x118
    assert v.field_or("Nope", "x") == "x"


def _ring(m, head, nodes):
    chain = [head] + [n + 0x10 for n in nodes] + [head]
    for a, b in zip(chain, chain[1:]):
        _put(m, a, "<Q", b)


def test_walk_list_terminates_on_cycles_and_holes():
    m = _Mem()
    _ring(m, 0x800, [0x100, 0x200, 0x300])
    assert walk_list(m, 0x800, 0x10).entries == [0x100, 0x200, 0x300]
    # a loop that never returns to the head
    _put(m, 0x310, "<Q", 0x210)
    w = walk_list(m, 0x800, 0x10)
    assert w.entries == [0x100, 0x200, 0x300] and "loops" in w.warning
    # a link into memory the dump lacks
    _put(m, 0x310, "<Q", 0x5000)
    w = walk_list(m, 0x800, 0x10)
    assert w.entries[-1] == 0x5000 - 0x10 and "not in the dump" in w.warning
    # a bound on length
    _ring(m, 0x800, [0x100, 0x200, 0x300])
    assert "more than 2" in walk_list(m, 0x800, 0x10, limit=2).warning


def test_absent_memory_raises_typed_error():
    v = StructView(_Mem(0x10), 0x8, REC, Types(_Types()))
    with pytest.raises(MemoryNotPresent):
        v.field("Value")
