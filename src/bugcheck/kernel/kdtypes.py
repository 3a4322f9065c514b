"""Kernel types rebuilt from the dump's own KDDEBUGGER_DATA64 offsets.

When neither the kernel's PDB nor a matching symbol table is found, the
debugger data block every dump carries still gives a handful of structure
offsets and sizes (``OffsetKThreadTeb``, ``SizeEProcess``,
``OffsetPrcbCurrentThread``...). This module turns them into a small
:class:`~bugcheck.symbols.types.TypeSource` whose members carry the names the
real kernel types use (``_KTHREAD.Teb``, ``_EPROCESS.Pcb.DirectoryTableBase``),
so the kernel model and the commands read them unchanged and print every
other field as unavailable.

Only two layout facts are not taken from the block: ``_ETHREAD.Tcb`` and
``_EPROCESS.Pcb`` open their objects, and every dispatcher object opens with
its ``_DISPATCHER_HEADER`` whose first byte is ``Type`` (that is what makes
them waitable objects). An offset of zero in the block means "not given".
"""

from __future__ import annotations

from bugcheck.dumpfile.triage import MIN_LIST_HEAD_VOTES, prcb_address_from_list_heads  # noqa: F401 - re-exported
from bugcheck.symbols.types import Kind, Member, Type

#: what commands name as the origin of these layouts
ORIGIN = "KDDEBUGGER_DATA64 offsets"

#: structures are never this large; a bigger size or offset in the block is damage, not data
MAX_STRUCT = 0x100000

_UCHAR = Type(Kind.BASE, "UChar", 1)
_UINT2 = Type(Kind.BASE, "Uint2B", 2)
_UINT4 = Type(Kind.BASE, "Uint4B", 4)
_UINT8 = Type(Kind.BASE, "Uint8B", 8)
_VOID = Type(Kind.VOID, "Void", 0)


