"""Opening a kernel crash dump: format detection, header, contexts and memory.

The file is mapped read-only and parsed lazily: open reads the header, the
triage lists or the bitmap (one numpy pass) and nothing else. Every problem
with the file surfaces as :class:`BadFileError` / :class:`UnsupportedFormatError`.
"""

from __future__ import annotations

import mmap
import os
import struct
from functools import cached_property
from pathlib import Path

import numpy as np

from bugcheck.dumpfile.context import Context
from bugcheck.dumpfile.header import (
    HEADER32_SIZE,
    HEADER64_SIZE,
    MACHINE_NAMES,
    DumpHeader,
    parse_header32,
    parse_header64,
)
from bugcheck.dumpfile.kddebugger import decode_kddebugger_data, parse_kddebugger_data
from bugcheck.dumpfile.kinds import DumpKind
from bugcheck.dumpfile.triage import TriageInfo, build_sparse, parse_triage
from bugcheck.errors import BadFileError, BugcheckError, MemoryNotPresent, UnsupportedFormatError
from bugcheck.memory.base import PAGE_SIZE, AddressSpace
from bugcheck.memory.paging import (
    Paging,
    VirtualMemory,
    X64La57Paging,
    X64Paging,
    X86PaePaging,
    X86Paging,
)
from bugcheck.memory.physical import BitmapPhysicalMemory, PhysicalMemory, RunPhysicalMemory

TRUNCATED_WARNING = "WARNING: Dump file has been truncated.  Data may be missing."

_DUMP_TYPE_NAMES = {
    1: "full",
    2: "summary",
    3: "header-only",
    4: "triage",
    5: "bitmap",
    6: "live kernel bitmap",
    7: "automatic",
    8: "kernel memory",
    9: "kernel and user memory",
    10: "complete memory",
}
_PAGE_FILLER = 0x4547415045474150  # 'PAGEPAGE': a header field Windows left unset
# Physical pages are capped so a corrupt bitmap cannot ask for terabytes of bits (2^36 pages = 256 TB).
MAX_BITMAP_PAGES = 1 << 36


class NoMemory(AddressSpace):
    """An address space with nothing in it (e.g. a dump without readable page tables)."""

    def __init__(self, space: str = "virtual", reason: str = ""):
        self.space = space
        self.reason = reason

    def read_chunks(self, address: int, size: int):
        if size > 0:
            yield address, None, size


#: The dump comment ``repack`` writes. A page-based dump made from a triage dump's captures holds
#: zeros for every byte the capture lacked; the comment says so (kd prints it at load), and the
#: stack scan reads it to treat such zeros as absent rather than as code.
REPACK_COMMENT = "bugcheck re-pack of a triage dump: bytes it did not capture read as zero"


