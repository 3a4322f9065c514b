"""PE images (PE32 and PE32+) read lazily from a file or from dump memory.

Everything past the headers is parsed on first use.  From memory, absent pages
never abort parsing: the parts that could not be read are listed in
``image.absent`` and the affected tables are simply shorter.
"""

from __future__ import annotations

import bisect
import os
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from bugcheck.errors import BadFileError, BugcheckError, MemoryNotPresent

from . import arm64
from .reader import FileReader, ImageReader, MemoryReader
from .resources import VersionInfo, parse_version_info
from .unwind import (
    MAX_CHAIN_DEPTH,
    RuntimeFunction,
    UnwindFormatError,
    UnwindInfo,
    decode_unwind_info,
    parse_runtime_functions,
)

MACHINE_I386 = 0x14C
MACHINE_AMD64 = 0x8664
MACHINE_ARM64 = 0xAA64
MACHINE_NAMES = {MACHINE_I386: "x86", MACHINE_AMD64: "x64", MACHINE_ARM64: "arm64"}

DIR_EXPORT, DIR_IMPORT, DIR_RESOURCE, DIR_EXCEPTION = 0, 1, 2, 3
DIR_DEBUG = 6

DEBUG_TYPE_CODEVIEW = 2
DEBUG_TYPE_REPRO = 16
RT_VERSION = 16

MAX_SECTIONS = 96
MAX_EXPORTS = 1 << 16
MAX_DEBUG_ENTRIES = 64
MAX_PDATA_BYTES = 64 << 20
MAX_RESOURCE_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class Section:
    name: str
    virtual_address: int
    virtual_size: int
    raw_pointer: int
    raw_size: int
    characteristics: int

    def contains(self, rva: int) -> bool:
        return self.virtual_address <= rva < self.virtual_address + max(self.virtual_size, self.raw_size)


@dataclass(frozen=True, slots=True)
class Export:
    ordinal: int
    rva: int  # 0 for a forwarder
    name: str | None
    forwarder: str | None = None


@dataclass(frozen=True, slots=True)
class DebugEntry:
    type: int
    timestamp: int
    size: int
    rva: int
    file_offset: int


@dataclass(frozen=True, slots=True)
class CodeView:
    signature: str  # "RSDS" or "NB10"
    guid: uuid.UUID | None  # None for NB10 (which carries a 32-bit signature instead)
    age: int
    pdb_path: str
    nb10_signature: int = 0

    @property
    def pdb_name(self) -> str:
        """Base name only: the path comes from an untrusted file and never becomes a local path."""
        name = self.pdb_path.replace("\\", "/").rsplit("/", 1)[-1]
        name = "".join(ch for ch in name if ch >= " " and ch not in ':*?"<>|').strip()
        return "" if name in (".", "..") else name

    @property
    def guid_hex(self) -> str:
        if self.guid is None:
            return f"{self.nb10_signature:08X}"
        return self.guid.hex.upper()

    @property
    def store_key(self) -> str:
        """Symbol-store directory for the PDB: GUID (no dashes) + age in hex."""
        return f"{self.guid_hex}{self.age:x}"


def _cstr(data: bytes, off: int = 0, limit: int = 4096) -> str:
    end = data.find(b"\0", off, off + limit)
    if end < 0:
        end = min(len(data), off + limit)
    return data[off:end].decode("utf-8", "replace")


