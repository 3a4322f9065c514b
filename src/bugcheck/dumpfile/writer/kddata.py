"""A synthetic KDDEBUGGER_DATA64 block with per-processor PRCBs.

A real full or bitmap dump stores only the crashing processor's CONTEXT in its
header; debuggers find the others through the kernel debugger data block:
``KiProcessorBlock[i]`` points at each processor's KPRCB and
``OffsetPrcbProcStateContext`` locates the saved CONTEXT inside it. When asked,
the writer lays out exactly that chain in virtual memory so every described
processor context can be recovered the way a debugger would.

Field offsets in KDDEBUGGER_DATA64 are fixed by the debugger interface (the
same on x86, where pointers are stored sign-extended to 64 bits).
"""

from __future__ import annotations

import struct

from .description import PAGE, DumpDescription
from .headers import context_bytes

KDBG_TAG = b"KDBG"
KDBG_SIZE = 0x340
OFF_KERN_BASE = 0x18
OFF_PS_LOADED_MODULE_LIST = 0x48
OFF_PS_ACTIVE_PROCESS_HEAD = 0x50
OFF_KI_PROCESSOR_BLOCK = 0x218
OFF_SIZE_PRCB = 0x2B0
OFF_OFFSET_PRCB_CURRENT_THREAD = 0x2B4
OFF_OFFSET_PRCB_PROC_STATE_CONTEXT = 0x2BC
OFF_OFFSET_PRCB_NUMBER = 0x2BE
OFF_OFFSET_PRCB_CONTEXT = 0x338

# Where things sit inside each synthetic PRCB (one page per processor).
PRCB_SIZE = PAGE
PRCB_NUMBER = 0x24
PRCB_CURRENT_THREAD = 0x08
PRCB_CONTEXT_POINTER = 0x18
PRCB_PROC_STATE_CONTEXT = 0x100


def _ptr(desc: DumpDescription, va: int) -> int:
    if desc.machine == "x86" and va & 0x80000000:
        return va | 0xFFFFFFFF_00000000
    return va


def kd_data_mappings(desc: DumpDescription) -> dict[int, bytes]:
    """Pages holding the debugger data block, KiProcessorBlock and one PRCB per processor.

    The block sits at ``desc.kd_debugger_data_block``; the processor array
    follows it on the same page and PRCB ``i`` takes the ``i+1``-th page after it.
    """
    kdbg = desc.kd_debugger_data_block
    if not kdbg:
        raise ValueError("synthesize_kd_data needs kd_debugger_data_block")
    n = desc.processors
    contexts = list(desc.contexts) + [{}] * (n - len(desc.contexts))
    psize = desc.pointer_size
    base = kdbg & ~(PAGE - 1)
    array = (kdbg + KDBG_SIZE + 15) & ~15
    if array + n * psize > base + PAGE:
        raise ValueError("kd_debugger_data_block sits too close to its page end for the processor array")
    first = bytearray(PAGE)
    blk = kdbg - base
    struct.pack_into("<QQ4sI", first, blk, 0, 0, KDBG_TAG, KDBG_SIZE)
    struct.pack_into("<Q", first, blk + OFF_KERN_BASE, _ptr(desc, desc.kernel_base))
    struct.pack_into("<Q", first, blk + OFF_PS_LOADED_MODULE_LIST, _ptr(desc, desc.ps_loaded_module_list))
    struct.pack_into("<Q", first, blk + OFF_PS_ACTIVE_PROCESS_HEAD, _ptr(desc, desc.ps_active_process_head))
    struct.pack_into("<Q", first, blk + OFF_KI_PROCESSOR_BLOCK, _ptr(desc, array))
    struct.pack_into(
        "<HHHH",
        first,
        blk + OFF_SIZE_PRCB,
        PRCB_SIZE,
        0,
        PRCB_CURRENT_THREAD,
        0,
    )
    struct.pack_into(
        "<HH", first, blk + OFF_OFFSET_PRCB_PROC_STATE_CONTEXT, PRCB_PROC_STATE_CONTEXT, PRCB_NUMBER
    )
    struct.pack_into("<H", first, blk + OFF_OFFSET_PRCB_CONTEXT, PRCB_CONTEXT_POINTER)
    fmt = "<Q" if psize == 8 else "<I"
    out = {base: first}
    for i in range(n):
        prcb_va = base + (i + 1) * PAGE
        struct.pack_into(fmt, first, array - base + i * psize, prcb_va)
        prcb = bytearray(PRCB_SIZE)
        struct.pack_into("<I", prcb, PRCB_NUMBER, i)
        struct.pack_into(fmt, prcb, PRCB_CONTEXT_POINTER, prcb_va + PRCB_PROC_STATE_CONTEXT)
        ctx = context_bytes(desc.machine, contexts[i])
        prcb[PRCB_PROC_STATE_CONTEXT : PRCB_PROC_STATE_CONTEXT + len(ctx)] = ctx
        out[prcb_va] = bytes(prcb)
    out[base] = bytes(first)
    for va in out:
        for mva, data in desc.mappings.items():
            if mva <= va < mva + max(len(data), 1) or va <= mva < va + PAGE:
                raise ValueError(f"synthesized debugger data page {va:#x} overlaps a described mapping")
    return out
