"""An image file as the loader maps it at a base: the bytes a kernel dump would hold for a module.

A triage dump keeps only scraps of each driver; with the driver's file from a
symbol store, the rest of its mapped image can be rebuilt (headers, then each
section at its VirtualAddress, zero-filled to its virtual size, relocated to
the load address). The dump writer takes these plain bytes when it re-packs a
triage dump as a kernel dump, so that layer never needs the PE reader.

Only part of a mapped image is honestly the file: writable sections hold the
crash's values, not the initial ones; discardable sections (INIT) are freed
after start-up; the import address table is overwritten by the loader.
:func:`constant_ranges` names the rest, and :class:`ImageBytes` serves only
those bytes, so a reader never presents a file's initial value as the crash's.
"""

from __future__ import annotations

import os
import struct
from bisect import bisect_right
from collections.abc import Iterable

from bugcheck.errors import BadFileError, BugcheckError, SymbolError

from .image import PeImage
from .relocs import apply_relocations, relocations

#: no driver comes close; bounds the allocation a corrupt SizeOfImage could ask for
MAX_MAPPED_IMAGE = 512 << 20

IMAGE_SCN_MEM_WRITE = 0x8000_0000
IMAGE_SCN_MEM_DISCARDABLE = 0x0200_0000
#: data directory index of the import address table
DIRECTORY_IAT = 12


def mapped_image(image: PeImage, base: int) -> bytes:
    """``image`` (read from a file) laid out as loaded at ``base``: SizeOfImage bytes.

    Raw data past a section's virtual size is not copied (the loader zero-fills
    the rest of the page), and the optional header's ImageBase holds ``base`` as
    the loader leaves it after relocating.
    """
    where = image.path or "<image>"
    size = image.size_of_image
    if not 0 < size <= MAX_MAPPED_IMAGE:
        raise BadFileError(where, f"SizeOfImage {size:#x} is not a plausible mapped size")
    if image.in_memory:
        raise BadFileError(where, "mapping needs the image file, not an image already in memory")
    reader = image.reader
    buf = bytearray(size)
    head = min(image.size_of_headers or 0x400, size, reader.size)
    buf[:head] = reader.raw(0, head)
    for s in image.sections:
        vsize = s.virtual_size or s.raw_size
        if s.virtual_address + vsize > size:
            raise BadFileError(
                where,
                f"section {s.name!r} ({s.virtual_address:#x}+{vsize:#x}) is outside SizeOfImage {size:#x}",
            )
        n = min(s.raw_size, vsize)
        if n and s.raw_pointer:
            if s.raw_pointer + n > reader.size:
                raise BadFileError(where, f"section {s.name!r} raw data runs past the end of the file")
            buf[s.virtual_address : s.virtual_address + n] = reader.raw(s.raw_pointer, n)
    delta = base - image.image_base
    if delta:
        apply_relocations(buf, delta, relocations(image))
        _set_image_base(buf, image, base)
    return bytes(buf)