class PeImage:
    """One PE image; see ``from_file`` / ``from_memory``."""

    def __init__(self, reader: ImageReader, base: int | None = None):
        self.reader = reader
        self.path = reader.path
        self.absent: list[tuple[int, int]] = []  # (rva, length) not readable from memory
        #: False when part of the optional header or section table was absent from memory
        #: (triage dumps often keep only the first 0x100 bytes of a driver): those fields read as 0.
        self.headers_complete = True
        self._parse_headers()
        self.base = self.image_base if base is None else base

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> PeImage:
        return cls(FileReader(path))

    @classmethod
    def from_memory(cls, read_fn: Callable[[int, int], bytes], base: int, name: str | None = None) -> PeImage:
        """Image loaded at ``base``; MemoryNotPresent only when the DOS/PE/file headers are absent."""
        return cls(MemoryReader(read_fn, base, name), base=base)

    @property
    def in_memory(self) -> bool:
        return isinstance(self.reader, MemoryReader)

    def _bad(self, problem: str) -> BadFileError:
        return BadFileError(self.path, problem)

    # ---- headers ------------------------------------------------------------------------------
    def _hdr(self, off: int, n: int, required: bool = True) -> bytes:
        """Header bytes; from memory, optional parts may be absent (zeros, listed in ``absent``)."""
        if not required and self.in_memory:
            data, holes = self.reader.read_padded(off, n)
            if holes:
                self.headers_complete = False
                self.absent.extend(holes)
            return data
        try:
            data = self.reader.read_header(off, n)
        except BadFileError:
            raise self._bad("truncated PE headers") from None
        return data

    def _parse_headers(self) -> None:
        dos = self._hdr(0, 0x40)
        if dos[:2] != b"MZ":
            raise self._bad("not a PE image (no MZ signature)")
        (lfanew,) = struct.unpack_from("<I", dos, 0x3C)
        if lfanew > 0x10000:
            raise self._bad(f"e_lfanew {lfanew:#x} is implausible")
        nt = self._hdr(lfanew, 24)
        if nt[:4] != b"PE\0\0":
            raise self._bad("not a PE image (no PE signature)")
        (self.machine, nsect, self.timestamp, _, _, opt_size, self.characteristics) = struct.unpack_from(
            "<HHIIIHH", nt, 4
        )
        if nsect > MAX_SECTIONS:
            raise self._bad(f"{nsect} sections is implausible")
        opt = self._hdr(lfanew + 24, opt_size, required=False) if opt_size else b""
        if len(opt) < 2:
            raise self._bad("missing optional header")
        (magic,) = struct.unpack_from("<H", opt, 0)
        if magic == 0x20B:
            self.is_pe32_plus = True
            need = 112
        elif magic == 0x10B:
            self.is_pe32_plus = False
            need = 96
        elif magic == 0 and not self.headers_complete:
            self.is_pe32_plus = self.machine in (MACHINE_AMD64, MACHINE_ARM64)
            need = 112 if self.is_pe32_plus else 96
        else:
            raise self._bad(f"unknown optional header magic {magic:#x}")
        if opt_size < need:
            raise self._bad("optional header is too short")
        self.linker_version = (opt[2], opt[3])
        (self.entry_point,) = struct.unpack_from("<I", opt, 16)
        if self.is_pe32_plus:
            (self.image_base,) = struct.unpack_from("<Q", opt, 24)
            nrva_off, dir_off = 108, 112
        else:
            (self.image_base,) = struct.unpack_from("<I", opt, 28)
            nrva_off, dir_off = 92, 96
        self.section_alignment, self.file_alignment = struct.unpack_from("<II", opt, 32)
        self.os_version = struct.unpack_from("<HH", opt, 40)
        self.image_version = struct.unpack_from("<HH", opt, 44)
        self.subsystem_version = struct.unpack_from("<HH", opt, 48)
        (
            self.size_of_image,
            self.size_of_headers,
            self.checksum,
            self.subsystem,
            self.dll_characteristics,
        ) = struct.unpack_from("<IIIHH", opt, 56)
        (nrva,) = struct.unpack_from("<I", opt, nrva_off)
        nrva = min(nrva, 16, (opt_size - dir_off) // 8)
        self.directories = [struct.unpack_from("<II", opt, dir_off + 8 * i) for i in range(nrva)]
        sect = self._hdr(lfanew + 24 + opt_size, 40 * nsect, required=False)
        self.sections: list[Section] = []
        for i in range(nsect):
            name, vsize, va, rsize, rptr = struct.unpack_from("<8sIIII", sect, 40 * i)
            (chars,) = struct.unpack_from("<I", sect, 40 * i + 36)
            self.sections.append(Section(name.rstrip(b"\0").decode("latin-1"), va, vsize, rptr, rsize, chars))
        if isinstance(self.reader, FileReader):
            self.reader.header_size = min(self.size_of_headers, self.reader.size)
            # As the loader maps them: each section spans its size rounded up to SectionAlignment,
            # zero-filled past its raw data.
            align = self.section_alignment if 0 < self.section_alignment <= 1 << 16 else 0x1000
            self.reader.sections = [
                (
                    s.virtual_address,
                    -(-(s.virtual_size or s.raw_size) // align) * align,
                    s.raw_pointer,
                    min(s.raw_size, s.virtual_size or s.raw_size),
                )
                for s in self.sections
            ]

    @property
    def machine_name(self) -> str:
        return MACHINE_NAMES.get(self.machine, f"{self.machine:#x}")

    def directory(self, index: int) -> tuple[int, int]:
        return self.directories[index] if index < len(self.directories) else (0, 0)

    def section_for(self, rva: int) -> Section | None:
        for s in self.sections:
            if s.contains(rva):
                return s
        return None

    # ---- reading ------------------------------------------------------------------------------
    def read(self, rva: int, n: int) -> bytes:
        """Exactly ``n`` bytes at ``rva``: BadFileError when outside the file, MemoryNotPresent when absent."""
        return self.reader.read(rva, n)

    def read_tolerant(self, rva: int, n: int) -> bytes:
        """Zeros where memory is absent (recorded in ``absent``); file reads stay strict."""
        if not self.in_memory:
            return self.reader.read(rva, n)
        data, holes = self.reader.read_padded(rva, n)
        for h in holes:
            if h not in self.absent:
                self.absent.append(h)
        return data

    def _read_table(self, rva: int, n: int) -> tuple[bytes, list[tuple[int, int]]]:
        """Like read_tolerant, also returning the holes so entries straddling one are dropped."""
        if not self.in_memory:
            return self.reader.read(rva, n), []
        data, holes = self.reader.read_padded(rva, n)
        for h in holes:
            if h not in self.absent:
                self.absent.append(h)
        return data, holes

    def _string(self, rva: int, limit: int = 512) -> str:
        try:
            data = self.read_tolerant(rva, limit)
        except BadFileError:
            data = b""
            for n in (256, 64, 16):
                try:
                    data = self.read(rva, n)
                    break
                except (BadFileError, MemoryNotPresent):
                    continue
        return _cstr(data, 0, limit)

    def symbol_key(self, size_of_image: int | None = None) -> str | None:
        """Symbol-store directory for the image file itself: TimeDateStamp %08X + SizeOfImage %x.

        ``size_of_image`` overrides the header's (e.g. from a dump's module list); None when
        the size is unknown because that part of the headers was absent from memory.
        """
        size = self.size_of_image if size_of_image is None else size_of_image
        if not size and not self.headers_complete:
            return None
        return f"{self.timestamp:08X}{size:x}"

    @property
    def time_date_stamp(self) -> int:
        return self.timestamp

    # ---- exports ------------------------------------------------------------------------------
    @cached_property
    def export_dll_name(self) -> str | None:
        self.exports  # noqa: B018 - parses and fills the name
        return self._export_name

    @cached_property
    def exports(self) -> list[Export]:
        self._export_name = None
        rva, size = self.directory(DIR_EXPORT)
        if not rva or size < 40:
            return []
        try:
            d = self.read_tolerant(rva, 40)
        except BadFileError:
            return []
        name_rva, base, nfuncs, nnames, funcs, names, ords = struct.unpack_from("<7I", d, 12)
        if nfuncs > MAX_EXPORTS or nnames > MAX_EXPORTS:
            raise self._bad(f"export table claims {nfuncs} functions / {nnames} names")
        self._export_name = self._string(name_rva) if name_rva else None
        try:
            fdata = self.read_tolerant(funcs, 4 * nfuncs)
            ndata = self.read_tolerant(names, 4 * nnames)
            odata = self.read_tolerant(ords, 2 * nnames)
        except BadFileError:
            raise self._bad("export table points outside the image") from None
        func_rvas = struct.unpack(f"<{nfuncs}I", fdata)
        by_index: dict[int, str] = {}
        name_rvas = struct.unpack(f"<{nnames}I", ndata)
        ordinals = struct.unpack(f"<{nnames}H", odata)
        for nrva, idx in zip(name_rvas, ordinals, strict=True):
            if nrva and idx < nfuncs:
                by_index.setdefault(idx, self._string(nrva))
        out = []
        for idx, frva in enumerate(func_rvas):
            if not frva:
                continue
            fwd = None
            if rva <= frva < rva + size:
                fwd = self._string(frva)
                frva = 0
            out.append(Export(base + idx, frva, by_index.get(idx), fwd))
        return out

    # ---- debug directory ----------------------------------------------------------------------
    @cached_property
    def debug_entries(self) -> list[DebugEntry]:
        rva, size = self.directory(DIR_DEBUG)
        if not rva or not size:
            return []
        count = min(size // 28, MAX_DEBUG_ENTRIES)
        try:
            data = self.read_tolerant(rva, 28 * count)
        except BadFileError:
            return []
        out = []
        for i in range(count):
            _c, ts, _maj, _min, typ, sz, addr, ptr = struct.unpack_from("<IIHHIIII", data, 28 * i)
            if typ or sz or addr:
                out.append(DebugEntry(typ, ts, sz, addr, ptr))
        return out

    def _debug_data(self, e: DebugEntry, cap: int = 4096) -> bytes | None:
        n = min(e.size, cap)
        try:
            if e.rva:
                return self.read(e.rva, n)
            if isinstance(self.reader, FileReader) and e.file_offset:
                return self.reader.raw(e.file_offset, n)
        except (BadFileError, MemoryNotPresent):
            return None
        return None

    @cached_property
    def codeview(self) -> CodeView | None:
        for e in self.debug_entries:
            if e.type != DEBUG_TYPE_CODEVIEW:
                continue
            data = self._debug_data(e)
            if not data or len(data) < 16:
                continue
            if data[:4] == b"RSDS" and len(data) >= 24:
                guid = uuid.UUID(bytes_le=bytes(data[4:20]))
                (age,) = struct.unpack_from("<I", data, 20)
                return CodeView("RSDS", guid, age, _cstr(data, 24))
            if data[:4] == b"NB10":
                _off, sig, age = struct.unpack_from("<III", data, 4)
                return CodeView("NB10", None, age, _cstr(data, 16), sig)
        return None

    def pdb_key(self) -> tuple[str, str, int] | None:
        """(pdb file name, GUID as 32 upper-case hex digits, age) from the CodeView record."""
        cv = self.codeview
        if cv is None:
            return None
        return cv.pdb_name, cv.guid_hex, cv.age

    @property
    def is_reproducible(self) -> bool:
        return any(e.type == DEBUG_TYPE_REPRO for e in self.debug_entries)

    @cached_property
    def repro_hash(self) -> bytes | None:
        for e in self.debug_entries:
            if e.type == DEBUG_TYPE_REPRO and e.size >= 4:
                data = self._debug_data(e, 256)
                if data:
                    (n,) = struct.unpack_from("<I", data, 0)
                    return bytes(data[4 : 4 + n])
        return None

    # ---- resources ----------------------------------------------------------------------------
    def _leaf_at_language(self) -> tuple[int, int] | None:
        root, size = self.directory(DIR_RESOURCE)
        if not root:
            return None
        off = 0
        for level, want in enumerate((RT_VERSION, None, None)):
            hdr = self.read(root + off, 16)
            nnamed, nid = struct.unpack_from("<HH", hdr, 12)
            n = min(nnamed + nid, 4096)
            ents = self.read(root + off + 16, 8 * n)
            target = None
            for i in range(n):
                name, t = struct.unpack_from("<II", ents, 8 * i)
                if want is None or (not name & 0x80000000 and name == want):
                    target = t
                    break
            if target is None:
                return None
            is_dir = bool(target & 0x80000000)
            off = target & 0x7FFFFFFF
            if off >= size:
                raise self._bad("resource directory entry points outside the resource section")
            if level < 2 and not is_dir:
                return None
            if level == 2 and is_dir:
                return None
        drva, dsize = struct.unpack_from("<II", self.read(root + off, 8), 0)
        return drva, dsize

    @cached_property
    def version_info(self) -> VersionInfo | None:
        try:
            leaf = self._leaf_at_language()
            if leaf is None:
                return None
            drva, dsize = leaf
            data = self.read(drva, min(dsize, MAX_RESOURCE_BYTES))
        except MemoryNotPresent:
            return None
        except (struct.error, BadFileError) as e:
            raise self._bad(f"bad resource directory: {getattr(e, 'problem', e)}") from None
        return parse_version_info(data)

    # ---- .pdata -------------------------------------------------------------------------------
    @cached_property
    def _pdata_table(self):
        """The x64 .pdata as a sorted (n, 3) uint32 array [begin, end, unwind]: one numpy pass."""
        empty = np.zeros((0, 3), dtype=np.uint32)
        if self.machine != MACHINE_AMD64:
            return empty
        rva, size = self.directory(DIR_EXCEPTION)
        if not rva or not size:
            return empty
        size = min(size, MAX_PDATA_BYTES) // 12 * 12
        try:
            data, holes = self._read_table(rva, size)
        except BadFileError:
            raise self._bad("exception directory lies outside the image") from None
        table = np.frombuffer(data, dtype="<u4").reshape(-1, 3)
        keep = table[:, 0] < table[:, 1]
        for start, n in holes:  # entries touching an absent range are left out
            first = max(0, (start - rva) // 12)
            last = min(len(table), (start + n - rva + 11) // 12)
            keep[first:last] = False
        table = table[keep]
        return table[np.argsort(table[:, 0], kind="stable")]

    @cached_property
    def runtime_functions(self) -> list[RuntimeFunction]:
        """x64 RUNTIME_FUNCTIONs sorted by begin (ARM64 images: see ``arm64_functions``)."""
        return [RuntimeFunction(int(b), int(e), int(u)) for b, e, u in self._pdata_table.tolist()]

    def lookup_function(self, rva: int):
        """The .pdata entry covering ``rva`` (x64 RuntimeFunction or arm64.Arm64Function), or None."""
        if self.machine == MACHINE_ARM64:
            funcs = self.arm64_functions
            i = bisect.bisect_right(getattr(self, "_arm_begins", []), rva) - 1
            if i >= 0 and funcs[i].contains(rva):
                return funcs[i]
            return None
        table = self._pdata_table
        if not 0 <= rva < 1 << 32:
            return None
        i = int(np.searchsorted(table[:, 0], rva, side="right")) - 1
        # Entries never overlap in linker output from MSVC; clang's chained fragments do nest
        # inside their parent, so look a few entries back before giving up.
        for j in range(i, max(i - 4, -1), -1):
            b, e, u = (int(v) for v in table[j])
            if b <= rva < e:
                return RuntimeFunction(b, e, u)
        return None

    def unwind_info(self, func: RuntimeFunction | int, follow_chain: bool = True) -> UnwindInfo:
        """Decode the UNWIND_INFO of ``func`` (or at that RVA), following chained entries (bounded)."""
        rva = func.unwind_rva if isinstance(func, RuntimeFunction) else func
        try:
            head = decode_unwind_info(rva, self.read)
            ui = head
            depth = 0
            while follow_chain and ui.chained is not None:
                depth += 1
                if depth > MAX_CHAIN_DEPTH:
                    raise UnwindFormatError(
                        f"unwind chain from RVA {rva:#x} is longer than {MAX_CHAIN_DEPTH}"
                    )
                ui.chained_info = decode_unwind_info(ui.chained.unwind_rva, self.read)
                ui = ui.chained_info
        except UnwindFormatError as e:
            raise self._bad(str(e)) from None
        return head

    @cached_property
    def arm64_functions(self) -> list[arm64.Arm64Function]:
        if self.machine != MACHINE_ARM64:
            return []
        rva, size = self.directory(DIR_EXCEPTION)
        if not rva or not size:
            self._arm_begins = []
            return []
        size = min(size, MAX_PDATA_BYTES) // 8 * 8
        data, holes = self._read_table(rva, size)
        funcs = [f for f in arm64.parse_pdata(data, self) if not _in_holes(holes, rva + 8 * f.index, 8)]
        funcs.sort(key=lambda f: f.begin)
        self._arm_begins = [f.begin for f in funcs]
        return funcs

    def close(self) -> None:
        if isinstance(self.reader, FileReader):
            self.reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return (
            f"PeImage({self.path!r}, {self.machine_name}, base={self.base:#x}, size={self.size_of_image:#x})"
        )


def _in_holes(holes, start: int, n: int) -> bool:
    return any(h < start + n and start < h + hn for h, hn in holes)


__all__ = ["PeImage", "Section", "Export", "DebugEntry", "CodeView", "parse_runtime_functions"]


def image_property(img, name: str):
    """A PeImage property, or None when there is no image or that part of it is damaged or absent."""
    if img is None:
        return None
    try:
        return getattr(img, name)
    except BugcheckError:
        return None