class DumpFile:
    """An open kernel crash dump (see docs/ARCHITECTURE.md for the contract)."""

    @property
    def zero_filled(self) -> bool:
        """A page-based dump whose uncaptured bytes read as zeros (one ``repack`` wrote)."""
        return self.triage is None and (getattr(self.header, "comment", "") or "") == REPACK_COMMENT

    def __init__(self, path: Path, buf, fileobj, header: DumpHeader, kind: DumpKind):
        self.path = path
        self._buf = buf
        self._file = fileobj
        self.header = header
        self.kind = kind
        self.file_size = len(buf)
        self.warnings: list[str] = []
        self.triage: TriageInfo | None = None
        self.physical: PhysicalMemory | None = None
        self.paging: Paging | None = None
        self.virtual: AddressSpace = NoMemory()
        self._crash_processor: int | None = None
        self._kd_from_triage: dict | None = None

    # Identity -----------------------------------------------------------------
    @property
    def machine(self) -> str:
        return self.header.machine

    @property
    def pointer_size(self) -> int:
        return 8 if self.header.is_64bit else 4

    @property
    def bugcheck_code(self) -> int:
        return self.header.bugcheck_code

    @property
    def bugcheck_parameters(self) -> tuple[int, int, int, int]:
        return tuple(self.header.bugcheck_parameters)

    @property
    def exception(self):
        return self.header.exception

    @property
    def crash_time(self):
        return self.header.crash_time

    @property
    def build(self) -> int:
        return self.header.minor_version

    # Contexts -----------------------------------------------------------------
    @cached_property
    def header_context(self) -> Context:
        """The CONTEXT record stored in the dump (triage ContextOffset, else the header's).

        For bugchecks raised with an exception context (e.g. 0x1000007E) Windows
        stores the faulting context here, not the one at KeBugCheckEx.
        """
        if self.triage is not None and self.triage.context_offset:
            off = self.triage.context_offset
        else:
            off = self.header.context_offset
        size = Context.size_for(self.machine)
        raw = bytes(self._buf[off : off + size])
        return Context.parse(self.machine, raw)

    @cached_property
    def crash_context(self) -> Context:
        """The context at the bugcheck call (KeBugCheckEx), as WinDbg starts a session with.

        Triage dumps: the CONTEXT the crashing PRCB points to (KPRCB.Context),
        when that memory was captured; otherwise the stored context record.
        """
        t = self.triage
        kd = self.kd_debugger_data or {}
        off = kd.get("OffsetPrcbContext")
        if t is not None and off and t.prcb_size >= off + self.pointer_size:
            ptr = int.from_bytes(
                self._buf[t.prcb_offset + off : t.prcb_offset + off + self.pointer_size], "little"
            )
            size = Context.size_for(self.machine)
            if ptr:
                raw, holes = self.virtual.read_padded(ptr, size)
                if not holes:
                    ctx = Context.parse(self.machine, raw)
                    if ctx.pc and ctx.sp:
                        return ctx
        return self.header_context

    @cached_property
    def contexts(self) -> list[Context]:
        """One context per processor when the dump lets us find them; else the crash context alone.

        Full/bitmap dumps: processor ``i``'s context is read from its PRCB
        (``KiProcessorBlock[i]``), at ``OffsetPrcbProcStateContext`` or through
        the ``OffsetPrcbContext`` pointer. The stored crash context replaces the
        crashing processor's entry (found by matching pc and sp). Triage dumps
        hold one processor.
        """
        crash = self.crash_context
        kd = self.kd_debugger_data
        if self.triage is not None or not kd or self.machine not in ("x64", "x86"):
            return [crash]
        kpb = kd.get("KiProcessorBlock")
        if not kpb:
            return [crash]
        out: list[Context] = []
        found = 0
        n = min(self.header.number_processors, 2048)
        for i in range(n):
            ctx = None
            try:
                prcb = self.virtual.pointer(kpb + i * self.pointer_size, self.pointer_size)
                ctx = self._prcb_context(prcb, kd)
            except BugcheckError:
                ctx = None
            if ctx is None:
                ctx = Context(self.machine)
            else:
                found += 1
            out.append(ctx)
        if not found:
            return [crash]
        for i, c in enumerate(out):
            if c.pc == crash.pc and c.sp == crash.sp:
                self._crash_processor = i
                out[i] = crash
                break
        else:
            self._crash_processor = None
        return out

    def _prcb_context(self, prcb: int, kd: dict) -> Context | None:
        size = Context.size_for(self.machine)
        places = []
        if kd.get("OffsetPrcbProcStateContext") is not None:
            places.append(prcb + kd["OffsetPrcbProcStateContext"])
        if kd.get("OffsetPrcbContext"):
            try:
                places.append(self.virtual.pointer(prcb + kd["OffsetPrcbContext"], self.pointer_size))
            except BugcheckError:
                pass
        for va in places:
            raw, holes = self.virtual.read_padded(va, size)
            if holes:
                continue
            ctx = Context.parse(self.machine, raw)
            if ctx.pc:
                return ctx
        return None

    @property
    def crash_processor(self) -> int | None:
        """Index of the processor that called KeBugCheckEx, when the dump tells."""
        if self.triage is None and self._crash_processor is None and "contexts" not in self.__dict__:
            _ = self.contexts
        return self._crash_processor

    @crash_processor.setter
    def crash_processor(self, value: int | None) -> None:
        self._crash_processor = value

    # Debugger data --------------------------------------------------------------
    @cached_property
    def kd_debugger_data(self) -> dict | None:
        """Parsed KDDEBUGGER_DATA64 (triage copy, or the block in memory when not encoded)."""
        if self._kd_from_triage is not None or self.triage is not None:
            return self._kd_from_triage
        va = self.header.kd_debugger_data_block
        if not va:
            return None
        raw, holes = self.virtual.read_padded(va, 0x400)
        if holes and holes[0][0] < va + 0x20:
            return None
        return parse_kddebugger_data(raw)

    def decode_kd_debugger_data(self, wait_never: int, wait_always: int, encoded_flag_address: int):
        """Decode an encoded KdDebuggerDataBlock with values from kernel symbols and cache the result.

        Returns the parsed dict, or None when the decoded block still lacks the
        'KDBG' tag (wrong keys, or the block is not in the dump).
        """
        va = self.header.kd_debugger_data_block
        if not va or self.triage is not None:
            return self.kd_debugger_data
        raw, holes = self.virtual.read_padded(va, 0x400)
        if holes and holes[0][0] < va + 0x20:
            return None
        if holes:
            raw = raw[: holes[0][0] - va]
        parsed = parse_kddebugger_data(
            decode_kddebugger_data(raw, wait_never, wait_always, encoded_flag_address)
        )
        if parsed is not None:
            self.__dict__["kd_debugger_data"] = parsed
            self.__dict__.pop("contexts", None)
        return parsed

    # Memory ---------------------------------------------------------------------
    def set_memory_fallback(self, fn) -> None:
        """Serve virtual reads the dump cannot answer from ``fn(address, size) -> [(address, bytes)]``
        (module images, as a debugger maps them); None removes it. Captured blocks are unchanged."""
        self.virtual.set_fallback(fn)

    def read_virtual(self, va: int, n: int) -> bytes:
        return self.virtual.read(va, n)

    def read_virtual_captured(self, va: int, n: int, fill: int = 0):
        """(bytes, holes) of what the dump itself holds, without the memory fallback (``!chkimg``)."""
        return self.virtual.read_captured(va, n, fill)

    def read_virtual_padded(self, va: int, n: int, fill: int = 0):
        return self.virtual.read_padded(va, n, fill)

    def read_physical(self, pa: int, n: int) -> bytes:
        if self.physical is None:
            raise MemoryNotPresent(pa, "physical", "a triage dump holds no physical memory")
        return self.physical.read(pa, n)

    def translate(self, va: int) -> int:
        if self.paging is None:
            raise MemoryNotPresent(va, "virtual", "no page tables in this dump")
        return self.paging.translate(va)

    # Lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        # Memory views may still reference the map; dropping our handles is enough
        # (the mapping is released when the last view goes away).
        f, self._file = self._file, None
        if f is not None:
            f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"<DumpFile {self.path.name} {self.kind.value} {self.machine} build {self.build}>"