class KdDebuggerTypes:
    """A TypeSource over the offsets/sizes part of one parsed KDDEBUGGER_DATA64 block."""

    origin = ORIGIN

    def __init__(self, kd: dict, pointer_size: int = 8):
        self.kd = kd
        self.pointer_size = pointer_size
        self._ptr = Type(Kind.POINTER, f"Ptr{pointer_size * 8} Void", pointer_size, target=_VOID)
        self._ulong_ptr = _UINT8 if pointer_size == 8 else _UINT4
        #: type name -> dotted member paths that came from the block
        self.known: dict[str, list[str]] = {}
        self._types: dict[str, Type] = {}
        self._build()

    # -- helpers -------------------------------------------------------------------------------
    def _value(self, name: str) -> int | None:
        v = self.kd.get(name)
        if not isinstance(v, int) or v <= 0 or v >= MAX_STRUCT:
            return None
        return v

    def _struct(self, name: str, size_field: str | None) -> Type:
        size = self._value(size_field) if size_field else None
        t = Type(Kind.STRUCT, name, size or 0)
        self._types[name] = t
        self.known.setdefault(name, [])
        return t

    def _add(self, t: Type, member: str, offset_field: str, mtype: Type, path: str | None = None) -> None:
        """Add ``member`` at the block's ``offset_field`` when given and inside the struct."""
        off = self._value(offset_field)
        if off is None or (t.size and off + (mtype.size or 1) > t.size):
            return
        t.members.append(Member(member, off, mtype))
        self.known[t.name].append((off, path or member))

    def _build(self) -> None:
        ps = self.pointer_size
        ptr = self._ptr
        header = Type(Kind.STRUCT, "_DISPATCHER_HEADER", 0, members=[Member("Type", 0, _UCHAR)])
        self._types["_DISPATCHER_HEADER"] = header

        kthread = self._struct("_KTHREAD", None)
        kthread.members.append(Member("Header", 0, header))
        self._add(kthread, "InitialStack", "OffsetKThreadInitialStack", ptr)
        self._add(kthread, "StackLimit", "OffsetKThreadStackLimit", ptr)
        self._add(kthread, "StackBase", "OffsetKThreadStackBase", ptr)
        self._add(kthread, "KernelStack", "OffsetKThreadKernelStack", ptr)
        self._add(kthread, "Teb", "OffsetKThreadTeb", ptr)
        self._add(kthread, "State", "OffsetKThreadState", _UCHAR)
        self._add(kthread, "WaitReason", "OffsetKThreadWaitReason", _UCHAR)
        self._add(kthread, "NextProcessor", "OffsetKThreadNextProcessor", _UINT4)
        # The block gives where ApcState.Process lies, not where ApcState starts: the member is
        # placed so that the full path reads the right bytes.
        apc = Type(Kind.STRUCT, "_KAPC_STATE", 0, members=[Member("Process", 0, ptr)])
        self._add(kthread, "ApcState", "OffsetKThreadApcProcess", apc, "ApcState.Process")

        ethread = self._struct("_ETHREAD", "SizeEThread")
        ethread.members.append(Member("Tcb", 0, kthread))
        list_entry = Type(
            Kind.STRUCT, "_LIST_ENTRY", 2 * ps, members=[Member("Flink", 0, ptr), Member("Blink", ps, ptr)]
        )
        self._add(ethread, "IrpList", "OffsetEThreadIrpList", list_entry)

        kprocess = self._struct("_KPROCESS", None)
        kprocess.members.append(Member("Header", 0, header))
        self._add(kprocess, "DirectoryTableBase", "OffsetEprocessDirectoryTableBase", self._ulong_ptr)
        eprocess = self._struct("_EPROCESS", "SizeEProcess")
        eprocess.members.append(Member("Pcb", 0, kprocess))
        self._add(eprocess, "InheritedFromUniqueProcessId", "OffsetEprocessParentCID", ptr)
        self._add(eprocess, "Peb", "OffsetEprocessPeb", ptr)
        self.known["_EPROCESS"] += [(off, f"Pcb.{p}") for off, p in self.known["_KPROCESS"]]

        prcb = self._struct("_KPRCB", "SizePrcb")
        self._add(prcb, "CurrentThread", "OffsetPrcbCurrentThread", ptr)
        self._add(prcb, "IdleThread", "OffsetPrcbIdleThread", ptr)
        self._add(prcb, "Number", "OffsetPrcbNumber", _UINT2 if ps == 8 else _UCHAR)
        self._add(prcb, "CpuType", "OffsetPrcbCpuType", _UCHAR)
        self._add(prcb, "MHz", "OffsetPrcbMhz", _UINT4)
        self._add(prcb, "DpcRoutineActive", "OffsetPrcbDpcRoutine", _UCHAR)
        self._add(prcb, "DpcStack", "OffsetPrcbDpcStack", ptr)
        self._add(prcb, "IsrStack", "OffsetPrcbIsrStack", ptr)
        self._add(prcb, "Context", "OffsetPrcbContext", ptr)
        vendor = Type(Kind.ARRAY, "UChar[13]", 13, target=_UCHAR, count=13)
        self._add(prcb, "VendorString", "OffsetPrcbVendorString", vendor)

        pcr = self._struct("_KPCR", "SizePcr")
        if ps == 8:
            self._add(pcr, "Self", "OffsetPcrSelfPcr", ptr)
            self._add(pcr, "CurrentPrcb", "OffsetPcrCurrentPrcb", ptr)
            self._add(pcr, "Prcb", "OffsetPcrContainedPrcb", prcb)
        else:
            self._add(pcr, "SelfPcr", "OffsetPcrSelfPcr", ptr)
            self._add(pcr, "PrcbData", "OffsetPcrContainedPrcb", prcb)

        for t in self._types.values():
            t.members.sort(key=lambda m: m.offset)
        self.known = {name: [p for _, p in sorted(paths)] for name, paths in self.known.items()}

    # -- TypeSource ----------------------------------------------------------------------------
    def type_by_key(self, key: object) -> Type:
        t = self._types.get(key) if isinstance(key, str) else None
        if t is None:
            raise KeyError(key)
        return t

    def find_type(self, name: str) -> Type | None:
        return self._types.get(name)

    def type_names(self) -> list[str]:
        return sorted(self._types)

    # -- what commands say about it ------------------------------------------------------------
    def note(self, type_names: tuple[str, ...] | list[str]) -> str:
        """The one line a command prints: no kernel symbols, and which fields the block gave."""
        parts = []
        for name in type_names:
            fields = self.known.get(name) or []
            parts.append(f"{name} {', '.join(fields) if fields else '(none)'}")
        return (
            "NOTE: the kernel's own symbols were not found; fields come from the dump's "
            f"KDDEBUGGER_DATA64 block ({'; '.join(parts)}); every other field is unavailable (?)"
        )


def kd_debugger_data_of(dump) -> dict | None:
    """The parsed block: the dump's own, else the triage copy."""
    kd = getattr(dump, "kd_debugger_data", None)
    if not kd:
        triage = getattr(dump, "triage", None)
        kd = getattr(triage, "kd_debugger_data", None) if triage is not None else None
    return kd or None


def types_from_dump(dump) -> KdDebuggerTypes | None:
    """A type source from the dump's debugger data block, None when it carries no offsets."""
    kd = kd_debugger_data_of(dump)
    if not kd:
        return None
    src = KdDebuggerTypes(kd, getattr(dump, "pointer_size", 8) or 8)
    if not any(src.known.get(n) for n in ("_KTHREAD", "_EPROCESS", "_KPRCB")):
        return None
    return src


def fallback_of(kernel) -> KdDebuggerTypes | None:
    """The kernel's type source when it is this fallback (commands then print the note), else None."""
    types = getattr(kernel, "types", None)
    src = getattr(types, "source", None)
    return src if isinstance(src, KdDebuggerTypes) else None


#: empty list heads needed before a PRCB copy's own address is believed
