"""Physical memory of a synthetic dump: page allocation and real page tables.

The writer turns virtual mappings into what a crashed machine would hold: data
pages somewhere in RAM and the hardware page tables that map them (x64 4- or
5-level, x86 PAE or non-PAE, optionally large pages). Page contents are kept as
references into the caller's buffers so a big description is never copied.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass, field

from .description import PAGE, DumpDescription

ZERO_PAGE = bytes(PAGE)

# Entry bits shared by every paging mode.
_P, _RW, _US, _A, _D, _PS = 0x1, 0x2, 0x4, 0x20, 0x40, 0x80
_TABLE_FLAGS = _P | _RW | _A
_LEAF_FLAGS = _P | _RW | _A | _D

# (index shifts from the root down to the page table, entry size, entries per table, VA bits)
_MODES = {
    "4level": ((39, 30, 21, 12), 8, 512, 48),
    "5level": ((48, 39, 30, 21, 12), 8, 512, 57),
    "pae": ((30, 21, 12), 8, 512, 32),
    "nonpae": ((22, 12), 4, 1024, 32),
}


def canonical(va: int, va_bits: int) -> bool:
    if va_bits == 32:
        return 0 <= va < 1 << 32
    top = va >> (va_bits - 1)
    return top == 0 or top == (1 << (65 - va_bits)) - 1


@dataclass
class PhysicalLayout:
    """Where every page of a described dump lives in physical memory."""

    machine: str
    paging: str
    directory_table_base: int
    runs: list[tuple[int, int]]
    #: pfn -> (buffer, offset): the page is buffer[offset:offset+PAGE], zero-padded.
    pages: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    #: 4 KB virtual page -> physical page address (large pages expanded).
    va_to_pa: dict[int, int] = field(default_factory=dict)
    #: PFNs holding paging structures.
    table_pfns: set[int] = field(default_factory=set)
    #: Virtual bases of large pages and their size.
    large_pages: dict[int, int] = field(default_factory=dict)

    def page_bytes(self, pfn: int) -> bytes:
        """Content of one physical page (zeros when nothing was placed there)."""
        src = self.pages.get(pfn)
        if src is None:
            return ZERO_PAGE
        buf, off = src
        chunk = bytes(buf[off : off + PAGE])
        return chunk if len(chunk) == PAGE else chunk + bytes(PAGE - len(chunk))

    def read_physical(self, pa: int, size: int) -> bytes:
        """Expected physical bytes, straight from the description (for checks)."""
        out = bytearray()
        while size > 0:
            off = pa & (PAGE - 1)
            n = min(size, PAGE - off)
            out += self.page_bytes(pa >> 12)[off : off + n]
            pa += n
            size -= n
        return bytes(out)

    def translate(self, va: int) -> int | None:
        base = self.va_to_pa.get(va & ~(PAGE - 1))
        return None if base is None else base | (va & (PAGE - 1))

    def read_virtual(self, va: int, size: int) -> bytes | None:
        """Expected virtual bytes, or None when any page is unmapped."""
        out = bytearray()
        while size > 0:
            pa = self.translate(va)
            if pa is None:
                return None
            n = min(size, PAGE - (va & (PAGE - 1)))
            out += self.read_physical(pa, n)
            va += n
            size -= n
        return bytes(out)

    def in_ram(self, pfn: int) -> bool:
        for base, count in self.runs:
            if base <= pfn < base + count:
                return True
        return False


class _Allocator:
    """Hands out free PFNs inside the RAM runs, in order or spread at random."""

    def __init__(self, runs: list[tuple[int, int]], taken: set[int], start: int, seed: int | None):
        self.runs = runs
        self.taken = taken
        self.rng = random.Random(seed) if seed is not None else None
        self.total = sum(c for _, c in runs)
        self._starts = [b for b, _ in runs]
        self._cursor = start

    def _contains(self, pfn: int) -> bool:
        i = bisect_right(self._starts, pfn) - 1
        return i >= 0 and pfn < self.runs[i][0] + self.runs[i][1]

    def page(self) -> int:
        if len(self.taken) >= self.total:
            raise ValueError("description needs more physical pages than the RAM holds")
        if self.rng is not None:
            for _ in range(64):
                base, count = self.rng.choice(self.runs)
                pfn = base + self.rng.randrange(count)
                if pfn not in self.taken:
                    self.taken.add(pfn)
                    return pfn
        # Linear scan from the cursor, wrapping once.
        for _ in range(2):
            for base, count in self.runs:
                end = base + count
                pfn = max(base, self._cursor)
                while pfn < end:
                    if pfn not in self.taken:
                        self.taken.add(pfn)
                        self._cursor = pfn + 1
                        return pfn
                    pfn += 1
            self._cursor = 0
        raise ValueError("description needs more physical pages than the RAM holds")

    def large(self, npages: int) -> int:
        """A free, naturally aligned block of ``npages`` PFNs, taken from the top of RAM down."""
        for base, count in reversed(self.runs):
            cand = ((base + count - npages) // npages) * npages
            while cand >= base:
                block = range(cand, cand + npages)
                if not any(p in self.taken for p in block):
                    self.taken.update(block)
                    return cand
                cand -= npages
        raise ValueError(f"no free aligned block of {npages} pages for a large page")


def _split_mappings(desc: DumpDescription, va_bits: int) -> dict[int, tuple[bytes, int]]:
    pages: dict[int, tuple[bytes, int]] = {}
    for va, data in desc.mappings.items():
        if va & (PAGE - 1):
            raise ValueError(f"mapping at {va:#x} is not page aligned")
        n = max(1, -(-len(data) // PAGE))
        for i in range(n):
            page_va = va + i * PAGE
            if not canonical(page_va, va_bits):
                raise ValueError(
                    f"virtual address {page_va:#x} is not canonical for {desc.resolved_paging()}"
                )
            if page_va in pages:
                raise ValueError(f"mappings overlap at {page_va:#x}")
            pages[page_va] = (data, i * PAGE)
    return pages


def build_layout(desc: DumpDescription) -> PhysicalLayout:
    """Place every page of ``desc`` in physical memory and generate its page tables."""
    paging = desc.resolved_paging()
    shifts, entry_size, entries, va_bits = _MODES[paging]
    runs = desc.resolved_runs()
    layout = PhysicalLayout(desc.machine, paging, 0, runs)
    max_pfn = (1 << 32) >> 12 if paging == "nonpae" else (1 << 52) >> 12
    if runs and runs[-1][0] + runs[-1][1] > max_pfn:
        raise ValueError(f"RAM runs exceed what {paging} paging can address")

    taken: set[int] = set()
    for pa, data in desc.physical_pages.items():
        if pa & (PAGE - 1):
            raise ValueError(f"physical page at {pa:#x} is not page aligned")
        for i in range(max(1, -(-len(data) // PAGE))):
            pfn = (pa >> 12) + i
            if not layout.in_ram(pfn):
                raise ValueError(f"physical page {pfn << 12:#x} lies outside the RAM runs")
            if pfn in taken:
                raise ValueError(f"physical pages overlap at {pfn << 12:#x}")
            taken.add(pfn)
            layout.pages[pfn] = (data, i * PAGE)

    vpages = _split_mappings(desc, va_bits)
    alloc = _Allocator(runs, taken, desc.alloc_start, desc.spread_seed)

    def new_table() -> tuple[int, bytearray]:
        pfn = alloc.page()
        table = bytearray(PAGE)
        layout.pages[pfn] = (table, 0)
        layout.table_pfns.add(pfn)
        return pfn, table

    # The root. PAE's CR3 names a 32-byte table that may sit anywhere in its page.
    root_pfn, root = new_table()
    root_off = 0
    if paging == "pae":
        root_off = desc.pae_pdpt_offset
        if root_off & 31 or root_off + 32 > PAGE:
            raise ValueError("pae_pdpt_offset must be 32-byte aligned and leave room for 4 entries")
    layout.directory_table_base = (root_pfn << 12) | root_off

    tables: dict[tuple[int, int], tuple[int, bytearray, int]] = {(0, 0): (root_pfn, root, root_off)}
    mask = (1 << va_bits) - 1
    user_limit = 1 << (va_bits - 1) if va_bits > 32 else 1 << 31

    def put(table: bytearray, base_off: int, index: int, value: int) -> None:
        off = base_off + index * entry_size
        table[off : off + entry_size] = value.to_bytes(entry_size, "little")

    def table_for(va: int, depth: int) -> tuple[int, bytearray, int]:
        """The table at ``depth`` (0 = root) covering ``va``, created on the way down."""
        parent = tables[(0, 0)]
        for d in range(1, depth + 1):
            key = (d, (va & mask) >> shifts[d - 1])
            tab = tables.get(key)
            if tab is None:
                pfn, raw = new_table()
                tab = (pfn, raw, 0)
                tables[key] = tab
                idx = ((va & mask) >> shifts[d - 1]) & (
                    entries - 1 if not (paging == "pae" and d == 1) else 3
                )
                flags = _P if (paging == "pae" and d == 1) else _TABLE_FLAGS | (_US if va < user_limit else 0)
                put(parent[1], parent[2], idx, (pfn << 12) | flags)
            parent = tab
        return parent

    leaf_depth = len(shifts) - 1
    large_shift = shifts[-2]
    large_size = 1 << large_shift
    large_pages_n = large_size // PAGE

    done: set[int] = set()
    if desc.large_pages:
        bases = sorted({va & ~(large_size - 1) for va in vpages})
        for base in bases:
            if all(base + i * PAGE in vpages for i in range(large_pages_n)):
                pfn0 = alloc.large(large_pages_n)
                for i in range(large_pages_n):
                    layout.pages[pfn0 + i] = vpages[base + i * PAGE]
                    layout.va_to_pa[base + i * PAGE] = (pfn0 + i) << 12
                    done.add(base + i * PAGE)
                tab = table_for(base, leaf_depth - 1)
                idx = ((base & mask) >> large_shift) & (entries - 1)
                flags = _LEAF_FLAGS | _PS | (_US if base < user_limit else 0)
                put(tab[1], tab[2], idx, (pfn0 << 12) | flags)
                layout.large_pages[base] = large_size

    for va in sorted(vpages):
        if va in done:
            continue
        pfn = alloc.page()
        layout.pages[pfn] = vpages[va]
        layout.va_to_pa[va] = pfn << 12
        tab = table_for(va, leaf_depth)
        idx = ((va & mask) >> 12) & (entries - 1)
        put(tab[1], tab[2], idx, (pfn << 12) | _LEAF_FLAGS | (_US if va < user_limit else 0))
    return layout
