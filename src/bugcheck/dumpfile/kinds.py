"""What kind of kernel dump a file is, and the line WinDbg prints for it when loading."""

from __future__ import annotations

import enum


class DumpKind(enum.Enum):
    """Kernel dump kinds; the value is a short stable name."""

    FULL = "full"  # DumpType 1: run-based complete memory dump
    SUMMARY = "summary"  # DumpType 2: legacy run-based kernel summary dump
    TRIAGE = "triage"  # DumpType 4: small memory dump (minidump)
    COMPLETE_BITMAP = "complete-bitmap"  # DumpType 5, 'FDMP'
    KERNEL_BITMAP = "kernel-bitmap"  # DumpType 5 'SDMP' or 6 (kernel / active / live kernel)
    KERNEL_MEMORY = "kernel-memory"  # DumpType 8 (.dump /k, newer WinDbg)
    KERNEL_AND_USER = "kernel-and-user"  # DumpType 9 (.dump /ka)
    COMPLETE_MEMORY = "complete-memory"  # DumpType 10 (.dump /f, newer WinDbg)

    @property
    def banner_line(self) -> str:
        """WinDbg's first line after ``Loading Dump File [...]`` for this kind."""
        return _BANNERS[self]

    @property
    def has_page_tables(self) -> bool:
        return self is not DumpKind.TRIAGE

    @property
    def is_bitmap(self) -> bool:
        return self in (
            DumpKind.COMPLETE_BITMAP,
            DumpKind.KERNEL_BITMAP,
            DumpKind.KERNEL_MEMORY,
            DumpKind.KERNEL_AND_USER,
            DumpKind.COMPLETE_MEMORY,
        )


_KERNEL_ONLY = (
    "Kernel Bitmap Dump File: Kernel address space is available, User address space may not be available."
)
_BANNERS = {
    DumpKind.FULL: "Kernel Complete Dump File: Full address space is available",
    DumpKind.SUMMARY: "Kernel Summary Dump File: Only kernel address space is available",
    DumpKind.TRIAGE: "Mini Kernel Dump File: Only registers and stack trace are available",
    DumpKind.COMPLETE_BITMAP: "Kernel Bitmap Dump File: Full address space is available",
    DumpKind.KERNEL_BITMAP: _KERNEL_ONLY,
    DumpKind.KERNEL_MEMORY: _KERNEL_ONLY,
    DumpKind.KERNEL_AND_USER: _KERNEL_ONLY,
    DumpKind.COMPLETE_MEMORY: "Kernel Bitmap Dump File: Full address space is available",
}
