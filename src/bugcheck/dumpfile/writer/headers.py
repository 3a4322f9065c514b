"""Byte layouts of the crash dump headers and register contexts the writer emits.

Offsets follow the public descriptions of DUMP_HEADER64 (0x2000 bytes,
``PAGEDU64``), DUMP_HEADER32 (0x1000 bytes, ``PAGEDUMP``), the bitmap header
that follows DUMP_HEADER64 in bitmap dumps (``SDMP``/``FDMP`` + ``DUMP``), and
the AMD64 / i386 CONTEXT records. Unused header bytes hold the ``PAGE`` filler
Windows leaves there, so readers that test for it see what they would in a
real file.
"""

from __future__ import annotations

import struct

from .description import DumpDescription

HEADER64_SIZE = 0x2000
HEADER32_SIZE = 0x1000
BITMAP_HEADER_SIZE = 0x38
MAX_RUNS64 = (0x2C0 - 0x10) // 0x10
MAX_RUNS32 = (700 - 8) // 8

STATUS_BREAKPOINT = 0x80000003

# AMD64 CONTEXT: register name -> (offset, struct format).
CONTEXT64_FIELDS = {
    "mxcsr": (0x34, "<I"),
    "cs": (0x38, "<H"),
    "ds": (0x3A, "<H"),
    "es": (0x3C, "<H"),
    "fs": (0x3E, "<H"),
    "gs": (0x40, "<H"),
    "ss": (0x42, "<H"),
    "efl": (0x44, "<I"),
    "dr0": (0x48, "<Q"),
    "dr1": (0x50, "<Q"),
    "dr2": (0x58, "<Q"),
    "dr3": (0x60, "<Q"),
    "dr6": (0x68, "<Q"),
    "dr7": (0x70, "<Q"),
    "rax": (0x78, "<Q"),
    "rcx": (0x80, "<Q"),
    "rdx": (0x88, "<Q"),
    "rbx": (0x90, "<Q"),
    "rsp": (0x98, "<Q"),
    "rbp": (0xA0, "<Q"),
    "rsi": (0xA8, "<Q"),
    "rdi": (0xB0, "<Q"),
    "r8": (0xB8, "<Q"),
    "r9": (0xC0, "<Q"),
    "r10": (0xC8, "<Q"),
    "r11": (0xD0, "<Q"),
    "r12": (0xD8, "<Q"),
    "r13": (0xE0, "<Q"),
    "r14": (0xE8, "<Q"),
    "r15": (0xF0, "<Q"),
    "rip": (0xF8, "<Q"),
}
CONTEXT64_SIZE = 0x4D0
CONTEXT64_FLAGS = 0x10001F  # CONTEXT_AMD64 | control, integer, segments, floating point, debug
CONTEXT64_FLTSAVE_MXCSR = 0x100 + 0x18

# i386 CONTEXT.
CONTEXT32_FIELDS = {
    "dr0": (0x04, "<I"),
    "dr1": (0x08, "<I"),
    "dr2": (0x0C, "<I"),
    "dr3": (0x10, "<I"),
    "dr6": (0x14, "<I"),
    "dr7": (0x18, "<I"),
    "gs": (0x8C, "<I"),
    "fs": (0x90, "<I"),
    "es": (0x94, "<I"),
    "ds": (0x98, "<I"),
    "edi": (0x9C, "<I"),
    "esi": (0xA0, "<I"),
    "ebx": (0xA4, "<I"),
    "edx": (0xA8, "<I"),
    "ecx": (0xAC, "<I"),
    "eax": (0xB0, "<I"),
    "ebp": (0xB4, "<I"),
    "eip": (0xB8, "<I"),
    "cs": (0xBC, "<I"),
    "efl": (0xC0, "<I"),
    "esp": (0xC4, "<I"),
    "ss": (0xC8, "<I"),
}
CONTEXT32_SIZE = 0x2CC
CONTEXT32_FLAGS = 0x1001F  # CONTEXT_i386 | control, integer, segments, floating point, debug

# Defaults a kernel-mode context has when the description leaves them out.
_DEFAULTS64 = {
    "cs": 0x10,
    "ss": 0x18,
    "ds": 0x2B,
    "es": 0x2B,
    "fs": 0x53,
    "gs": 0x2B,
    "efl": 0x282,
    "mxcsr": 0x1F80,
}
_DEFAULTS32 = {"cs": 0x8, "ss": 0x10, "ds": 0x23, "es": 0x23, "fs": 0x30, "gs": 0, "efl": 0x282}


def context_bytes(machine: str, regs: dict[str, int]) -> bytes:
    """Serialize one register dict (WinDbg names) as the CONTEXT record of ``machine``."""
    if machine == "x64":
        fields, size, flags, defaults = CONTEXT64_FIELDS, CONTEXT64_SIZE, CONTEXT64_FLAGS, _DEFAULTS64
    else:
        fields, size, flags, defaults = CONTEXT32_FIELDS, CONTEXT32_SIZE, CONTEXT32_FLAGS, _DEFAULTS32
    unknown = set(regs) - set(fields)
    if unknown:
        raise ValueError(f"unknown {machine} registers: {', '.join(sorted(unknown))}")
    buf = bytearray(size)
    struct.pack_into("<I", buf, 0x30 if machine == "x64" else 0, flags)
    values = {**defaults, **regs}
    for name, value in values.items():
        off, fmt = fields[name]
        struct.pack_into(fmt, buf, off, value & ((1 << (8 * struct.calcsize(fmt))) - 1))
    if machine == "x64":
        # The legacy FXSAVE area repeats MXCSR; readers check the two agree.
        struct.pack_into("<I", buf, CONTEXT64_FLTSAVE_MXCSR, values["mxcsr"])
        struct.pack_into("<H", buf, 0x100, 0x27F)  # x87 control word after FNINIT
    return bytes(buf)


