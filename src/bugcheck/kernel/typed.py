"""Typed views over dump memory: read kernel structures by field name.

A :class:`StructView` pairs an address with a :class:`~bugcheck.symbols.types.Type`
so code reads ``proc.field("UniqueProcessId")`` instead of hard-coding offsets;
layouts come from whatever type source is loaded (PDB or ISF). Reads of absent
memory raise :class:`~bugcheck.errors.MemoryNotPresent` like any other read.

:func:`walk_list` follows a ``LIST_ENTRY`` chain with a hard bound and cycle
detection, returning the entries found plus a warning instead of hanging on a
corrupt or looping list.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bugcheck.errors import BugcheckError, MemoryNotPresent, SymbolError
from bugcheck.memory.base import AddressSpace
from bugcheck.symbols.types import Kind, Type, TypeSource

#: no kernel list this program walks is expected to be longer than this
MAX_LIST_ENTRIES = 100_000
#: structures up to this size are read once and their fields served from that copy
SNAPSHOT_LIMIT = 0x10000
#: first item of the accessor keys kept in ``Type.path_cache`` (next to the plain path keys)
_ACCESSOR = "\0accessor"
_UNKNOWN = ("unknown member",)
_UNKNOWN_YET = ("not looked up",)
_NOT_SCALAR = ("not a scalar",)


class TypeNotFound(SymbolError):
    pass


class Types:
    """Kernel type lookups with a cache, over one TypeSource (nt's PDB or ISF table)."""

    def __init__(self, source: TypeSource | None, pointer_size: int = 8):
        self.source = source
        self.pointer_size = pointer_size
        self._cache: dict[str, Type | None] = {}

    def __bool__(self) -> bool:
        return self.source is not None

    def get(self, name: str) -> Type | None:
        if name not in self._cache:
            self._cache[name] = self.source.find_type(name) if self.source is not None else None
        return self._cache[name]

    def require(self, name: str) -> Type:
        t = self.get(name)
        if t is None:
            raise TypeNotFound(f"type {name} is not available (no kernel symbols loaded)")
        return t

    def offset(self, type_name: str, path: str) -> int:
        return self.require(type_name).field_offset(path)

    def has_field(self, type_name: str, path: str) -> bool:
        t = self.get(type_name)
        if t is None:
            return False
        try:
            t.field_offset(path)
            return True
        except KeyError:
            return False


def _unsigned(data: bytes) -> int:
    return int.from_bytes(data, "little")


def read_scalar(memory: AddressSpace, address: int, t: Type, pointer_size: int = 8) -> int:
    """Read a base, enum or pointer value of type ``t`` at ``address`` as an int."""
    if t.kind == Kind.POINTER:
        return _unsigned(memory.read(address, pointer_size))
    size = t.size or pointer_size
    if t.kind == Kind.ENUM and not size:
        size = 4
    raw = _unsigned(memory.read(address, size))
    if t.signed and raw >> (size * 8 - 1):
        raw -= 1 << (size * 8)
    return raw


@dataclass
class StructView:
    """An instance of a struct type at an address in some address space."""

    memory: AddressSpace
    address: int
    type: Type
    types: Types
    #: (bytes, holes) of the whole object, read on first field access (dump memory never changes)
    _snapshot: tuple | None = field(default=None, repr=False, compare=False)

    def _read(self, offset: int, size: int) -> bytes:
        """Bytes of the object at ``offset``, from the one-time snapshot when it covers them."""
        snap = self._snapshot
        if snap is None and 0 < self.type.size <= SNAPSHOT_LIMIT:
            snap = self._snapshot = self.memory.read_padded(self.address, self.type.size)
        if snap is not None and offset + size <= len(snap[0]):
            data, holes = snap
            lo, hi = self.address + offset, self.address + offset + size
            for start, length in holes:
                if start < hi and lo < start + length:
                    raise MemoryNotPresent(max(start, lo), self.memory.space)
            return data[offset : offset + size]
        return self.memory.read(self.address + offset, size)

    def offset(self, path: str) -> int:
        return self.type.field_offset(path)

    def address_of(self, path: str) -> int:
        return self.address + self.type.field_offset(path)

    def _member_type(self, path: str) -> tuple[int, Type, int | None, int | None]:
        cached = self.type.path_cache.get(path)
        if cached is not None:
            return cached
        resolved = self._resolve_path(path)
        self.type.path_cache[path] = resolved
        return resolved

    def _resolve_path(self, path: str) -> tuple[int, Type, int | None, int | None]:
        t = self.type
        off = 0
        bitpos = bitlen = None
        for part in path.split("."):
            m = t.member(part)
            if m is None:
                raise KeyError(f"{t.name} has no member {part}")
            off += m.offset
            bitpos, bitlen = m.bit_position, m.bit_length
            t = m.resolved_type()
        return off, t, bitpos, bitlen

    def has(self, path: str) -> bool:
        try:
            self._member_type(path)
            return True
        except KeyError:
            return False

    def _accessor(self, path: str):
        """(offset, size, bit shift, mask or None, sign bit or 0) for reading ``path`` as an
        integer, or ``_NOT_SCALAR``; kept on the type per pointer size (KeyError: no such member)."""
        ps = self.types.pointer_size
        key = (_ACCESSOR, path, ps)
        cache = self.type.path_cache
        acc = cache.get(key, _UNKNOWN_YET)
        if acc is _UNKNOWN:
            raise KeyError(f"{self.type.name} has no member {path}")
        if acc is not _UNKNOWN_YET:
            return acc
        try:
            off, t, bitpos, bitlen = self._member_type(path)
        except KeyError:
            cache[key] = _UNKNOWN
            raise
        if bitlen is not None:
            acc = (off, t.size or 4, bitpos or 0, (1 << bitlen) - 1, 0)
        elif t.kind in (Kind.STRUCT, Kind.UNION, Kind.CLASS, Kind.ARRAY):
            acc = _NOT_SCALAR
        else:
            size = ps if t.kind == Kind.POINTER else (t.size or (4 if t.kind == Kind.ENUM else ps))
            sign = 1 << (size * 8 - 1) if t.kind != Kind.POINTER and t.signed else 0
            acc = (off, size, 0, None, sign)
        cache[key] = acc
        return acc

    def field(self, path: str) -> int:
        """Integer value of a base/enum/pointer/bitfield member (dotted paths allowed)."""
        acc = self._accessor(path)
        if acc is _NOT_SCALAR:
            raise BugcheckError(f"{self.type.name}.{path} is not a scalar")
        return self._value(acc)

    def _value(self, acc) -> int:
        off, size, shift, mask, sign = acc
        snap = self._snapshot
        if snap is None and 0 < self.type.size <= SNAPSHOT_LIMIT:
            snap = self._snapshot = self.memory.read_padded(self.address, self.type.size)
        if snap is not None and not snap[1] and off + size <= len(snap[0]):
            raw = int.from_bytes(snap[0][off : off + size], "little")
        else:
            raw = int.from_bytes(self._read(off, size), "little")
        if mask is not None:
            return (raw >> shift) & mask
        if sign and raw & sign:
            raw -= sign << 1
        return raw

    def field_or(self, path: str, default=None):
        """Like :meth:`field`, but ``default`` when the member is unknown or its memory absent."""
        acc = self.type.path_cache.get((_ACCESSOR, path, self.types.pointer_size))
        if acc is None:
            try:
                acc = self._accessor(path)
            except KeyError:
                return default
        if acc is _UNKNOWN or acc is _NOT_SCALAR:
            return default
        snap = self._snapshot
        if snap is not None and not snap[1]:
            # the common case, inline: a field of an object already read whole without holes
            off, size, shift, mask, sign = acc
            data = snap[0]
            if off + size <= len(data):
                raw = int.from_bytes(data[off : off + size], "little")
                if mask is not None:
                    return (raw >> shift) & mask
                if sign and raw & sign:
                    raw -= sign << 1
                return raw
        try:
            return self._value(acc)
        except (KeyError, MemoryNotPresent, BugcheckError):
            return default

    def sub(self, path: str) -> StructView:
        """The embedded struct at a member path (``Pcb`` of an ``_EPROCESS``)."""
        off, t, _, _ = self._member_type(path)
        return StructView(self.memory, self.address + off, t, self.types)

    def pointer(self, path: str) -> int:
        return self.field(path)

    def bytes(self, path: str) -> bytes:
        off, t, _, _ = self._member_type(path)
        return self._read(off, t.size)

    def unicode_string(self, path: str, max_chars: int = 4096) -> str:
        """A ``_UNICODE_STRING`` member's text ('' when its buffer is absent)."""
        us = self.sub(path)
        try:
            length = us.field("Length")
            buf = us.field("Buffer")
            data = self.memory.read(buf, min(length, max_chars * 2))
        except (MemoryNotPresent, KeyError, BugcheckError):
            return ""
        return data.decode("utf-16-le", errors="replace")

    def ascii(self, path: str) -> str:
        raw = self.bytes(path)
        return raw.split(b"\0", 1)[0].decode("latin-1")


def view(memory: AddressSpace, address: int, type_name: str, types: Types) -> StructView:
    return StructView(memory, address, types.require(type_name), types)


@dataclass
class ListWalk:
    entries: list[int]
    warning: str | None = None


def walk_list(
    memory: AddressSpace,
    head: int,
    link_offset: int,
    pointer_size: int = 8,
    limit: int = MAX_LIST_ENTRIES,
) -> ListWalk:
    """Follow ``Flink`` from the list head at ``head``; return containing-record addresses.

    ``link_offset`` is the offset of the LIST_ENTRY inside each record. Stops
    with a warning on an unreadable link, a cycle that does not return to the
    head, or more than ``limit`` entries.
    """
    entries: list[int] = []
    seen: set[int] = {head}
    try:
        link = _unsigned(memory.read(head, pointer_size))
    except MemoryNotPresent as e:
        return ListWalk(entries, f"list head {head:#x} is not in the dump ({e.address:#x})")
    while link != head:
        if link == 0:
            return ListWalk(entries, f"list at {head:#x} ends in a null link")
        if link in seen:
            return ListWalk(entries, f"list at {head:#x} loops back to {link:#x}; stopped")
        if len(entries) >= limit:
            return ListWalk(entries, f"list at {head:#x} has more than {limit} entries; stopped")
        seen.add(link)
        entries.append(link - link_offset)
        try:
            link = _unsigned(memory.read(link, pointer_size))
        except MemoryNotPresent as e:
            return ListWalk(
                entries, f"list at {head:#x}: link at {link:#x} is not in the dump ({e.address:#x})"
            )
    return ListWalk(entries)
