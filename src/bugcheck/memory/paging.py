"""Virtual-to-physical translation by walking the page tables found in physical memory.

Supports x64 4-level and 5-level (LA57) paging with 2 MB and 1 GB pages, x86
PAE (3 levels, 2 MB pages) and non-PAE (2 levels, 4 MB pages). A last-level
entry that is not valid but in *transition* (bit 11 set, prototype bit 10
clear) still names a page that is in RAM, so it translates, as WinDbg does.
Every walk is returned as a :class:`PageWalk` so ``!pte`` can show each
level's entry address and value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bugcheck.errors import MemoryNotPresent
from bugcheck.memory.base import PAGE_SIZE, AddressSpace

PTE_VALID = 1 << 0
PTE_WRITE = 1 << 1
PTE_OWNER = 1 << 2
PTE_LARGE = 1 << 7
PTE_PROTOTYPE = 1 << 10
PTE_TRANSITION = 1 << 11
PTE_NX = 1 << 63

_PFN_MASK_64 = 0x000F_FFFF_FFFF_F000  # bits 12..51
#: reads up to this size are served page by page from the file by VirtualMemory
FAST_SPAN = 0x10000


@dataclass
class PageLevel:
    """One step of a walk: the entry's physical address and value (None if unreadable)."""

    name: str  # "PXE"/"PPE"/"PDE"/"PTE" (x64 names as !pte prints them), "PML5E", "PDPTE"
    entry_address: int
    value: int | None
    index: int

    @property
    def valid(self) -> bool:
        return self.value is not None and bool(self.value & PTE_VALID)

    @property
    def large(self) -> bool:
        return self.value is not None and bool(self.value & PTE_LARGE)

    @property
    def pfn(self) -> int | None:
        if self.value is None:
            return None
        return (self.value & _PFN_MASK_64) >> 12


@dataclass
class PageWalk:
    """Result of translating ``va``: the levels visited and the outcome.

    ``physical`` is None when the address does not translate; ``reason`` then
    says why ("PDE not present", "entry unreadable", ...).
    """

    va: int
    levels: list[PageLevel] = field(default_factory=list)
    physical: int | None = None
    page_size: int = PAGE_SIZE
    transition: bool = False
    reason: str = ""

    @property
    def present(self) -> bool:
        return self.physical is not None


