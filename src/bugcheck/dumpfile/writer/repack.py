"""Re-packing a triage dump's sparse virtual memory as a full or bitmap dump.

A triage dump holds copies of memory at virtual addresses but no page tables.
Putting those blocks in a kernel bitmap or full dump (with generated page
tables) gives the page-table based readers and commands a realistic input made
from a real crash. Pages are the unit of a real dump, so bytes of a page the
triage dump did not capture read as zeros after re-packing.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Mapping

import numpy as np

from ..dump import REPACK_COMMENT
from ..unloaded import MI_UNLOADED_DRIVERS, unloaded_record_layout
from .description import PAGE, DumpDescription

MAX_REPACK_PAGES = 1 << 22  # 16 GB of captured memory is far beyond any triage dump
#: bytes of module images one re-pack may place (a kernel's drivers total a few hundred MB)
MAX_IMAGE_BYTES = 2 << 30


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
    pages, _ = _merge_blocks(blocks, address_mask)
    return {va: bytes(p) for va, p in pages.items()}


def _merge_blocks(blocks: Iterable, address_mask: int) -> tuple[dict[int, bytearray], dict[int, bytearray]]:
    """Pages of the blocks, and per page a byte mask of what the blocks really held (1 = captured)."""
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
    return pages, covered


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


def repack(
    dump,
    out_path: str | os.PathLike,
    kind: str = "kernel_bitmap",
    *,
    types=None,
    images: Mapping[int, object] | None = None,
    **overrides,
):
    """Re-pack an opened dump's captured virtual memory (typically a triage dump) as ``kind``.

    Header fields and register contexts come from ``dump``; ``overrides`` replace
    any :class:`DumpDescription` field. With ``types`` (the kernel's TypeSource:
    its PDB or ISF table), a triage dump's driver list becomes a real
    PsLoadedModuleList of ``_KLDR_DATA_TABLE_ENTRY`` records at the header's
    list head, as a kernel dump holds it; its unloaded-driver list becomes the
    MmUnloadedDrivers array; and a debugger data block the triage dump kept
    only as a copy is put back at KdDebuggerDataBlock.

    ``images`` maps a module's base to its image's constant bytes (from
    ``bugcheck.symbols.pe.module_images``: objects whose ``placed()`` gives
    ``(va, bytes)`` pieces, or such a list): a triage dump holds only scraps of
    each driver. Only bytes the loader leaves as in the file are placed —
    never writable data, discarded INIT code or the resolved import table, so
    no initial value poses as the crash's — the same bytes a debugger serves
    from the image on the triage dump. Captured bytes win byte by byte. Pages
    are whole, so a placed page's other bytes read as zeros.
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
        "comment": REPACK_COMMENT,
    }
    fields.update(overrides)
    mask = (1 << 64) - 1 if dump.machine == "x64" else (1 << 32) - 1
    pages, covered = _merge_blocks(blocks, mask)
    mappings = {va: bytes(p) for va, p in pages.items()}
    del pages
    pieces = _image_pieces(images, mask)
    reserved = _image_ranges(pieces)
    kd_extra: dict[int, int] = {}
    if types is not None:
        _add_module_list(mappings, dump, types, fields["ps_loaded_module_list"], covered, reserved)
        kd_extra = _add_unloaded_drivers(mappings, dump, types, covered, reserved)
    _restore_kd_block(mappings, dump, fields["kd_debugger_data_block"], covered, kd_extra)
    if pieces:
        _place_images(mappings, covered, pieces)
    return _dump_from_mappings(mappings, out_path, kind, **fields)


def _patch(mappings: dict[int, bytes], va: int, data: bytes, covered: dict | None = None) -> None:
    """Write ``data`` at ``va`` into the page mappings, creating zero pages where needed.

    With ``covered``, the written bytes count as real memory (an image placed
    later does not overwrite them)."""
    pos = 0
    while pos < len(data):
        page_va = (va + pos) & ~(PAGE - 1)
        off = va + pos - page_va
        n = min(len(data) - pos, PAGE - off)
        page = bytearray(mappings.get(page_va, bytes(PAGE)))
        page[off : off + n] = data[pos : pos + n]
        mappings[page_va] = bytes(page)
        if covered is not None:
            mask = covered.get(page_va)
            if mask is None:
                if len(mappings) > MAX_REPACK_PAGES:
                    raise ValueError("too many pages to re-pack")
                mask = covered[page_va] = bytearray(PAGE)
            mask[off : off + n] = b"\x01" * n
        pos += n


