"""Streaming a laid-out physical memory into a dump file.

Pages are written in file order straight from the caller's buffers; pages that
hold nothing but zeros are skipped with a seek, so a complete dump of a 16 GB
machine becomes a sparse file and never needs its RAM in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

from .description import PAGE, DumpDescription
from .headers import (
    BITMAP_HEADER_SIZE,
    HEADER32_SIZE,
    HEADER64_SIZE,
    bitmap_header,
    header32,
    header64,
)
from .layout import PhysicalLayout


def _group_runs(pfns: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for pfn in pfns:
        if runs and runs[-1][0] + runs[-1][1] == pfn:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((pfn, 1))
    return runs


def _set_bits(bitmap: bytearray, start: int, count: int) -> None:
    end = start + count
    while start < end and start & 7:
        bitmap[start >> 3] |= 1 << (start & 7)
        start += 1
    full = (end - start) >> 3
    if full:
        bitmap[start >> 3 : (start >> 3) + full] = b"\xff" * full
        start += full << 3
    while start < end:
        bitmap[start >> 3] |= 1 << (start & 7)
        start += 1


def _write_pages(f, layout: PhysicalLayout, present: list[tuple[int, int]], data_offset: int) -> int:
    """Write every present page in PFN order starting at ``data_offset``; return the end offset."""
    content = sorted(layout.pages)
    ci = 0
    offset = data_offset
    for base, count in present:
        while ci < len(content) and content[ci] < base:
            ci += 1  # not in any present run (cannot happen for validated layouts)
        while ci < len(content) and content[ci] < base + count:
            pfn = content[ci]
            page = layout.page_bytes(pfn)
            if page.count(0) != PAGE:
                f.seek(offset + (pfn - base) * PAGE)
                f.write(page)
            ci += 1
        offset += count * PAGE
    return offset


def write_layout(desc: DumpDescription, layout: PhysicalLayout, path: str | os.PathLike, kind: str) -> int:
    """Write ``layout`` as a dump of ``kind`` to ``path``; return the file size."""
    path = Path(path)
    ram_runs = layout.runs
    for pfn in layout.pages:
        if not layout.in_ram(pfn):
            raise ValueError(f"page {pfn << 12:#x} lies outside the RAM runs")
    if desc.machine == "x86":
        if kind != "full":
            raise ValueError("32-bit dumps are written as full (run-based) dumps only")
        present = ram_runs
        size = HEADER32_SIZE + sum(c for _, c in present) * PAGE
        head = header32(desc, layout.directory_table_base, ram_runs, size, layout.paging == "pae")
        data_offset = HEADER32_SIZE
        preamble = bytes(head)
    elif kind == "full":
        present = ram_runs
        size = HEADER64_SIZE + sum(c for _, c in present) * PAGE
        preamble = bytes(header64(desc, 1, layout.directory_table_base, ram_runs, size))
        data_offset = HEADER64_SIZE
    elif kind in ("kernel_bitmap", "complete_bitmap"):
        if kind == "complete_bitmap":
            present, signature, dump_type = ram_runs, b"FDMP", 5
        else:
            present, signature, dump_type = _group_runs(sorted(layout.pages)), b"SDMP", 6
        last = ram_runs[-1][0] + ram_runs[-1][1] if ram_runs else 0
        nbits = (last + 7) & ~7
        bitmap = bytearray(nbits // 8)
        for base, count in present:
            _set_bits(bitmap, base, count)
        npresent = sum(c for _, c in present)
        first_page = (HEADER64_SIZE + BITMAP_HEADER_SIZE + len(bitmap) + PAGE - 1) & ~(PAGE - 1)
        size = first_page + npresent * PAGE
        head = header64(desc, dump_type, layout.directory_table_base, ram_runs, size)
        preamble = bytes(head) + bitmap_header(signature, first_page, npresent, nbits) + bytes(bitmap)
        data_offset = first_page
    else:
        raise ValueError(f"unknown dump kind {kind!r}")

    with open(path, "wb") as f:
        f.write(preamble)
        end = _write_pages(f, layout, present, data_offset)
        f.truncate(end)
    return end
