"""Byte sources for PE images: a file on disk, or an image mapped in dump memory.

Both present the image by RVA so the parser above never cares where bytes
come from.  A file is laid out by sections (RVA -> file offset through the
section table); memory is the loaded layout (RVA == offset from the base),
with pages that the dump may not hold.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable

from bugcheck.errors import BadFileError, MemoryNotPresent

PAGE = 0x1000


class ImageReader:
    """Read by RVA; ``read`` raises, ``read_padded`` fills holes with zeros."""

    path: str | None = None

    def read(self, rva: int, n: int) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError

    def read_padded(self, rva: int, n: int) -> tuple[bytes, list[tuple[int, int]]]:
        """Best-effort read: absent ranges come back as zeros plus their ``(rva, length)``."""
        try:
            return self.read(rva, n), []
        except (MemoryNotPresent, BadFileError):
            pass
        out = bytearray()
        holes: list[tuple[int, int]] = []
        pos = rva
        end = rva + n
        while pos < end:
            step = min(end, (pos // PAGE + 1) * PAGE) - pos
            try:
                out += self.read(pos, step)
            except (MemoryNotPresent, BadFileError):
                out += bytes(step)
                if holes and holes[-1][0] + holes[-1][1] == pos:
                    holes[-1] = (holes[-1][0], holes[-1][1] + step)
                else:
                    holes.append((pos, step))
            pos += step
        return bytes(out), holes

    def read_header(self, offset: int, n: int) -> bytes:
        """Headers sit at the same offset in both layouts."""
        return self.read(offset, n)


class FileReader(ImageReader):
    """A PE file on disk, mapped read-only."""

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    raise BadFileError(path, "empty file")
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as e:
            raise BadFileError(path, f"cannot open: {e.strerror or e}") from None
        self.data = memoryview(self._mm)
        self.size = size
        # (rva, vsize, raw_ptr, raw_size) filled in by the parser once sections are known.
        self.sections: list[tuple[int, int, int, int]] = []
        self.header_size = size

    def raw(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise BadFileError(self.path, f"read of {n:#x} bytes at file offset {offset:#x} is past the end")
        return bytes(self.data[offset : offset + n])

    def read_header(self, offset: int, n: int) -> bytes:
        return self.raw(offset, n)

    def read(self, rva: int, n: int) -> bytes:
        if rva < self.header_size and not self.sections:
            return self.raw(rva, n)
        out = bytearray()
        pos, end = rva, rva + n
        while pos < end:
            piece = self._piece(pos, end)
            if piece is None:
                raise BadFileError(self.path, f"RVA {pos:#x} is not inside any section")
            data, length = piece
            out += data
            pos += length
        return bytes(out)

    def _piece(self, pos: int, end: int):
        for va, vsize, raw_ptr, raw_size in self.sections:
            span = max(vsize, raw_size)
            if va <= pos < va + span:
                length = min(end, va + span) - pos
                off = pos - va
                have = max(0, min(length, raw_size - off))
                data = b""
                if have:
                    data = self.raw(raw_ptr + off, have)
                return data + bytes(length - have), length
        if pos < self.header_size:
            length = min(end, self.header_size) - pos
            return self.raw(pos, min(length, self.size - pos)), length
        return None

    def close(self) -> None:
        self.data.release()
        self._mm.close()


class MemoryReader(ImageReader):
    """An image as loaded at ``base`` in dump memory; ``read_fn(va, n)`` may raise MemoryNotPresent."""

    def __init__(self, read_fn: Callable[[int, int], bytes], base: int, path: str | None = None):
        self.read_fn = read_fn
        self.base = base
        self.path = path or f"<image at {base:#x}>"

    def read(self, rva: int, n: int) -> bytes:
        data = self.read_fn(self.base + rva, n)
        if len(data) != n:
            raise MemoryNotPresent(self.base + rva + len(data))
        return bytes(data)
