"""The kernel's build lab string (``NtBuildLab``), when the dump holds it.

The debugger data block gives its address; full, bitmap and the newer triage
dumps usually capture the string. WinDbg prints it as ``Edition build lab:``
and ``!analyze`` takes OS_VERSION's revision and BUILDLAB_STR from it.
"""

from __future__ import annotations

from bugcheck.errors import BugcheckError


def build_lab(dump) -> str | None:
    kdd = getattr(dump, "kd_debugger_data", None)
    if not isinstance(kdd, dict):
        return None
    addr = next(
        (
            kdd[k]
            for k in ("nt_build_lab", "NtBuildLab", "ntbuildlab")
            if isinstance(kdd.get(k), int) and kdd[k]
        ),
        None,
    )
    if addr is None:
        return None
    try:
        raw = dump.read_virtual(addr, 0x80)
    except BugcheckError:
        return None
    text = raw.split(b"\0", 1)[0]
    if not text or any(b < 0x20 or b > 0x7E for b in text):
        return None
    return text.decode("ascii")
