"""The loaded-module list: from the kernel's PsLoadedModuleList, or a triage dump's driver list.

A full or bitmap dump holds the real list, walked with ``_KLDR_DATA_TABLE_ENTRY``
from the kernel's types. A triage dump keeps a copy of the driver list (names,
bases, sizes, timestamps) which needs no types at all. Without either, only the
kernel itself is known (from the debugger data block's ``KernBase``).
"""

from __future__ import annotations

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


def discover(dump, types: Types | None) -> ModuleList:
    """The best module list the dump allows, in WinDbg's order (kernel first)."""
    found = from_triage(dump)
    if found is not None:
        return found
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
