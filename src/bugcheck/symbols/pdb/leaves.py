"""CodeView leaf records: numeric leaves, simple type indices, UDT/field-list parsing."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bugcheck.symbols.types import Kind, Type

LF_MODIFIER, LF_POINTER, LF_ARRAY_ST = 0x1001, 0x1002, 0x1003
LF_CLASS_ST, LF_STRUCTURE_ST, LF_UNION_ST, LF_ENUM_ST = 0x1004, 0x1005, 0x1006, 0x1007
LF_PROCEDURE, LF_MFUNCTION = 0x1008, 0x1009
LF_ARGLIST, LF_FIELDLIST, LF_BITFIELD, LF_METHODLIST = 0x1201, 0x1203, 0x1205, 0x1206
LF_BCLASS, LF_VBCLASS, LF_IVBCLASS, LF_FRIENDFCN_ST, LF_INDEX = 0x1400, 0x1401, 0x1402, 0x1403, 0x1404
LF_MEMBER_ST, LF_STMEMBER_ST, LF_METHOD_ST, LF_NESTTYPE_ST = 0x1405, 0x1406, 0x1407, 0x1408
LF_VFUNCTAB, LF_FRIENDCLS, LF_ONEMETHOD_ST, LF_VFUNCOFF, LF_NESTTYPEEX_ST = (
    0x1409,
    0x140A,
    0x140B,
    0x140C,
    0x140D,
)
LF_ENUMERATE_ST = 0x0403
LF_ENUMERATE, LF_ARRAY, LF_CLASS, LF_STRUCTURE, LF_UNION, LF_ENUM = (
    0x1502,
    0x1503,
    0x1504,
    0x1505,
    0x1506,
    0x1507,
)
LF_FRIENDFCN, LF_MEMBER, LF_STMEMBER, LF_METHOD, LF_NESTTYPE = 0x150C, 0x150D, 0x150E, 0x150F, 0x1510
LF_ONEMETHOD, LF_NESTTYPEEX, LF_INTERFACE = 0x1511, 0x1512, 0x1519

UDT_LEAVES = frozenset(
    (
        LF_CLASS,
        LF_STRUCTURE,
        LF_UNION,
        LF_ENUM,
        LF_INTERFACE,
        LF_CLASS_ST,
        LF_STRUCTURE_ST,
        LF_UNION_ST,
        LF_ENUM_ST,
    )
)
_ST_LEAVES = frozenset((LF_CLASS_ST, LF_STRUCTURE_ST, LF_UNION_ST, LF_ENUM_ST, LF_ARRAY_ST))

PROP_FWDREF = 0x80
PROP_UNIQUE = 0x200

_NUMERIC = {
    0x8000: ("<b", 1),
    0x8001: ("<h", 2),
    0x8002: ("<H", 2),
    0x8003: ("<i", 4),
    0x8004: ("<I", 4),
    0x8009: ("<q", 8),
    0x800A: ("<Q", 8),
}
_NUMERIC_SKIP = {0x8005: 4, 0x8006: 8, 0x8007: 10, 0x8008: 16, 0x800B: 6, 0x800C: 8, 0x800D: 16, 0x800E: 20,
                 0x800F: 32, 0x8017: 16, 0x8018: 16, 0x8019: 16, 0x801A: 8, 0x801C: 2}  # fmt: skip


def numeric(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, position after) of a numeric leaf; non-integer values read as 0."""
    (v,) = struct.unpack_from("<H", buf, pos)
    pos += 2
    if v < 0x8000:
        return v, pos
    if v in _NUMERIC:
        fmt, n = _NUMERIC[v]
        return struct.unpack_from(fmt, buf, pos)[0], pos + n
    if v in (0x8017, 0x8018):  # (u)octword
        lo, hi = struct.unpack_from("<Qq" if v == 0x8017 else "<QQ", buf, pos)
        return lo | (hi << 64), pos + 16
    if v in _NUMERIC_SKIP:
        return 0, pos + _NUMERIC_SKIP[v]
    if v in (0x8010, 0x801B):  # varstring / utf8 string
        (n,) = struct.unpack_from("<H", buf, pos)
        return 0, pos + 2 + n
    raise ValueError(f"unknown numeric leaf {v:#x}")


def cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.find(b"\0", pos)
    if end < 0:
        end = len(buf)
    return bytes(buf[pos:end]).decode("utf-8", "replace"), end + 1


def pstr(buf: bytes, pos: int) -> tuple[str, int]:
    n = buf[pos]
    return bytes(buf[pos + 1 : pos + 1 + n]).decode("utf-8", "replace"), pos + 1 + n


# --- simple (primitive) type indices ----------------------------------------------

# low byte -> (WinDbg name, size, signed, floating)
_SIMPLE = {
    0x03: ("Void", 0, False, False),
    0x08: ("Int4B", 4, True, False),  # HRESULT: dt shows the integer
    0x10: ("Char", 1, True, False),
    0x20: ("UChar", 1, False, False),
    0x70: ("Char", 1, True, False),
    0x71: ("Wchar", 2, False, False),
    0x7A: ("Wchar", 2, False, False),
    0x7B: ("Uint4B", 4, False, False),
    0x7C: ("UChar", 1, False, False),
    0x68: ("Char", 1, True, False),
    0x69: ("UChar", 1, False, False),
    0x11: ("Int2B", 2, True, False),
    0x21: ("Uint2B", 2, False, False),
    0x72: ("Int2B", 2, True, False),
    0x73: ("Uint2B", 2, False, False),
    0x12: ("Int4B", 4, True, False),
    0x22: ("Uint4B", 4, False, False),
    0x74: ("Int4B", 4, True, False),
    0x75: ("Uint4B", 4, False, False),
    0x13: ("Int8B", 8, True, False),
    0x23: ("Uint8B", 8, False, False),
    0x76: ("Int8B", 8, True, False),
    0x77: ("Uint8B", 8, False, False),
    0x14: ("Int16B", 16, True, False),
    0x24: ("Uint16B", 16, False, False),
    0x78: ("Int16B", 16, True, False),
    0x79: ("Uint16B", 16, False, False),
    0x30: ("Bool", 1, False, False),
    0x31: ("Bool", 2, False, False),
    0x32: ("Bool", 4, False, False),
    0x33: ("Bool", 8, False, False),
    0x40: ("Float", 4, True, True),
    0x41: ("Double", 8, True, True),
    0x42: ("Float10", 10, True, True),
    0x43: ("Float16", 16, True, True),
    0x46: ("Float2", 2, True, True),
}
# low byte -> C spelling, for function types (WinDbg prints a function pointer as ``Ptr64     long``)
_C_NAMES = {
    0x03: "void", 0x08: "HRESULT", 0x10: "char", 0x20: "unsigned char", 0x70: "char", 0x71: "wchar_t",
    0x7A: "char16_t", 0x7B: "char32_t", 0x7C: "char8_t", 0x68: "char", 0x69: "unsigned char", 0x11: "short",
    0x21: "unsigned short", 0x72: "short", 0x73: "unsigned short", 0x12: "long", 0x22: "unsigned long",
    0x74: "int", 0x75: "unsigned int", 0x13: "int64", 0x23: "unsigned int64", 0x76: "int64",
    0x77: "unsigned int64", 0x30: "bool", 0x40: "float", 0x41: "double",
}  # fmt: skip


def simple_c_name(ti: int) -> str:
    base = _C_NAMES.get(ti & 0xFF, "void")
    return base + " *" if (ti >> 8) & 0xF else base


_PTR_MODE_SIZE = {1: 2, 2: 4, 3: 4, 4: 4, 5: 6, 6: 8, 7: 16}


def simple_base(ti: int) -> Type:
    name, size, signed, flt = _SIMPLE.get(ti & 0xFF, (f"<simple {ti & 0xFF:#x}>", 0, False, False))
    if ti & 0xFF in (0x00, 0x03):
        return Type(Kind.VOID, "Void", 0)
    return Type(Kind.BASE, name, size, signed=signed, floating=flt)


