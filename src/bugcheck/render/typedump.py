"""``dt`` output over :mod:`bugcheck.symbols.types` objects, in WinDbg's layout.

A layout line is ``   +0x018 Name             : Type-or-value``: three spaces per
nesting level, the offset as ``+0x%03x``, the member name padded to 16, then
the type text (no address) or the value read from memory (with an address).

Memory comes through ``read(address, size) -> bytes`` that returns the bytes
present (a short answer means the rest is absent), so the renderer needs no
dump. Values follow kd's spelling: unsigned integers in hex (``0x1f``; 8-byte
ones as ``0x00000000`00000004``), signed ones in decimal (``0n-1``), pointers
with the pointed-to type (``0xffffd802`4aaa8010 _KTHREAD``), bitfields in
binary (``0y1``, ``0y0101 (0x5)``), enums as ``Name (0n2)``.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from bugcheck.symbols.resolver import hex_addr
from bugcheck.symbols.types import Kind, Member, Type

ReadFn = Callable[[int, int], bytes]

NAME_WIDTH = 16
MAX_READ = 1 << 20
MAX_DEPTH = 10
MAX_LINES = 200_000

_C_NAMES = {
    "Void": "void",
    "Char": "char",
    "UChar": "unsigned char",
    "Int2B": "short",
    "Uint2B": "unsigned short",
    "Int4B": "long",
    "Uint4B": "unsigned long",
    "Int8B": "int64",
    "Uint8B": "uint64",
    "Wchar": "wchar_t",
    "Bool": "bool",
    "Float": "float",
    "Double": "double",
}


def _resolve(t) -> Type | None:
    if t is None:
        return None
    return t.resolve() if hasattr(t, "resolve") and not isinstance(t, Type) else t


def _ptr_word(pointer_size: int) -> str:
    return "Ptr64" if pointer_size == 8 else "Ptr32"


def _name(t: Type) -> str:
    if not t.name or t.name.startswith("<") or t.name.startswith("__unnamed"):
        return "<unnamed-tag>"
    return t.name


def type_text(t: Type | None, pointer_size: int = 8, verbose: bool = False) -> str:
    """How ``dt`` names a member's type: ``Ptr64 _KTHREAD``, ``[16] UChar``, ``Uint4B``, ``_LIST_ENTRY``."""
    if t is None:
        return "<unknown>"
    k = t.kind
    if k == Kind.POINTER:
        inner = type_text(_resolve(t.target), pointer_size, verbose)
        return f"{_ptr_word(pointer_size)} {'to ' if verbose else ''}{inner}"
    if k == Kind.ARRAY:
        return f"[{t.count}] {type_text(_resolve(t.target), pointer_size, verbose)}"
    if k == Kind.FUNCTION:
        ret = _resolve(t.target)
        rname = _C_NAMES.get(ret.name, ret.name) if ret is not None else "void"
        return f"    {rname}"
    if k == Kind.VOID:
        return "Void"
    if verbose and k in (Kind.STRUCT, Kind.UNION, Kind.CLASS):
        word = {Kind.STRUCT: "struct", Kind.UNION: "union", Kind.CLASS: "class"}[k]
        return f"{word} {_name(t)}, {len(t.members)} elements, {t.size:#x} bytes"
    if verbose and k == Kind.ENUM:
        return f"Enum {_name(t)},  {len(t.enumerators)} total enums"
    return _name(t)


def member_type_text(m: Member, pointer_size: int = 8, verbose: bool = False) -> str:
    if m.bit_length is not None:
        unit = "Bit" if m.bit_length == 1 else "Bits"
        text = f"Pos {m.bit_position or 0}, {m.bit_length} {unit}"
        return f"Bitfield {text}" if verbose else text
    return type_text(m.resolved_type(), pointer_size, verbose)


# --------------------------------------------------------------------------------------------
# values


