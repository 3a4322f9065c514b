"""Sparse virtual memory: a few thousand captured blocks at known virtual addresses.

Triage dumps carry no page tables, only copies of memory at kernel virtual
addresses (data blocks, the stack, PRCB/thread/process snapshots). They are
kept as disjoint sorted segments so a read is one bisect plus slicing, and an
address outside every block is a hole, exactly like an unmapped page.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass

from bugcheck.memory.base import AddressSpace


@dataclass(frozen=True)
class Block:
    """One captured region: ``size`` bytes at ``address``, held in ``data[offset:offset+size]``.

    ``source`` names where it came from ("data block", "call stack", "prcb", ...)
    so commands can say why an address is readable.
    """

    address: int
    size: int
    data: object  # any buffer: bytes, mmap, memoryview
    offset: int = 0
    source: str = ""

    @property
    def end(self) -> int:
        return self.address + self.size


class SparseMemory(AddressSpace):
    """Virtual memory made of captured blocks; everything else is a hole.

    Blocks given earlier win where blocks overlap, so callers list the most
    trustworthy copies first (e.g. the triage header's own snapshots before
    the generic data blocks).
    """

    space = "virtual"

    def __init__(self, blocks=(), address_bits: int = 64):
        self._mask = (1 << address_bits) - 1
        self._starts: list[int] = []
        self._segs: list[Block] = []
        self.blocks: list[Block] = []
        self._bulk(list(blocks))

    def _bulk(self, blocks: list[Block]) -> None:
        """Build the segments of many blocks at once: a sweep over their edges, O(n log n).

        Between two consecutive edges the winner is the earliest-given block
        covering that span (a heap keyed by position in ``blocks``).
        """
        items = []
        for b in blocks:
            if b.size <= 0:
                continue
            start = b.address & self._mask
            end = min(start + b.size, self._mask + 1)
            if end > start:
                self.blocks.append(b)
                items.append((start, end, len(items), b))
        if not items:
            return
        items.sort(key=lambda t: t[0])
        edges = sorted({t[0] for t in items} | {t[1] for t in items})
        heap: list[tuple[int, int, int, Block]] = []  # (priority, end, start, block)
        nxt = 0
        segs: list[Block] = []
        for i in range(len(edges) - 1):
            x, y = edges[i], edges[i + 1]
            while nxt < len(items) and items[nxt][0] <= x:
                st, en, prio, b = items[nxt]
                heapq.heappush(heap, (prio, en, st, b))
                nxt += 1
            while heap and heap[0][1] <= x:
                heapq.heappop(heap)
            if not heap:
                continue
            _, _, st, b = heap[0]
            if (
                segs
                and segs[-1].end == x
                and segs[-1].data is b.data
                and segs[-1].source == b.source
                and (segs[-1].offset + segs[-1].size == b.offset + (x - st))
            ):
                last = segs[-1]
                segs[-1] = Block(last.address, last.size + (y - x), last.data, last.offset, last.source)
            else:
                segs.append(Block(x, y - x, b.data, b.offset + (x - st), b.source))
        self._segs = segs
        self._starts = [sg.address for sg in segs]

    # Building -----------------------------------------------------------------
    def add(self, block: Block) -> None:
        """Insert ``block`` after construction, keeping only the parts not already covered."""
        if block.size <= 0:
            return
        start = block.address & self._mask
        end = min(start + block.size, self._mask + 1)
        if end <= start:
            return
        self.blocks.append(block)
        pieces = []
        cur = start
        i = bisect_right(self._starts, cur) - 1
        if i < 0:
            i = 0
        while cur < end:
            # skip segments that end before cur
            while i < len(self._segs) and self._segs[i].end <= cur:
                i += 1
            if i < len(self._segs) and self._segs[i].address <= cur:
                cur = self._segs[i].end
                continue
            nxt = self._segs[i].address if i < len(self._segs) else end
            piece_end = min(nxt, end)
            pieces.append((cur, piece_end))
            cur = piece_end
        for s, e in pieces:
            seg = Block(s, e - s, block.data, block.offset + (s - start), block.source)
            j = bisect_right(self._starts, s)
            self._starts.insert(j, s)
            self._segs.insert(j, seg)

    # Queries --------------------------------------------------------------------
    def segments(self) -> list[Block]:
        """The disjoint segments in address order (what reads actually use)."""
        return list(self._segs)

    def block_at(self, address: int) -> Block | None:
        """The segment holding ``address``, or None."""
        address &= self._mask
        i = bisect_right(self._starts, address) - 1
        if i >= 0 and address < self._segs[i].end:
            return self._segs[i]
        return None

    def blocks_starting_at(self, address: int) -> list[Block]:
        """Original blocks (as added) whose first byte is ``address``."""
        return [b for b in self.blocks if b.address == address]

    def read_chunks(self, address: int, size: int):
        cur = address & self._mask
        remaining = size
        starts, segs = self._starts, self._segs
        while remaining > 0:
            i = bisect_right(starts, cur) - 1
            if i >= 0 and cur < segs[i].end:
                seg = segs[i]
                n = min(remaining, seg.end - cur)
                off = seg.offset + (cur - seg.address)
                yield cur, bytes(seg.data[off : off + n]), n
            else:
                n = remaining
                if i + 1 < len(segs) and segs[i + 1].address > cur:
                    n = min(remaining, segs[i + 1].address - cur)
                yield cur, None, n
            cur = (cur + n) & self._mask
            remaining -= n
