"""How much work one debugger command may do, in all.

Every list walk is bounded on its own, but a corrupt or hostile dump can nest
bounded walks into hours of work (thousands of processes, each with thousands
of threads, each with a long IRP list and a stack to scan). The session gives
each command one fresh :class:`WorkBudget`; the walks it runs draw from it and
say so when it runs out. Outside a command (``Kernel.budget is None``) nothing
is limited beyond the per-list bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

#: stack slots all the stack scans of one command may read
SCAN_SLOTS = 2_000_000
#: threads one command may list (a real system has far fewer)
THREADS = 32768
#: IRPs one command may read across all its threads
IRPS = 16384
#: processes one detailed `!process 0 FLAGS` listing shows (flags 0 lists every process)
DETAILED_PROCESSES = 8192


@dataclass
class WorkBudget:
    scan_slots: int = SCAN_SLOTS
    threads: int = THREADS
    irps: int = IRPS
    #: set when a stack scan found the slots used up (its walk then says so)
    scan_exhausted: bool = False