class Paging:
    """Base for the paging modes; ``walk`` does the work, ``translate`` raises on failure."""

    #: per level: (name, shift, index bits)
    levels: tuple[tuple[str, int, int], ...] = ()
    entry_size = 8
    pfn_mask = _PFN_MASK_64
    va_bits = 48
    large_sizes: dict[str, int] = {}

    def __init__(self, physical: AddressSpace, dtb: int):
        self.physical = physical
        self.dtb = dtb
        self._cache: dict[int, tuple[int, int] | None] = {}
        #: physical address -> entry value, for entries read from the dump file (which never changes;
        #: memory built in place, as tests do, is always read afresh)
        self._entries: dict[int, int] = {}
        self._buf = getattr(physical, "_buf", None)
        self._file_offset = getattr(physical, "file_offset", None)

    def _root(self) -> int:
        return self.dtb & self.pfn_mask

    def _read_entry(self, pa: int) -> int | None:
        got = self._entries.get(pa)
        if got is not None:
            return got
        n = self.entry_size
        if self._file_offset is not None and pa & (PAGE_SIZE - 1) <= PAGE_SIZE - n:
            off = self._file_offset(pa >> 12)
            if off is not None:
                off += pa & (PAGE_SIZE - 1)
                value = int.from_bytes(self._buf[off : off + n], "little")
                if len(self._entries) >= 1 << 16:
                    self._entries.clear()
                self._entries[pa] = value
                return value
        raw, holes = self.physical.read_padded(pa, n)
        if holes:
            return None
        return int.from_bytes(raw, "little")

    def walk(self, va: int) -> PageWalk:
        va &= (1 << 64) - 1
        w = PageWalk(va)
        if not self._canonical(va):
            w.reason = "non-canonical address"
            return w
        table = self._root()
        nlev = len(self.levels)
        for depth, (name, shift, bits) in enumerate(self.levels):
            idx = (va >> shift) & ((1 << bits) - 1)
            pa = table + idx * self.entry_size
            value = self._read_entry(pa)
            lvl = PageLevel(name, pa, value, idx)
            w.levels.append(lvl)
            last = depth == nlev - 1
            if value is None:
                w.reason = f"{name} at physical {pa:#x} is not in the dump"
                return w
            if not value & PTE_VALID:
                if last and value & PTE_TRANSITION and not value & PTE_PROTOTYPE:
                    w.transition = True
                    w.physical = (value & self.pfn_mask) | (va & (PAGE_SIZE - 1))
                    return w
                w.reason = f"{name} not present"
                return w
            if not last and value & PTE_LARGE and name in self.large_sizes:
                size = self.large_sizes[name]
                w.page_size = size
                base = value & self.pfn_mask & ~(size - 1)
                w.physical = base | (va & (size - 1))
                return w
            table = value & self.pfn_mask
        w.physical = table | (va & (PAGE_SIZE - 1))
        return w

    def _physical_of(self, va: int) -> int | None:
        """``walk(va).physical`` without recording the levels (the hot path of translation)."""
        if type(self).walk is not Paging.walk:
            return self.walk(va).physical  # a subclass walks differently: ask it
        va &= (1 << 64) - 1
        if not self._canonical(va):
            return None
        table = self._root()
        levels = self.levels
        nlev = len(levels)
        es = self.entry_size
        for depth, (name, shift, bits) in enumerate(levels):
            value = self._read_entry(table + ((va >> shift) & ((1 << bits) - 1)) * es)
            if value is None:
                return None
            last = depth == nlev - 1
            if not value & PTE_VALID:
                if last and value & PTE_TRANSITION and not value & PTE_PROTOTYPE:
                    return (value & self.pfn_mask) | (va & (PAGE_SIZE - 1))
                return None
            if not last and value & PTE_LARGE and name in self.large_sizes:
                size = self.large_sizes[name]
                return (value & self.pfn_mask & ~(size - 1)) | (va & (size - 1))
            table = value & self.pfn_mask
        return table | (va & (PAGE_SIZE - 1))

    def _canonical(self, va: int) -> bool:
        top = va >> (self.va_bits - 1)
        return top == 0 or top == (1 << (64 - self.va_bits + 1)) - 1

    def page_translation(self, va: int) -> tuple[int, int] | None:
        """(physical page base, page size) for ``va``, cached per 4 KB page."""
        key = va >> 12
        if key in self._cache:
            return self._cache[key]
        physical = self._physical_of(va)
        res = None
        if physical is not None:
            res = (physical & ~(PAGE_SIZE - 1), PAGE_SIZE)
        if len(self._cache) > 1 << 16:
            self._cache.clear()
        self._cache[key] = res
        return res

    def translate(self, va: int) -> int:
        """Physical address of ``va``; MemoryNotPresent (with the walk's reason) when unmapped."""
        w = self.walk(va)
        if w.physical is None:
            raise MemoryNotPresent(va, "virtual", w.reason)
        return w.physical


class X64Paging(Paging):
    """x64 4-level paging (PML4); names as WinDbg's ``!pte`` prints them."""

    levels = (("PXE", 39, 9), ("PPE", 30, 9), ("PDE", 21, 9), ("PTE", 12, 9))
    large_sizes = {"PPE": 1 << 30, "PDE": 1 << 21}
    va_bits = 48


class X64La57Paging(Paging):
    """x64 5-level paging (CR4.LA57), 57-bit virtual addresses."""

    levels = (("PML5E", 48, 9), ("PXE", 39, 9), ("PPE", 30, 9), ("PDE", 21, 9), ("PTE", 12, 9))
    large_sizes = {"PPE": 1 << 30, "PDE": 1 << 21}
    va_bits = 57


class _X86Addresses:
    """32-bit targets: addresses arrive sign-extended to 64 bits; only the low 32 bits count."""

    def _canonical(self, va: int) -> bool:
        return va < 1 << 32

    def walk(self, va: int) -> PageWalk:
        return super().walk(va & 0xFFFF_FFFF)

    def page_translation(self, va: int):
        return super().page_translation(va & 0xFFFF_FFFF)


class X86PaePaging(_X86Addresses, Paging):
    """x86 PAE: 4-entry PDPT (32-byte aligned CR3), 2 MB large pages, 64-bit entries."""

    levels = (("PDPTE", 30, 2), ("PDE", 21, 9), ("PTE", 12, 9))
    large_sizes = {"PDE": 1 << 21}
    va_bits = 64  # no canonical form for 32-bit addresses

    def _root(self) -> int:
        # (PDPTEs have no PS bit, so no large page is taken at that level.)
        return self.dtb & 0xFFFF_FFE0