def _filler(size: int) -> bytearray:
    return bytearray(b"PAGE" * (size // 4))


def _crash_context(desc: DumpDescription) -> dict[str, int]:
    if not desc.contexts:
        return {}
    if not 0 <= desc.crash_processor < len(desc.contexts):
        raise ValueError("crash_processor has no context")
    return desc.contexts[desc.crash_processor]


def _pc(desc: DumpDescription, regs: dict[str, int]) -> int:
    return regs.get("rip" if desc.machine == "x64" else "eip", 0)


def header64(
    desc: DumpDescription,
    dump_type: int,
    dtb: int,
    runs: list[tuple[int, int]],
    required_space: int,
) -> bytearray:
    """DUMP_HEADER64 (0x2000 bytes) for a full or bitmap dump."""
    if len(runs) > MAX_RUNS64:
        raise ValueError(f"a DUMP_HEADER64 holds at most {MAX_RUNS64} physical memory runs")
    h = _filler(HEADER64_SIZE)
    p = desc.bugcheck_parameters
    struct.pack_into(
        "<4s4sIIQQQQIII",
        h,
        0,
        b"PAGE",
        b"DU64",
        desc.major_version,
        desc.build,
        dtb,
        desc.pfn_database,
        desc.ps_loaded_module_list,
        desc.ps_active_process_head,
        0x8664,
        desc.processors,
        desc.bugcheck_code,
    )
    struct.pack_into("<4Q", h, 0x40, *(v & 0xFFFFFFFFFFFFFFFF for v in p))
    struct.pack_into("<Q", h, 0x80, desc.kd_debugger_data_block)
    struct.pack_into("<IIQ", h, 0x88, len(runs), 0, sum(c for _, c in runs))
    for i, (base, count) in enumerate(runs):
        struct.pack_into("<QQ", h, 0x98 + i * 0x10, base, count)
    regs = _crash_context(desc)
    h[0x348 : 0x348 + CONTEXT64_SIZE] = context_bytes("x64", regs)
    exc = struct.pack("<IIQQII", STATUS_BREAKPOINT, 0, 0, _pc(desc, regs), 0, 0) + bytes(15 * 8)
    h[0xF00 : 0xF00 + 0x98] = exc
    struct.pack_into("<I", h, 0xF98, dump_type)
    struct.pack_into("<qq", h, 0xFA0, required_space, desc.system_time)
    h[0xFB0 : 0xFB0 + 0x80] = _comment(desc.comment)
    struct.pack_into(
        "<qIIIIIBB2s",
        h,
        0x1030,
        desc.system_up_time,
        0,
        0,
        desc.product_type,
        desc.suite_mask,
        0,
        0,
        0,
        b"\0\0",
    )
    return h


def header32(
    desc: DumpDescription, dtb: int, runs: list[tuple[int, int]], required_space: int, pae: bool
) -> bytearray:
    """DUMP_HEADER32 (0x1000 bytes) for a 32-bit full dump."""
    if len(runs) > MAX_RUNS32:
        raise ValueError(f"a DUMP_HEADER32 holds at most {MAX_RUNS32} physical memory runs")
    if runs and runs[-1][0] + runs[-1][1] > 1 << 32:
        raise ValueError("32-bit dump runs must stay below PFN 2^32")
    h = _filler(HEADER32_SIZE)
    p = desc.bugcheck_parameters
    struct.pack_into(
        "<4s4sIIIIIIIII4I",
        h,
        0,
        b"PAGE",
        b"DUMP",
        desc.major_version,
        desc.build,
        dtb,
        desc.pfn_database & 0xFFFFFFFF,
        desc.ps_loaded_module_list & 0xFFFFFFFF,
        desc.ps_active_process_head & 0xFFFFFFFF,
        0x14C,
        desc.processors,
        desc.bugcheck_code,
        *(v & 0xFFFFFFFF for v in p),
    )
    struct.pack_into("<BB2sI", h, 0x5C, 1 if pae else 0, 0, b"\0\0", desc.kd_debugger_data_block & 0xFFFFFFFF)
    struct.pack_into("<II", h, 0x64, len(runs), sum(c for _, c in runs))
    for i, (base, count) in enumerate(runs):
        struct.pack_into("<II", h, 0x6C + i * 8, base, count)
    regs = _crash_context(desc)
    h[0x320 : 0x320 + CONTEXT32_SIZE] = context_bytes("x86", regs)
    exc = struct.pack("<IIIII", STATUS_BREAKPOINT, 0, 0, _pc(desc, regs), 0) + bytes(15 * 4)
    h[0x7D0 : 0x7D0 + 0x50] = exc
    h[0x820 : 0x820 + 0x80] = _comment(desc.comment)
    struct.pack_into("<IIIII", h, 0xF88, 1, 0, 0, desc.product_type, desc.suite_mask)
    struct.pack_into("<q", h, 0xFA0, required_space)
    struct.pack_into("<qq", h, 0xFB8, desc.system_up_time, desc.system_time)
    return h


def bitmap_header(signature: bytes, first_page: int, present: int, pages: int) -> bytes:
    """The 0x38-byte header before the page bitmap (``SDMP``/``FDMP``, then ``DUMP``)."""
    return struct.pack("<4s4s24sQQQ", signature, b"DUMP", bytes(24), first_page, present, pages)


def _comment(text: str) -> bytes:
    raw = text.encode("ascii", "replace")[:0x7F]
    return raw + bytes(0x80 - len(raw))