def _image_pieces(images: Mapping[int, object] | None, mask: int) -> list[tuple[int, bytes]]:
    """Every ``(va, bytes)`` piece of the images, checked against the caps before anything is built."""
    if not images:
        return []
    out = []
    total = 0
    for base, image in images.items():
        base = int(base)
        if base & (PAGE - 1) or base & ~mask:
            raise ValueError(f"image base {base:#x} is not a page-aligned address of this machine")
        if isinstance(image, (bytes, bytearray, memoryview)):
            raise ValueError(
                "an image must say which of its bytes are constant (placed() pieces), not be raw bytes"
            )
        placed = image.placed() if hasattr(image, "placed") else image
        for va, data in placed:
            va = int(va)
            total += len(data)
            if total > MAX_IMAGE_BYTES:
                raise ValueError("module images exceed the re-pack cap")
            if va & ~mask or (va + len(data) - 1) & ~mask:
                raise ValueError(f"image bytes at {va:#x} are outside this machine's addresses")
            out.append((va, bytes(data)))
    return out


def _image_ranges(pieces: list[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """(start, end) of the pages the image pieces touch, kept clear of the re-pack's own structures."""
    return [(va & ~(PAGE - 1), -(-(va + len(data)) // PAGE) * PAGE) for va, data in pieces]


def _place_images(mappings: dict[int, bytes], covered: dict, pieces: list[tuple[int, bytes]]) -> None:
    """Write the image pieces wherever the dump did not capture memory (captured bytes win)."""
    for va, data in pieces:
        pos = 0
        while pos < len(data):
            page_va = (va + pos) & ~(PAGE - 1)
            off = va + pos - page_va
            n = min(len(data) - pos, PAGE - off)
            chunk = data[pos : pos + n]
            pos += n
            have = mappings.get(page_va)
            if have is None:
                if len(mappings) >= MAX_REPACK_PAGES:
                    raise ValueError("too many pages to re-pack")
                page = bytearray(PAGE)
                page[off : off + n] = chunk
                mappings[page_va] = bytes(page)
                covered[page_va] = bytearray(PAGE)
                continue
            got = covered.get(page_va)
            if got is None:
                continue  # a page written whole by the re-pack itself
            m = np.frombuffer(bytes(got[off : off + n]), dtype=np.uint8).astype(bool)
            if m.all():
                continue
            page = bytearray(have)
            src = np.frombuffer(chunk, dtype=np.uint8)
            page[off : off + n] = np.where(
                m, np.frombuffer(have[off : off + n], dtype=np.uint8), src
            ).tobytes()
            mappings[page_va] = bytes(page)


def _read(mappings: dict[int, bytes], va: int, size: int) -> bytes | None:
    page_va = va & ~(PAGE - 1)
    page = mappings.get(page_va)
    off = va - page_va
    if page is None or off + size > len(page):
        return None
    return page[off : off + size]


def _restore_kd_block(
    mappings: dict[int, bytes], dump, address: int, covered: dict | None = None, extra: dict | None = None
) -> None:
    """Put the triage copy of KDDEBUGGER_DATA64 at KdDebuggerDataBlock when memory lacks it.

    ``extra`` sets fields to what the re-pack built (the unloaded-driver
    globals it wrote), so the block and memory agree."""
    kd = getattr(dump, "kd_debugger_data", None)
    if not address or not kd or getattr(dump, "triage", None) is None:
        return
    tag = _read(mappings, address + 0x10, 4)
    if tag == b"KDBG":
        return
    from bugcheck.dumpfile.synth.kdbg import kdbg_bytes

    values = {k: v for k, v in kd.items() if k not in ("OwnerTag", "Size") and isinstance(v, int)}
    values.update(extra or {})
    _patch(mappings, address, kdbg_bytes(values, int(kd.get("Size") or 0x380), address), covered)


#: candidate bases for the re-packed module entries, tried in order until one is free
_POOL_CANDIDATES = (0xFFFFB00F_00000000, 0xFFFFA00F_00000000, 0xFFFF900F_00000000, 0xFFFFE00F_00000000)


def _free_range(mappings: dict[int, bytes], size: int, reserved: Iterable[tuple[int, int]] = ()) -> int:
    for base in _POOL_CANDIDATES:
        lo, hi = base - 0x100000, base + size + 0x100000
        if any(lo <= va < hi for va in mappings):
            continue
        if any(start < hi and lo < end for start, end in reserved):
            continue
        return base
    raise ValueError("no free virtual range for the re-packed module list")


def _add_module_list(
    mappings: dict[int, bytes], dump, types, head: int, covered: dict | None = None, reserved=()
) -> None:
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
    pool = Arena(memory, _free_range(mappings, need, reserved), need + PAGE)
    build_module_list(memory, pool, types, head, mods, headers=False)
    for va, page in memory.pages.items():
        if pool.base <= va < pool.next:  # the entries and their strings; the head is patched below
            mappings[va] = bytes(page)
            if covered is not None:
                covered[va] = bytearray(b"\x01" * PAGE)
    _patch(mappings, head, memory.read(head, 16), covered)


def _unloaded_globals(dump, types) -> tuple[int, int]:
    """Addresses of nt!MmUnloadedDrivers and nt!MmLastUnloadedDriver: the kernel's symbols
    (at its base), else the debugger data block's fields; 0 where neither knows."""
    kd = getattr(dump, "kd_debugger_data", None) or {}
    base = kd.get("KernBase") or 0
    if not base:
        drivers = list(getattr(getattr(dump, "triage", None), "drivers", None) or [])[:1]
        base = getattr(drivers[0], "base", 0) if drivers else 0
    out = []
    lookup = getattr(types, "symbol_by_name", None)
    for name in ("MmUnloadedDrivers", "MmLastUnloadedDriver"):
        sym = lookup(name) if lookup is not None and base else None
        out.append(base + sym.rva if sym is not None else int(kd.get(name) or 0))
    return out[0], out[1]


def _add_unloaded_drivers(mappings: dict[int, bytes], dump, types, covered: dict | None, reserved=()) -> dict:
    """Write a triage dump's unloaded drivers as the kernel's MmUnloadedDrivers ring.

    The triage list is most recent first; the kernel's array is filled from
    slot 0 with MmLastUnloadedDriver the next slot, so the most recent entry is
    the last one written. Returns the debugger data block fields to fill.
    """
    triage = getattr(dump, "triage", None)
    unloaded = list(getattr(triage, "unloaded_drivers", None) or [])[:MI_UNLOADED_DRIVERS]
    if not unloaded:
        return {}
    array_ptr, last_at = _unloaded_globals(dump, types)
    if not array_ptr or not last_at:
        return {}
    ps = dump.pointer_size if getattr(dump, "pointer_size", 0) in (4, 8) else 8
    lay = unloaded_record_layout(types, ps)
    names = [(u.name or "").encode("utf-16-le")[:0xFFFC] for u in unloaded]
    need = lay["size"] * MI_UNLOADED_DRIVERS + sum(len(n) + 16 for n in names) + PAGE
    base = _free_range(mappings, need, reserved)  # clear of the module list, already in mappings
    ptr = "<Q" if ps == 8 else "<I"
    area = bytearray(need)
    strings = lay["size"] * MI_UNLOADED_DRIVERS
    for i, (u, raw) in enumerate(zip(reversed(unloaded), reversed(names), strict=True)):
        rec = i * lay["size"]
        name_va = base + strings
        area[strings : strings + len(raw)] = raw
        strings += -(-(len(raw) + 2) // 16) * 16
        us = rec + lay["Name"]
        struct.pack_into("<H", area, us + lay["Length"], len(raw))
        struct.pack_into("<H", area, us + lay["MaximumLength"], len(raw) + 2)
        struct.pack_into(ptr, area, us + lay["Buffer"], name_va)
        struct.pack_into(ptr, area, rec + lay["StartAddress"], u.start & ((1 << (8 * ps)) - 1))
        struct.pack_into(ptr, area, rec + lay["EndAddress"], u.end & ((1 << (8 * ps)) - 1))
        struct.pack_into("<Q", area, rec + lay["CurrentTime"], int(getattr(u, "time", 0) or 0))
    _patch(mappings, base, bytes(area[: -(-strings // PAGE) * PAGE]), covered)
    _patch(mappings, array_ptr, struct.pack(ptr, base), covered)
    _patch(mappings, last_at, struct.pack("<I", len(unloaded)), covered)
    return {"MmUnloadedDrivers": array_ptr, "MmLastUnloadedDriver": last_at}


def _register_names(machine: str) -> set[str]:
    from .headers import CONTEXT32_FIELDS, CONTEXT64_FIELDS

    return set(CONTEXT64_FIELDS if machine == "x64" else CONTEXT32_FIELDS)