class X86Paging(_X86Addresses, Paging):
    """x86 non-PAE: 2 levels of 32-bit entries, 4 MB large pages (PSE)."""

    levels = (("PDE", 22, 10), ("PTE", 12, 10))
    large_sizes = {"PDE": 1 << 22}
    entry_size = 4
    pfn_mask = 0xFFFF_F000
    va_bits = 64

    def _root(self) -> int:
        return self.dtb & 0xFFFF_F000


class VirtualMemory(AddressSpace):
    """Kernel virtual memory: page-by-page translation through ``paging`` into its physical space."""

    space = "virtual"

    def __init__(self, paging: Paging):
        self.paging = paging
        self.physical = paging.physical
        #: virtual page -> file offset of its data (None: take the general path); dump data never changes
        self._file_pages: dict[int, int | None] = {}
        self._buf = getattr(self.physical, "_buf", None)
        self._file_offset = getattr(self.physical, "file_offset", None)

    def _page_file_offset(self, address: int) -> int | None:
        """File offset of the page holding ``address`` when all of it is in the file, else None."""
        key = (address >> 12) & 0xF_FFFF_FFFF_FFFF
        off = self._file_pages.get(key, -1)
        if off == -1:
            tr = self.paging.page_translation(address & 0xFFFF_FFFF_FFFF_FFFF)
            off = self._file_offset(tr[0] >> 12) if tr is not None else None
            if len(self._file_pages) > 1 << 18:
                self._file_pages.clear()
            self._file_pages[key] = off
        return off

    def read(self, address: int, size: int) -> bytes:
        """Fast path for reads inside one mapped page; anything else takes the general path."""
        in_page = address & (PAGE_SIZE - 1)
        if 0 < size <= PAGE_SIZE - in_page:
            if self._file_offset is not None:
                off = self._page_file_offset(address)
                if off is not None:
                    return bytes(self._buf[off + in_page : off + in_page + size])
            tr = self.paging.page_translation(address & 0xFFFF_FFFF_FFFF_FFFF)
            if tr is not None:
                try:
                    return self.physical.read(tr[0] | in_page, size)
                except MemoryNotPresent:
                    pass  # report the hole at its virtual address, below
        elif self._file_offset is not None and 0 < size <= FAST_SPAN:
            # a few pages: file-backed pages straight from the file, the rest piece by piece
            # (so the first absent byte is still the one reported)
            parts = []
            cur, end = address, address + size
            while cur < end:
                in_page = cur & (PAGE_SIZE - 1)
                n = min(PAGE_SIZE - in_page, end - cur)
                off = self._page_file_offset(cur) if self._file_offset is not None else None
                if off is not None:
                    parts.append(self._buf[off + in_page : off + in_page + n])
                else:
                    parts.append(super().read(cur, n))
                cur += n
            return b"".join(parts)
        return super().read(address, size)

    def read_padded(self, address: int, size: int, fill: int = 0) -> tuple[bytes, list[tuple[int, int]]]:
        """Page by page from the file where possible; pieces it cannot serve take the general path."""
        if self._file_offset is None or not 0 < size <= FAST_SPAN:
            return super().read_padded(address, size, fill)
        parts = []
        holes: list[tuple[int, int]] = []
        cur, end = address, address + size
        while cur < end:
            in_page = cur & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - in_page, end - cur)
            off = self._page_file_offset(cur)
            if off is not None:
                parts.append(self._buf[off + in_page : off + in_page + n])
            else:
                data, piece_holes = super().read_padded(cur, n, fill)
                parts.append(data)
                for h in piece_holes:
                    if holes and holes[-1][0] + holes[-1][1] == h[0]:
                        holes[-1] = (holes[-1][0], holes[-1][1] + h[1])
                    else:
                        holes.append(h)
            cur += n
        return b"".join(parts), holes

    def read_chunks(self, address: int, size: int):
        cur, end = address, address + size
        mask = (1 << 64) - 1
        while cur < end:
            n = min(PAGE_SIZE - (cur & (PAGE_SIZE - 1)), end - cur)
            tr = self.paging.page_translation(cur & mask)
            if tr is None:
                yield cur & mask, None, n
            else:
                pa = tr[0] | (cur & (PAGE_SIZE - 1))
                done = 0
                for _, data, length in self.physical.read_chunks(pa, n):
                    yield (cur + done) & mask, data, length
                    done += length
            cur += n
