"""Sparse kernel memory that structures are written into by field name.

Synthetic kernels are described with the real layouts of a kernel's types
(an ISF table or PDB), so a structure is never written at a hand-chosen
offset: :meth:`SparseMemory.set` resolves ``"Pcb.DirectoryTableBase"`` through
the :class:`~bugcheck.symbols.types.Type` once and caches the result, which
keeps building ten thousand threads fast.
"""

from __future__ import annotations

from dataclasses import dataclass

PAGE = 0x1000
_SCALAR_KINDS = ("base", "enum", "pointer")


@dataclass(frozen=True)
class FieldSlot:
    """Where a scalar member lives inside its outermost structure."""

    offset: int
    size: int
    bit_position: int | None
    bit_length: int | None


class FieldCache:
    """Resolves dotted member paths of types to :class:`FieldSlot`, once per (type, path)."""

    def __init__(self, pointer_size: int = 8):
        self.pointer_size = pointer_size
        self._slots: dict[tuple[int, str], FieldSlot] = {}
        self._spans: dict[tuple[int, str], tuple[int, int]] = {}

    def slot(self, t, path: str) -> FieldSlot:
        key = (id(t), path)
        s = self._slots.get(key)
        if s is None:
            off, member_type, bitpos, bitlen = self._walk(t, path)
            kind = str(member_type.kind.value if hasattr(member_type.kind, "value") else member_type.kind)
            if kind not in _SCALAR_KINDS:
                raise TypeError(f"{t.name}.{path} is a {kind}, not a scalar")
            if kind == "pointer":
                size = self.pointer_size
            else:
                size = member_type.size or 4
            s = self._slots[key] = FieldSlot(off, size, bitpos, bitlen)
        return s

    def span(self, t, path: str) -> tuple[int, int]:
        """(offset, size) of any member, scalar or not (arrays, embedded structs)."""
        key = (id(t), path)
        s = self._spans.get(key)
        if s is None:
            off, member_type, _, _ = self._walk(t, path)
            size = self.pointer_size if str(member_type.kind.value) == "pointer" else member_type.size
            s = self._spans[key] = (off, size)
        return s

    @staticmethod
    def _walk(t, path: str):
        off = 0
        bitpos = bitlen = None
        cur = t
        for part in path.split("."):
            m = cur.member(part)
            if m is None:
                raise KeyError(f"{cur.name} has no member {part}")
            off += m.offset
            bitpos, bitlen = m.bit_position, m.bit_length
            cur = m.resolved_type()
        return off, cur, bitpos, bitlen


class SparseMemory:
    """Page-granular virtual memory under construction: ``{page va: bytearray}``.

    Pages come into being when something is allocated or written there, so
    a structure that is :meth:`touch`-ed reads as zeros rather than absent.
    """

    def __init__(self, pointer_size: int = 8):
        self.pages: dict[int, bytearray] = {}
        self.fields = FieldCache(pointer_size)
        self.pointer_size = pointer_size

    def touch(self, va: int, size: int) -> None:
        first = va & ~(PAGE - 1)
        for page in range(first, va + max(size, 1), PAGE):
            if page not in self.pages:
                self.pages[page] = bytearray(PAGE)

    def write(self, va: int, data: bytes) -> None:
        pos = 0
        n = len(data)
        while pos < n:
            page = (va + pos) & ~(PAGE - 1)
            off = (va + pos) - page
            chunk = min(n - pos, PAGE - off)
            buf = self.pages.get(page)
            if buf is None:
                buf = self.pages[page] = bytearray(PAGE)
            buf[off : off + chunk] = data[pos : pos + chunk]
            pos += chunk

    def read(self, va: int, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            page = (va + len(out)) & ~(PAGE - 1)
            off = (va + len(out)) - page
            chunk = min(size - len(out), PAGE - off)
            buf = self.pages.get(page)
            out += buf[off : off + chunk] if buf is not None else bytes(chunk)
        return bytes(out)

    def put(self, va: int, value: int, size: int) -> None:
        data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
        page = va & ~(PAGE - 1)
        off = va - page
        buf = self.pages.get(page)
        if buf is not None and off + size <= PAGE:
            buf[off : off + size] = data
        else:
            self.write(va, data)

    def set(self, va: int, t, path: str, value: int) -> None:
        """Store ``value`` in member ``path`` of the ``t`` instance at ``va`` (bitfields merged)."""
        s = self.fields.slot(t, path)
        if s.bit_length is None:
            self.put(va + s.offset, value, s.size)
            return
        raw = int.from_bytes(self.read(va + s.offset, s.size), "little")
        mask = ((1 << s.bit_length) - 1) << (s.bit_position or 0)
        raw = (raw & ~mask) | ((value << (s.bit_position or 0)) & mask)
        self.put(va + s.offset, raw, s.size)

    def set_many(self, va: int, t, values: dict[str, int]) -> None:
        for path, value in values.items():
            self.set(va, t, path, value)

    def set_bytes(self, va: int, t, path: str, data: bytes) -> None:
        """Fill an array member (``ImageFileName``) with ``data``, zero-padded to its size."""
        off, size = self.fields.span(t, path)
        if len(data) > size:
            raise ValueError(f"{len(data)} bytes do not fit {t.name}.{path} ({size} bytes)")
        self.write(va + off, bytes(data) + bytes(size - len(data)))

    def offset(self, t, path: str) -> int:
        return self.fields.span(t, path)[0]

    def link_list(self, head: int, entries: list[int]) -> None:
        """Make ``head`` a LIST_ENTRY whose members are the LIST_ENTRYs at ``entries``, in order."""
        ps = self.pointer_size
        chain = [head, *entries, head]
        for i in range(1, len(chain) - 1):
            self.put(chain[i], chain[i + 1], ps)  # Flink
            self.put(chain[i] + ps, chain[i - 1], ps)  # Blink
        self.put(head, chain[1], ps)
        self.put(head + ps, chain[-2], ps)

    def mappings(self) -> dict[int, bytes]:
        """The pages as the writer's ``DumpDescription.mappings`` (runs of adjacent pages merged)."""
        out: dict[int, bytes] = {}
        run_start = None
        run: list[bytearray] = []
        prev = None
        for page in sorted(self.pages):
            if prev is not None and page == prev + PAGE:
                run.append(self.pages[page])
            else:
                if run_start is not None:
                    out[run_start] = b"".join(run)
                run_start, run = page, [self.pages[page]]
            prev = page
        if run_start is not None:
            out[run_start] = b"".join(run)
        return out


class Arena:
    """A bump allocator over a range of kernel virtual addresses (a stand-in for pool)."""

    def __init__(self, memory: SparseMemory, base: int, limit: int = 1 << 32):
        self.memory = memory
        self.base = base
        self.next = base
        self.end = base + limit

    def alloc(self, size: int, align: int = 16) -> int:
        va = (self.next + align - 1) & ~(align - 1)
        if va + size > self.end:
            raise ValueError("synthetic pool exhausted")
        self.next = va + size
        self.memory.touch(va, size)
        return va

    def alloc_string(self, text: str) -> tuple[int, int]:
        """A UTF-16 buffer holding ``text`` (NUL-terminated); returns (address, byte length)."""
        raw = text.encode("utf-16-le")
        va = self.alloc(len(raw) + 2, 8)
        self.memory.write(va, raw)
        return va, len(raw)
