"""Kernel stacks with real call chains, and the image ``.pdata`` that unwinds them.

A waiting thread's kernel stack holds a chain of return addresses ending in
the KSWITCH_FRAME at ``KernelStack``. Each function of the chain gets a
RUNTIME_FUNCTION and a small UNWIND_INFO (one stack allocation) in the
synthetic kernel image, so a debugger unwinds these stacks with ``.pdata`` as
it does on a real kernel, rather than scanning for return addresses. The
functions are real kernel symbols (their RVAs from the table); return offsets
inside them are plausible, not copied from a build.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .memory import SparseMemory

#: (function, return offset inside it, stack allocation of its frame)
WAIT_CHAIN = [
    ("KiSwapContext", 0x6E, 0x38),
    ("KiSwapThread", 0x135, 0x68),
    ("KiCommitThreadWait", 0x271, 0x58),
    ("KeWaitForSingleObject", 0x1A4, 0x98),
]
#: how a system worker thread came to wait, outermost last (its caller is 0: the walk ends)
SYSTEM_TAIL = [
    ("ExpWorkerThread", 0x105, 0x68),
    ("PspSystemThreadStartup", 0x55, 0x48),
    ("KiStartSystemThread", 0x34, 0x28),
]
#: a user thread's wait entered the kernel through a system call; a trap frame holds user state
USER_TAIL = [("NtWaitForSingleObject", 0x6A, 0x48)]
SYSTEM_SERVICE = ("KiSystemServiceCopyEnd", 0x25)
IDLE_CHAIN = [("KiIdleLoop", 0x3C, 0x38)]
#: every function that needs unwind data, with its frame allocation
UNWOUND = {name: alloc for name, _, alloc in WAIT_CHAIN + SYSTEM_TAIL + USER_TAIL + IDLE_CHAIN}
UNWOUND["KeBugCheckEx"] = 0x108
#: the system service path's frame is the trap frame: unwinding it pops the machine frame
#: (user Rip, SegCs, EFlags, Rsp, SegSs) that KTRAP_FRAME ends with
MACHINE_FRAMES = {SYSTEM_SERVICE[0]}

UWOP_ALLOC_LARGE = 1
UWOP_ALLOC_SMALL = 2
UWOP_PUSH_MACHFRAME = 10
PROLOG_SIZE = 7  # sub rsp, imm32


def unwind_info(alloc: int, machine_frame: bool = False) -> bytes:
    """UNWIND_INFO (version 1) for a prolog that allocates ``alloc`` bytes of stack, after the
    processor pushed a machine frame when ``machine_frame``."""
    if alloc % 8 or alloc <= 0:
        raise ValueError("a stack allocation is a positive multiple of 8")
    if alloc <= 128:
        codes = [PROLOG_SIZE | (UWOP_ALLOC_SMALL | ((alloc - 8) // 8) << 4) << 8]
    else:
        codes = [PROLOG_SIZE | (UWOP_ALLOC_LARGE << 8), alloc // 8]
    if machine_frame:
        codes.append(UWOP_PUSH_MACHFRAME << 8)  # at prolog offset 0, no error code
    n = len(codes)
    if len(codes) % 2:
        codes.append(0)
    return struct.pack("<BBBB", 1, PROLOG_SIZE, n, 0) + struct.pack(f"<{len(codes)}H", *codes)


@dataclass
class Unwind:
    """Where the synthetic image keeps its exception directory."""

    pdata_rva: int
    pdata_size: int
    #: function name -> (begin RVA, end RVA)
    ranges: dict[str, tuple[int, int]]


def function_end(table, rva: int, limit: int = 0x4000) -> int:
    """The RVA where the symbol starting at ``rva`` ends: the next symbol's start (bounded)."""
    lo, hi = rva + 1, rva + limit
    s = table.symbol_at(hi)
    if s is not None and s.rva == rva:
        return hi
    while lo < hi:  # smallest address whose containing symbol is another one
        mid = (lo + hi) // 2
        s = table.symbol_at(mid)
        if s is not None and s.rva == rva:
            lo = mid + 1
        else:
            hi = mid
    return lo


def build_pdata(memory: SparseMemory, table, kernel_base: int, area_rva: int) -> Unwind:
    """Write RUNTIME_FUNCTIONs (sorted) and their UNWIND_INFOs at ``area_rva`` in the image."""
    funcs = []
    units = dict(UNWOUND)
    trap = table.find_type("_KTRAP_FRAME")
    if trap is not None and trap.member("Rip") is not None:
        for name in MACHINE_FRAMES:
            units[name] = trap.member("Rip").offset
    for name, alloc in units.items():
        s = table.symbol_by_name(name)
        if s is None:
            continue
        funcs.append((s.rva, function_end(table, s.rva), name, alloc))
    funcs.sort()
    info_rva = area_rva + ((len(funcs) * 12 + 15) & ~15)
    ranges = {}
    pdata = bytearray()
    for begin, end, name, alloc in funcs:
        ui = unwind_info(alloc, name in MACHINE_FRAMES)
        memory.write(kernel_base + info_rva, ui)
        pdata += struct.pack("<III", begin, end, info_rva)
        ranges[name] = (begin, end)
        info_rva += (len(ui) + 3) & ~3
    memory.write(kernel_base + area_rva, bytes(pdata))
    return Unwind(area_rva, len(pdata), ranges)


def return_offset(unwind: Unwind, name: str, wanted: int) -> int:
    """A return offset inside ``name`` past its prolog: ``wanted`` when the function is that long."""
    begin, end = unwind.ranges.get(name, (0, wanted + 0x10))
    size = end - begin
    return wanted if PROLOG_SIZE < wanted < size else max(PROLOG_SIZE + 1, size // 2)


def lay_chain(
    memory: SparseMemory,
    symbols: dict[str, int],
    unwind: Unwind,
    chain: list[tuple[str, int, int]],
    outer_slot: int,
    outer_value: int,
) -> tuple[int, int]:
    """Write a call chain downwards from ``outer_slot`` (which receives ``outer_value``, the
    outermost function's return address).

    Returns (rsp, pc) of the innermost function: its stack pointer after its prolog and the
    address it is stopped at (its return offset).
    """
    slot, value = outer_slot, outer_value
    rsp = pc = 0
    for name, off, alloc in reversed(chain):
        memory.put(slot, value, 8)
        rsp = slot - alloc
        pc = symbols[name] + return_offset(unwind, name, off)
        slot, value = rsp - 8, pc
    return rsp, pc