def _set_image_base(buf: bytearray, image: PeImage, base: int) -> None:
    if len(buf) < 0x40:
        return  # no room for the DOS header: nothing to update
    (lfanew,) = struct.unpack_from("<I", buf, 0x3C)
    at = lfanew + 24 + (24 if image.is_pe32_plus else 28)
    width = 8 if image.is_pe32_plus else 4
    if at + width <= min(len(buf), image.size_of_headers or len(buf)):
        buf[at : at + width] = (base & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """(start, end) pairs sorted and joined where they touch or overlap."""
    out: list[list[int]] = []
    for lo, hi in sorted(r for r in ranges if r[1] > r[0]):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


#: IMAGE_LOAD_CONFIG_DIRECTORY in declared order: (field, size; 0 = pointer-sized)
_LOAD_CONFIG = (
    ("Size", 4), ("TimeDateStamp", 4), ("MajorVersion", 2), ("MinorVersion", 2),
    ("GlobalFlagsClear", 4), ("GlobalFlagsSet", 4), ("CriticalSectionDefaultTimeout", 4),
    ("DeCommitFreeBlockThreshold", 0), ("DeCommitTotalFreeThreshold", 0), ("LockPrefixTable", 0),
    ("MaximumAllocationSize", 0), ("VirtualMemoryThreshold", 0),
    ("ProcessHeapFlags|ProcessAffinityMask", -1),  # the two swap places between PE32 and PE32+
    ("CSDVersion", 2), ("DependentLoadFlags", 2), ("EditList", 0), ("SecurityCookie", 0),
    ("SEHandlerTable", 0), ("SEHandlerCount", 0), ("GuardCFCheckFunctionPointer", 0),
    ("GuardCFDispatchFunctionPointer", 0), ("GuardCFFunctionTable", 0), ("GuardCFFunctionCount", 0),
    ("GuardFlags", 4), ("CodeIntegrity", 12), ("GuardAddressTakenIatEntryTable", 0),
    ("GuardAddressTakenIatEntryCount", 0), ("GuardLongJumpTargetTable", 0),
    ("GuardLongJumpTargetCount", 0), ("DynamicValueRelocTable", 0), ("CHPEMetadataPointer", 0),
    ("GuardRFFailureRoutine", 0), ("GuardRFFailureRoutineFunctionPointer", 0),
    ("DynamicValueRelocTableOffset", 4), ("DynamicValueRelocTableSection", 2), ("Reserved2", 2),
    ("GuardRFVerifyStackPointerFunctionPointer", 0), ("HotPatchTableOffset", 4), ("Reserved3", 4),
    ("EnclaveConfigurationPointer", 0), ("VolatileMetadataPointer", 0), ("GuardEHContinuationTable", 0),
    ("GuardEHContinuationCount", 0), ("GuardXFGCheckFunctionPointer", 0),
    ("GuardXFGDispatchFunctionPointer", 0), ("GuardXFGTableDispatchFunctionPointer", 0),
    ("CastGuardOsDeterminedFailureMode", 0), ("GuardMemcpyFunctionPointer", 0),
)  # fmt: skip
#: load-config fields naming a pointer-sized slot the loader writes (cookie, guard routines)
_LOADER_SLOTS = (
    "SecurityCookie", "GuardCFCheckFunctionPointer", "GuardCFDispatchFunctionPointer",
    "GuardRFFailureRoutineFunctionPointer", "GuardRFVerifyStackPointerFunctionPointer",
    "GuardXFGCheckFunctionPointer", "GuardXFGDispatchFunctionPointer",
    "GuardXFGTableDispatchFunctionPointer", "CastGuardOsDeterminedFailureMode",
    "GuardMemcpyFunctionPointer",
)  # fmt: skip
DIRECTORY_LOAD_CONFIG = 10
IMAGE_SCN_CNT_CODE = 0x20
IMAGE_SCN_MEM_EXECUTE = 0x2000_0000
#: dynamic value relocation kinds the kernel applies to code, and the bytes each rewrites
#: (import call/jump through the IAT plus its 5-byte nop; CFG-checked indirect call; jmp reg + int3s)
DVRT_IMPORT_CONTROL_TRANSFER = 3
DVRT_INDIRECT_CONTROL_TRANSFER = 4
DVRT_SWITCHABLE_BRANCH = 5
#: no image's dynamic relocations come close
MAX_DVRT_BYTES = 16 << 20


def _load_config(image: PeImage) -> dict[str, int]:
    """The load configuration's fields present in the file (by its own Size), or {}."""
    rva, dir_size = image.directory(DIRECTORY_LOAD_CONFIG)
    if not rva or dir_size < 4:
        return {}
    ptr = 8 if image.is_pe32_plus else 4
    (size,) = struct.unpack("<I", image.read(rva, 4))
    size = min(size, 0x400)
    raw = image.read(rva, size)
    out: dict[str, int] = {}
    at = 0
    for name, width in _LOAD_CONFIG:
        if width == -1:
            pair = [("ProcessAffinityMask", 8), ("ProcessHeapFlags", 4)]
            if not image.is_pe32_plus:
                pair = [("ProcessHeapFlags", 4), ("ProcessAffinityMask", 4)]
            fields = pair
        else:
            fields = [(name, width or ptr)]
        for fname, w in fields:
            if at + w > size:
                return out
            out[fname] = int.from_bytes(raw[at : at + w], "little")
            at += w
    return out


def rewritten_code(image: PeImage) -> list[tuple[int, int]] | None:
    """(start, end) RVAs of code the kernel rewrites at load, from the image's dynamic value
    relocation table, sorted and joined ([] when it has none); None when it cannot be read."""
    try:
        sites = _dvrt_ranges(image, _load_config(image))
    except (BugcheckError, struct.error, ValueError):
        return None
    return None if sites is None else _merge(sites)


def _dvrt_ranges(image: PeImage, config: dict[str, int]) -> list[tuple[int, int]] | None:
    """(start, end) RVAs of code the kernel rewrites at load (the dynamic value relocation table:
    import optimization, retpoline). [] without a table; None when it cannot be read
    completely (then no code byte of the file can be vouched for)."""
    off = config.get("DynamicValueRelocTableOffset", 0)
    sec = config.get("DynamicValueRelocTableSection", 0)
    if not sec:
        return []
    if sec > len(image.sections):
        return None
    at = image.sections[sec - 1].virtual_address + off
    version, size = struct.unpack("<II", image.read(at, 8))
    if version != 1 or size > MAX_DVRT_BYTES:
        return None
    table = image.read(at + 8, size)
    head = "<QI" if image.is_pe32_plus else "<II"
    hsize = struct.calcsize(head)
    out: list[tuple[int, int]] = []
    pos = 0
    while pos + hsize <= size:
        symbol, length = struct.unpack_from(head, table, pos)
        pos += hsize
        body_end = pos + length
        if body_end > size:
            return None
        if symbol not in (
            DVRT_IMPORT_CONTROL_TRANSFER,
            DVRT_INDIRECT_CONTROL_TRANSFER,
            DVRT_SWITCHABLE_BRANCH,
        ):
            return None  # a kind whose rewrites are not known here
        while pos + 8 <= body_end:
            page, block = struct.unpack_from("<II", table, pos)
            if block < 8 or pos + block > body_end:
                return None
            entries = table[pos + 8 : pos + block]
            pos += block
            if symbol == DVRT_IMPORT_CONTROL_TRANSFER:
                for (e,) in struct.iter_unpack("<I", entries[: len(entries) & ~3]):
                    if e:
                        out.append((page + (e & 0xFFF), page + (e & 0xFFF) + 12))
                continue
            for (e,) in struct.iter_unpack("<H", entries[: len(entries) & ~1]):
                if not e:
                    continue
                start = page + (e & 0xFFF)
                if symbol == DVRT_INDIRECT_CONTROL_TRANSFER:
                    out.append((start, start + 6 + (e >> 13 & 1)))  # bit 13: a REX.W prefix
                else:
                    out.append((start, start + 5))
        pos = body_end
    return out


def loader_written(image: PeImage) -> list[tuple[int, int]]:
    """``(start, end)`` RVAs the loader writes outside writable sections: the IAT, the
    load config's cookie and guard-routine slots, and code rewritten per the dynamic
    value relocation table; a table that cannot be read covers every code section."""
    ptr = 8 if image.is_pe32_plus else 4
    out = []
    iat_rva, iat_size = image.directory(DIRECTORY_IAT)
    if iat_rva and iat_size:
        out.append((iat_rva, iat_rva + iat_size))
    try:
        config = _load_config(image)
        code = _dvrt_ranges(image, config)
    except (BugcheckError, struct.error, ValueError):
        config, code = {}, None
    for name in _LOADER_SLOTS:
        va = config.get(name, 0)
        if va and image.image_base <= va < image.image_base + image.size_of_image:
            out.append((va - image.image_base, va - image.image_base + ptr))
    if code is None:
        code = [
            (s.virtual_address, s.virtual_address + (s.virtual_size or s.raw_size))
            for s in image.sections
            if s.characteristics & (IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE)
        ]
    return _merge(out + code)


def constant_ranges(image: PeImage) -> list[tuple[int, int]]:
    """``(rva, size)`` of the mapped bytes the loader leaves as the (relocated) file has them.

    The headers and every section that is neither writable nor discardable,
    minus what the loader writes there (:func:`loader_written`: the import
    address table, data directory 12; the cookie and guard-routine slots; code
    rewritten by dynamic relocations). Sorted, merged, clipped to SizeOfImage.
    """
    size = image.size_of_image
    keep = [(0, min(image.size_of_headers or 0x400, size))]
    for s in image.sections:
        if s.characteristics & (IMAGE_SCN_MEM_WRITE | IMAGE_SCN_MEM_DISCARDABLE):
            continue
        vsize = s.virtual_size or s.raw_size
        keep.append((s.virtual_address, min(s.virtual_address + vsize, size)))
    cuts = loader_written(image)
    out = []
    for lo, hi in _merge(keep):
        i = max(bisect_right(cuts, (lo, lo)) - 1, 0)
        for c_lo, c_hi in cuts[i:]:
            if c_lo >= hi:
                break
            if c_hi <= lo:
                continue
            if lo < c_lo:
                out.append((lo, c_lo - lo))
            lo = max(lo, c_hi)
        if lo < hi:
            out.append((lo, hi - lo))
    return out


class ImageBytes:
    """The constant bytes of one module's image as loaded at ``base`` (see :func:`constant_ranges`).

    ``ranges`` are absolute ``(va, size)`` pairs, sorted and disjoint; every
    other byte of ``[base, base+size)`` is unknown from the file.
    """

    __slots__ = ("base", "size", "ranges", "_data", "_starts")

    def __init__(self, base: int, data: bytes, ranges: list[tuple[int, int]]):
        self.base = base
        self.size = len(data)
        self._data = data
        self.ranges = [(base + rva, n) for rva, n in ranges]
        self._starts = [va for va, _ in self.ranges]

    def pieces(self, va: int, n: int) -> list[tuple[int, bytes]]:
        """``(va, bytes)`` of the constant bytes within ``[va, va+n)``, in address order."""
        out = []
        end = va + n
        i = max(bisect_right(self._starts, va) - 1, 0)
        for start, size in self.ranges[i:]:
            if start >= end:
                break
            lo, hi = max(start, va), min(start + size, end)
            if lo < hi:
                out.append((lo, self._data[lo - self.base : hi - self.base]))
        return out

    def read(self, va: int, n: int) -> bytes | None:
        """``n`` bytes at ``va`` when all are constant, else None."""
        got = self.pieces(va, n)
        if len(got) == 1 and got[0][0] == va and len(got[0][1]) == n:
            return got[0][1]
        return None

    def placed(self) -> list[tuple[int, bytes]]:
        """Every constant range as ``(va, bytes)``: what a dump writer may place."""
        return [(va, self._data[va - self.base : va - self.base + n]) for va, n in self.ranges]


def image_bytes(image: PeImage, base: int) -> ImageBytes:
    """``image`` loaded at ``base``, restricted to its constant ranges (BadFileError if malformed)."""
    return ImageBytes(base, mapped_image(image, base), constant_ranges(image))


def find_module_image(module, store, image_path: str | None = None) -> ImageBytes | None:
    """The constant bytes of ``module`` (name, base, size, timestamp) from its file, or None.

    The file comes from an ``image_path`` folder (``;``-separated) or ``store``
    by (name, TimeDateStamp, SizeOfImage); its own header must agree on both,
    else it is another build and is not used.
    """
    name = getattr(module, "image_name", "") or getattr(module, "name", "")
    base, size, ts = getattr(module, "base", 0), getattr(module, "size", 0), getattr(module, "timestamp", 0)
    if not (name and base and ts) or not 0 < size <= MAX_MAPPED_IMAGE:
        return None
    from bugcheck.symbols.store import safe_name

    try:
        # names come from the dump: a plain file name or nothing (no drive, stream or '..')
        safe = safe_name(name.replace("\\", "/").rsplit("/", 1)[-1])
    except SymbolError:
        return None
    paths = []
    for folder in (image_path or "").split(";"):
        if folder.strip() and os.path.isfile(os.path.join(folder.strip(), safe)):
            paths.append(os.path.join(folder.strip(), safe))
    for path in [*paths, None]:
        try:
            if path is None:
                if store is None:
                    return None
                path = store.find_image(safe, ts, size)
                if path is None:
                    return None
            image = PeImage.from_file(path)
        except (BugcheckError, OSError, ValueError):
            continue
        try:
            if image.timestamp == ts and image.size_of_image == size:
                return image_bytes(image, base)
        except (BugcheckError, struct.error, ValueError, IndexError):
            pass  # a malformed image file: the module's holes stay holes
        finally:
            image.close()
    return None


def module_images(modules: Iterable, store, *, limit: int = 1 << 30) -> dict[int, ImageBytes]:
    """``{base: ImageBytes}`` for every module whose image file ``store`` has.

    A module is matched by (file name, TimeDateStamp, SizeOfImage) and the file's
    own header must agree (:func:`find_module_image`); modules without a matching
    file, or whose file is malformed, are left out (compare the keys with the
    bases to see which were found). ``limit`` caps the total SizeOfImage loaded.
    """
    out: dict[int, ImageBytes] = {}
    total = 0
    for m in modules:
        base, size = getattr(m, "base", 0), getattr(m, "size", 0)
        if not base or base in out or total + size > limit:
            continue
        found = find_module_image(m, store)
        if found is not None:
            out[base] = found
            total += size
    return out