@dataclass
class _Mem:
    """The struct's bytes as read once; ``None`` past the first absent byte."""

    address: int
    data: bytes
    read: ReadFn | None
    failed_at: int | None = None
    #: names function-pointer targets (``nt!IopInvalidDeviceRequest``); None leaves them bare
    symbolize: Callable[[int], str | None] | None = None

    def get(self, offset: int, size: int) -> bytes | None:
        if 0 <= offset and offset + size <= len(self.data):
            return self.data[offset : offset + size]
        addr = self.address + offset
        if self.read is not None and offset + size > MAX_READ:
            got = _safe_read(self.read, addr, size)
            if len(got) >= size:
                return got[:size]
        # kd names the last member it failed to read (``dt nt!_LIST_ENTRY`` on an absent
        # page says "Memory read error <address of Blink>")
        self.failed_at = max(addr, self.address + len(self.data))
        return None


def _safe_read(read: ReadFn, address: int, size: int) -> bytes:
    try:
        return read(address, size) or b""
    except Exception:  # absent memory reads as absent, whatever the reader raises
        return b""


def _char(v: int) -> str:
    return chr(v) if 0x20 <= v < 0x7F else ""


def base_value(t: Type, raw: bytes, pointer_size: int = 8) -> str:
    """``0x1f`` / ``0n-3`` / ``0x00000000`00000004`` / ``0x41 'A'`` for a base-type value."""
    v = int.from_bytes(raw, "little", signed=t.signed)
    if t.floating:
        import struct

        fmt = "<f" if len(raw) == 4 else "<d"
        return repr(struct.unpack(fmt, raw)[0]) if len(raw) in (4, 8) else "??"
    if t.name in ("Char", "UChar"):
        u = raw[0]
        num = f"0n{v}" if t.signed else f"0x{u:x}"
        return f"{num} '{_char(u)}'"
    if t.name == "Wchar":
        return f"0x{v:x} '{_char(v)}'"
    if t.name == "Bool":
        return "True" if v else "False"
    if t.signed:
        return f"0n{v}"
    if len(raw) == 8:
        return "0x" + hex_addr(v, 8)
    return f"0x{v:x}"


def _string_of(elem: Type | None, raw: bytes) -> str | None:
    if elem is None or elem.kind != Kind.BASE:
        return None
    if elem.name in ("Char", "UChar"):
        s = raw.split(b"\0", 1)[0]
        return '"' + s.decode("latin-1") + '"'
    if elem.name == "Wchar":
        s = raw.decode("utf-16-le", "replace").split("\0", 1)[0]
        return '"' + s + '"'
    return None


def _value_text(t: Type, mem: _Mem, offset: int, pointer_size: int, depth: int = 0) -> str:
    k = t.kind
    if k == Kind.POINTER:
        raw = mem.get(offset, pointer_size)
        target = type_text(_resolve(t.target), pointer_size)
        if raw is None:
            return "???? "  # kd leaves a blank after an unreadable pointer
        v = int.from_bytes(raw, "little")
        if v == 0:
            return "(null)"  # kd's spelling of a NULL pointer member
        text = f"0x{hex_addr(v, pointer_size)} {target}"
        pointee = _resolve(t.target)
        if pointee is not None and pointee.name == "_LIST_ENTRY" and mem.read is not None:
            # kd follows a pointer to a list entry one step: "_LIST_ENTRY [ 0xF - 0xB ]"
            links = _safe_read(mem.read, v, 2 * pointer_size)
            if len(links) >= 2 * pointer_size:
                f = int.from_bytes(links[:pointer_size], "little")
                b = int.from_bytes(links[pointer_size : 2 * pointer_size], "little")
                text += f" [ 0x{hex_addr(f, pointer_size)} - 0x{hex_addr(b, pointer_size)} ]"
        if pointee is not None and pointee.kind == Kind.FUNCTION and v and mem.symbolize is not None:
            name = mem.symbolize(v)
            if name:
                text += f"  {name}"
        return text
    if k == Kind.BASE:
        raw = mem.get(offset, t.size)
        return "??" if raw is None else base_value(t, raw, pointer_size)
    if k == Kind.ENUM:
        raw = mem.get(offset, t.size or 4)
        if raw is None:
            return "??"
        under = _resolve(t.target)
        v = int.from_bytes(raw, "little", signed=bool(under and under.signed))
        name = t.enumerators.get(v)
        return f"{name} (0n{v})" if name else f"0n{v}"
    if k == Kind.ARRAY:
        elem = _resolve(t.target)
        total = t.size or (elem.size * t.count if elem else 0)
        raw = mem.get(offset, min(total, MAX_READ))
        if raw is None:
            return f"[{t.count}] ??"
        s = _string_of(elem, raw)
        if s is not None:
            return f"[{t.count}]  {s}"
        if elem is None or depth > 2:
            return f"[{t.count}] ??"
        return f"[{t.count}] {_value_text(elem, mem, offset, pointer_size, depth + 1)}"
    if k in (Kind.STRUCT, Kind.UNION, Kind.CLASS):
        return _struct_summary(t, mem, offset, pointer_size)
    if k == Kind.FUNCTION:
        return type_text(t, pointer_size)
    return _name(t)