def _map(path: Path):
    try:
        f = open(path, "rb")  # noqa: SIM115 - kept open for the life of the DumpFile
    except OSError as e:
        raise BadFileError(path, f"cannot open: {e.strerror or e}") from None
    try:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise BadFileError(path, "not a crash dump (file is empty)")
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except BadFileError:
        f.close()
        raise
    except (OSError, ValueError) as e:
        f.close()
        raise BadFileError(path, f"cannot map file: {e}") from None
    return f, buf


def open_dump(path) -> DumpFile:
    """Open a Windows kernel crash dump read-only; raises BadFileError/UnsupportedFormatError."""
    path = Path(path)
    f, buf = _map(path)
    try:
        return _open(path, f, buf)
    except BugcheckError:
        f.close()
        raise
    except (struct.error, IndexError, ValueError, OverflowError, MemoryError) as e:
        f.close()
        raise BadFileError(path, f"malformed dump: {type(e).__name__}: {e}") from None


def _open(path: Path, f, buf) -> DumpFile:
    size = len(buf)
    sig = bytes(buf[:8])
    if sig == b"PAGEDU64":
        hsize, parse = HEADER64_SIZE, parse_header64
    elif sig == b"PAGEDUMP":
        hsize, parse = HEADER32_SIZE, parse_header32
    elif sig[:4] == b"MDMP":
        raise UnsupportedFormatError(path, "user-mode minidump (MDMP), not a kernel crash dump")
    elif 0 < size < 8 and (b"PAGEDU64".startswith(sig) or b"PAGEDUMP".startswith(sig)):
        raise BadFileError(path, f"truncated dump header ({size:#x} bytes)")
    elif not sig.strip(b"\0") and not np.frombuffer(buf, dtype=np.uint8).any():
        raise BadFileError(path, "not a crash dump (file is all zeros)")
    else:
        raise BadFileError(path, f"not a crash dump (signature {sig[:8]!r})")
    if size < hsize:
        raise BadFileError(path, f"truncated dump header ({size:#x} of {hsize:#x} bytes)")
    header = parse(bytes(buf[:hsize]))
    if header.machine_image_type not in MACHINE_NAMES:
        raise UnsupportedFormatError(path, f"unsupported machine type {header.machine_image_type:#x}")
    if header.is_64bit != (header.machine in ("x64", "arm64")):
        raise BadFileError(path, f"{header.machine} machine type in a {sig.decode()} header")

    dt = header.dump_type
    if dt == 4:
        d = DumpFile(path, buf, f, header, DumpKind.TRIAGE)
        _setup_triage(d)
    elif dt == 1:
        d = DumpFile(path, buf, f, header, DumpKind.FULL)
        _setup_runs(d)
    elif dt == 2:
        d = DumpFile(path, buf, f, header, DumpKind.SUMMARY)
        _setup_summary(d)
    elif dt in (5, 6):
        d = DumpFile(path, buf, f, header, DumpKind.KERNEL_BITMAP)
        _setup_bitmap(d)
    elif dt in (8, 9, 10):
        kind = {8: DumpKind.KERNEL_MEMORY, 9: DumpKind.KERNEL_AND_USER, 10: DumpKind.COMPLETE_MEMORY}[dt]
        d = DumpFile(path, buf, f, header, kind)
        _setup_rdmp(d)
    else:
        name = _DUMP_TYPE_NAMES.get(dt, "unknown")
        raise UnsupportedFormatError(path, f"unsupported dump type {dt} ({name})")
    # RequiredDumpSpace is not the file size of triage dumps (it counts reserved space).
    required = header.required_dump_space
    if required in (_PAGE_FILLER, _PAGE_FILLER & 0xFFFFFFFF):
        required = 0
    if dt != 4 and required and size < required:
        if TRUNCATED_WARNING not in d.warnings:
            d.warnings.insert(0, TRUNCATED_WARNING)
    return d


