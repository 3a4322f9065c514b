"""The one interface every memory source offers.

Physical memory (from dump runs or bitmaps), virtual memory (paging over
physical) and sparse memory (triage dump data blocks) all implement
:class:`AddressSpace`, so upper layers never care where bytes come from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from bugcheck.errors import MemoryNotPresent

PAGE_SIZE = 0x1000


class AddressSpace(ABC):
    """Byte-addressable memory with holes.

    Subclasses implement :meth:`read_chunks`; everything else is derived from it.
    """

    #: ``"virtual"`` or ``"physical"``; used in error messages.
    space: str = "virtual"

    @abstractmethod
    def read_chunks(self, address: int, size: int):
        """Yield ``(address, bytes_or_None, length)`` pieces covering ``[address, address+size)`` in order.

        ``None`` marks a hole of ``length`` bytes. Pieces never overlap and their
        lengths sum to ``size``.
        """

    def read(self, address: int, size: int) -> bytes:
        """Return exactly ``size`` bytes or raise :class:`MemoryNotPresent` at the first hole."""
        out = bytearray()
        for addr, data, _length in self.read_chunks(address, size):
            if data is None:
                raise MemoryNotPresent(addr, self.space)
            out += data
        return bytes(out)

    def read_padded(self, address: int, size: int, fill: int = 0) -> tuple[bytes, list[tuple[int, int]]]:
        """Return ``size`` bytes with holes filled by ``fill`` and the list of ``(start, length)`` holes."""
        out = bytearray()
        holes: list[tuple[int, int]] = []
        for addr, data, length in self.read_chunks(address, size):
            if data is None:
                out += bytes([fill]) * length
                if holes and holes[-1][0] + holes[-1][1] == addr:
                    holes[-1] = (holes[-1][0], holes[-1][1] + length)
                else:
                    holes.append((addr, length))
            else:
                out += data
        return bytes(out), holes

    def is_present(self, address: int, size: int = 1) -> bool:
        return all(data is not None for _, data, _ in self.read_chunks(address, size))

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
