"""The layout of the kernel's unloaded-driver records (``nt!MmUnloadedDrivers``).

Shared by the reader (kernel/modules.py walks the array in a full or bitmap
dump) and the dump writer (``repack`` writes a triage dump's unloaded drivers
as such an array), so both agree on one layout.
"""

from __future__ import annotations

#: MI_UNLOADED_DRIVERS: the kernel's MmUnloadedDrivers array has this many slots
MI_UNLOADED_DRIVERS = 50


def _find_type(types, name: str):
    """A type from a TypeSource (``find_type``) or the kernel layer's cached wrapper (``get``)."""
    find = getattr(types, "find_type", None) or getattr(types, "get", None)
    return find(name) if find is not None and types is not None else None


def _member_offset(t, name: str) -> int | None:
    m = t.member(name) if t is not None else None
    return None if m is None else m.offset


def unloaded_record_layout(types, pointer_size: int) -> dict[str, int]:
    """Offsets of one ``_UNLOADED_DRIVERS`` record and of its ``Name`` UNICODE_STRING.

    Keys: size, Name, StartAddress, EndAddress, CurrentTime, Length,
    MaximumLength, Buffer. Taken from ``types`` by field name where it has the
    types; public kernel symbols lack ``_UNLOADED_DRIVERS`` (a private type),
    so its members are then laid out in their declared order (UNICODE_STRING
    Name; PVOID StartAddress, EndAddress; LARGE_INTEGER CurrentTime) with
    natural alignment, as the kernel compiles them.
    """
    ps = pointer_size
    us = _find_type(types, "_UNICODE_STRING")
    buffer_at = _member_offset(us, "Buffer")
    layout = {
        "Length": _member_offset(us, "Length") or 0,
        "MaximumLength": _member_offset(us, "MaximumLength") if us is not None else 2,
        "Buffer": buffer_at if buffer_at is not None else ps,
    }
    us_size = (us.size if us is not None and us.size else 0) or 2 * ps
    rec = _find_type(types, "_UNLOADED_DRIVERS")
    fields = {n: _member_offset(rec, n) for n in ("Name", "StartAddress", "EndAddress", "CurrentTime")}
    if rec is not None and rec.size and None not in fields.values():
        layout.update(fields, size=rec.size)
        return layout
    time_at = -(-(us_size + 2 * ps) // 8) * 8
    layout.update(
        Name=0, StartAddress=us_size, EndAddress=us_size + ps, CurrentTime=time_at, size=time_at + 8
    )
    return layout
