"""Triage ("small memory") dumps: a dump header followed by a TRIAGE_DUMP.

No real 32-bit minidump is in the corpus, so the 32-bit triage reader is
checked against files made here. The layout follows the public descriptions
of TRIAGE_DUMP32 / TRIAGE_DUMP64 (at 0x1000 after DUMP_HEADER32, at 0x2000
after DUMP_HEADER64), DUMP_DRIVER_ENTRY (a name offset followed by a
KLDR_DATA_TABLE_ENTRY), DUMP_STRING, DUMP_UNLOADED_DRIVERS and
TRIAGE_DATA_BLOCK. As the kernel does, the context and exception record stay
in the dump header and the triage header points at them; every other part is
appended 8-byte aligned and its offset and size recorded, so the file is
self-consistent. Snapshot bytes are written verbatim: the reader locates the
thread and process through the PRCB copy and the debugger data, so callers
that want those found put the pointers and the KDDEBUGGER_DATA64 copy in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .description import DumpDescription
from .headers import HEADER32_SIZE, HEADER64_SIZE, header32, header64

TRIAGE_DUMP_TYPE = 4
TRIAGE_VALID = b"TRGD"  # 'DGRT' as a little-endian ULONG

# MiniDumpFields bits (TRIAGE_DUMP_*).
F_CONTEXT = 0x0001
F_EXCEPTION = 0x0002
F_PRCB = 0x0004
F_PROCESS = 0x0008
F_THREAD = 0x0010
F_STACK = 0x0020
F_DRIVER_LIST = 0x0040
F_BROKEN_DRIVER = 0x0080
F_MMINFO = 0x0100
F_DEBUGGER_DATA = 0x0400
F_DATA_BLOCKS = 0x0800

DRIVER_ENTRY64_SIZE = 0x90
DRIVER_ENTRY32_SIZE = 0x4C
UNLOADED64_SIZE = 0x38
UNLOADED32_SIZE = 0x28
UNLOADED_NAME_BYTES = 24  # WCHAR NameBuffer[12]


@dataclass
class TriageDriver:
    name: str
    base: int
    size: int
    timestamp: int = 0
    checksum: int = 0


@dataclass
class TriageParts:
    """What a triage dump holds beyond the description's header fields.

    ``prcb``/``process``/``thread`` are snapshot bytes (their addresses are not
    stored by TRIAGE_DUMP itself); ``stack`` is captured from ``top_of_stack``.
    ``mm`` holds the 13 DUMP_MM_STORAGE values in order. The description's
    ``mappings`` become TRIAGE_DATA_BLOCKs.
    """

    prcb: bytes = b""
    process: bytes = b""
    thread: bytes = b""
    top_of_stack: int = 0
    stack: bytes = b""
    drivers: list[TriageDriver] = field(default_factory=list)
    broken_driver: int | None = None  # index into ``drivers``
    unloaded_drivers: list[tuple[str, int, int]] = field(default_factory=list)  # (name, start, end)
    mm: tuple[int, ...] | None = None
    debugger_data: bytes | None = None  # a KDDEBUGGER_DATA64 copy
    directory_table_base: int = 0
    service_pack_build: int = 0
    triage_options: int = 0
    pae: bool = True  # DUMP_HEADER32.PaeEnabled
    #: Exception record as (code, address, parameters); default: a breakpoint at the crash pc.
    exception: tuple[int, int, tuple[int, ...]] | None = None


def _dump_string(name: str) -> bytes:
    raw = name.encode("utf-16-le")
    return struct.pack("<I", len(raw) // 2) + raw + b"\0\0"


class _Body:
    """The file after the dump header, growing 8-byte aligned."""

    def __init__(self, start: bytearray):
        self.out = start

    def put(self, data: bytes) -> int:
        off = len(self.out)
        self.out += data
        self.out += bytes(-len(self.out) % 8)
        return off


def _unloaded(entries, is64: bool) -> bytes:
    out = bytearray(struct.pack("<I4x" if is64 else "<I", len(entries)))
    for name, start, end in entries:
        raw = name.encode("utf-16-le")
        length = min(len(raw), UNLOADED_NAME_BYTES)
        buf = raw[:UNLOADED_NAME_BYTES].ljust(UNLOADED_NAME_BYTES, b"\0")
        if is64:
            out += struct.pack("<HH4xQ", length, length, 0) + buf + struct.pack("<QQ", start, end)
        else:
            out += struct.pack("<HHI", length, length, 0) + buf + struct.pack("<II", start, end)
    return bytes(out)


def _driver_entry(name_off: int, d: TriageDriver, is64: bool) -> bytes:
    if is64:
        e = bytearray(DRIVER_ENTRY64_SIZE)
        struct.pack_into("<I", e, 0, name_off)
        ldr = 8  # KLDR_DATA_TABLE_ENTRY64 is 8-byte aligned after the ULONG name offset
        struct.pack_into("<Q", e, ldr + 0x30, d.base)  # DllBase
        struct.pack_into("<I", e, ldr + 0x40, d.size)  # SizeOfImage
        struct.pack_into("<I", e, ldr + 0x78, d.checksum)  # CheckSum
        struct.pack_into("<I", e, ldr + 0x80, d.timestamp)  # TimeDateStamp
    else:
        e = bytearray(DRIVER_ENTRY32_SIZE)
        struct.pack_into("<I", e, 0, name_off)
        ldr = 4
        struct.pack_into("<I", e, ldr + 0x18, d.base & 0xFFFFFFFF)
        struct.pack_into("<I", e, ldr + 0x20, d.size)
        struct.pack_into("<II", e, ldr + 0x40, d.checksum, d.timestamp)
    return bytes(e)


def _header(desc: DumpDescription, parts: TriageParts, fields: int) -> tuple[bytearray, int, int]:
    """The dump header with DumpType 4, and where its context and exception record sit."""
    if desc.machine == "x64":
        h = header64(desc, TRIAGE_DUMP_TYPE, parts.directory_table_base, [], 0)
        h[0x88:0xA0] = b"PAGE" * 6  # a triage dump records no physical memory runs
        struct.pack_into("<I", h, 0x1038, fields)  # MiniDumpFields
        ctx, exc = 0x348, 0xF00
        if parts.exception:
            code, addr, params = parts.exception
            h[exc : exc + 0x98] = struct.pack(
                "<IIQQII15Q", code, 0, 0, addr, len(params), 0, *params, *([0] * (15 - len(params)))
            )
    else:
        h = header32(desc, parts.directory_table_base, [], 0, parts.pae)
        h[0x64:0x70] = b"PAGE" * 3
        struct.pack_into("<II", h, 0xF88, TRIAGE_DUMP_TYPE, fields)  # DumpType, MiniDumpFields
        ctx, exc = 0x320, 0x7D0
        if parts.exception:
            code, addr, params = parts.exception
            h[exc : exc + 0x50] = struct.pack(
                "<5I15I", code, 0, 0, addr, len(params), *params, *([0] * (15 - len(params)))
            )
    return h, ctx, exc


def build_triage_dump(desc: DumpDescription, parts: TriageParts) -> bytes:
    """The whole triage dump file as bytes (small by nature, so built in memory)."""
    is64 = desc.machine == "x64"
    if desc.machine not in ("x64", "x86"):
        raise ValueError(f"unknown machine {desc.machine!r}")
    if parts.exception and len(parts.exception[2]) > 15:
        raise ValueError("an exception record holds at most 15 parameters")
    if parts.broken_driver is not None and not 0 <= parts.broken_driver < len(parts.drivers):
        raise ValueError("broken_driver is not an index into drivers")
    if parts.mm is not None and len(parts.mm) != 13:
        raise ValueError("mm holds the 13 DUMP_MM_STORAGE values")
    fields = F_CONTEXT | F_EXCEPTION
    for flag, present in (
        (F_PRCB, parts.prcb),
        (F_PROCESS, parts.process),
        (F_THREAD, parts.thread),
        (F_STACK, parts.stack),
        (F_DRIVER_LIST, parts.drivers),
        (F_BROKEN_DRIVER, parts.broken_driver is not None),
        (F_MMINFO, parts.mm is not None),
        (F_DEBUGGER_DATA, parts.debugger_data),
        (F_DATA_BLOCKS, desc.mappings),
    ):
        if present:
            fields |= flag
    header, ctx_off, exc_off = _header(desc, parts, fields)
    base = len(header)
    tri_size = 0x80 if is64 else 0x68
    body = _Body(header + bytearray(tri_size))

    mm_off = 0
    if parts.mm is not None:
        mm_off = body.put(struct.pack("<6I7Q" if is64 else "<13I", *parts.mm))
    unl_off = body.put(_unloaded(parts.unloaded_drivers, is64)) if parts.unloaded_drivers else 0
    prcb_off = body.put(parts.prcb) if parts.prcb else 0
    process_off = body.put(parts.process) if parts.process else 0
    thread_off = body.put(parts.thread) if parts.thread else 0
    stack_off = body.put(parts.stack) if parts.stack else 0

    drv_off = pool_off = pool_size = broken_off = 0
    if parts.drivers:
        stride = DRIVER_ENTRY64_SIZE if is64 else DRIVER_ENTRY32_SIZE
        drv_off = body.put(bytes(stride * len(parts.drivers)))
        pool_off = len(body.out)
        names = [body.put(_dump_string(d.name)) for d in parts.drivers]
        pool_size = len(body.out) - pool_off
        for i, (d, name_off) in enumerate(zip(parts.drivers, names, strict=True)):
            e = drv_off + stride * i
            body.out[e : e + stride] = _driver_entry(name_off, d, is64)
        if parts.broken_driver is not None:
            broken_off = drv_off + stride * parts.broken_driver

    kd_off = body.put(parts.debugger_data) if parts.debugger_data else 0
    kd_size = len(parts.debugger_data) if parts.debugger_data else 0

    blocks_off = 0
    if desc.mappings:
        table = []
        for va, data in sorted(desc.mappings.items()):
            table.append((va & 0xFFFFFFFFFFFFFFFF, body.put(bytes(data)), len(data)))
        blocks_off = body.put(b"".join(struct.pack("<QII", *t) for t in table))
    valid_off = body.put(TRIAGE_VALID + b"Dump")
    size = len(body.out)

    head = struct.pack(
        "<18I",
        parts.service_pack_build,
        size,
        valid_off,
        ctx_off,
        exc_off,
        mm_off,
        unl_off,
        prcb_off,
        process_off,
        thread_off,
        stack_off,
        len(parts.stack),
        drv_off,
        len(parts.drivers),
        pool_off,
        pool_size,
        broken_off,
        parts.triage_options,
    )
    if is64:
        # TopOfStack, then the (unused on x64) backing-store fields, the data page and the rest.
        tail = struct.pack(
            "<Q16xQII4I", parts.top_of_stack, 0, 0, 0, kd_off, kd_size, blocks_off, len(desc.mappings)
        )
    else:
        tail = struct.pack(
            "<8I", parts.top_of_stack & 0xFFFFFFFF, 0, 0, 0, kd_off, kd_size, blocks_off, len(desc.mappings)
        )
    triage = head + tail
    assert len(triage) == tri_size
    body.out[base : base + tri_size] = triage
    # RequiredDumpSpace: the file's own size.
    struct.pack_into("<Q", body.out, 0xFA0, size)
    return bytes(body.out)


def write_triage_dump(desc: DumpDescription, path, parts: TriageParts | None = None) -> int:
    """Write ``desc`` (with ``parts``) as a triage dump to ``path``; returns the file size."""
    data = build_triage_dump(desc, parts or TriageParts())
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


__all__ = [
    "HEADER32_SIZE",
    "HEADER64_SIZE",
    "TriageDriver",
    "TriageParts",
    "build_triage_dump",
    "write_triage_dump",
]