def _setup_triage(d: DumpFile) -> None:
    t = parse_triage(d._buf, d.path, d.header)
    d.triage = t
    d._kd_from_triage = t.kd_debugger_data
    d.virtual = build_sparse(t, d._buf, d.header, d.pointer_size)
    d.crash_processor = t.processor_number
    d.warnings.extend(t.warnings)
    if t.valid_offset and d.file_size < t.valid_offset + 4:
        d.warnings.insert(0, TRUNCATED_WARNING)


def _setup_runs(d: DumpFile) -> None:
    h = d.header
    if not h.runs_valid:
        raise BadFileError(d.path, f"full dump with an implausible run count ({h.number_of_runs})")
    phys = RunPhysicalMemory(d._buf, h.physical_memory_runs, h.header_size)
    d.physical = phys
    if phys.truncated:
        d.warnings.append(TRUNCATED_WARNING)
    _setup_paging(d)


def _setup_summary(d: DumpFile) -> None:
    """Legacy kernel summary dump: SUMMARY_DUMP header (bitmap of 32-bit size) after the dump header."""
    h = d.header
    base = h.header_size
    if d.file_size < base + 0x30:
        raise BadFileError(d.path, "truncated summary dump header")
    header_size, bitmap_size = struct.unpack_from("<II", d._buf, base + 0x0C)
    bits_at = base + (0x28 if h.is_64bit else 0x20)
    _bitmap_memory(d, bits_at, bitmap_size, header_size)


def _setup_bitmap(d: DumpFile) -> None:
    h = d.header
    base = h.header_size
    if d.file_size < base + 0x38:
        raise BadFileError(d.path, "truncated bitmap dump header")
    sig, valid = bytes(d._buf[base : base + 4]), bytes(d._buf[base + 4 : base + 8])
    if sig not in (b"SDMP", b"FDMP") or valid != b"DUMP":
        raise BadFileError(d.path, f"bitmap dump header has a bad signature {sig + valid!r}")
    first_page, _present, pages = struct.unpack_from("<QQQ", d._buf, base + 0x20)
    if sig == b"FDMP":
        d.kind = DumpKind.COMPLETE_BITMAP
    else:
        d.kind = DumpKind.KERNEL_BITMAP
    _bitmap_memory(d, base + 0x38, pages, first_page)


