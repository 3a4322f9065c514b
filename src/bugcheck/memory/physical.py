"""Physical memory of full (run-based) and bitmap dumps, backed by the mapped file.

Both map a page frame number to a file offset: run-based dumps store runs of
consecutive pages back to back; bitmap dumps store every page whose bit is
set, in PFN order, so a page's file offset is its rank among the set bits.
The rank comes from one numpy pass at open (the sorted array of present PFNs)
and a binary search per lookup.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np

from bugcheck.memory.base import PAGE_SIZE, AddressSpace

PAGE_SHIFT = 12


class PhysicalMemory(AddressSpace):
    """Page-granular physical memory; subclasses implement :meth:`page_offset`."""

    space = "physical"

    def __init__(self, buf, file_size: int | None = None):
        self._buf = buf
        self._file_size = len(buf) if file_size is None else file_size

    def page_offset(self, pfn: int) -> int | None:
        """File offset of page ``pfn``, or None when the dump does not hold it."""
        raise NotImplementedError

    def page_present(self, pfn: int) -> bool:
        return self.page_offset(pfn) is not None

    def file_offset(self, pfn: int) -> int | None:
        """File offset of a page whose whole 4 KB is in the file (for callers that cache it)."""
        off = self.page_offset(pfn)
        if off is None or off + PAGE_SIZE > self._file_size:
            return None
        return off

    def read(self, address: int, size: int) -> bytes:
        """Fast path for reads inside one present page (most structure reads); else the general path."""
        in_page = address & (PAGE_SIZE - 1)
        if 0 < size <= PAGE_SIZE - in_page:
            off = self.page_offset(address >> PAGE_SHIFT)
            if off is not None and off + in_page + size <= self._file_size:
                off += in_page
                return bytes(self._buf[off : off + size])
        return super().read(address, size)

    def read_chunks(self, address: int, size: int):
        cur = address
        end = address + size
        pending_hole = None  # merge adjacent absent pages into one piece
        while cur < end:
            pfn = cur >> PAGE_SHIFT
            in_page = cur & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - in_page, end - cur)
            off = self.page_offset(pfn)
            if off is not None:
                off += in_page
                avail = max(0, min(n, self._file_size - off))
            else:
                avail = 0
            if avail:
                if pending_hole:
                    yield pending_hole[0], None, pending_hole[1]
                    pending_hole = None
                yield cur, bytes(self._buf[off : off + avail]), avail
            if avail < n:
                hs, hn = cur + avail, n - avail
                if pending_hole and pending_hole[0] + pending_hole[1] == hs:
                    pending_hole = (pending_hole[0], pending_hole[1] + hn)
                else:
                    if pending_hole:
                        yield pending_hole[0], None, pending_hole[1]
                    pending_hole = (hs, hn)
            cur += n
        if pending_hole:
            yield pending_hole[0], None, pending_hole[1]


class RunPhysicalMemory(PhysicalMemory):
    """DumpType 1/2 style: ``runs`` of (base_page, page_count) stored back to back from ``data_offset``.

    Pages whose data would lie past the end of a truncated file read as holes.
    """

    def __init__(self, buf, runs, data_offset: int, file_size: int | None = None):
        super().__init__(buf, file_size)
        # File offsets follow the header's run order; lookups use the runs sorted by base.
        placed = []
        off = data_offset
        for b, c in runs:
            b, c = int(b), int(c)
            if c > 0:
                placed.append((b, c, off))
                off += c * PAGE_SIZE
        placed.sort()
        self.runs = [(b, c) for b, c, _ in placed]
        self._bases = [b for b, _, _ in placed]
        self._offsets = [o for _, _, o in placed]
        self.expected_end = off

    @property
    def truncated(self) -> bool:
        return self.expected_end > self._file_size

    def page_offset(self, pfn: int) -> int | None:
        i = bisect_right(self._bases, pfn) - 1
        if i < 0:
            return None
        base, count = self.runs[i]
        if pfn >= base + count:
            return None
        off = self._offsets[i] + (pfn - base) * PAGE_SIZE
        return off if off < self._file_size else None

    def present_pfns(self):
        for base, count in self.runs:
            yield from range(base, base + count)


class BitmapPhysicalMemory(PhysicalMemory):
    """Bitmap dumps: bit ``pfn`` set means the page is stored, pages in PFN order from ``first_page_offset``.

    A page's file slot is its rank among set bits: the bitmap is viewed as
    64-bit words and one numpy pass builds the running popcount before each
    word, so a lookup is one word test plus one ``bit_count``.
    """

    def __init__(self, buf, bitmap, page_count: int, first_page_offset: int, file_size: int | None = None):
        super().__init__(buf, file_size)
        nbytes = (page_count + 7) // 8
        raw = np.frombuffer(bitmap, dtype=np.uint8, count=min(nbytes, len(bitmap)))
        padded = np.zeros((nbytes + 7) // 8 * 8, dtype=np.uint8)
        padded[: len(raw)] = raw
        if page_count % 8 and nbytes:
            padded[nbytes - 1] &= (1 << (page_count % 8)) - 1  # bits past the last page do not count
        self._words = padded.view("<u8")
        counts = np.bitwise_count(self._words).astype(np.uint64)
        self._before = np.zeros(len(self._words) + 1, dtype=np.uint64)
        np.cumsum(counts, out=self._before[1:])
        self.page_count = page_count
        self.first_page_offset = first_page_offset
        self.present_page_count = int(self._before[-1])
        self.expected_end = first_page_offset + self.present_page_count * PAGE_SIZE

    @property
    def truncated(self) -> bool:
        return self.expected_end > self._file_size

    def page_offset(self, pfn: int) -> int | None:
        if pfn < 0 or pfn >= self.page_count:
            return None
        w, bit = divmod(pfn, 64)
        word = int(self._words[w])
        if not (word >> bit) & 1:
            return None
        rank = int(self._before[w]) + (word & ((1 << bit) - 1)).bit_count()
        off = self.first_page_offset + rank * PAGE_SIZE
        return off if off < self._file_size else None

    def present_pfns(self):
        bits = np.unpackbits(self._words.view(np.uint8), bitorder="little")
        return (int(p) for p in np.flatnonzero(bits[: self.page_count]))


class BytesPhysicalMemory(PhysicalMemory):
    """Physical memory from a dict ``{pfn: 4096 bytes}``: for tests and hand-built page tables."""

    def __init__(self, pages: dict[int, bytes] | None = None):
        self.pages: dict[int, bytearray] = {}
        for pfn, data in (pages or {}).items():
            self.pages[pfn] = bytearray(data.ljust(PAGE_SIZE, b"\0")[:PAGE_SIZE])
        super().__init__(b"", 0)

    def write(self, address: int, data: bytes) -> None:
        for i, byte in enumerate(data):
            pa = address + i
            page = self.pages.setdefault(pa >> PAGE_SHIFT, bytearray(PAGE_SIZE))
            page[pa & (PAGE_SIZE - 1)] = byte

    def write_u64(self, address: int, value: int) -> None:
        self.write(address, value.to_bytes(8, "little"))

    def write_u32(self, address: int, value: int) -> None:
        self.write(address, value.to_bytes(4, "little"))

    def page_offset(self, pfn: int) -> int | None:  # not file-backed
        return 0 if pfn in self.pages else None

    def read(self, address: int, size: int) -> bytes:
        return AddressSpace.read(self, address, size)

    def file_offset(self, pfn: int) -> int | None:  # not file-backed
        return None

    def read_chunks(self, address: int, size: int):
        cur, end = address, address + size
        while cur < end:
            n = min(PAGE_SIZE - (cur & (PAGE_SIZE - 1)), end - cur)
            page = self.pages.get(cur >> PAGE_SHIFT)
            if page is None:
                yield cur, None, n
            else:
                o = cur & (PAGE_SIZE - 1)
                yield cur, bytes(page[o : o + n]), n
            cur += n