def _struct_summary(t: Type, mem: _Mem, offset: int, pointer_size: int) -> str:
    """The one-line value kd shows for well-known structs without ``-r``."""
    name = _name(t)
    if t.name == "_LIST_ENTRY" or t.name == "LIST_ENTRY64":
        raw = mem.get(offset, 2 * pointer_size)
        if raw is None:
            return name
        f = int.from_bytes(raw[:pointer_size], "little")
        b = int.from_bytes(raw[pointer_size:], "little")
        return f"{name} [ 0x{hex_addr(f, pointer_size)} - 0x{hex_addr(b, pointer_size)} ]"
    if t.name == "_UNICODE_STRING":
        hdr = mem.get(offset, t.size or 2 * pointer_size)
        buf_m = t.member("Buffer")
        len_m = t.member("Length")
        if hdr is None or buf_m is None or len_m is None:
            return name
        length = int.from_bytes(hdr[len_m.offset : len_m.offset + 2], "little")
        ptr = int.from_bytes(hdr[buf_m.offset : buf_m.offset + pointer_size], "little")
        if mem.read is None:
            return name
        data = _safe_read(mem.read, ptr, min(length, 0xFFFE))
        if len(data) < length:
            return f"{name} ??"
        return f'{name} "{data.decode("utf-16-le", "replace")}"'
    if t.name in ("_LARGE_INTEGER", "_ULARGE_INTEGER"):
        raw = mem.get(offset, 8)
        return name if raw is None else f"{name} 0x{int.from_bytes(raw, 'little'):x}"
    return name


def _bitfield_value(m: Member, mem: _Mem, offset: int) -> str:
    t = m.resolved_type()
    size = t.size or 4
    raw = mem.get(offset, size)
    if raw is None:
        return "??"
    v = int.from_bytes(raw, "little") >> (m.bit_position or 0) & ((1 << m.bit_length) - 1)
    bits = format(v, f"0{m.bit_length}b")
    return f"0y{bits}" if m.bit_length == 1 else f"0y{bits} ({v:#x})"


# --------------------------------------------------------------------------------------------
# the dump


@dataclass
class DtOptions:
    recurse: int = 0
    verbose: bool = False
    pointer_size: int = 8
    #: member filters: ``Name``, ``Name.Sub``, ``Na*``
    fields: tuple[str, ...] = ()


def _matches(name: str, pattern: str) -> bool:
    return name == pattern or fnmatch.fnmatchcase(name, pattern)


def _line(level: int, m: Member, value: str, width: int = NAME_WIDTH) -> str:
    pad = max(width, len(m.name))
    text = f"{'   ' * (level + 1)}+{m.offset:#05x} {m.name:<{pad}} : {value}"
    return text.rstrip() if not value else text


