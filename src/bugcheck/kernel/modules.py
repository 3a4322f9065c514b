"""The loaded-module list: from the kernel's PsLoadedModuleList, or a triage dump's driver list.

A full or bitmap dump holds the real list, walked with ``_KLDR_DATA_TABLE_ENTRY``
from the kernel's types. A triage dump keeps a copy of the driver list (names,
bases, sizes, timestamps) which needs no types at all. Without either, only the
kernel itself is known (from the debugger data block's ``KernBase``).

Unloaded drivers: a triage dump carries a copy of the list; a kernel dump holds
the kernel's own ring of ``_UNLOADED_DRIVERS`` records (``nt!MmUnloadedDrivers``,
next slot in ``nt!MmLastUnloadedDriver``). Both are listed most recent first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.kernel.typed import StructView, Types, walk_list
from bugcheck.symbols.modules import ModuleInfo, assign_module_names, file_name_of

#: a kernel never has this many modules; bounds a corrupt list
MAX_MODULES = 4096


@dataclass
class UnloadedModule:
    name: str
    start: int
    end: int
    #: unload time (FILETIME) when recorded, else 0
    time: int = 0


@dataclass
class ModuleList:
    modules: list[ModuleInfo]
    unloaded: list[UnloadedModule] = field(default_factory=list)
    #: where the list came from: ``PsLoadedModuleList``, ``triage driver list``, ``kernel only``
    source: str = ""
    warnings: list[str] = field(default_factory=list)


def kernel_base_of(dump) -> int | None:
    """The kernel's load address, from what the dump itself carries."""
    kd = getattr(dump, "kd_debugger_data", None) or {}
    base = kd.get("KernBase") or kd.get("kern_base")
    if base:
        return base
    triage = getattr(dump, "triage", None)
    drivers = getattr(triage, "drivers", None) if triage is not None else None
    if drivers:
        return drivers[0].base
    return None


def from_triage(dump) -> ModuleList | None:
    triage = getattr(dump, "triage", None)
    if triage is None or not getattr(triage, "drivers", None):
        return None
    mods = []
    for d in list(triage.drivers)[:MAX_MODULES]:
        name = file_name_of(d.name)  # the list records a path (\\SystemRoot\\...) or a bare name
        if name:
            mods.append(
                ModuleInfo(name, d.base, d.size, path=d.name, timestamp=d.timestamp, checksum=d.checksum)
            )
    unloaded = [
        UnloadedModule(u.name, u.start, u.end)
        for u in list(getattr(triage, "unloaded_drivers", None) or [])[:MAX_MODULES]
    ]
    return ModuleList(assign_module_names(mods), unloaded, "triage driver list")


def from_loaded_module_list(dump, types: Types) -> ModuleList | None:
    """Walk PsLoadedModuleList with ``_KLDR_DATA_TABLE_ENTRY`` (needs kernel types)."""
    head = dump.header.ps_loaded_module_list
    entry_type = types.get("_KLDR_DATA_TABLE_ENTRY") or types.get("_LDR_DATA_TABLE_ENTRY")
    if not head or entry_type is None:
        return None
    memory = dump.virtual
    link = entry_type.field_offset("InLoadOrderLinks")
    walk = walk_list(memory, head, link, types.pointer_size, limit=MAX_MODULES)
    mods: list[ModuleInfo] = []
    warnings = [walk.warning] if walk.warning else []
    for addr in walk.entries:
        v = StructView(memory, addr, entry_type, types)
        try:
            base = v.field("DllBase")
            size = v.field("SizeOfImage")
        except (MemoryNotPresent, BugcheckError):
            warnings.append(f"module entry at {addr:#x} is not readable")
            continue
        base_name = v.unicode_string("BaseDllName")
        full = v.unicode_string("FullDllName")
        ts = v.field_or("TimeDateStamp", 0)
        cs = v.field_or("CheckSum", 0)
        name = file_name_of(base_name or full) or f"module_{base:x}"
        mods.append(ModuleInfo(name, base, size, path=full, timestamp=ts, checksum=cs))
    if not mods:
        return None
    return ModuleList(assign_module_names(mods), [], "PsLoadedModuleList", warnings)


#: an unloaded driver's name is a file name; longer Length fields are corrupt
MAX_UNLOADED_NAME_BYTES = 512


def unloaded_globals(dump, symbol: Callable[[str], int | None] | None = None) -> tuple[int, int]:
    """Addresses of ``nt!MmUnloadedDrivers`` and ``nt!MmLastUnloadedDriver`` (0 when unknown):
    the debugger data block's fields, else the kernel's symbols through ``symbol(name)``."""
    kd = getattr(dump, "kd_debugger_data", None) or {}
    out = []
    for name in ("MmUnloadedDrivers", "MmLastUnloadedDriver"):
        addr = int(kd.get(name) or 0)
        if not addr and symbol is not None:
            try:
                addr = symbol(name) or 0
            except BugcheckError:
                addr = 0
        out.append(addr)
    return out[0], out[1]


