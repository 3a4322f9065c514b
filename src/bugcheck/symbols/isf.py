"""Volatility 3 symbol tables (ISF JSON) as a TypeSource and SymbolSource.

Minidumps carry no PDB identity for the kernel, and Microsoft's PDBs may be out
of reach; ISF tables (types, enums and symbol RVAs extracted from the PDB) fill
the gap offline. They load into the same type model as PDBs
(:mod:`bugcheck.symbols.types`), with base types renamed to WinDbg's spellings
so ``dt`` output does not depend on where a layout came from.

A 6 MB JSON document takes ~0.1 s to decompress and parse, so the first load
writes a compact cache (marshal, per-type blobs decoded on demand) keyed by the
file's path, size and mtime; repeat loads read only that.
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import json
import lzma
import marshal
import os
import re
import tempfile
from pathlib import Path

from bugcheck.errors import BadFileError
from bugcheck.symbols.types import Kind, Member, Symbol, Type, TypeRef

#: Bump when the cached form changes.
CACHE_FORMAT = 3
#: Decompressed JSON larger than this is refused (the biggest kernel tables are ~10 MB).
MAX_JSON_BYTES = 512 << 20
#: Descriptor nesting deeper than this is refused (real tables nest < 10).
MAX_DEPTH = 64

# ISF base-type name -> WinDbg's spelling (dt shows these).
_BASE_NAMES = {
    "char": "Char",
    "signed char": "Char",
    "unsigned char": "UChar",
    "short": "Int2B",
    "unsigned short": "Uint2B",
    "int": "Int4B",
    "long": "Int4B",
    "unsigned int": "Uint4B",
    "unsigned long": "Uint4B",
    "long long": "Int8B",
    "unsigned long long": "Uint8B",
    "wchar": "Wchar",
    "f32": "Float",
    "float": "Float",
    "double": "Double",
    "f64": "Double",
    "void": "Void",
    "bool": "Bool",
    "HRESULT": "Int4B",
}


def _windbg_base_name(isf_name: str, kind: str, size: int, signed: bool) -> str:
    if isf_name in _BASE_NAMES:
        return _BASE_NAMES[isf_name]
    if kind == "void":
        return "Void"
    if kind == "bool":
        return "Bool"
    if kind == "float":
        return "Float" if size == 4 else "Double"
    if kind == "char" and size == 1:
        return "Char" if signed else "UChar"
    if size in (1, 2, 4, 8):
        if size == 1:
            return "Char" if signed else "UChar"
        return f"{'Int' if signed else 'Uint'}{size}B"
    return isf_name


def _read_text(path: Path) -> bytes:
    """The JSON bytes of a ``.json``, ``.json.xz`` or ``.json.gz`` table, size-capped."""
    name = path.name.lower()
    try:
        if name.endswith(".xz"):
            opener = lzma.open
        elif name.endswith(".gz"):
            opener = gzip.open
        else:
            opener = open
        with opener(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
    except FileNotFoundError:
        raise
    except (OSError, lzma.LZMAError, EOFError) as e:
        raise BadFileError(path, f"cannot decompress symbol table: {e}") from None
    if len(data) > MAX_JSON_BYTES:
        raise BadFileError(path, f"symbol table is over {MAX_JSON_BYTES} bytes decompressed")
    return data


def _bad(path: Path, what: str) -> BadFileError:
    return BadFileError(path, f"malformed ISF symbol table: {what}")


def _compact(path: Path, doc: object) -> dict:
    """The cacheable form: validated at the top level, per-type JSON blobs kept raw for laziness."""
    if not isinstance(doc, dict):
        raise _bad(path, "top level is not an object")
    for key in ("symbols", "user_types", "base_types"):
        if not isinstance(doc.get(key, {}), dict):
            raise _bad(path, f"{key!r} is not an object")
    syms = doc.get("symbols", {})
    names: list[str] = []
    addrs: list[int] = []
    for n, v in syms.items():
        if not isinstance(v, dict):
            raise _bad(path, f"symbol {n!r} is not an object")
        a = v.get("address")
        if not isinstance(a, int) or a < 0:
            continue  # constants without an address are not names in the image
        names.append(n)
        addrs.append(a)
    enums = doc.get("enums", {})
    if not isinstance(enums, dict):
        raise _bad(path, "'enums' is not an object")
    meta = doc.get("metadata", {})
    if not isinstance(meta, dict):
        meta = {}
    # Address order for symbol_at, computed once here so cached loads skip the sort.
    # Compiler-made labels ($$N) and import thunks are not what WinDbg names an address by.
    order = [
        i
        for i, n in enumerate(names)
        if not n.startswith("$$") and not n.startswith("__imp_") and "NULL_THUNK_DATA" not in n
    ]
    order.sort(key=lambda i: (addrs[i], names[i].startswith("_"), names[i]))
    return {
        "format": CACHE_FORMAT,
        "metadata": meta,
        "names": names,
        "addrs": addrs,
        "order": order,
        "user_types": {n: marshal.dumps(v) for n, v in doc.get("user_types", {}).items()},
        "enums": {n: marshal.dumps(v) for n, v in enums.items()},
        "base_types": doc.get("base_types", {}),
    }


def _cache_path(path: Path, cache_dir: Path | None) -> Path | None:
    try:
        st = path.stat()
    except OSError:
        return None
    if cache_dir is None:
        from bugcheck.symbols.sympath import user_cache_dir

        cache_dir = user_cache_dir() / "isf"
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CACHE_FORMAT}"
    return cache_dir / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".marshal")


def _cache_sane(data: dict) -> bool:
    """Cheap checks that a cache file is one we wrote (a damaged one is rebuilt, never trusted)."""
    try:
        names, addrs, order = data["names"], data["addrs"], data["order"]
        ok = isinstance(names, list) and isinstance(addrs, list) and len(names) == len(addrs)
        ok = ok and isinstance(order, list) and (not order or (min(order) >= 0 and max(order) < len(names)))
        return ok and all(
            isinstance(data[k], dict) for k in ("metadata", "user_types", "enums", "base_types")
        )
    except (KeyError, TypeError, ValueError):
        return False


def _load_compact(path: Path, cache_dir: Path | None, use_cache: bool) -> dict:
    cp = _cache_path(path, cache_dir) if use_cache else None
    if cp is not None:
        try:
            with open(cp, "rb") as f:
                data = marshal.load(f)
            if isinstance(data, dict) and data.get("format") == CACHE_FORMAT and _cache_sane(data):
                return data
        except (OSError, EOFError, ValueError, TypeError):
            pass  # a missing or damaged cache is rebuilt
    raw = _read_text(path)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadFileError(path, f"symbol table is not valid JSON: {e}") from None
    compact = _compact(path, doc)
    if cp is not None:
        try:
            cp.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=cp.parent, prefix=".isf-", suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                marshal.dump(compact, f)
            os.replace(tmp, cp)
        except OSError:
            pass  # caching is an optimization; a read-only cache dir is fine
    return compact


class ISFTable:
    """One ISF symbol table: the module's types and symbols, resolved lazily."""

    def __init__(
        self, path: str | os.PathLike[str], *, cache_dir: Path | None = None, use_cache: bool = True
    ):
        self.path = Path(path)
        data = _load_compact(self.path, cache_dir, use_cache)
        self.metadata: dict = data["metadata"]
        self._names: list[str] = data["names"]
        self._addrs: list[int] = data["addrs"]
        self._order: list[int] = data["order"]
        self._ut_raw: dict[str, bytes] = data["user_types"]
        self._enum_raw: dict[str, bytes] = data["enums"]
        self._base_raw: dict = data["base_types"]
        self._types: dict[object, Type] = {}
        self._by_name: dict[str, int] | None = None
        self._by_lower: dict[str, str] | None = None
        self._sorted: tuple[list[int], list[int]] | None = None
        ptr = self._base_raw.get("pointer", {})
        self.pointer_size: int = ptr.get("size", 8) if isinstance(ptr, dict) else 8
        if self.pointer_size not in (4, 8):
            raise _bad(self.path, f"pointer size {self.pointer_size}")

    # ---- identity -------------------------------------------------------------------------
    @property
    def pdb_info(self) -> tuple[str, int, str] | None:
        """``(GUID, age, pdb name)`` from the table's metadata, when it says."""
        pdb = self.metadata.get("windows", {}).get("pdb") if isinstance(self.metadata, dict) else None
        if not isinstance(pdb, dict):
            return None
        try:
            return str(pdb["GUID"]).upper(), int(pdb["age"]), str(pdb.get("database", ""))
        except (KeyError, TypeError, ValueError):
            return None

    def __repr__(self) -> str:
        return f"ISFTable({str(self.path)!r})"

    # ---- SymbolSource ---------------------------------------------------------------------
    def _name_index(self) -> dict[str, int]:
        if self._by_name is None:
            self._by_name = {n: i for i, n in enumerate(self._names)}
        return self._by_name

    def symbol_by_name(self, name: str) -> Symbol | None:
        i = self._name_index().get(name)
        if i is None:
            if self._by_lower is None:
                self._by_lower = {}
                for n in self._names:
                    self._by_lower.setdefault(n.lower(), n)
            real = self._by_lower.get(name.lower())
            if real is None:
                return None
            i = self._name_index()[real]
        return Symbol(self._names[i], self._addrs[i])

    def _address_index(self) -> tuple[list[int], list[int]]:
        if self._sorted is None:
            self._sorted = ([self._addrs[i] for i in self._order], self._order)
        return self._sorted

    def symbol_at(self, rva: int) -> Symbol | None:
        addrs, idx = self._address_index()
        pos = bisect.bisect_right(addrs, rva) - 1
        if pos < 0:
            return None
        a = addrs[pos]
        first = bisect.bisect_left(addrs, a)
        i = idx[first]
        return Symbol(self._names[i], self._addrs[i])

    def symbols_matching(self, pattern: str) -> list[Symbol]:
        rx = re.compile(
            "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern) + r"\Z",
            re.IGNORECASE | re.DOTALL,
        )
        out = [Symbol(n, a) for n, a in zip(self._names, self._addrs, strict=True) if rx.match(n)]
        out.sort(key=lambda s: (s.rva, s.name))
        return out

    def symbol_names(self) -> list[str]:
        return list(self._names)

    # ---- TypeSource -----------------------------------------------------------------------
    def type_names(self) -> list[str]:
        return sorted(set(self._ut_raw) | set(self._enum_raw))

    def enum_names(self) -> list[str]:
        return sorted(self._enum_raw)

    def find_type(self, name: str) -> Type | None:
        if name in self._ut_raw:
            return self.type_by_key(name)
        if name in self._enum_raw:
            return self.type_by_key(("enum", name))
        for isf_name, winname in _BASE_NAMES.items():
            if name == winname and isf_name in self._base_raw:
                return self.type_by_key(("base", isf_name))
        if name in self._base_raw:
            return self.type_by_key(("base", name))
        return None

    def type_by_key(self, key: object) -> Type:
        t = self._types.get(key)
        if t is not None:
            return t
        if isinstance(key, str):
            t = self._build_user(key)
        elif isinstance(key, tuple) and len(key) == 2 and key[0] == "enum":
            t = self._build_enum(key[1])
        elif isinstance(key, tuple) and len(key) == 2 and key[0] == "base":
            t = self._build_base(key[1])
        else:
            raise KeyError(key)
        self._types[key] = t
        return t

    def _raw(self, blobs: dict[str, bytes], name: str, what: str) -> dict:
        blob = blobs.get(name)
        if blob is None:
            raise KeyError(name)
        try:
            v = marshal.loads(blob)
        except (EOFError, ValueError, TypeError):
            raise _bad(self.path, f"cached {what} {name!r} is damaged") from None
        if not isinstance(v, dict):
            raise _bad(self.path, f"{what} {name!r} is not an object")
        return v

    def _build_base(self, name: str) -> Type:
        raw = self._base_raw.get(name)
        if name == "void":
            return Type(Kind.VOID, "Void", 0)
        if not isinstance(raw, dict):
            raise KeyError(("base", name))
        size = raw.get("size", 0)
        kind = raw.get("kind", "int")
        signed = bool(raw.get("signed", False))
        if not isinstance(size, int) or not 0 <= size <= 16:
            raise _bad(self.path, f"base type {name!r} has size {size!r}")
        if kind == "void":
            return Type(Kind.VOID, "Void", 0)
        return Type(
            Kind.BASE,
            _windbg_base_name(name, str(kind), size, signed),
            size,
            signed=signed,
            floating=kind == "float",
        )

    def _build_enum(self, name: str) -> Type:
        raw = self._raw(self._enum_raw, name, "enum")
        size = raw.get("size", 4)
        consts = raw.get("constants", {})
        if not isinstance(size, int) or not isinstance(consts, dict):
            raise _bad(self.path, f"enum {name!r}")
        enumerators: dict[int, str] = {}
        for cname, value in sorted(consts.items(), key=lambda kv: (kv[1], kv[0])):
            if isinstance(value, int):
                enumerators.setdefault(value, cname)
        base = raw.get("base")
        target = (
            self.type_by_key(("base", base)) if isinstance(base, str) and base in self._base_raw else None
        )
        return Type(Kind.ENUM, name, size, target=target, enumerators=enumerators)

    def _build_user(self, name: str) -> Type:
        raw = self._raw(self._ut_raw, name, "type")
        kind_s = raw.get("kind", "struct")
        kind = {"struct": Kind.STRUCT, "union": Kind.UNION, "class": Kind.CLASS}.get(kind_s)
        size = raw.get("size", 0)
        fields = raw.get("fields", {})
        if kind is None or not isinstance(size, int) or size < 0 or not isinstance(fields, dict):
            raise _bad(self.path, f"type {name!r} ({kind_s!r})")
        members: list[Member] = []
        for fname, f in fields.items():
            if (
                not isinstance(f, dict)
                or not isinstance(f.get("offset"), int)
                or not isinstance(f.get("type"), dict)
            ):
                raise _bad(self.path, f"member {name}.{fname}")
            desc = f["type"]
            if desc.get("kind") == "bitfield":
                bp, bl = desc.get("bit_position"), desc.get("bit_length")
                if (
                    not isinstance(bp, int)
                    or not isinstance(bl, int)
                    or not isinstance(desc.get("type"), dict)
                ):
                    raise _bad(self.path, f"bitfield {name}.{fname}")
                members.append(Member(fname, f["offset"], self._desc(desc["type"], 1), bp, bl))
            else:
                members.append(Member(fname, f["offset"], self._desc(desc, 1)))
        # ISF keeps fields in a dict sorted by name; WinDbg lists them in layout order.
        members.sort(key=lambda m: (m.offset, m.bit_position if m.bit_position is not None else -1))
        incomplete = not fields and size == 0
        return Type(kind, name, size, members=members, incomplete=incomplete)

    # ---- descriptors ----------------------------------------------------------------------
    def _desc(self, d: object, depth: int) -> Type | TypeRef:
        if depth > MAX_DEPTH or not isinstance(d, dict):
            raise _bad(self.path, "type descriptor nested too deep or not an object")
        k = d.get("kind")
        name = d.get("name")
        if k in ("struct", "union", "class"):
            if not isinstance(name, str):
                raise _bad(self.path, f"{k} descriptor without a name")
            if name not in self._ut_raw:
                return Type(Kind.STRUCT if k == "struct" else Kind.UNION, name, 0, incomplete=True)
            return TypeRef(self, name)
        if k == "enum":
            if not isinstance(name, str) or name not in self._enum_raw:
                return Type(Kind.ENUM, str(name), 4, incomplete=True)
            return TypeRef(self, ("enum", name))
        if k == "base":
            if not isinstance(name, str):
                raise _bad(self.path, "base descriptor without a name")
            if name == "void" or name not in self._base_raw:
                return (
                    Type(Kind.VOID, "Void", 0)
                    if name == "void"
                    else Type(Kind.BASE, name, 0, incomplete=True)
                )
            return self.type_by_key(("base", name))
        if k == "pointer":
            target = self._desc(d.get("subtype", {"kind": "base", "name": "void"}), depth + 1)
            prefix = "Ptr64" if self.pointer_size == 8 else "Ptr32"
            return Type(Kind.POINTER, f"{prefix} {_shown_name(target)}", self.pointer_size, target=target)
        if k == "array":
            count = d.get("count", 0)
            if not isinstance(count, int) or count < 0 or count > 1 << 32:
                raise _bad(self.path, f"array count {count!r}")
            target = self._desc(d.get("subtype"), depth + 1)
            elem = self._size_of(target)
            return Type(
                Kind.ARRAY, f"[{count}] {_shown_name(target)}", elem * count, target=target, count=count
            )
        if k == "function":
            return Type(Kind.FUNCTION, "void", 0)
        if k == "void":
            return Type(Kind.VOID, "Void", 0)
        if k == "bitfield":
            # A bitfield outside a member (inside an array, say): keep the underlying type.
            return self._desc(d.get("type"), depth + 1)
        raise _bad(self.path, f"unknown type kind {k!r}")

    def _size_of(self, t: Type | TypeRef) -> int:
        if isinstance(t, Type):
            return t.size
        key = t.key
        if isinstance(key, str):
            raw = self._raw(self._ut_raw, key, "type")
            s = raw.get("size", 0)
            return s if isinstance(s, int) else 0
        return t.resolve().size


def _shown_name(t: Type | TypeRef) -> str:
    if isinstance(t, Type):
        return t.name
    key = t.key
    if isinstance(key, str):
        return key
    if isinstance(key, tuple):
        return "Enum " + str(key[1]) if key[0] == "enum" else str(t.resolve().name)
    return str(key)


def load_isf(
    path: str | os.PathLike[str], *, cache_dir: Path | None = None, use_cache: bool = True
) -> ISFTable:
    """Open a Volatility 3 symbol table; raises BadFileError for anything malformed."""
    return ISFTable(path, cache_dir=cache_dir, use_cache=use_cache)