def _members(
    t: Type,
    out: list[str],
    opts: DtOptions,
    mem: _Mem | None,
    base: int,
    level: int,
    paths: list[list[str]] | None,
) -> None:
    width = NAME_WIDTH
    if paths is not None:
        # with named fields kd pads names to the longest one it prints, not to 16
        # (lkd> dt nt!_KTHREAD ... Process CycleTime UserTime KernelTime Priority ->
        #  "   +0x048 CycleTime  : ...", "   +0x28c KernelTime : ...")
        chosen = [m.name for m in t.members if any(_matches(m.name, p[0]) for p in paths)]
        width = max(map(len, chosen), default=NAME_WIDTH)
    for m in t.members:
        if len(out) >= MAX_LINES:
            return
        sub_paths = None
        if paths is not None:
            hits = [p for p in paths if _matches(m.name, p[0])]
            if not hits:
                continue
            deeper = [p[1:] for p in hits if len(p) > 1]
            sub_paths = deeper if deeper and all(len(p) > 1 for p in hits) else None
        mt = m.resolved_type()
        if sub_paths is not None:
            out.append(_line(level, m, "", width))
            if mt.kind in (Kind.STRUCT, Kind.UNION, Kind.CLASS):
                _members(mt, out, opts, mem, base + m.offset, level + 1, sub_paths)
            continue
        if mem is None:
            value = member_type_text(m, opts.pointer_size, opts.verbose)
        elif m.bit_length is not None:
            value = _bitfield_value(m, mem, base + m.offset)
        else:
            value = _value_text(mt, mem, base + m.offset, opts.pointer_size)
        out.append(_line(level, m, value, width))
        if level < min(opts.recurse, MAX_DEPTH) and mt.kind in (Kind.STRUCT, Kind.UNION, Kind.CLASS):
            _members(mt, out, opts, mem, base + m.offset, level + 1, None)
        elif (
            level < min(opts.recurse, MAX_DEPTH)
            and mt.kind == Kind.ARRAY
            and _resolve(mt.target) is not None
            and _resolve(mt.target).kind in (Kind.STRUCT, Kind.UNION)
        ):
            elem = _resolve(mt.target)
            _members(elem, out, opts, mem, base + m.offset, level + 1, None)


def dump_type(
    t: Type,
    *,
    module: str = "",
    address: int | None = None,
    read: ReadFn | None = None,
    recurse: int = 0,
    verbose: bool = False,
    pointer_size: int = 8,
    fields: tuple[str, ...] | list[str] = (),
    symbolize: Callable[[int], str | None] | None = None,
    header: bool = True,
) -> list[str]:
    """``dt [-r[N]] [-v] [module!]Type [address] [Field[.Sub]...]`` as kd prints it.

    kd names the module it found the type in (``nt!_EPROCESS``) only when the
    user did not say which: the command passes ``header=False`` for ``dt nt!_X``.
    """
    opts = DtOptions(recurse, verbose, pointer_size, tuple(fields))
    out: list[str] = []
    if verbose:
        out.append(type_text(t, pointer_size, True))
    elif header:
        out.append(f"{module}!{t.name}" if module else t.name)
    mem = None
    if address is not None:
        if read is None:
            data = b""
        else:
            data = _safe_read(read, address, min(max(t.size, 1), MAX_READ))
        mem = _Mem(address, data, read, symbolize=symbolize)
    if t.kind not in (Kind.STRUCT, Kind.UNION, Kind.CLASS):
        if t.kind == Kind.ENUM and mem is None:
            for v, n in sorted(t.enumerators.items()):
                out.append(f"   {n} = 0n{v}")
        elif mem is not None:
            out.append(_value_text(t, mem, 0, pointer_size))
        return _finish(out, mem, pointer_size)
    if mem is not None and t.name == "_LIST_ENTRY" and not opts.fields:
        # a list entry dumped at an address opens with its links: " [ 0xF - 0xB ]"
        links = mem.get(0, 2 * pointer_size)
        if links is not None:
            f = int.from_bytes(links[:pointer_size], "little")
            b = int.from_bytes(links[pointer_size:], "little")
            out.append(f" [ 0x{hex_addr(f, pointer_size)} - 0x{hex_addr(b, pointer_size)} ]")
    paths = [f.split(".") for f in opts.fields] if opts.fields else None
    before = len(out)
    _members(t, out, opts, mem, 0, 0, paths)
    if paths is not None and len(out) == before:
        out.append("Cannot find specified field members.")
    return _finish(out, mem, pointer_size)


def _finish(out: list[str], mem: _Mem | None, pointer_size: int) -> list[str]:
    if mem is not None and mem.failed_at is not None:
        out.append(f"Memory read error {mem.failed_at:0{pointer_size * 2}x}")  # no backtick here
    return out


def list_types(names: list[str], pattern: str, module: str = "") -> list[str]:
    """``dt nt!_KTRAP*``: every matching type name, indented as kd lists them."""
    pat = pattern.lower()
    hits = sorted({n for n in names if fnmatch.fnmatchcase(n.lower(), pat)})
    return [f"          {module + '!' if module else ''}{n}" for n in hits]
