"""Field accessors kept per type and path answer as a fresh member lookup does, every time."""

import struct

import pytest

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.kernel.typed import StructView, Types
from bugcheck.memory.base import AddressSpace
from bugcheck.symbols.types import Kind, Member, Type

U2 = Type(Kind.BASE, "Uint2B", 2)
I2 = Type(Kind.BASE, "Int2B", 2, signed=True)
I8 = Type(Kind.BASE, "Int8B", 8, signed=True)
INNER = Type(Kind.STRUCT, "_INNER", 8, members=[Member("Low", 0, U2), Member("Neg", 2, I2)])
OBJ = Type(
    Kind.STRUCT,
    "_OBJ",
    0x40,
    members=[
        Member("Inner", 0, INNER),
        Member("Bits", 4, U2, bit_position=12, bit_length=4),
        Member("Big", 8, I8),
        Member("Ptr", 0x10, Type(Kind.POINTER, "Ptr64", 8, target=INNER)),
        Member("Late", 0x38, I8),
    ],
)


class _Mem(AddressSpace):
    """Bytes up to ``size``; nothing after (an object can straddle the end)."""

    def __init__(self, size):
        self.buf = bytearray(size)

    def read_chunks(self, address, size):
        ok = max(0, min(size, len(self.buf) - address))
        if ok:
            yield address, bytes(self.buf[address : address + ok]), ok
        if ok < size:
            yield address + ok, None, size - ok


def _types():
    class Src:
        def find_type(self, name):
            return {"_OBJ": OBJ, "_INNER": INNER}.get(name)

    return Types(Src())


@pytest.mark.parametrize("size", [0x1000, 0x130])  # whole object present / its last field absent
def test_field_or_matches_field_on_every_read(size):
    m = _Mem(size)
    struct.pack_into("<HhHxxq", m.buf, 0x100, 0xBEEF, -3, 0xA123, -(1 << 40))
    struct.pack_into("<Q", m.buf, 0x110, 0xFFFF_8000_0000_1234)
    if size > 0x138:
        struct.pack_into("<q", m.buf, 0x138, -1)
    types = _types()
    for _ in range(2):  # first round builds the accessors, second uses them
        v = StructView(m, 0x100, OBJ, types)
        assert v.field_or("Inner.Low") == 0xBEEF
        assert v.field_or("Inner.Neg") == -3
        assert v.field_or("Bits") == 0xA
        assert v.field_or("Big") == -(1 << 40)
        assert v.field_or("Ptr") == 0xFFFF_8000_0000_1234  # pointers are never sign-extended
        assert v.field_or("Inner", "struct") == "struct"
        assert v.field_or("Missing.Path", 5) == 5
        with pytest.raises(KeyError):
            v.field("Missing.Path")
        with pytest.raises(BugcheckError):
            v.field("Inner")
        if size > 0x138:
            assert v.field("Late") == -1
        else:
            assert v.field_or("Late", "absent") == "absent"
            with pytest.raises(MemoryNotPresent):
                v.field("Late")
            assert v.field("Big") == -(1 << 40)  # present fields of a holed object still read
