"""TPI / IPI type records as a lazy TypeSource.

A record is decoded only when asked for: the first access builds an offset
index (one pass over the record lengths), and decoded types are cached by
type index. Forward references are resolved to their definition through a
name map built on first need.
"""

from __future__ import annotations

import struct

from bugcheck.errors import BadFileError
from bugcheck.symbols.types import Kind, Member, Type, TypeRef

from . import leaves as L

TPI_HEADER = struct.Struct("<IIIIIHHIIiIiIiI")
MAX_TYPES = 4_000_000
MAX_NAME_DEPTH = 24
_ERRORS = (struct.error, IndexError, ValueError, OverflowError, RecursionError)


class TypeStream:
    """Implements the TypeSource protocol (keys are integer type indices)."""

    def __init__(self, pdb, stream: int, pointer_size: int = 8):
        self._pdb = pdb
        self._stream = stream
        self.pointer_size = pointer_size
        self._loaded = False
        self._cache: dict[int, Type] = {}
        self._names: dict[int, str] = {}
        self._defs: dict[str, int] | None = None
        self._by_name: dict[str, int] | None = None
        self.begin = 0x1000
        self.end = 0x1000

    # --- stream access -------------------------------------------------------
    def _bad(self, problem: str) -> BadFileError:
        return BadFileError(self._pdb.path, problem)

    def _load(self) -> None:
        if self._loaded:
            return
        msf = self._pdb.msf
        data = msf.stream(self._stream) if msf.has_stream(self._stream) else b""
        self._data = data
        self._offsets: list[int] = []
        if len(data) >= TPI_HEADER.size:
            version, hsize, begin, end, rbytes = struct.unpack_from("<5I", data, 0)
            if hsize < TPI_HEADER.size or hsize > len(data):
                raise self._bad(f"type stream {self._stream} has a bad header size")
            if not 0x1000 <= begin <= end or end - begin > MAX_TYPES:
                raise self._bad(f"type stream {self._stream} has a bad type index range")
            self.version = version
            self.begin, self.end = begin, end
            self._scan(hsize, min(len(data), hsize + rbytes))
        self._loaded = True

    def _scan(self, pos: int, limit: int) -> None:
        data = self._data
        offs = self._offsets
        want = self.end - self.begin
        unpack = struct.Struct("<H").unpack_from
        while len(offs) < want and pos + 4 <= limit:
            (ln,) = unpack(data, pos)
            if ln < 2 or pos + 2 + ln > limit:
                break
            offs.append(pos)
            pos += 2 + ln
        if len(offs) < want:
            # truncated: keep what is there, indices past it are reported as missing
            self.end = self.begin + len(offs)

    def record(self, ti: int) -> tuple[int, bytes]:
        """(leaf kind, record bytes including the 4-byte prefix) for a type index."""
        self._load()
        if not self.begin <= ti < self.end:
            raise KeyError(ti)
        off = self._offsets[ti - self.begin]
        (ln, leaf) = struct.unpack_from("<HH", self._data, off)
        return leaf, self._data[off : off + 2 + ln]

    def __len__(self) -> int:
        self._load()
        return self.end - self.begin

    def indices(self) -> range:
        self._load()
        return range(self.begin, self.end)

    # --- names ---------------------------------------------------------------
    def _build_name_maps(self) -> None:
        if self._defs is not None:
            return
        self._load()
        defs: dict[str, int] = {}
        by_name: dict[str, int] = {}
        fwd: dict[str, int] = {}
        data = self._data
        for i, off in enumerate(self._offsets):
            (leaf,) = struct.unpack_from("<H", data, off + 2)
            if leaf not in L.UDT_LEAVES:
                continue
            try:
                udt = L.parse_udt(leaf, data[off + 4 : off + 2 + struct.unpack_from("<H", data, off)[0]])
            except _ERRORS:
                continue
            ti = self.begin + i
            if udt.forward:
                fwd.setdefault(udt.name, ti)
                continue
            defs.setdefault(udt.unique or udt.name, ti)
            defs.setdefault("\0" + udt.name, ti)
            by_name.setdefault(udt.name, ti)
        for name, ti in fwd.items():
            by_name.setdefault(name, ti)
        self._defs, self._by_name = defs, by_name

    def definition_of(self, ti: int) -> int:
        """The type index of the definition of a forward reference (itself when none)."""
        leaf, rec = self.record(ti)
        if leaf not in L.UDT_LEAVES:
            return ti
        udt = L.parse_udt(leaf, rec[4:])
        if not udt.forward:
            return ti
        self._build_name_maps()
        if udt.unique:
            d = self._defs.get(udt.unique)
            if d is not None:
                return d
        return self._defs.get("\0" + udt.name, ti)

    def type_names(self) -> list[str]:
        self._build_name_maps()
        return sorted(self._by_name)

    def find_type(self, name: str) -> Type | None:
        self._build_name_maps()
        ti = self._by_name.get(name)
        if ti is None:
            return None
        return self.type_by_key(ti)

    def type_name(self, ti: int, depth: int = 0) -> str:
        """The WinDbg display name of a type without decoding its members."""
        if ti < 0x1000:
            return L.simple_name(ti, self.pointer_size)
        cached = self._names.get(ti)
        if cached is not None:
            return cached
        if depth > MAX_NAME_DEPTH:
            return "<recursive>"
        try:
            leaf, rec = self.record(ti)
        except KeyError:
            return f"<type {ti:#x}>"
        body = rec[4:]
        if leaf in (L.LF_MODIFIER,):
            (under,) = struct.unpack_from("<I", body, 0)
            name = self.type_name(under, depth + 1)
        elif leaf == L.LF_POINTER:
            p = L.parse_pointer(body, self.pointer_size)
            name = f"Ptr{p.size * 8} {self.type_name(p.target, depth + 1)}"
        elif leaf in (L.LF_ARRAY, L.LF_ARRAY_ST):
            a = L.parse_array(leaf, body)
            esize = self._size_of(a.element, depth + 1)
            count = a.size // esize if esize else 0
            name = f"[{count}] {self.type_name(a.element, depth + 1)}"
        elif leaf in L.UDT_LEAVES:
            name = L.parse_udt(leaf, body).name
        elif leaf == L.LF_BITFIELD:
            (under,) = struct.unpack_from("<I", body, 0)
            name = self.type_name(under, depth + 1)
        elif leaf in (L.LF_PROCEDURE, L.LF_MFUNCTION):
            name = self.c_name(L.parse_procedure(leaf, body)[0], depth + 1)
        else:
            name = f"<leaf {leaf:#x}>"
        self._names[ti] = name
        return name

    def c_name(self, ti: int, depth: int = 0) -> str:
        """C spelling of a type (a function type is named after its return type, as WinDbg shows it)."""
        if ti < 0x1000:
            return L.simple_c_name(ti)
        if depth > MAX_NAME_DEPTH:
            return "<recursive>"
        try:
            leaf, rec = self.record(ti)
        except KeyError:
            return f"<type {ti:#x}>"
        body = rec[4:]
        if leaf == L.LF_MODIFIER:
            return self.c_name(struct.unpack_from("<I", body, 0)[0], depth + 1)
        if leaf == L.LF_POINTER:
            return self.c_name(struct.unpack_from("<I", body, 0)[0], depth + 1) + " *"
        if leaf in L.UDT_LEAVES:
            return L.parse_udt(leaf, body).name
        return self.type_name(ti, depth + 1)

    def _size_of(self, ti: int, depth: int = 0) -> int:
        if depth > MAX_NAME_DEPTH:
            return 0
        if ti < 0x1000:
            return L.simple_size(ti, self.pointer_size)
        try:
            return self.type_by_key(ti).size
        except KeyError:
            return 0

    # --- decoding ------------------------------------------------------------
    def type_by_key(self, key: object) -> Type:
        ti = int(key)  # type: ignore[arg-type]
        t = self._cache.get(ti)
        if t is not None:
            return t
        try:
            t = self._decode(ti)
        except BadFileError:
            raise
        except KeyError as e:
            raise self._bad(f"type record {ti:#x} refers to missing type {e}") from None
        except _ERRORS as e:
            raise self._bad(f"corrupt type record {ti:#x} ({type(e).__name__})") from None
        self._cache[ti] = t
        return t

    def ref(self, ti: int) -> TypeRef | Type:
        if ti < 0x1000:
            return L.simple_type(ti, self.pointer_size, self)
        return TypeRef(self, ti)

    def _decode(self, ti: int) -> Type:
        if ti < 0x1000:
            return L.simple_type(ti, self.pointer_size, self)
        leaf, rec = self.record(ti)
        body = rec[4:]
        if leaf == L.LF_MODIFIER or leaf == L.LF_BITFIELD:
            (under,) = struct.unpack_from("<I", body, 0)
            if under == ti:
                raise ValueError("self-referencing modifier")
            return self.type_by_key(under)
        if leaf == L.LF_POINTER:
            p = L.parse_pointer(body, self.pointer_size)
            return Type(Kind.POINTER, self.type_name(ti), p.size, target=self.ref(p.target))
        if leaf in (L.LF_ARRAY, L.LF_ARRAY_ST):
            a = L.parse_array(leaf, body)
            esize = self._size_of(a.element)
            count = a.size // esize if esize else 0
            return Type(Kind.ARRAY, self.type_name(ti), a.size, target=self.ref(a.element), count=count)
        if leaf in L.UDT_LEAVES:
            udt = L.parse_udt(leaf, body)
            if udt.forward:
                d = self.definition_of(ti)
                if d != ti:
                    return self.type_by_key(d)
                kind = L.udt_kind(leaf)
                return Type(kind, udt.name, 0, incomplete=True)
            if udt.kind == "enum":
                enumerators: dict[int, str] = {}
                under = self.ref(udt.underlying)
                size = self._size_of(udt.underlying)
                base = under.resolve() if isinstance(under, TypeRef) else under
                # values are stored with whatever numeric leaf fits (clang writes -1 as LF_ULONG):
                # read them in the underlying type's width and signedness
                bits = 8 * size if 0 < size <= 8 else 64
                for f in self._fields(udt.fields):
                    if f.kind == "enumerate":
                        v = f.value & ((1 << bits) - 1)
                        if base.signed and v >> (bits - 1):
                            v -= 1 << bits
                        enumerators.setdefault(v, f.name)
                return Type(Kind.ENUM, udt.name, size, target=under, enumerators=enumerators)
            members = []
            for f in self._fields(udt.fields):
                if f.kind == "member":
                    members.append(self._member(f))
                elif f.kind == "base":
                    members.append(Member(self.type_name(f.type), f.offset, self.ref(f.type)))
                elif f.kind == "vfunctab":
                    members.append(Member("__VFN_table", 0, self.ref(f.type)))
            return Type(L.udt_kind(leaf), udt.name, udt.size, members=members)
        if leaf in (L.LF_PROCEDURE, L.LF_MFUNCTION):
            ret, arglist = L.parse_procedure(leaf, body)
            args = []
            if arglist >= 0x1000:
                aleaf, arec = self.record(arglist)
                if aleaf == L.LF_ARGLIST:
                    (n,) = struct.unpack_from("<I", arec, 4)
                    n = min(n, (len(arec) - 8) // 4)
                    args = [self.ref(a) for a in struct.unpack_from(f"<{n}I", arec, 8)]
            return Type(Kind.FUNCTION, self.type_name(ti), 0, target=self.ref(ret), arguments=args)
        return Type(Kind.VOID, f"<leaf {leaf:#x}>", 0, incomplete=True)

    def _member(self, f: L.Field) -> Member:
        ti = f.type
        if ti >= 0x1000:
            leaf, rec = self.record(ti)
            if leaf == L.LF_BITFIELD:
                under, length, pos = struct.unpack_from("<IBB", rec, 4)
                return Member(f.name, f.offset, self.ref(under), bit_position=pos, bit_length=length)
        return Member(f.name, f.offset, self.ref(ti))

    def _fields(self, ti: int):
        """The field list records, following LF_INDEX continuations (each list visited once)."""
        seen = set()
        while ti and ti >= 0x1000 and ti not in seen and len(seen) < 4096:
            seen.add(ti)
            leaf, rec = self.record(ti)
            if leaf != L.LF_FIELDLIST:
                return
            nxt = 0
            for f in L.parse_fieldlist(rec[4:]):
                if f.kind == "index":
                    nxt = f.type
                else:
                    yield f
            ti = nxt

    def layout(self, ti: int) -> list[tuple[str, int, int | None, int | None]]:
        """(name, offset, bit position, bit length) of every data member: what tests compare."""
        t = self.type_by_key(ti)
        return [(m.name, m.offset, m.bit_position, m.bit_length) for m in t.members]
