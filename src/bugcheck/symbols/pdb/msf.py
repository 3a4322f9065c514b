"""The MSF 7.0 container: a PDB is a small file system of numbered streams.

Streams are assembled from their blocks only when first read, so opening a
PDB costs the superblock and the stream directory, nothing more.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from bugcheck.errors import BadFileError, UnsupportedFormatError

MSF7_MAGIC = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\x00\x00\x00"
MSF2_MAGIC = b"Microsoft C/C++ program database 2.00\r\n\x1aJG"

#: a directory bigger than this is not a PDB any real linker writes
MAX_DIRECTORY_BYTES = 64 << 20
MAX_STREAMS = 1 << 20
NIL_STREAM = 0xFFFFFFFF


class Msf:
    """Read-only view of the streams of one MSF file (mmap-backed)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, data: bytes | None = None):
        self.path = str(path) if path is not None else "<memory>"
        self._mm: mmap.mmap | None = None
        if data is None:
            try:
                with open(path, "rb") as f:  # type: ignore[arg-type]
                    size = os.fstat(f.fileno()).st_size
                    if size == 0:
                        raise BadFileError(self.path, "empty file")
                    self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except OSError as e:
                raise BadFileError(self.path, f"cannot read: {e.strerror or e}") from None
            self._buf = memoryview(self._mm)
        else:
            self._buf = memoryview(data)
        self._cache: dict[int, bytes] = {}
        self._parse_superblock()

    def close(self) -> None:
        self._cache.clear()
        buf, self._buf = self._buf, memoryview(b"")
        buf.release()
        if self._mm is not None:
            self._mm.close()
            self._mm = None

    def bad(self, problem: str) -> BadFileError:
        return BadFileError(self.path, problem)

    def _parse_superblock(self) -> None:
        buf = self._buf
        if bytes(buf[: len(MSF2_MAGIC)]) == MSF2_MAGIC:
            raise UnsupportedFormatError(
                self.path, "PDB 2.0 (MSF 2.00, pre-VC6) format is not supported; only MSF 7.00 PDBs are"
            )
        if len(buf) < 56 or bytes(buf[:32]) != MSF7_MAGIC:
            raise self.bad("not a PDB file (no MSF 7.00 signature)")
        bs, _fpm, nblocks, dir_bytes, _unk, map_addr = struct.unpack_from("<6I", buf, 32)
        if bs not in (512, 1024, 2048, 4096, 8192, 16384, 32768):
            raise self.bad(f"invalid MSF block size {bs}")
        self.block_size = bs
        avail = len(buf) // bs
        if nblocks > avail:
            # a truncated file: only blocks actually present are usable
            nblocks_ok = avail
        else:
            nblocks_ok = nblocks
        self.num_blocks = nblocks_ok
        if dir_bytes > MAX_DIRECTORY_BYTES:
            raise self.bad(f"stream directory size {dir_bytes} is implausible")
        ndir_blocks = -(-dir_bytes // bs)
        if map_addr >= nblocks_ok or ndir_blocks * 4 > bs * 64:
            raise self.bad("stream directory block map lies outside the file")
        map_off = map_addr * bs
        if map_off + ndir_blocks * 4 > len(buf):
            raise self.bad("truncated stream directory block map")
        dir_blocks = struct.unpack_from(f"<{ndir_blocks}I", buf, map_off)
        directory = self._gather(dir_blocks, dir_bytes, "stream directory")
        if len(directory) < 4:
            raise self.bad("empty stream directory")
        (nstreams,) = struct.unpack_from("<I", directory, 0)
        if nstreams > MAX_STREAMS or 4 + nstreams * 4 > len(directory):
            raise self.bad(f"stream directory claims {nstreams} streams")
        sizes = struct.unpack_from(f"<{nstreams}I", directory, 4)
        pos = 4 + nstreams * 4
        blocks: list[tuple[int, ...]] = []
        fixed_sizes: list[int] = []
        for size in sizes:
            if size == NIL_STREAM:
                fixed_sizes.append(-1)
                blocks.append(())
                continue
            n = -(-size // bs)
            if pos + n * 4 > len(directory):
                raise self.bad("stream directory is truncated")
            blocks.append(struct.unpack_from(f"<{n}I", directory, pos))
            fixed_sizes.append(size)
            pos += n * 4
        self._sizes = fixed_sizes
        self._blocks = blocks

    def _gather(self, blocks, size: int, what: str) -> bytes:
        bs = self.block_size
        buf = self._buf
        parts = []
        left = size
        for b in blocks:
            if b >= self.num_blocks:
                raise self.bad(f"{what} uses block {b} beyond the end of the file")
            take = min(bs, left)
            parts.append(buf[b * bs : b * bs + take])
            left -= take
            if left <= 0:
                break
        return b"".join(parts)

    @property
    def num_streams(self) -> int:
        return len(self._sizes)

    def stream_size(self, index: int) -> int:
        """Size in bytes, or -1 for a nil (deleted) stream."""
        if not 0 <= index < len(self._sizes):
            return -1
        return self._sizes[index]

    def has_stream(self, index: int) -> bool:
        return self.stream_size(index) >= 0

    def stream(self, index: int) -> bytes:
        """The whole content of a stream (cached); empty for a nil stream."""
        data = self._cache.get(index)
        if data is not None:
            return data
        size = self.stream_size(index)
        if size < 0:
            if not 0 <= index < len(self._sizes):
                raise self.bad(f"reference to stream {index}, but the file has {len(self._sizes)}")
            data = b""
        elif size > self.num_blocks * self.block_size:
            # blocks may repeat in a hostile directory: never assemble more than the file holds
            raise self.bad(f"stream {index} claims {size} bytes, more than the file holds")
        else:
            data = self._gather(self._blocks[index], size, f"stream {index}")
        self._cache[index] = data
        return data


def open_msf(path: str | os.PathLike[str]) -> Msf:
    return Msf(Path(path))