def simple_size(ti: int, pointer_size: int) -> int:
    mode = (ti >> 8) & 0xF
    if mode:
        return _PTR_MODE_SIZE.get(mode, pointer_size)
    return _SIMPLE.get(ti & 0xFF, ("", 0, False, False))[1]


def simple_name(ti: int, pointer_size: int) -> str:
    mode = (ti >> 8) & 0xF
    base = simple_base(ti & 0xFF).name
    if mode:
        return f"Ptr{_PTR_MODE_SIZE.get(mode, pointer_size) * 8} {base}"
    return base


def simple_type(ti: int, pointer_size: int, source=None) -> Type:
    mode = (ti >> 8) & 0xF
    if mode:
        size = _PTR_MODE_SIZE.get(mode, pointer_size)
        return Type(Kind.POINTER, simple_name(ti, pointer_size), size, target=simple_base(ti & 0xFF))
    return simple_base(ti)


# --- records -------------------------------------------------------------------------


@dataclass
class Pointer:
    target: int
    size: int
    mode: int


def parse_pointer(body: bytes, pointer_size: int) -> Pointer:
    target, attr = struct.unpack_from("<II", body, 0)
    ptrtype = attr & 0x1F
    mode = (attr >> 5) & 7
    size = (attr >> 13) & 0x3F
    if not size:
        size = {0x0A: 4, 0x0C: 8, 0x0D: 16}.get(ptrtype, pointer_size)
    return Pointer(target, size, mode)


@dataclass
class ArrayRec:
    element: int
    index: int
    size: int
    name: str


def parse_array(leaf: int, body: bytes) -> ArrayRec:
    elem, idx = struct.unpack_from("<II", body, 0)
    size, pos = numeric(body, 8)
    name = pstr(body, pos)[0] if leaf == LF_ARRAY_ST else cstr(body, pos)[0]
    return ArrayRec(elem, idx, size, name)


@dataclass
class Udt:
    kind: str  # struct | class | union | interface | enum
    count: int
    prop: int
    fields: int
    size: int
    name: str
    unique: str
    underlying: int = 0

    @property
    def forward(self) -> bool:
        return bool(self.prop & PROP_FWDREF)


_UDT_KIND = {
    LF_CLASS: "class", LF_CLASS_ST: "class", LF_STRUCTURE: "struct", LF_STRUCTURE_ST: "struct",
    LF_INTERFACE: "interface", LF_UNION: "union", LF_UNION_ST: "union", LF_ENUM: "enum", LF_ENUM_ST: "enum",
}  # fmt: skip


def udt_kind(leaf: int) -> Kind:
    k = _UDT_KIND[leaf]
    return {"class": Kind.CLASS, "struct": Kind.STRUCT, "interface": Kind.STRUCT, "union": Kind.UNION}.get(
        k, Kind.ENUM
    )


def parse_udt(leaf: int, body: bytes) -> Udt:
    kind = _UDT_KIND[leaf]
    st = leaf in _ST_LEAVES
    read = pstr if st else cstr
    if kind == "enum":
        count, prop, under, fields = struct.unpack_from("<HHII", body, 0)
        name, pos = read(body, 12)
        size = 0
    elif kind == "union":
        count, prop, fields = struct.unpack_from("<HHI", body, 0)
        size, pos = numeric(body, 8)
        name, pos = read(body, pos)
        under = 0
    else:
        count, prop, fields, _derived, _vshape = struct.unpack_from("<HHIII", body, 0)
        size, pos = numeric(body, 16)
        name, pos = read(body, pos)
        under = 0
    unique = ""
    if prop & PROP_UNIQUE and not st and pos < len(body):
        unique = cstr(body, pos)[0]
    return Udt(kind, count, prop, fields, size, name, unique, under)


def parse_procedure(leaf: int, body: bytes) -> tuple[int, int]:
    if leaf == LF_PROCEDURE:
        ret, _cc, _attr, _n, args = struct.unpack_from("<IBBHI", body, 0)
    else:
        ret, _cls, _this, _cc, _attr, _n, args = struct.unpack_from("<IIIBBHI", body, 0)
    return ret, args


