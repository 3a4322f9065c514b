"""Seeded, replayable damage for crash dumps, PDBs and PE images.

A *recipe* is a tuple of small operations, each a plain tuple, so a failing case
can be printed, pasted into a bug report and replayed with :func:`apply`:

- ``("cut", n)``             keep the first ``n`` bytes
- ``("u16"|"u32"|"u64", off, value)``  overwrite a little-endian word (skipped past EOF)
- ``("xor", off, mask)``     flip bits of one byte
- ``("junk", off, n, seed)`` overwrite ``n`` bytes with seeded random bytes
- ``("swz", off, n, seed, va)`` rewrite some kernel-pointer-looking qwords in ``[off, off+n)``
  (``va`` is the virtual address of ``off``, 0 when unknown) to point at themselves, at a
  neighbour, nowhere, or off the canonical range: looping LIST_ENTRYs and wild pointers

The generators aim at the structures a reader trusts: the dump header, the
TRIAGE_DUMP header and the tables it points at (data blocks, driver list,
string pool), run lists and bitmap headers of full dumps, the CONTEXT record,
the MSF superblock and stream directory of a PDB, and the PE headers and data
directories of an image. Nothing here writes outside the caller's files.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

Recipe = tuple

#: values that break naive readers: zero, all ones, sign bits, "just past the end"
NASTY32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0xFFFFFFFF)
NASTY64 = (0, 1, 0x7FFF_FFFF_FFFF_FFFF, 0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_F000, 0xFFFF_FFFF_FFFF_FFFF)
_WIDTH = {"u16": 2, "u32": 4, "u64": 8}


def apply(data: bytes, recipe: Recipe) -> bytes:
    """The bytes of ``data`` after every operation of ``recipe``, in order."""
    buf = bytearray(data)
    for op in recipe:
        kind = op[0]
        if kind == "cut":
            del buf[op[1] :]
        elif kind in _WIDTH:
            _, off, value = op
            n = _WIDTH[kind]
            if 0 <= off and off + n <= len(buf):
                buf[off : off + n] = (value & ((1 << 8 * n) - 1)).to_bytes(n, "little")
        elif kind == "xor":
            _, off, mask = op
            if 0 <= off < len(buf):
                buf[off] ^= mask & 0xFF
        elif kind == "junk":
            _, off, n, seed = op
            if 0 <= off < len(buf):
                n = min(n, len(buf) - off)
                buf[off : off + n] = random.Random(seed).randbytes(n)
        elif kind == "swz":
            _, off, n, seed, va = op
            _swizzle(buf, off, n, random.Random(seed), va)
        else:
            raise ValueError(f"unknown mutation {op!r}")
    return bytes(buf)


def _swizzle(buf: bytearray, off: int, n: int, rng: random.Random, va: int) -> None:
    end = min(len(buf), off + n) - 8
    pos = off + (-off % 8)
    while pos <= end:
        v = int.from_bytes(buf[pos : pos + 8], "little")
        if v >> 47 == 0x1FFFF and rng.random() < 0.35:
            here = va + (pos - off) if va else 0
            choices = [0, 0xFFFF_FFFF_FFFF_FFFF, v ^ (1 << 50), v + 1, v - 0x10, v + 0x1000]
            if here:
                choices += [here, here, here - 8, here + 16]
            new = rng.choice(choices)
            buf[pos : pos + 8] = (new & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "little")
        pos += 8


def describe(recipe: Recipe) -> str:
    """The recipe as a Python literal with hex numbers (for reports)."""
    parts = []
    for op in recipe:
        args = ", ".join(hex(a) if isinstance(a, int) and a > 9 else repr(a) for a in op[1:])
        parts.append(f"({op[0]!r}, {args})")
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


# --------------------------------------------------------------------------------------------
# crash dumps


@dataclass
class DumpLayout:
    """Where the interesting structures of a dump file are (file offsets)."""

    size: int
    wide: bool
    header_size: int
    dump_type: int
    triage: dict[str, int] | None = None
    #: (field name, file offset, width) of the TRIAGE_DUMP words
    triage_fields: tuple = ()
    blocks: list[tuple[int, int, int, int]] | None = None  # (table entry offset, address, offset, size)
    drivers: list[int] | None = None  # driver list entry offsets


#: TRIAGE_DUMP64 words after the dump header: (name, offset from its start, width)
TRIAGE64 = (
    ("ServicePackBuild", 0x00, 4), ("SizeOfDump", 0x04, 4), ("ValidOffset", 0x08, 4),
    ("ContextOffset", 0x0C, 4), ("ExceptionOffset", 0x10, 4), ("MmOffset", 0x14, 4),
    ("UnloadedDriversOffset", 0x18, 4), ("PrcbOffset", 0x1C, 4), ("ProcessOffset", 0x20, 4),
    ("ThreadOffset", 0x24, 4), ("CallStackOffset", 0x28, 4), ("SizeOfCallStack", 0x2C, 4),
    ("DriverListOffset", 0x30, 4), ("DriverCount", 0x34, 4), ("StringPoolOffset", 0x38, 4),
    ("StringPoolSize", 0x3C, 4), ("BrokenDriverOffset", 0x40, 4), ("TriageOptions", 0x44, 4),
    ("TopOfStack", 0x48, 8), ("DataPageAddress", 0x60, 8), ("DataPageOffset", 0x68, 4),
    ("DataPageSize", 0x6C, 4), ("DebuggerDataOffset", 0x70, 4), ("DebuggerDataSize", 0x74, 4),
    ("DataBlocksOffset", 0x78, 4), ("DataBlocksCount", 0x7C, 4),
)  # fmt: skip

#: DUMP_HEADER64 fields worth breaking: (name, offset, width)
HEADER64 = (
    ("MajorVersion", 0x08, 4), ("MinorVersion", 0x0C, 4), ("DirectoryTableBase", 0x10, 8),
    ("PfnDataBase", 0x18, 8), ("PsLoadedModuleList", 0x20, 8), ("PsActiveProcessHead", 0x28, 8),
    ("MachineImageType", 0x30, 4), ("NumberProcessors", 0x34, 4), ("KdDebuggerDataBlock", 0x80, 8),
    ("NumberOfRuns", 0x88, 4), ("NumberOfPages", 0x90, 8), ("Run0.BasePage", 0x98, 8),
    ("Run0.PageCount", 0xA0, 8), ("Run1.BasePage", 0xA8, 8), ("Run1.PageCount", 0xB0, 8),
    ("DumpType", 0xF98, 4), ("RequiredDumpSpace", 0xFA0, 8), ("MiniDumpFields", 0x1038, 4),
    ("ExceptionCode", 0xF00, 4), ("ExceptionAddress", 0xF10, 8), ("NumberParameters", 0xF18, 4),
)  # fmt: skip

#: x64 CONTEXT registers inside the header copy at 0x348
CONTEXT64 = (
    ("Rsp", 0x348 + 0x98),
    ("Rbp", 0x348 + 0xA0),
    ("Rip", 0x348 + 0xF8),
    ("ContextFlags", 0x348 + 0x30),
)

#: the bitmap dump header after DUMP_HEADER64 (SDMP/FDMP)
BITMAP64 = (("FirstPage", 0x2020, 8), ("TotalPresentPages", 0x2028, 8), ("Pages", 0x2030, 8))


def dump_layout(data: bytes) -> DumpLayout:
    """Locate the header, the triage tables or the bitmap header of a 64-bit dump."""
    wide = data[4:8] == b"DU64"
    hsize = 0x2000 if wide else 0x1000
    dump_type = struct.unpack_from("<I", data, 0xF98 if wide else 0xF88)[0] if len(data) >= 0x1000 else 0
    lay = DumpLayout(len(data), wide, hsize, dump_type)
    if wide and dump_type == 4 and len(data) >= hsize + 0x80:
        lay.triage_fields = tuple((n, hsize + o, w) for n, o, w in TRIAGE64)
        lay.triage = {n: int.from_bytes(data[o : o + w], "little") for n, o, w in lay.triage_fields}
        t = lay.triage
        lay.blocks = []
        for i in range(min(t["DataBlocksCount"], 5000)):
            e = t["DataBlocksOffset"] + 16 * i
            if e + 16 > len(data):
                break
            lay.blocks.append((e, *struct.unpack_from("<QII", data, e)))
        lay.drivers = [
            t["DriverListOffset"] + 0x90 * i
            for i in range(min(t["DriverCount"], 2000))
            if t["DriverListOffset"] + 0x90 * (i + 1) <= len(data)
        ]
    return lay


def _cuts(lay: DumpLayout, rng: random.Random) -> list[int]:
    size = lay.size
    cuts = {0, 1, 4, 7, 8, 0x20, 0x88, 0x348, 0x400, 0xF98, 0x1000, 0x1FFF, lay.header_size}
    cuts |= {lay.header_size + d for d in (4, 0x40, 0x7F, 0x80, 0x100, 0x1000)}
    if lay.triage:
        t = lay.triage
        for name in ("ContextOffset", "PrcbOffset", "ProcessOffset", "ThreadOffset", "CallStackOffset",
                     "DriverListOffset", "StringPoolOffset", "UnloadedDriversOffset", "MmOffset",
                     "DebuggerDataOffset", "DataBlocksOffset", "ValidOffset"):  # fmt: skip
            o = t[name]
            if 0 < o < size:
                cuts |= {o - 1, o, o + 4, o + 17}
        if t["StringPoolOffset"]:
            cuts.add(t["StringPoolOffset"] + t["StringPoolSize"] // 2)
        if t["DataBlocksOffset"] and t["DataBlocksCount"]:
            cuts.add(t["DataBlocksOffset"] + 8 * t["DataBlocksCount"])
            cuts.add(t["DataBlocksOffset"] + 16 * t["DataBlocksCount"] - 3)
        for _e, _addr, off, n in (lay.blocks or [])[:: max(1, len(lay.blocks or []) // 6)]:
            cuts.add(off + n // 2)
    else:
        cuts |= {0x2038, 0x2040, 0x3000, size // 3, size // 2}
    cuts |= {rng.randrange(size) for _ in range(6)} if size else set()
    cuts |= {size - 1, size - 0x1000}
    return sorted(c for c in cuts if 0 <= c < size)


def _word_ops(fields, rng: random.Random, size: int, original: dict[str, int] | None = None) -> list[tuple]:
    """One overwrite of each field with a nasty value (or one relative to the file size)."""
    ops = []
    for name, off, width in fields:
        if off + width > size:
            continue
        kind = {2: "u16", 4: "u32", 8: "u64"}[width]
        pool = list(NASTY32 if width == 4 else NASTY64) + [size, size - 1, size + 0x1000, off]
        if original and original.get(name):
            v = original[name]
            pool += [v + 1, v - 1, v + 0x10, v * 2]
        ops.append((kind, off, rng.choice(pool)))
    return ops


def _pointer_regions(data: bytes, lay: DumpLayout, rng: random.Random) -> list[tuple[int, int, int]]:
    """(file offset, size, virtual address or 0) of memory holding kernel structures."""
    size = len(data)
    if not lay.triage:
        return [(lay.header_size, size - lay.header_size, 0)]
    t = lay.triage
    regions = []
    if t["CallStackOffset"] and t["SizeOfCallStack"]:
        regions.append((t["CallStackOffset"], t["SizeOfCallStack"], t["TopOfStack"]))
    if t["PrcbOffset"] and t["PrcbOffset"] + 16 <= size:
        regions.append((t["PrcbOffset"], 0x1000, 0))
        if t["ThreadOffset"]:
            thread_va = struct.unpack_from("<Q", data, t["PrcbOffset"] + 8)[0]
            regions.append((t["ThreadOffset"], 0x800, thread_va))
    if t["ProcessOffset"]:
        regions.append((t["ProcessOffset"], 0x800, 0))
    for _e, addr, off, n in rng.sample(lay.blocks or [], min(6, len(lay.blocks or []))):
        regions.append((off, n, addr))
    return regions or [(lay.header_size, size - lay.header_size, 0)]


def dump_recipes(data: bytes, seed: int, count: int) -> list[Recipe]:
    """``count`` varied recipes for ``data`` (a 64-bit dump), the same for the same seed and bytes."""
    rng = random.Random(seed)
    lay = dump_layout(data)
    size = len(data)
    singles: list[Recipe] = [(("cut", c),) for c in _cuts(lay, rng)]
    words = _word_ops(HEADER64, rng, size)
    words += [("u64", off, rng.choice(NASTY64 + (0x1234,))) for _n, off in CONTEXT64[:3] if off + 8 <= size]
    if lay.triage:
        words += _word_ops(lay.triage_fields, rng, size, lay.triage)
        for e, addr, _off, n in rng.sample(lay.blocks, min(8, len(lay.blocks))):
            words += [
                ("u64", e, rng.choice([0, 0xFFFF_FFFF_FFFF_FFF0, addr + 1, addr ^ (1 << 47)])),
                ("u32", e + 8, rng.choice([0, size, size - 1, 0xFFFFFFFF, e])),
                ("u32", e + 12, rng.choice([0, 0xFFFFFFFF, size, n * 16 + 1])),
            ]
        for e in rng.sample(lay.drivers, min(6, len(lay.drivers))):
            words += [
                ("u32", e, rng.choice([0, size, size - 2, 0xFFFFFFFF, e])),  # name offset
                ("u64", e + 0x38, rng.choice([0, 0xFFFF_FFFF_FFFF_F000, 1])),  # DllBase
                ("u32", e + 0x48, rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF])),  # SizeOfImage
            ]
            name_off = struct.unpack_from("<I", data, e)[0]
            if 0 < name_off < size - 4:
                words.append(("u32", name_off, rng.choice([0, 0xFFFFFFFF, 0x7FFFFFFF, 5000])))
    else:
        words += _word_ops(BITMAP64, rng, size)
    singles += [(w,) for w in words]
    hot = [0x80, 0x348, 0xF00, lay.header_size]
    if lay.triage:
        t = lay.triage
        hot += [t[k] for k in ("PrcbOffset", "ThreadOffset", "ProcessOffset", "DriverListOffset",
                               "StringPoolOffset", "DataBlocksOffset", "DebuggerDataOffset",
                               "UnloadedDriversOffset") if 0 < t[k] < size]  # fmt: skip
    hot = [h for h in hot if h < size]
    for _ in range(max(4, count // 5)):  # wild and self-referencing pointers inside captured memory
        off, n, va = rng.choice(_pointer_regions(data, lay, rng))
        singles.append((("swz", off, n, rng.randrange(1 << 30), va),))
    for _ in range(max(4, count // 6)):
        at = rng.choice(hot) + rng.randrange(0x200) if rng.random() < 0.7 else rng.randrange(size)
        singles.append((("junk", at, rng.choice([8, 64, 512, 4096]), rng.randrange(1 << 30)),))
    for _ in range(max(4, count // 8)):
        singles.append(tuple(("xor", rng.randrange(size), 1 << rng.randrange(8)) for _ in range(16)))
    rng.shuffle(singles)
    out = singles[: max(1, count * 2 // 3)]
    while len(out) < count:  # combinations: several faults at once, sometimes truncated too
        combo = [op for r in rng.sample(singles, rng.randint(2, 4)) for op in r if op[0] != "cut"]
        if rng.random() < 0.3:
            combo.append(("cut", rng.randrange(lay.header_size, size)))
        out.append(tuple(combo))
    return out[:count]


# --------------------------------------------------------------------------------------------
# PDBs (MSF 7.0)


def pdb_recipes(data: bytes, seed: int, count: int) -> list[Recipe]:
    """Damage for an MSF 7.0 PDB: superblock, stream directory, stream data, truncation."""
    rng = random.Random(seed)
    size = len(data)
    bs, _fpm, nblocks, dir_bytes, _u, map_addr = struct.unpack_from("<6I", data, 32)
    dir_blocks = []
    if bs and map_addr * bs + 4 <= size:
        n = -(-dir_bytes // bs)
        dir_blocks = [struct.unpack_from("<I", data, map_addr * bs + 4 * i)[0] for i in range(n)]
    dir0 = dir_blocks[0] * bs if dir_blocks else bs * 3
    nstreams = struct.unpack_from("<I", data, dir0)[0] if dir0 + 4 <= size else 0
    singles: list[Recipe] = [
        (("cut", c),)
        for c in sorted(
            {0, 31, 32, 56, bs - 1, bs, 2 * bs, 3 * bs + 7, dir0, dir0 + 4 * min(nstreams, 9)}
            | {rng.randrange(size) for _ in range(6)}
            | {size - 1, size - bs}
        )  # fmt: skip
        if 0 <= c < size
    ]
    for off in (32, 36, 40, 44, 52, map_addr * bs):  # BlockSize .. BlockMapAddr, directory block list
        singles.append((("u32", off, rng.choice(NASTY32 + (size // bs + 1, 512, 0x1000))),))
    for i in range(min(nstreams, 12)):  # stream sizes: huge, -1 (nil), bigger than the file
        singles.append((("u32", dir0 + 4 + 4 * i, rng.choice([0xFFFFFFFF, 0x7FFFFFFF, size * 2, 1])),))
    for _ in range(max(6, count // 4)):  # block numbers inside the directory
        off = dir0 + 4 + 4 * nstreams + 4 * rng.randrange(64)
        singles.append((("u32", off, rng.choice([0, 1, nblocks, nblocks + 1, 0xFFFFFFFF, map_addr])),))
    for off, width in _stream_header_words(data, bs, dir0, nstreams):  # TPI and DBI header fields
        pool = NASTY32 + (size, 0x1000, 0xFFFF) if width == 4 else (0, 0xFFFF, 0xFFFE, nstreams, nstreams + 5)
        singles.append((("u32" if width == 4 else "u16", off, rng.choice(pool)),))
    for _ in range(max(6, count // 4)):  # garbage in stream data (DBI, TPI, symbol records)
        singles.append(
            (("junk", rng.randrange(bs * 4, size), rng.choice([16, 256, bs]), rng.randrange(1 << 30)),)
        )
    for _ in range(max(3, count // 8)):
        singles.append(tuple(("xor", rng.randrange(bs * 3, size), 1 << rng.randrange(8)) for _ in range(32)))
    rng.shuffle(singles)
    out = singles[: max(1, count * 3 // 4)]
    while len(out) < count:
        out.append(tuple(op for r in rng.sample(singles, 3) for op in r if op[0] != "cut"))
    return out[:count]


#: (offset, width) of TPI header words (TypeIndexBegin/End, TypeRecordBytes, hash stream and sizes)
_TPI_WORDS = ((8, 4), (12, 4), (16, 4), (20, 2), (24, 4), (28, 4), (32, 4), (36, 4), (40, 4), (44, 4))
#: DBI header: stream indices (global, public, symbol records) and the substream sizes
_DBI_WORDS = ((12, 2), (16, 2), (20, 2), (24, 4), (28, 4), (32, 4), (36, 4), (40, 4), (48, 4), (52, 4))


def _stream_header_words(data: bytes, bs: int, dir0: int, nstreams: int) -> list[tuple[int, int]]:
    """File offsets of the TPI (stream 2) and DBI (stream 3) header words, from the MSF directory."""
    if nstreams < 4 or not bs or dir0 + 4 + 4 * nstreams > len(data):
        return []
    sizes = struct.unpack_from(f"<{nstreams}I", data, dir0 + 4)
    at = dir0 + 4 + 4 * nstreams  # block lists follow, stream by stream (assumes one directory block run)
    out = []
    for i, n in enumerate(sizes[:4]):
        blocks = 0 if n == 0xFFFFFFFF else -(-n // bs)
        if i in (2, 3) and blocks and at + 4 <= len(data):
            first = struct.unpack_from("<I", data, at)[0] * bs
            for off, width in _TPI_WORDS if i == 2 else _DBI_WORDS:
                if first + off + width <= len(data):
                    out.append((first + off, width))
        at += 4 * blocks
    return out


# --------------------------------------------------------------------------------------------
# PE images


def pe_recipes(data: bytes, seed: int, count: int) -> list[Recipe]:
    """Damage for a PE32/PE32+ image: DOS/COFF/optional headers, data directories, sections."""
    rng = random.Random(seed)
    size = len(data)
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    coff = lfanew + 4
    nsect, opt_size = (
        struct.unpack_from("<H", data, coff + 2)[0],
        struct.unpack_from("<H", data, coff + 16)[0],
    )
    opt = coff + 20
    magic = struct.unpack_from("<H", data, opt)[0]
    dirs = opt + (0x70 if magic == 0x20B else 0x60)
    sects = opt + opt_size
    fields = [
        ("e_lfanew", 0x3C, 4), ("NumberOfSections", coff + 2, 2), ("TimeDateStamp", coff + 4, 4),
        ("SizeOfOptionalHeader", coff + 16, 2), ("Magic", opt, 2), ("SizeOfImage", opt + 0x38, 4),
        ("SizeOfHeaders", opt + 0x3C, 4), ("NumberOfRvaAndSizes", dirs - 4, 4),
    ]  # fmt: skip
    for i in (0, 3, 6):  # export, exception (.pdata), debug directories
        fields += [(f"Dir{i}.RVA", dirs + 8 * i, 4), (f"Dir{i}.Size", dirs + 8 * i + 4, 4)]
    for s in range(min(nsect, 6)):
        at = sects + 40 * s
        fields += [(f"S{s}.VirtualSize", at + 8, 4), (f"S{s}.VirtualAddress", at + 12, 4),
                   (f"S{s}.SizeOfRawData", at + 16, 4), (f"S{s}.PointerToRawData", at + 20, 4)]  # fmt: skip
    singles: list[Recipe] = []
    for name, off, width in fields:
        kind = {2: "u16", 4: "u32"}[width]
        pool = [0, 0xFFFF, 0xFFFFFFFF, size, size + 0x1000, 0x7FFFFFFF] if width == 4 else [0, 0xFFFF, 1, 96]
        singles.append(((kind, off, rng.choice(pool)),))
        del name
    cuts = {0, 1, 0x3C, lfanew, coff + 10, opt + 0x40, sects, sects + 40 * nsect, 0x400, size // 2, size - 1}
    singles += [(("cut", c),) for c in sorted(cuts) if 0 <= c < size]
    for _ in range(max(4, count // 4)):  # garbage in .pdata/.rdata/.text
        singles.append(
            (("junk", rng.randrange(0x400, size), rng.choice([16, 256, 4096]), rng.randrange(1 << 30)),)
        )
    rng.shuffle(singles)
    out = singles[: max(1, count * 3 // 4)]
    while len(out) < count:
        out.append(tuple(op for r in rng.sample(singles, 3) for op in r if op[0] != "cut"))
    return out[:count]


# --------------------------------------------------------------------------------------------
# page tables of full and bitmap dumps


def page_table_pages(path) -> list[int]:
    """File offsets of the x64 paging-structure pages of a (clean) full or bitmap dump, top level first.

    Uses the reader under test only to map page frames to file offsets, then
    follows present, non-large entries down three levels from the DTB.
    """
    import bugcheck

    d = bugcheck.open(path)
    try:
        phys = d.physical
        if phys is None or d.machine != "x64":
            return []
        data = d._buf
        out: list[int] = []
        level = [d.header.directory_table_base >> 12]
        for depth in range(3):
            nxt = []
            for pfn in level:
                off = phys.page_offset(pfn)
                if off is None or off in out:
                    continue
                out.append(off)
                for i in range(512):
                    e = struct.unpack_from("<Q", data, off + 8 * i)[0]
                    if e & 1 and not (depth and e & 0x80):
                        nxt.append((e >> 12) & 0xFF_FFFF_FFFF)
            level = nxt[:64]
        return out
    finally:
        d.close()


def paging_recipes(data: bytes, tables: list[int], seed: int, count: int) -> list[Recipe]:
    """Damaged page-table entries: self-maps, loops to the top level, wild frames, large pages, junk."""
    rng = random.Random(seed)
    if not tables:
        return []
    top_pfn_entry = None
    out: list[Recipe] = []
    for _ in range(count):
        ops = []
        for _k in range(rng.randint(1, 4)):
            page = rng.choice(tables)
            present = [i for i in range(512) if struct.unpack_from("<Q", data, page + 8 * i)[0] & 1] or list(
                range(512)
            )
            i = rng.choice(present)
            old = struct.unpack_from("<Q", data, page + 8 * i)[0]
            top_pfn_entry = struct.unpack_from("<Q", data, tables[0] + 8 * present[0])[0]
            choices = [
                (old & ~0xFF_FFFF_FFFF_F000)
                | (struct.unpack_from("<Q", data, tables[0])[0] & 0xFF_FFFF_FFFF_F000),
                old | 0x80,  # a large page where a table was
                old ^ (1 << 39),  # a frame far beyond RAM
                0xFFFF_FFFF_FFFF_FFFF,
                old & ~1,
                top_pfn_entry,  # an entry pointing back at a table higher up
                (old & 0xFFF) | 0x000F_FFFF_FFFF_F000,
            ]
            ops.append(("u64", page + 8 * i, rng.choice(choices)))
        if rng.random() < 0.2:
            ops.append(("junk", rng.choice(tables), 4096, rng.randrange(1 << 30)))
        out.append(tuple(ops))
    return out