# The newer dump types (8: .dump /k, 9: /ka, 10: /f) follow the dump header with an
# 'RDMP' header (Marker 0x40, 'RDMP', 'DUMP', MetadataSize, FirstPageOffset) and a
# list of (first PFN, page count) ranges from +0x30, ended by a zero PFN; the
# pages of the ranges follow one another from FirstPageOffset.
_RDMP_RANGES_AT = 0x30
MAX_RDMP_RANGES = 1 << 20


def _setup_rdmp(d: DumpFile) -> None:
    h = d.header
    base = h.header_size
    if not h.is_64bit:
        raise UnsupportedFormatError(d.path, f"32-bit dump of type {h.dump_type} is not supported")
    if d.file_size < base + _RDMP_RANGES_AT:
        raise BadFileError(d.path, "truncated RDMP dump header")
    marker, sig, valid, _unused, meta_size, first_page = struct.unpack_from("<I4s4sIQQ", d._buf, base)
    if marker != 0x40 or sig != b"RDMP" or valid != b"DUMP":
        raise BadFileError(d.path, f"dump type {h.dump_type} without a valid RDMP header")
    if first_page % PAGE_SIZE or first_page < base + _RDMP_RANGES_AT or meta_size % 16:
        raise BadFileError(d.path, f"RDMP header has implausible offsets ({first_page:#x}, {meta_size:#x})")
    count = min(meta_size // 16, MAX_RDMP_RANGES)
    if h.dump_type == 10:
        # the complete-memory variant also states its range count (NumberOfRanges at +0x20)
        nranges = struct.unpack_from("<I", d._buf, base + 0x20)[0]
        if nranges:
            count = min(count, nranges)
    start = base + _RDMP_RANGES_AT
    end = min(start + 16 * count, first_page, d.file_size)
    n = max(0, (end - start) // 16)
    arr = np.frombuffer(d._buf, dtype="<u8", count=2 * n, offset=start).reshape(-1, 2) if n else None
    runs = []
    if arr is not None:
        zero = np.flatnonzero(arr[:, 0] == 0)
        if len(zero):
            arr = arr[: zero[0]]
        runs = [(int(a), int(c)) for a, c in arr]
    if not runs:
        raise BadFileError(d.path, "RDMP dump lists no memory ranges")
    phys = RunPhysicalMemory(d._buf, runs, first_page)
    d.physical = phys
    if phys.truncated:
        d.warnings.append(TRUNCATED_WARNING)
    _setup_paging(d)


def _bitmap_memory(d: DumpFile, bits_at: int, pages: int, first_page: int) -> None:
    if pages > MAX_BITMAP_PAGES:
        raise BadFileError(d.path, f"bitmap of {pages} pages is not plausible")
    nbytes = (pages + 7) // 8
    if bits_at + nbytes > d.file_size:
        raise BadFileError(d.path, "bitmap extends beyond the end of the file")
    if first_page < bits_at + nbytes or first_page % PAGE_SIZE:
        raise BadFileError(d.path, f"bitmap dump first page offset {first_page:#x} is not plausible")
    bitmap = d._buf[bits_at : bits_at + nbytes]
    phys = BitmapPhysicalMemory(d._buf, bitmap, pages, first_page)
    d.physical = phys
    if phys.truncated:
        d.warnings.append(TRUNCATED_WARNING)
    _setup_paging(d)


def _setup_paging(d: DumpFile) -> None:
    h = d.header
    if d.machine == "x64":
        paging = X64Paging(d.physical, h.directory_table_base)
        probe = h.ps_loaded_module_list
        if probe and paging.walk(probe).physical is None:
            five = X64La57Paging(d.physical, h.directory_table_base)
            if five.walk(probe).physical is not None:
                paging = five
    elif d.machine == "x86":
        cls = X86PaePaging if h.pae_enabled else X86Paging
        paging = cls(d.physical, h.directory_table_base)
    else:
        d.warnings.append(f"{d.machine} page tables are not supported: only physical memory is available")
        return
    d.paging = paging
    d.virtual = VirtualMemory(paging)