@dataclass
class Field:
    kind: str
    name: str = ""
    type: int = 0
    offset: int = 0
    value: int = 0


def parse_fieldlist(body: bytes):
    """Yield the sub-records of one LF_FIELDLIST (LF_INDEX yields kind 'index')."""
    pos = 0
    n = len(body)
    guard = 0
    while pos + 2 <= n and guard < 100_000:
        guard += 1
        b = body[pos]
        if b >= 0xF0:  # LF_PAD: skip to the next record
            pos += b & 0x0F if b & 0x0F else 1
            continue
        (leaf,) = struct.unpack_from("<H", body, pos)
        p = pos + 2
        if leaf == LF_MEMBER or leaf == LF_MEMBER_ST:
            _attr, ti = struct.unpack_from("<HI", body, p)
            off, p = numeric(body, p + 6)
            name, p = (pstr if leaf == LF_MEMBER_ST else cstr)(body, p)
            yield Field("member", name, ti, off)
        elif leaf == LF_ENUMERATE or leaf == LF_ENUMERATE_ST:
            val, p = numeric(body, p + 2)
            name, p = (pstr if leaf == LF_ENUMERATE_ST else cstr)(body, p)
            yield Field("enumerate", name, 0, 0, val)
        elif leaf == LF_BCLASS:
            _attr, ti = struct.unpack_from("<HI", body, p)
            off, p = numeric(body, p + 6)
            yield Field("base", "", ti, off)
        elif leaf in (LF_VBCLASS, LF_IVBCLASS):
            _attr, ti, _vbp = struct.unpack_from("<HII", body, p)
            _, p = numeric(body, p + 10)
            _, p = numeric(body, p)
            yield Field("vbase", "", ti)
        elif leaf == LF_INDEX:
            (ti,) = struct.unpack_from("<I", body, p + 2)
            p += 6
            yield Field("index", "", ti)
        elif leaf == LF_VFUNCTAB:
            (ti,) = struct.unpack_from("<I", body, p + 2)
            p += 6
            yield Field("vfunctab", "", ti)
        elif leaf == LF_FRIENDCLS:
            p += 6
        elif leaf == LF_VFUNCOFF:
            p += 10
        elif leaf in (LF_STMEMBER, LF_STMEMBER_ST):
            _attr, ti = struct.unpack_from("<HI", body, p)
            name, p = (pstr if leaf == LF_STMEMBER_ST else cstr)(body, p + 6)
            yield Field("static", name, ti)
        elif leaf in (LF_METHOD, LF_METHOD_ST):
            _cnt, ti = struct.unpack_from("<HI", body, p)
            name, p = (pstr if leaf == LF_METHOD_ST else cstr)(body, p + 6)
        elif leaf in (LF_NESTTYPE, LF_NESTTYPE_ST, LF_NESTTYPEEX, LF_NESTTYPEEX_ST):
            _pad, ti = struct.unpack_from("<HI", body, p)
            st = leaf in (LF_NESTTYPE_ST, LF_NESTTYPEEX_ST)
            name, p = (pstr if st else cstr)(body, p + 6)
            yield Field("nested", name, ti)
        elif leaf in (LF_FRIENDFCN, LF_FRIENDFCN_ST):
            _pad, ti = struct.unpack_from("<HI", body, p)
            name, p = (pstr if leaf == LF_FRIENDFCN_ST else cstr)(body, p + 6)
        elif leaf in (LF_ONEMETHOD, LF_ONEMETHOD_ST):
            attr, ti = struct.unpack_from("<HI", body, p)
            p += 6
            if (attr >> 2) & 7 in (4, 6):  # introducing virtual: vtable offset follows
                p += 4
            name, p = (pstr if leaf == LF_ONEMETHOD_ST else cstr)(body, p)
        else:
            raise ValueError(f"unknown field list leaf {leaf:#x}")
        pos = p
