"""A loaded-module list (PsLoadedModuleList) and minimal PE headers for synthetic kernels.

``_KLDR_DATA_TABLE_ENTRY`` records are laid out with the kernel's own type,
each with ``FullDllName``/``BaseDllName`` UNICODE_STRINGs in pool, and linked
in load order from the list head at the kernel's ``PsLoadedModuleList``.
Module images get a one-page PE header (DOS stub, COFF and PE32+ optional
header, one section) so a reader can take SizeOfImage, TimeDateStamp and
CheckSum from memory as it would from a real image.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .memory import PAGE, Arena, SparseMemory


@dataclass
class SynthModule:
    #: full path as the loader records it (``\SystemRoot\system32\ntoskrnl.exe``)
    path: str
    base: int
    size: int
    timestamp: int = 0
    checksum: int = 0
    #: address of its _KLDR_DATA_TABLE_ENTRY once built
    entry: int = 0

    @property
    def name(self) -> str:
        """The file name (``BaseDllName``)."""
        return self.path.replace("/", "\\").rsplit("\\", 1)[-1]


def pe_header_page(
    base: int,
    size: int,
    timestamp: int,
    checksum: int,
    machine: int = 0x8664,
    *,
    exception: tuple[int, int] = (0, 0),
    text_end: int | None = None,
) -> bytes:
    """One page holding a minimal, well-formed PE32+ header for an image of ``size`` bytes at ``base``.

    ``exception`` is the exception directory (.pdata) as (RVA, size); ``text_end``
    splits the image into an executable ``.text`` from 0x1000 and ``.data`` after it.
    """
    page = bytearray(PAGE)
    lfanew = 0x80
    page[0:2] = b"MZ"
    struct.pack_into("<I", page, 0x3C, lfanew)
    page[lfanew : lfanew + 4] = b"PE\0\0"
    coff = lfanew + 4
    opt_size = 0xF0
    nsect = 2 if text_end and 0x1000 < text_end < size else 1
    struct.pack_into("<HHIIIHH", page, coff, machine, nsect, timestamp & 0xFFFFFFFF, 0, 0, opt_size, 0x22)
    opt = coff + 20
    struct.pack_into(
        "<HBBIIIII",
        page,
        opt,
        0x20B,  # PE32+
        14,
        0,
        0,  # SizeOfCode
        0,
        0,
        0,  # AddressOfEntryPoint
        0x1000,  # BaseOfCode
    )
    struct.pack_into("<QII", page, opt + 0x18, base, 0x1000, 0x200)  # ImageBase, alignments
    struct.pack_into("<HHHHHHI", page, opt + 0x28, 10, 0, 10, 0, 10, 0, 0)  # OS/image/subsystem versions
    struct.pack_into("<IIIHH", page, opt + 0x38, size, 0x1000, checksum & 0xFFFFFFFF, 1, 0x160)
    struct.pack_into("<QQQQ", page, opt + 0x48, 0x80000, 0x1000, 0x100000, 0x1000)
    struct.pack_into("<II", page, opt + 0x68, 0, 16)  # LoaderFlags, NumberOfRvaAndSizes
    struct.pack_into("<II", page, opt + 0x70 + 3 * 8, *exception)
    sect = opt + opt_size
    sections = [(b".data", 0x1000, max(size - 0x1000, 0), 0xC8000040)]
    if nsect == 2:
        sections = [
            (b".text", 0x1000, text_end - 0x1000, 0x68000020),  # code, execute, read
            (b".data", text_end, size - text_end, 0xC8000040),
        ]
    for i, (name, rva, vsize, flags) in enumerate(sections):
        struct.pack_into("<8sIIIIIIHHI", page, sect + i * 40, name, vsize, rva, 0, 0, 0, 0, 0, 0, flags)
    return bytes(page)


def build_module_list(
    memory: SparseMemory,
    pool: Arena,
    types,
    head: int,
    modules: list[SynthModule],
    *,
    headers: bool = True,
) -> list[SynthModule]:
    """Lay out one ``_KLDR_DATA_TABLE_ENTRY`` per module and link them from ``head``.

    ``types`` is the kernel's TypeSource; ``headers`` also writes each module's
    PE header page at its base (skipped where the page already holds data).
    """
    kldr = types.find_type("_KLDR_DATA_TABLE_ENTRY")
    if kldr is None:
        raise ValueError("the kernel types have no _KLDR_DATA_TABLE_ENTRY")
    link = memory.offset(kldr, "InLoadOrderLinks")
    entries = []
    for m in modules:
        va = pool.alloc(kldr.size, 16)
        m.entry = va
        full, full_len = pool.alloc_string(m.path)
        short, short_len = pool.alloc_string(m.name)
        values = {
            "DllBase": m.base,
            "SizeOfImage": m.size,
            "FullDllName.Length": full_len,
            "FullDllName.MaximumLength": full_len + 2,
            "FullDllName.Buffer": full,
            "BaseDllName.Length": short_len,
            "BaseDllName.MaximumLength": short_len + 2,
            "BaseDllName.Buffer": short,
            "CheckSum": m.checksum,
            "TimeDateStamp": m.timestamp,
            "LoadCount": 1,
            "Flags": 0x4000,  # LDRP_ENTRY_PROCESSED
        }
        for path, value in values.items():
            try:
                memory.set(va, kldr, path, value)
            except KeyError:
                if path in ("DllBase", "SizeOfImage") or path.startswith(("FullDllName", "BaseDllName")):
                    raise
        entries.append(va + link)
        if headers and m.base & (PAGE - 1) == 0 and m.base not in memory.pages:
            memory.write(m.base, pe_header_page(m.base, m.size, m.timestamp, m.checksum))
    memory.touch(head, 2 * memory.pointer_size)
    memory.link_list(head, entries)
    return modules
