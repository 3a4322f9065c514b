"""One type model for every symbol source.

PDB type records (TPI) and Volatility ISF tables both load into these classes,
so ``dt``, the kernel model and the analysis never know where a layout came
from. Types refer to each other by :class:`TypeRef`, resolved lazily through a
:class:`TypeSource`, so a 10 MB PDB does not materialize every record up front.

Conventions:
- ``Type.name`` is the name WinDbg shows (``_EPROCESS``, ``unsigned long``...).
- Base types use WinDbg's spellings: ``Void``, ``Char``, ``UChar``, ``Int2B``,
  ``Uint2B``, ``Int4B``, ``Uint4B``, ``Int8B``, ``Uint8B``, ``Float``, ``Double``,
  ``Wchar``, ``Bool``; ``Type.signed`` says how to decode them.
- Pointers have ``target``; arrays have ``target`` and ``count``; bitfields are
  members with ``bit_position``/``bit_length`` (not separate types).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Kind(StrEnum):
    BASE = "base"
    POINTER = "pointer"
    ARRAY = "array"
    STRUCT = "struct"
    UNION = "union"
    CLASS = "class"
    ENUM = "enum"
    FUNCTION = "function"
    VOID = "void"


@dataclass(frozen=True)
class TypeRef:
    """A lazy reference to a type inside one :class:`TypeSource` (PDB type index or ISF name)."""

    source: TypeSource
    key: object

    def resolve(self) -> Type:
        return self.source.type_by_key(self.key)


@dataclass
class Member:
    name: str
    offset: int
    type: TypeRef | Type
    bit_position: int | None = None
    bit_length: int | None = None

    def resolved_type(self) -> Type:
        return self.type.resolve() if isinstance(self.type, TypeRef) else self.type


@dataclass
class Type:
    kind: Kind
    name: str
    size: int
    #: structs/unions/classes: members in declaration order (union members share offsets)
    members: list[Member] = field(default_factory=list)
    #: pointers and arrays: the pointed-to / element type; enums: the underlying type
    target: TypeRef | Type | None = None
    #: arrays: element count
    count: int = 0
    #: enums: value -> name (first name wins for duplicates)
    enumerators: dict[int, str] = field(default_factory=dict)
    #: base types: signedness and whether it is floating point
    signed: bool = False
    floating: bool = False
    #: functions: return type and argument types
    arguments: list[TypeRef | Type] = field(default_factory=list)
    #: True for a forward reference that could not be resolved to a definition
    incomplete: bool = False
    #: name -> member, built on first lookup (rebuilt if members change); not part of the type's value
    _by_name: dict | None = field(default=None, repr=False, compare=False)
    #: resolved dotted member paths, for views that read the same fields of many objects
    path_cache: dict = field(default_factory=dict, repr=False, compare=False)

    def resolved_target(self) -> Type | None:
        t = self.target
        return t.resolve() if isinstance(t, TypeRef) else t

    def member(self, name: str) -> Member | None:
        index = self._by_name
        if index is None or index.get("\0count") != len(self.members):
            index = {}
            for m in self.members:
                index.setdefault(m.name, m)  # the first of duplicate names wins, as before
            index["\0count"] = len(self.members)
            self._by_name = index
        return index.get(name)

    def field_offset(self, path: str) -> int:
        """Offset of a dotted member path (``Pcb.DirectoryTableBase``); raises KeyError."""
        t: Type = self
        off = 0
        for part in path.split("."):
            m = t.member(part)
            if m is None:
                raise KeyError(f"{t.name} has no member {part}")
            off += m.offset
            t = m.resolved_type()
        return off


@dataclass(frozen=True)
class Symbol:
    """A named address relative to its module's base (RVA)."""

    name: str
    rva: int
    size: int = 0
    is_function: bool = False


class TypeSource(Protocol):
    """What a PDB reader or ISF table offers to the rest of the program."""

    def type_by_key(self, key: object) -> Type: ...

    def find_type(self, name: str) -> Type | None:
        """Look a type up by its exact name (``_EPROCESS``); definitions win over forward references."""
        ...

    def type_names(self) -> list[str]: ...


class SymbolSource(Protocol):
    """Names for one module: lookups in both directions, by RVA."""

    def symbol_by_name(self, name: str) -> Symbol | None: ...

    def symbol_at(self, rva: int) -> Symbol | None:
        """The symbol containing ``rva`` (or the nearest one below it), for ``module!name+0x12``."""
        ...

    def symbols_matching(self, pattern: str) -> list[Symbol]:
        """Wildcard (``*``, ``?``) match on names, as ``x`` does; case-insensitive."""
        ...
