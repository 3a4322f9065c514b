"""TRIAGE_DUMP64 / TRIAGE_DUMP32: the small memory dump ("minidump") that follows the dump header.

A triage dump holds no page tables: only the crash context, snapshots of the
crashing processor's PRCB, thread and process, the stack from TopOfStack,
the loaded/unloaded driver lists, a decoded KDDEBUGGER_DATA64 copy and (newer
kernels) many TRIAGE_DATA_BLOCKs. All captured memory is exposed as one
:class:`~bugcheck.memory.sparse.SparseMemory`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from bugcheck.dumpfile.kddebugger import parse_kddebugger_data
from bugcheck.errors import BadFileError
from bugcheck.memory.sparse import Block, SparseMemory

TRIAGE_VALID = b"TRGD"  # 'DGRT' as a little-endian ULONG

# MiniDumpFields bits saying which parts are present.
TRIAGE_DUMP_CONTEXT = 0x0001
TRIAGE_DUMP_EXCEPTION = 0x0002
TRIAGE_DUMP_PRCB = 0x0004
TRIAGE_DUMP_PROCESS = 0x0008
TRIAGE_DUMP_THREAD = 0x0010
TRIAGE_DUMP_STACK = 0x0020
TRIAGE_DUMP_DRIVER_LIST = 0x0040
TRIAGE_DUMP_BROKEN_DRIVER = 0x0080
TRIAGE_DUMP_MMINFO = 0x0100
TRIAGE_DUMP_DATAPAGE = 0x0200
TRIAGE_DUMP_DEBUGGER_DATA = 0x0400
TRIAGE_DUMP_DATA_BLOCKS = 0x0800

# Bounds on counts read from the file (real dumps have < 2000 blocks, < 500 drivers).
MAX_DATA_BLOCKS = 100_000
MAX_DRIVERS = 10_000
MAX_UNLOADED = 1_000
MAX_NAME_CHARS = 1024

_FIELDS = (
    "service_pack_build size_of_dump valid_offset context_offset exception_offset mm_offset "
    "unloaded_drivers_offset prcb_offset process_offset thread_offset call_stack_offset "
    "size_of_call_stack driver_list_offset driver_count string_pool_offset string_pool_size "
    "broken_driver_offset triage_options"
).split()


class Driver(NamedTuple):
    """A loaded module from the triage driver list (the ARCHITECTURE tuple, with names)."""

    name: str
    base: int
    size: int
    timestamp: int
    checksum: int


class UnloadedDriver(NamedTuple):
    name: str
    start: int
    end: int


class DataBlock(NamedTuple):
    address: int
    offset: int
    size: int


@dataclass
class TriageInfo:
    """Everything the TRIAGE_DUMP header points at, decoded."""

    is_64bit: bool = True
    header_offset: int = 0x2000
    # raw TRIAGE_DUMP fields (snake_case of the Microsoft names)
    service_pack_build: int = 0
    size_of_dump: int = 0
    valid_offset: int = 0
    context_offset: int = 0
    exception_offset: int = 0
    mm_offset: int = 0
    unloaded_drivers_offset: int = 0
    prcb_offset: int = 0
    process_offset: int = 0
    thread_offset: int = 0
    call_stack_offset: int = 0
    size_of_call_stack: int = 0
    driver_list_offset: int = 0
    driver_count: int = 0
    string_pool_offset: int = 0
    string_pool_size: int = 0
    broken_driver_offset: int = 0
    triage_options: int = 0
    top_of_stack: int = 0
    data_page_address: int = 0
    data_page_offset: int = 0
    data_page_size: int = 0
    debugger_data_offset: int = 0
    debugger_data_size: int = 0
    data_blocks_offset: int = 0
    data_blocks_count: int = 0
    # decoded content
    valid: bool = False
    fields_present: int = 0
    drivers: list[Driver] = field(default_factory=list)
    unloaded_drivers: list[UnloadedDriver] = field(default_factory=list)
    data_blocks: list[DataBlock] = field(default_factory=list)
    mm: dict[str, int] = field(default_factory=dict)
    kd_debugger_data: dict[str, int] | None = None
    prcb_address: int | None = None
    thread_address: int | None = None
    process_address: int | None = None
    prcb_size: int = 0
    process_size: int = 0
    thread_size: int = 0
    processor_number: int | None = None
    broken_driver: Driver | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def call_stack(self) -> tuple[int, int]:
        """(lowest virtual address, size in bytes) of the captured stack."""
        return self.top_of_stack, self.size_of_call_stack

    @property
    def shape(self) -> str:
        """'large' for the newer layout (\\SystemRoot paths, many data blocks), else 'classic'."""
        if any(d.name.startswith("\\") for d in self.drivers):
            return "large"
        return "classic"


class _Reader:
    """Bounds-checked little-endian reads of the mapped file."""

    def __init__(self, buf, path):
        self.buf = buf
        self.size = len(buf)
        self.path = path

    def check(self, off: int, n: int, what: str) -> None:
        if off < 0 or n < 0 or off + n > self.size:
            raise BadFileError(
                self.path, f"{what} at file offset {off:#x} (+{n:#x}) lies beyond the end of the file"
            )

    def unpack(self, fmt: str, off: int, what: str):
        self.check(off, struct.calcsize(fmt), what)
        return struct.unpack_from(fmt, self.buf, off)

    def ok(self, off: int, n: int) -> bool:
        return 0 < off and 0 <= n and off + n <= self.size


def _utf16(raw: bytes) -> str:
    return raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]


def parse_triage(buf, path, header) -> TriageInfo:
    """Decode the triage header and its lists; structural errors raise BadFileError."""
    r = _Reader(buf, path)
    is64 = header.is_64bit
    t = TriageInfo(is_64bit=is64, header_offset=header.header_size)
    base = header.header_size
    vals = r.unpack("<18I", base, "triage header")
    for name, v in zip(_FIELDS, vals, strict=True):
        setattr(t, name, v)
    if is64:
        (t.top_of_stack,) = r.unpack("<Q", base + 0x48, "triage header")
        (t.data_page_address, t.data_page_offset, t.data_page_size) = r.unpack(
            "<QII", base + 0x60, "triage header"
        )
        (t.debugger_data_offset, t.debugger_data_size, t.data_blocks_offset, t.data_blocks_count) = r.unpack(
            "<4I", base + 0x70, "triage header"
        )
    else:
        (
            t.top_of_stack,
            t.data_page_address,
            t.data_page_offset,
            t.data_page_size,
            t.debugger_data_offset,
            t.debugger_data_size,
            t.data_blocks_offset,
            t.data_blocks_count,
        ) = r.unpack("<8I", base + 0x48, "triage header")
    t.fields_present = header.mini_dump_fields
    t.valid = r.ok(t.valid_offset, 4) and bytes(buf[t.valid_offset : t.valid_offset + 4]) == TRIAGE_VALID
    if not t.valid:
        t.warnings.append("Triage dump validity marker (DGRT) is missing: the dump may be incomplete")

    _parse_drivers(t, r, is64)
    _parse_unloaded(t, r, is64)
    _parse_mm(t, r, is64)
    _parse_data_blocks(t, r)
    if r.ok(t.debugger_data_offset, t.debugger_data_size) and t.debugger_data_size >= 0x20:
        raw = bytes(buf[t.debugger_data_offset : t.debugger_data_offset + t.debugger_data_size])
        t.kd_debugger_data = parse_kddebugger_data(raw)
    _sizes(t, r)
    return t


def _parse_drivers(t: TriageInfo, r: _Reader, is64: bool) -> None:
    if not t.driver_list_offset or not t.driver_count:
        return
    if t.driver_count > MAX_DRIVERS:
        raise BadFileError(r.path, f"triage driver count {t.driver_count} is not plausible")
    stride = 0x90 if is64 else 0x4C
    fmt = "<I4x48xQ8xI" if is64 else "<I24xI4xI"
    count = _entries_present(t, r, t.driver_list_offset, stride, t.driver_count, "triage driver list")
    for i in range(count):
        off = t.driver_list_offset + stride * i
        name_off, dll_base, size = struct.unpack_from(fmt, r.buf, off)
        if is64:
            checksum, timestamp = struct.unpack_from("<I4xI", r.buf, off + 8 + 0x78)
        else:
            checksum, timestamp = struct.unpack_from("<II", r.buf, off + 4 + 0x40)
        t.drivers.append(Driver(_dump_string(r, name_off), dll_base, size, timestamp, checksum))
    if t.broken_driver_offset and t.driver_list_offset <= t.broken_driver_offset:
        idx, rem = divmod(t.broken_driver_offset - t.driver_list_offset, stride)
        if rem == 0 and idx < len(t.drivers):
            t.broken_driver = t.drivers[idx]


def _entries_present(t: TriageInfo, r: _Reader, off: int, stride: int, count: int, what: str) -> int:
    """How many of a table's ``count`` entries the file holds whole; a cut table is read as far
    as it goes, with a warning (a truncated dump is analyzed with what it has)."""
    if off <= 0 or off >= r.size:
        t.warnings.append(f"{what} at file offset {off:#x} lies beyond the end of the file (truncated dump)")
        return 0
    have = min(count, (r.size - off) // stride)
    if have < count:
        t.warnings.append(f"{what} is truncated: {have} of {count} entries are in the file")
    return have


def _dump_string(r: _Reader, off: int) -> str:
    """A DUMP_STRING (ULONG length in characters, then UTF-16); '' when out of range."""
    if not r.ok(off, 4):
        return ""
    n = min(struct.unpack_from("<I", r.buf, off)[0], MAX_NAME_CHARS)
    n = min(n, max(0, (r.size - off - 4) // 2))
    return _utf16(bytes(r.buf[off + 4 : off + 4 + 2 * n]))


def _parse_unloaded(t: TriageInfo, r: _Reader, is64: bool) -> None:
    off = t.unloaded_drivers_offset
    if not r.ok(off, 4):
        return
    count = struct.unpack_from("<I", r.buf, off)[0]
    if count > MAX_UNLOADED:
        t.warnings.append(f"unloaded driver count {count} is not plausible; list ignored")
        return
    first, stride = (off + 8, 0x38) if is64 else (off + 4, 0x28)
    name_at, fmt = (0x10, "<QQ") if is64 else (0x08, "<II")
    if not r.ok(first, stride * count):
        t.warnings.append("unloaded driver list is truncated")
        return
    for i in range(count):
        e = first + stride * i
        length = struct.unpack_from("<H", r.buf, e)[0]
        raw = bytes(r.buf[e + name_at : e + name_at + min(length, 24)])
        start, end = struct.unpack_from(fmt, r.buf, e + name_at + 24)
        t.unloaded_drivers.append(UnloadedDriver(_utf16(raw), start, end))


_MM_NAMES = (
    "Version Size MmSpecialPoolTag MiTriageActionTaken MmVerifyDriverLevel KernelVerifier "
    "MmMaximumNonPagedPool MmAllocatedNonPagedPool PagedPoolMaximum PagedPoolAllocated "
    "CommittedPages CommittedPagesPeak CommitLimitMaximum"
).split()


def _parse_mm(t: TriageInfo, r: _Reader, is64: bool) -> None:
    fmt = "<6I7Q" if is64 else "<13I"
    if r.ok(t.mm_offset, struct.calcsize(fmt)):
        t.mm = dict(zip(_MM_NAMES, struct.unpack_from(fmt, r.buf, t.mm_offset), strict=True))


def _parse_data_blocks(t: TriageInfo, r: _Reader) -> None:
    if not t.data_blocks_offset or not t.data_blocks_count:
        return
    if t.data_blocks_count > MAX_DATA_BLOCKS:
        raise BadFileError(r.path, f"triage data block count {t.data_blocks_count} is not plausible")
    count = _entries_present(t, r, t.data_blocks_offset, 16, t.data_blocks_count, "triage data block table")
    bad = 0
    for i in range(count):
        addr, off, size = struct.unpack_from("<QII", r.buf, t.data_blocks_offset + 16 * i)
        if not r.ok(off, size):
            bad += 1
            continue
        t.data_blocks.append(DataBlock(addr, off, size))
    if bad:
        t.warnings.append(f"{bad} triage data block(s) point beyond the end of the file and were skipped")


def _sizes(t: TriageInfo, r: _Reader) -> None:
    """Snapshot sizes: from the debugger data when present, else the gap to the next part."""
    kd = t.kd_debugger_data or {}
    offsets = sorted(
        o
        for o in (
            t.prcb_offset,
            t.process_offset,
            t.thread_offset,
            t.call_stack_offset,
            t.driver_list_offset,
            t.string_pool_offset,
            t.mm_offset,
            t.unloaded_drivers_offset,
            t.debugger_data_offset,
            t.data_blocks_offset,
            t.valid_offset,
            r.size,
        )
        if o
    )

    def gap(o):
        later = [x for x in offsets if x > o]
        return (later[0] - o) if later else 0

    def pick(o, name):
        if not o or not r.ok(o, 1):
            return 0
        n = kd.get(name) or gap(o)
        return max(0, min(n, r.size - o))

    t.prcb_size = pick(t.prcb_offset, "SizePrcb")
    t.process_size = pick(t.process_offset, "SizeEProcess")
    t.thread_size = pick(t.thread_offset, "SizeEThread")


def build_sparse(t: TriageInfo, buf, header, ptr: int) -> SparseMemory:
    """Lay every captured region at its virtual address; snapshots win over generic blocks."""
    r = _Reader(buf, None)
    kd = t.kd_debugger_data or {}

    def rd(data_off: int, at: int, n: int) -> int | None:
        if not r.ok(data_off + at, n):
            return None
        return int.from_bytes(buf[data_off + at : data_off + at + n], "little")

    # Resolve where the snapshots live in virtual memory.
    cur_thread_off = kd.get("OffsetPrcbCurrentThread", 8 if ptr == 8 else 4)
    if t.prcb_size and t.prcb_offset:
        t.thread_address = rd(t.prcb_offset, cur_thread_off, ptr)
        num_off = kd.get("OffsetPrcbNumber")
        if num_off is not None and num_off + 2 <= t.prcb_size:
            t.processor_number = rd(t.prcb_offset, num_off, 2 if ptr == 8 else 1)
    apc_off = kd.get("OffsetKThreadApcProcess")
    if t.thread_size and apc_off is not None and apc_off + ptr <= t.thread_size:
        t.process_address = rd(t.thread_offset, apc_off, ptr)

    # The crash-time copies first (they win where blocks overlap), then the generic data blocks.
    blocks = []
    if t.size_of_call_stack and r.ok(t.call_stack_offset, t.size_of_call_stack):
        blocks.append(Block(t.top_of_stack, t.size_of_call_stack, buf, t.call_stack_offset, "call stack"))
    if t.thread_address and t.thread_size:
        blocks.append(Block(t.thread_address, t.thread_size, buf, t.thread_offset, "thread"))
    if t.process_address and t.process_size:
        blocks.append(Block(t.process_address, t.process_size, buf, t.process_offset, "process"))
    if t.data_page_address and r.ok(t.data_page_offset, t.data_page_size):
        blocks.append(Block(t.data_page_address, t.data_page_size, buf, t.data_page_offset, "data page"))
    blocks.extend(Block(b.address, b.size, buf, b.offset, "data block") for b in t.data_blocks)
    if header.kd_debugger_data_block and r.ok(t.debugger_data_offset, t.debugger_data_size):
        blocks.append(
            Block(
                header.kd_debugger_data_block,
                t.debugger_data_size,
                buf,
                t.debugger_data_offset,
                "debugger data",
            )
        )
    mem = SparseMemory(blocks, address_bits=64 if header.is_64bit else 32)

    # The PRCB's own address: KiProcessorBlock[number] if that pointer was captured,
    # else a captured block holding an identical copy.
    if t.prcb_size:
        addr = None
        kpb = kd.get("KiProcessorBlock")
        if kpb and t.processor_number is not None:
            raw, holes = mem.read_padded(kpb + ptr * t.processor_number, ptr)
            if not holes:
                addr = int.from_bytes(raw, "little") or None
        if addr is None:
            head = bytes(buf[t.prcb_offset : t.prcb_offset + min(0x100, t.prcb_size)])
            for b in t.data_blocks:
                if b.size >= len(head) and bytes(buf[b.offset : b.offset + len(head)]) == head:
                    addr = b.address
                    break
        if addr is None:
            # classic small dumps record neither: the copy's own empty list heads tell
            copy = bytes(buf[t.prcb_offset : t.prcb_offset + t.prcb_size])
            addr = prcb_address_from_list_heads(copy, ptr, kd.get("OffsetPcrContainedPrcb"))
        t.prcb_address = addr
        if addr:
            mem.add(Block(addr, t.prcb_size, buf, t.prcb_offset, "prcb"))
    return mem


MIN_LIST_HEAD_VOTES = 16


def prcb_address_from_list_heads(prcb: bytes, pointer_size: int = 8, contained_offset: int | None = None):
    """The virtual address of a PRCB copy whose address the dump does not record, or None.

    An empty ``LIST_ENTRY`` points at itself (Flink == Blink == its own
    address), and a PRCB holds hundreds of them (ready queues, wait lists...):
    each one says "this copy lives at value minus my offset". The address most
    of them agree on wins when at least :data:`MIN_LIST_HEAD_VOTES` do and, when
    ``contained_offset`` (``OffsetPcrContainedPrcb``) is given, the enclosing
    PCR starts on a page boundary. Only layout-free facts are used.
    """
    ps = pointer_size
    n = len(prcb) // ps
    if n < 2 or ps not in (4, 8):
        return None
    words = memoryview(bytes(prcb[: n * ps])).cast("Q" if ps == 8 else "I")
    votes: dict[int, int] = {}
    for i in range(n - 1):
        w = words[i]
        if w and w == words[i + 1]:
            base = w - i * ps
            votes[base] = votes.get(base, 0) + 1
    if not votes:
        return None
    best, count = max(votes.items(), key=lambda kv: kv[1])
    if count < MIN_LIST_HEAD_VOTES or best <= 0:
        return None
    if contained_offset and (best - contained_offset) & 0xFFF:
        return None
    return best