def from_unloaded_drivers(
    dump, types: Types | None, symbol: Callable[[str], int | None] | None = None
) -> tuple[list[UnloadedModule], list[str]]:
    """The kernel's unloaded-driver ring, most recent first, and warnings about bad data.

    Slots are filled from 0 and ``MmLastUnloadedDriver`` is the next one to
    write, so the newest record sits just below it; once the ring has wrapped,
    the slots above it hold the older records. Empty slots (no name) are skipped.
    """
    array_at, last_at = unloaded_globals(dump, symbol)
    if not array_at or not last_at:
        return [], []
    # the record layout lives with the writer that builds the same ring; imported here, only
    # for kernel dumps, to keep the writer out of every start-up
    from bugcheck.dumpfile.unloaded import MI_UNLOADED_DRIVERS, unloaded_record_layout

    memory = dump.virtual
    ps = dump.pointer_size
    try:
        array = int.from_bytes(memory.read(array_at, ps), "little")
        last = int.from_bytes(memory.read(last_at, 4), "little")
    except BugcheckError:
        return [], ["the unloaded module list (MmUnloadedDrivers) is not in the dump"]
    if not array:
        return [], []  # nothing unloaded since boot: the kernel allocates the array on first use
    if last > MI_UNLOADED_DRIVERS:  # slots are 0..49; the index is reset before a write at 50
        return [], [f"MmLastUnloadedDriver {last} is out of range; unloaded module list ignored"]
    lay = unloaded_record_layout(types.source if types else None, ps)
    size = lay["size"]
    data, holes = memory.read_padded(array, size * MI_UNLOADED_DRIVERS)
    if holes and sum(n for _, n in holes) >= len(data):
        return [], [f"the unloaded module array at {array:#x} is not in the dump"]
    order = [*range(last - 1, -1, -1), *range(MI_UNLOADED_DRIVERS - 1, last - 1, -1)]
    out: list[UnloadedModule] = []
    bad = 0
    for i in order:
        rec = i * size
        if any(h < array + rec + size and array + rec < h + n for h, n in holes):
            bad += 1
            continue
        us = rec + lay["Name"]
        length = int.from_bytes(data[us + lay["Length"] : us + lay["Length"] + 2], "little")
        buf = int.from_bytes(data[us + lay["Buffer"] : us + lay["Buffer"] + ps], "little")
        if not length or not buf:
            continue
        start = int.from_bytes(data[rec + lay["StartAddress"] : rec + lay["StartAddress"] + ps], "little")
        end = int.from_bytes(data[rec + lay["EndAddress"] : rec + lay["EndAddress"] + ps], "little")
        when = int.from_bytes(data[rec + lay["CurrentTime"] : rec + lay["CurrentTime"] + 8], "little")
        if length > MAX_UNLOADED_NAME_BYTES or length & 1 or end < start:
            bad += 1
            continue
        try:
            name = memory.read(buf, length).decode("utf-16-le", errors="replace")
        except BugcheckError:
            bad += 1
            continue
        out.append(UnloadedModule(name, start, end, when))
    warnings = [f"{bad} unloaded module record(s) are unreadable or malformed"] if bad else []
    return out, warnings


def kernel_only(dump) -> ModuleList:
    base = kernel_base_of(dump)
    if base is None:
        return ModuleList([], [], "none", ["the kernel's base address is not in the dump"])
    # Size unknown without the image header: read it from the PE header when present.
    size = _image_size(dump, base) or 0x1000
    mods = assign_module_names([ModuleInfo("ntoskrnl.exe", base, size)])
    return ModuleList(
        mods, [], "kernel only", ["module list unavailable without kernel types; only nt is known"]
    )


def _image_size(dump, base: int) -> int | None:
    try:
        mz = dump.read_virtual(base, 0x40)
        if mz[:2] != b"MZ":
            return None
        e_lfanew = int.from_bytes(mz[0x3C:0x40], "little")
        if not 0 < e_lfanew < 0x1000:
            return None
        nt = dump.read_virtual(base + e_lfanew, 0x58)
        if nt[:4] != b"PE\0\0":
            return None
        return int.from_bytes(nt[0x50:0x54], "little")
    except BugcheckError:
        return None


def discover(dump, types: Types | None, symbol: Callable[[str], int | None] | None = None) -> ModuleList:
    """The best module list the dump allows, in WinDbg's order (kernel first).

    ``symbol(name)`` gives a kernel global's address from nt's symbols (for the
    unloaded-driver ring when the debugger data block does not locate it)."""
    found = from_triage(dump)
    if found is not None:
        return found
    found = _discover_loaded(dump, types)
    if getattr(dump, "triage", None) is None:
        try:
            found.unloaded, notes = from_unloaded_drivers(dump, types, symbol)
        except BugcheckError as e:
            notes = [f"unloaded module list unreadable: {e}"]
        found.warnings.extend(notes)
    return found


def _discover_loaded(dump, types: Types | None) -> ModuleList:
    if types:
        try:
            found = from_loaded_module_list(dump, types)
        except BugcheckError as e:
            found = None
            note = f"PsLoadedModuleList walk failed: {e}"
        else:
            note = None
        if found is not None:
            return found
        km = kernel_only(dump)
        if note:
            km.warnings.append(note)
        return km
    return kernel_only(dump)
