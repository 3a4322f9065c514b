"""Builders of kernel structures for synthetic crash dumps (tests and benchmarks).

Everything is laid out with a real kernel build's types by member name (an
ISF table or kernel PDB passed in), never at hand-written offsets, so the
dumps exercise the same code paths a real kernel's memory does.
"""

from __future__ import annotations

from .kdbg import kdbg_bytes
from .kernel import (
    DEFAULT_KERNEL_BASE,
    SynthKernel,
    SynthProcess,
    SynthProcessor,
    SynthThread,
    build_kernel,
)
from .memory import Arena, FieldCache, SparseMemory
from .modules import SynthModule, build_module_list, pe_header_page

__all__ = [
    "DEFAULT_KERNEL_BASE",
    "Arena",
    "FieldCache",
    "SparseMemory",
    "SynthKernel",
    "SynthModule",
    "SynthProcess",
    "SynthProcessor",
    "SynthThread",
    "build_kernel",
    "build_module_list",
    "kdbg_bytes",
    "pe_header_page",
    "write_kernel_dump",
]


def write_kernel_dump(kernel: SynthKernel, path, kind: str = "kernel_bitmap", **fields):
    """Write ``kernel`` as a dump of ``kind``; returns the writer's PhysicalLayout."""
    from bugcheck.dumpfile.writer import write_dump

    return write_dump(kernel.description(**fields), path, kind)
