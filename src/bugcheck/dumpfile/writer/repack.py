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
    machine = fields.get("machine", "x64")
    mask = (1 << 64) - 1 if machine == "x64" else (1 << 32) - 1
    return _dump_from_mappings(blocks_to_mappings(blocks, mask), out_path, kind, **fields)


def _dump_from_mappings(mappings: dict[int, bytes], out_path, kind: str, **fields):
    from . import write_dump

    desc = DumpDescription(mappings=mappings, **fields)
    if "ram_size" not in fields and "ram_runs" not in fields:
        need = (len(mappings) * 2 + 0x2000) * PAGE
        desc.ram_size = max(desc.ram_size, 1 << max(need - 1, 1).bit_length())
    return write_dump(desc, out_path, kind)


def repack(dump, out_path: str | os.PathLike, kind: str = "kernel_bitmap", *, types=None, **overrides):
    """Re-pack an opened dump's captured virtual memory (typically a triage dump) as ``kind``.

    Header fields and register contexts come from ``dump``; ``overrides`` replace
    any :class:`DumpDescription` field. With ``types`` (the kernel's TypeSource:
    its PDB or ISF table), a triage dump's driver list becomes a real
    PsLoadedModuleList of ``_KLDR_DATA_TABLE_ENTRY`` records at the header's
    list head, as a kernel dump holds it; and a debugger data block the
    triage dump kept only as a copy is put back at KdDebuggerDataBlock.
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
    mask = (1 << 64) - 1 if dump.machine == "x64" else (1 << 32) - 1
    mappings = blocks_to_mappings(blocks, mask)
    _restore_kd_block(mappings, dump, fields["kd_debugger_data_block"])
    if types is not None:
        _add_module_list(mappings, dump, types, fields["ps_loaded_module_list"])
    return _dump_from_mappings(mappings, out_path, kind, **fields)


def _patch(mappings: dict[int, bytes], va: int, data: bytes) -> None:
    """Write ``data`` at ``va`` into the page mappings, creating zero pages where needed."""
    pos = 0
    while pos < len(data):
        page_va = (va + pos) & ~(PAGE - 1)
        off = va + pos - page_va
        n = min(len(data) - pos, PAGE - off)
        page = bytearray(mappings.get(page_va, bytes(PAGE)))
        page[off : off + n] = data[pos : pos + n]
        mappings[page_va] = bytes(page)
        pos += n


def _read(mappings: dict[int, bytes], va: int, size: int) -> bytes | None:
    page_va = va & ~(PAGE - 1)
    page = mappings.get(page_va)
    off = va - page_va
    if page is None or off + size > len(page):
        return None
    return page[off : off + size]


def _restore_kd_block(mappings: dict[int, bytes], dump, address: int) -> None:
    """Put the triage copy of KDDEBUGGER_DATA64 at KdDebuggerDataBlock when memory lacks it."""
    kd = getattr(dump, "kd_debugger_data", None)
    if not address or not kd or getattr(dump, "triage", None) is None:
        return
    tag = _read(mappings, address + 0x10, 4)
    if tag == b"KDBG":
        return
    from bugcheck.dumpfile.synth.kdbg import kdbg_bytes

    values = {k: v for k, v in kd.items() if k not in ("OwnerTag", "Size") and isinstance(v, int)}
    _patch(mappings, address, kdbg_bytes(values, int(kd.get("Size") or 0x380), address))


#: candidate bases for the re-packed module entries, tried in order until one is free
_POOL_CANDIDATES = (0xFFFFB00F_00000000, 0xFFFFA00F_00000000, 0xFFFF900F_00000000, 0xFFFFE00F_00000000)


def _free_range(mappings: dict[int, bytes], size: int) -> int:
    for base in _POOL_CANDIDATES:
        if not any(base - 0x100000 <= va < base + size + 0x100000 for va in mappings):
            return base
    raise ValueError("no free virtual range for the re-packed module list")


def _add_module_list(mappings: dict[int, bytes], dump, types, head: int) -> None:
    """Turn a triage driver list into KLDR entries linked from ``head`` (PsLoadedModuleList)."""
    triage = getattr(dump, "triage", None)
    drivers = list(getattr(triage, "drivers", None) or [])
    if not head or not drivers or dump.machine != "x64":
        return
    from bugcheck.dumpfile.synth import Arena, SparseMemory, SynthModule, build_module_list

    mods = []
    for d in drivers[:4096]:
        if isinstance(d, tuple):
            path, base, size, ts, cs = (*d, 0, 0)[:5]
        else:
            path = getattr(d, "name", "") or getattr(d, "path", "")
            base, size = getattr(d, "base", 0), getattr(d, "size", 0)
            ts, cs = getattr(d, "timestamp", 0), getattr(d, "checksum", 0)
        if path and base:
            mods.append(SynthModule(path, base, size, ts or 0, cs or 0))
    if not mods:
        return
    entry_t = types.find_type("_KLDR_DATA_TABLE_ENTRY")
    per = (entry_t.size if entry_t is not None else 0xA0) + 16
    need = sum(per + 2 * len(m.path) + 2 * len(m.name) + 32 for m in mods) + PAGE
    memory = SparseMemory(8)
    pool = Arena(memory, _free_range(mappings, need), need + PAGE)
    build_module_list(memory, pool, types, head, mods, headers=False)
    for va, page in memory.pages.items():
        if pool.base <= va < pool.next:  # the entries and their strings; the head is patched below
            mappings[va] = bytes(page)
    _patch(mappings, head, memory.read(head, 16))


def _register_names(machine: str) -> set[str]:
    from .headers import CONTEXT32_FIELDS, CONTEXT64_FIELDS

    return set(CONTEXT64_FIELDS if machine == "x64" else CONTEXT32_FIELDS)
