"""Build Windows kernel crash dumps from a description (tests and benchmarks).

The corpus holds no real full, bitmap or 32-bit dump, so those readers are
checked against files made here: ``write_dump(desc, path, kind)`` lays the
described memory out in physical pages, generates the page tables that map it
and writes a 64-bit full (DumpType 1), complete bitmap (5, ``FDMP``), kernel
bitmap (6, ``SDMP``) or 32-bit ``PAGEDUMP`` full dump, streaming to disk.
``dump_from_blocks`` and ``repack`` turn a triage dump's sparse virtual memory
into one of those formats, and ``write_triage_dump`` makes 32- or 64-bit
triage (small memory) dumps; given the kernel's types, ``repack`` also rebuilds
the driver list as a PsLoadedModuleList, so the same crash can be read in
three formats. Kernel structures for synthetic dumps (processes, threads,
processors, modules) come from :mod:`bugcheck.dumpfile.synth`.
"""

from __future__ import annotations

import dataclasses

from .description import DUMP_TYPES, PAGE, PAGING_MODES, DumpDescription
from .headers import context_bytes
from .kddata import kd_data_mappings
from .layout import PhysicalLayout, build_layout
from .repack import blocks_to_mappings, dump_from_blocks, repack
from .stream import write_layout
from .triage import TriageDriver, TriageParts, build_triage_dump, write_triage_dump

__all__ = [
    "DUMP_TYPES",
    "PAGE",
    "PAGING_MODES",
    "DumpDescription",
    "PhysicalLayout",
    "TriageDriver",
    "TriageParts",
    "blocks_to_mappings",
    "build_triage_dump",
    "build_layout",
    "context_bytes",
    "dump_from_blocks",
    "repack",
    "write_dump",
    "write_triage_dump",
]


def write_dump(desc: DumpDescription, path, kind: str = "full") -> PhysicalLayout:
    """Write ``desc`` as a dump of ``kind`` ("full", "kernel_bitmap", "complete_bitmap") to ``path``.

    Returns the :class:`PhysicalLayout` (directory table base, VA -> PA map,
    expected physical and virtual bytes) so callers can check a reader against it.
    """
    if isinstance(kind, int):
        kind = {v: k for k, v in DUMP_TYPES.items()}[kind]
    if desc.synthesize_kd_data:
        desc = dataclasses.replace(desc, mappings={**desc.mappings, **kd_data_mappings(desc)})
    layout = build_layout(desc)
    write_layout(desc, layout, path, kind)
    return layout
