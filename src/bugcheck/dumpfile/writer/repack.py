"""Re-packing a triage dump's sparse virtual memory as a full or bitmap dump.

A triage dump holds copies of memory at virtual addresses but no page tables.
Putting those blocks in a kernel bitmap or full dump (with generated page
tables) gives the page-table based readers and commands a realistic input made
from a real crash. Pages are the unit of a real dump, so bytes of a page the
triage dump did not capture read as zeros after re-packing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from .description import PAGE, DumpDescription

MAX_REPACK_PAGES = 1 << 22  # 16 GB of captured memory is far beyond any triage dump


def _as_block(item) -> tuple[int, bytes]:
    if isinstance(item, tuple):
        va, data = item
        return int(va), bytes(data)
    data = item.data
    off = getattr(item, "offset", 0)
    size = getattr(item, "size", None)
    if size is None:
        size = len(data) - off
    return int(item.address), bytes(memoryview(data)[off : off + size])


def blocks_to_mappings(blocks: Iterable, address_mask: int = (1 << 64) - 1) -> dict[int, bytes]:
    """Merge ``(va, bytes)`` blocks (or objects with address/data/offset/size) into page mappings.

    Where blocks overlap, the one listed first wins, as in the triage reader's
    sparse memory. Uncovered bytes of a touched page are zero.
    """
    pages: dict[int, bytearray] = {}
    covered: dict[int, bytearray] = {}
    for item in blocks:
        va, data = _as_block(item)
        va &= address_mask
        pos = 0
        while pos < len(data):
            page_va = (va + pos) & ~(PAGE - 1)
            off = (va + pos) - page_va
            n = min(len(data) - pos, PAGE - off)
            page = pages.get(page_va)
            if page is None:
                if len(pages) >= MAX_REPACK_PAGES:
                    raise ValueError("too many pages to re-pack")
                page = pages[page_va] = bytearray(PAGE)
                covered[page_va] = bytearray(PAGE)
            mask = covered[page_va]
            chunk = data[pos : pos + n]
            if not any(mask[off : off + n]):
                page[off : off + n] = chunk
                mask[off : off + n] = b"\x01" * n
            else:
                for i in range(n):
                    if not mask[off + i]:
                        page[off + i] = chunk[i]
                        mask[off + i] = 1
            pos += n
    return {va: bytes(p) for va, p in pages.items()}


def dump_from_blocks(blocks: Iterable, out_path: str | os.PathLike, kind: str = "kernel_bitmap", **fields):
    """Write a dump whose virtual memory is ``blocks``; ``fields`` are :class:`DumpDescription` fields.

    Returns the writer's :class:`~bugcheck.dumpfile.writer.layout.PhysicalLayout`.
    """
    from . import write_dump

    machine = fields.get("machine", "x64")
    mask = (1 << 64) - 1 if machine == "x64" else (1 << 32) - 1
    mappings = blocks_to_mappings(blocks, mask)
    desc = DumpDescription(mappings=mappings, **fields)
    if "ram_size" not in fields and "ram_runs" not in fields:
        need = (len(mappings) * 2 + 0x2000) * PAGE
        desc.ram_size = max(desc.ram_size, 1 << max(need - 1, 1).bit_length())
    return write_dump(desc, out_path, kind)


def repack(dump, out_path: str | os.PathLike, kind: str = "kernel_bitmap", **overrides):
    """Re-pack an opened dump's captured virtual memory (typically a triage dump) as ``kind``.

    Header fields and register contexts come from ``dump``; ``overrides`` replace
    any :class:`DumpDescription` field.
    """
    if dump.machine not in ("x64", "x86"):
        raise ValueError(f"cannot re-pack a {dump.machine} dump: the writer makes x64 and x86 dumps")
    blocks = getattr(dump.virtual, "blocks", None)
    if blocks is None:
        raise ValueError("the dump's virtual memory does not expose captured blocks")
    h = dump.header
    contexts = [dict(c.regs) for c in dump.contexts] or [dict(dump.crash_context.regs)]
    regs_known = _register_names(dump.machine)
    contexts = [{k: v for k, v in c.items() if k in regs_known} for c in contexts]
    crash = dump.crash_processor if dump.crash_processor is not None else 0
    if len(contexts) == 1:
        crash = 0
    fields = {
        "machine": dump.machine,
        "build": getattr(h, "minor_version", 0),
        "major_version": getattr(h, "major_version", 0xF),
        "processor_count": getattr(h, "number_processors", None),
        "bugcheck_code": dump.bugcheck_code,
        "bugcheck_parameters": tuple(dump.bugcheck_parameters),
        "system_time": getattr(h, "system_time", 0) or 0,
        "system_up_time": getattr(h, "system_up_time", 0) or 0,
        "product_type": getattr(h, "product_type", 1) or 1,
        "suite_mask": getattr(h, "suite_mask", 0) or 0,
        "contexts": contexts,
        "crash_processor": crash,
        "kd_debugger_data_block": getattr(h, "kd_debugger_data_block", 0) or 0,
        "ps_loaded_module_list": getattr(h, "ps_loaded_module_list", 0) or 0,
        "ps_active_process_head": getattr(h, "ps_active_process_head", 0) or 0,
        "pfn_database": getattr(h, "pfn_database", 0) or 0,
    }
    fields.update(overrides)
    return dump_from_blocks(blocks, out_path, kind, **fields)


def _register_names(machine: str) -> set[str]:
    from .headers import CONTEXT32_FIELDS, CONTEXT64_FIELDS

    return set(CONTEXT64_FIELDS if machine == "x64" else CONTEXT32_FIELDS)
