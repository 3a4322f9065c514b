"""The one interface every memory source offers.

Physical memory (from dump runs or bitmaps), virtual memory (paging over
physical) and sparse memory (triage dump data blocks) all implement
:class:`AddressSpace`, so upper layers never care where bytes come from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from bugcheck.errors import MemoryNotPresent

PAGE_SIZE = 0x1000

#: ``fn(address, size) -> [(address, bytes), ...]``: bytes known for part of a hole, in address
#: order, disjoint, inside ``[address, address+size)``; [] when nothing is known there
Fallback = Callable[[int, int], list[tuple[int, bytes]]]


class AddressSpace(ABC):
    """Byte-addressable memory with holes.

    Subclasses implement :meth:`read_chunks`; everything else is derived from it.

    A *fallback* (:meth:`set_fallback`) may supply bytes for holes: a debugger
    serves reads in a loaded module's range from its image file when the dump
    lacks them. It is asked only about holes, so reads the dump answers cost
    nothing more; :meth:`read_chunks` still reports what the dump itself holds.
    """

    #: ``"virtual"`` or ``"physical"``; used in error messages.
    space: str = "virtual"
    #: bytes for holes, or None (see :data:`Fallback`)
    fallback: Fallback | None = None

    def set_fallback(self, fn: Fallback | None) -> None:
        """Serve holes from ``fn`` in :meth:`read`, :meth:`read_padded` and the helpers built on them."""
        self.fallback = fn

    def _hole(self, address: int, size: int) -> list[tuple[int, bytes]]:
        """What the fallback knows of the hole ``[address, address+size)``: clipped, ordered pieces."""
        fn = self.fallback
        if fn is None:
            return []
        out = []
        cur, end = address, address + size
        for at, data in fn(address, size):
            if at < cur or not data:
                continue
            data = bytes(data[: max(0, end - at)])
            if data:
                out.append((at, data))
                cur = at + len(data)
        return out

    @abstractmethod
    def read_chunks(self, address: int, size: int):
        """Yield ``(address, bytes_or_None, length)`` pieces covering ``[address, address+size)`` in order.

        ``None`` marks a hole of ``length`` bytes. Pieces never overlap and their
        lengths sum to ``size``.
        """

    def read(self, address: int, size: int) -> bytes:
        """Return exactly ``size`` bytes or raise :class:`MemoryNotPresent` at the first hole."""
        out = bytearray()
        for addr, data, length in self.read_chunks(address, size):
            if data is None:
                cur = addr
                for at, piece in self._hole(addr, length):
                    if at != cur:
                        break
                    out += piece
                    cur += len(piece)
                if cur != addr + length:
                    raise MemoryNotPresent(cur, self.space)
                continue
            out += data
        return bytes(out)

    def read_padded(self, address: int, size: int, fill: int = 0) -> tuple[bytes, list[tuple[int, int]]]:
        """Return ``size`` bytes with holes filled by ``fill`` and the list of ``(start, length)`` holes."""
        out = bytearray()
        holes: list[tuple[int, int]] = []
        for addr, data, length in self.read_chunks(address, size):
            if data is None:
                cur, end = addr, addr + length
                for at, piece in [*self._hole(addr, length), (end, b"")]:
                    if at > cur:
                        out += bytes([fill]) * (at - cur)
                        if holes and holes[-1][0] + holes[-1][1] == cur:
                            holes[-1] = (holes[-1][0], holes[-1][1] + at - cur)
                        else:
                            holes.append((cur, at - cur))
                    out += piece
                    cur = at + len(piece)
            else:
                out += data
        return bytes(out), holes

    def read_captured(self, address: int, size: int, fill: int = 0) -> tuple[bytes, list[tuple[int, int]]]:
        """:meth:`read_padded` without the fallback: only what the dump itself holds (to compare
        memory with an image file, the file's own bytes must not count as memory)."""
        fn = self.fallback
        if fn is None:
            return self.read_padded(address, size, fill)
        self.fallback = None
        try:
            return self.read_padded(address, size, fill)
        finally:
            self.fallback = fn

    def is_present(self, address: int, size: int = 1) -> bool:
        """Can all of ``[address, address+size)`` be read (from the dump or the fallback)?"""
        for addr, data, length in self.read_chunks(address, size):
            if data is None:
                pieces = self._hole(addr, length)
                if sum(len(p) for _, p in pieces) != length:
                    return False
        return True

    # Small typed helpers used everywhere.
    def u8(self, address: int) -> int:
        return self.read(address, 1)[0]

    def u16(self, address: int) -> int:
        return int.from_bytes(self.read(address, 2), "little")

    def u32(self, address: int) -> int:
        return int.from_bytes(self.read(address, 4), "little")

    def u64(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def pointer(self, address: int, pointer_size: int = 8) -> int:
        return int.from_bytes(self.read(address, pointer_size), "little")
