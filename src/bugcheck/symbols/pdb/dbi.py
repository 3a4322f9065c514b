"""The DBI stream (stream 3): modules, section data, and where the other streams are.

Its header carries the age the symbol server uses (not the info stream's age)
and the numbers of the global, public and symbol-record streams. The optional
debug header lists streams with the image's section headers (for
segment:offset -> RVA), OMAP tables and x86 frame data.
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

from .msf import Msf

DBI_HEADER = struct.Struct("<iIIHHHHHHiiiiiIiiHHI")
SC_V60 = 0xEFFE0000 + 19970605
SC_V2 = 0xEFFE0000 + 20140516
NO_STREAM = 0xFFFF

MACHINES = {0x14C: "x86", 0x8664: "x64", 0xAA64: "arm64", 0x1C4: "arm", 0x200: "ia64"}

# optional debug header slots
DBG_FPO, DBG_EXCEPTION, DBG_FIXUP, DBG_OMAP_TO_SRC, DBG_OMAP_FROM_SRC = 0, 1, 2, 3, 4
DBG_SECTION_HDR, DBG_TOKEN_RID, DBG_XDATA, DBG_PDATA, DBG_NEW_FPO, DBG_SECTION_HDR_ORIG = range(5, 11)


@dataclass
class SectionContribution:
    section: int
    offset: int
    size: int
    characteristics: int
    module: int


@dataclass
class ModuleInfo:
    index: int
    name: str
    obj_name: str
    sym_stream: int
    sym_bytes: int
    c11_bytes: int
    c13_bytes: int
    contribution: SectionContribution


@dataclass
class SectionHeader:
    name: str
    virtual_size: int
    virtual_address: int
    characteristics: int


@dataclass
class SectionMapEntry:
    flags: int
    frame: int
    offset: int
    length: int


@dataclass
class DbiHeader:
    age: int = 0
    global_stream: int = NO_STREAM
    public_stream: int = NO_STREAM
    symrec_stream: int = NO_STREAM
    build_number: int = 0
    machine_code: int = 0
    flags: int = 0
    version: int = 0


@dataclass
class Dbi:
    header: DbiHeader
    modules: list[ModuleInfo] = field(default_factory=list)
    contributions: list[SectionContribution] = field(default_factory=list)
    section_map: list[SectionMapEntry] = field(default_factory=list)
    debug_streams: list[int] = field(default_factory=list)

    def debug_stream(self, slot: int) -> int:
        if slot < len(self.debug_streams) and self.debug_streams[slot] != NO_STREAM:
            return self.debug_streams[slot]
        return NO_STREAM

    @property
    def machine(self) -> str:
        return MACHINES.get(self.header.machine_code, f"{self.header.machine_code:#x}")


def _cstr(data: bytes, pos: int, end: int) -> tuple[str, int]:
    z = data.find(b"\0", pos, end)
    if z < 0:
        raise IndexError("unterminated string")
    return data[pos:z].decode("utf-8", "replace"), z + 1


def parse_dbi(msf: Msf) -> Dbi | None:
    """None when the PDB has no DBI stream (a types-only PDB)."""
    if not msf.has_stream(3) or msf.stream_size(3) == 0:
        return None
    data = msf.stream(3)
    if len(data) < DBI_HEADER.size:
        raise msf.bad("DBI stream is truncated")
    try:
        return _parse(msf, data)
    except (struct.error, IndexError, ValueError):
        raise msf.bad("DBI stream is corrupt") from None


def _parse(msf: Msf, data: bytes) -> Dbi:
    (
        sig, ver, age, gsi, build, psi, _dllver, symrec, _rbld, modi_size, sc_size, smap_size,
        src_size, tsm_size, _mfc, dbg_size, ec_size, flags, machine, _pad,
    ) = DBI_HEADER.unpack_from(data, 0)  # fmt: skip
    if sig != -1:
        raise msf.bad("DBI stream has an old (pre-VC4.1) header that is not supported")
    hdr = DbiHeader(age, gsi, psi, symrec, build, machine, flags, ver)
    sizes = [modi_size, sc_size, smap_size, src_size, tsm_size, ec_size, dbg_size]
    if any(s < 0 for s in sizes) or DBI_HEADER.size + sum(sizes) > len(data):
        raise msf.bad("DBI substream sizes overrun the stream")
    dbi = Dbi(hdr)
    pos = DBI_HEADER.size
    # module info
    end = pos + modi_size
    while pos + 64 <= end and len(dbi.modules) < 1 << 20:
        sc = SectionContribution(*_sc_fields(data, pos + 4))
        _mflags, symstream, symbytes, c11, c13 = struct.unpack_from("<HHIII", data, pos + 32)
        name, p = _cstr(data, pos + 64, end)
        obj, p = _cstr(data, p, end)
        dbi.modules.append(ModuleInfo(len(dbi.modules), name, obj, symstream, symbytes, c11, c13, sc))
        pos = (p + 3) & ~3
    pos = DBI_HEADER.size + modi_size
    # section contributions
    if sc_size >= 4:
        (scver,) = struct.unpack_from("<I", data, pos)
        esize = 32 if scver == SC_V2 else 28
        p, end = pos + 4, pos + sc_size
        while p + esize <= end:
            dbi.contributions.append(SectionContribution(*_sc_fields(data, p)))
            p += esize
    pos += sc_size
    # section map
    if smap_size >= 4:
        (count, _log) = struct.unpack_from("<HH", data, pos)
        count = min(count, (smap_size - 4) // 20)
        for i in range(count):
            fl, _ovl, _grp, frame, _sn, _cn, off, ln = struct.unpack_from("<6HII", data, pos + 4 + 20 * i)
            dbi.section_map.append(SectionMapEntry(fl, frame, off, ln))
    pos += smap_size + src_size + tsm_size + ec_size
    n = dbg_size // 2
    dbi.debug_streams = list(struct.unpack_from(f"<{n}H", data, pos))
    return dbi


def _sc_fields(data: bytes, pos: int) -> tuple[int, int, int, int, int]:
    sect, _p1, off, size, chars, mod = struct.unpack_from("<HHiiIH", data, pos)
    return sect, off, size, chars, mod


def parse_section_headers(data: bytes) -> list[SectionHeader]:
    out = []
    for i in range(min(len(data) // 40, 65535)):
        name, vsize, va = struct.unpack_from("<8sII", data, 40 * i)
        (chars,) = struct.unpack_from("<I", data, 40 * i + 36)
        out.append(SectionHeader(name.rstrip(b"\0").decode("latin-1"), vsize, va, chars))
    return out


class Omap:
    """A sorted (source RVA -> target RVA) table from BBT-style image rewriting."""

    def __init__(self, data: bytes):
        n = len(data) // 8
        pairs = struct.unpack_from(f"<{2 * n}I", data, 0) if n else ()
        self.sources = list(pairs[0::2])
        self.targets = list(pairs[1::2])

    def __len__(self) -> int:
        return len(self.sources)

    def map(self, rva: int) -> int:
        """The translated RVA; 0 when the code was dropped (as DIA does)."""
        i = bisect.bisect_right(self.sources, rva) - 1
        if i < 0:
            return 0
        t = self.targets[i]
        return t + (rva - self.sources[i]) if t else 0


@dataclass
class FpoData:
    """Old-style FPO_DATA (x86)."""

    rva: int
    code_size: int
    locals_dwords: int
    params_dwords: int
    prolog_size: int
    saved_regs: int
    has_seh: bool
    uses_bp: bool
    frame_type: int


@dataclass
class FrameData:
    """New-style FPO (FRAMEDATA, x86) with its frame program string."""

    rva: int
    code_size: int
    locals_size: int
    params_size: int
    max_stack_size: int
    program: str
    prolog_size: int
    saved_regs_size: int
    flags: int

    @property
    def has_seh(self) -> bool:
        return bool(self.flags & 1)

    @property
    def has_eh(self) -> bool:
        return bool(self.flags & 2)

    @property
    def is_function_start(self) -> bool:
        return bool(self.flags & 4)


def parse_fpo(data: bytes) -> list[FpoData]:
    out = []
    for i in range(len(data) // 16):
        start, size, nlocals, nparams, attr = struct.unpack_from("<IIIHH", data, 16 * i)
        out.append(
            FpoData(
                start,
                size,
                nlocals,
                nparams,
                attr & 0xFF,
                (attr >> 8) & 7,
                bool(attr & 0x800),
                bool(attr & 0x1000),
                (attr >> 14) & 3,
            )  # fmt: skip
        )
    out.sort(key=lambda f: f.rva)
    return out


def parse_frame_data(data: bytes, strings) -> list[FrameData]:
    from .info import string_at

    # The stream may begin with a 4-byte relocation pointer; records are 32 bytes.
    start = len(data) % 32
    out = []
    for i in range((len(data) - start) // 32):
        rva, code, loc, par, mx, prog, prolog, saved, flags = struct.unpack_from(
            "<6IHHI", data, start + 32 * i
        )
        out.append(FrameData(rva, code, loc, par, mx, string_at(strings, prog), prolog, saved, flags))
    out.sort(key=lambda f: f.rva)
    return out
