"""Lazy PDB reader: ``open_pdb(path)`` -> :class:`PdbFile`.

Only the MSF directory, the info stream and the DBI header are read when a PDB
is opened; types, symbols and frame data are decoded on first use.
"""

from __future__ import annotations

import bisect
import os
import struct
import uuid
from functools import cached_property

import numpy as np

from bugcheck.errors import BadFileError

from . import dbi as _dbi
from .dbi import Dbi, FpoData, FrameData, Omap, SectionHeader
from .info import PdbInfo, parse_info, parse_string_table
from .msf import Msf
from .symbols import PdbSymbols, PublicRecord
from .tpi import TypeStream

__all__ = ["PdbFile", "open_pdb", "open_pdb_bytes", "PublicRecord", "SectionHeader", "FpoData", "FrameData"]

_PARSE_ERRORS = (
    struct.error,
    IndexError,
    ValueError,
    KeyError,
    OverflowError,
    UnicodeDecodeError,
    MemoryError,
)


class PdbFile:
    def __init__(self, msf: Msf):
        self.msf = msf
        self.path = msf.path
        self.info: PdbInfo = parse_info(msf)
        self.dbi: Dbi | None = _dbi.parse_dbi(msf)

    # --- identity -----------------------------------------------------------
    @property
    def guid(self) -> uuid.UUID:
        return self.info.guid

    @property
    def info_age(self) -> int:
        return self.info.age

    @property
    def age(self) -> int:
        """The symbol-server age: the DBI stream's (the info stream's when there is no DBI)."""
        return self.dbi.header.age if self.dbi is not None else self.info.age

    @property
    def signature(self) -> int:
        return self.info.signature

    @cached_property
    def machine(self) -> str:
        """``x86``/``x64``/``arm64``...; old PDBs leave the DBI machine 0, then pointer records decide."""
        if self.dbi is not None and self.dbi.header.machine_code:
            return self.dbi.machine
        return self._guess_machine()

    def _guess_machine(self) -> str:
        from . import leaves

        try:
            ts = TypeStream(self, 2)
            for ti in ts.indices()[:5000]:
                leaf, rec = ts.record(ti)
                if leaf == leaves.LF_POINTER and len(rec) >= 12:
                    (attr,) = struct.unpack_from("<I", rec, 8)
                    kind = attr & 0x1F
                    if kind == 0x0A:
                        return "x86"
                    if kind == 0x0C:
                        return "x64"
        except (BadFileError, *_PARSE_ERRORS):
            pass
        return "unknown"

    @property
    def pointer_size(self) -> int:
        return 4 if self.machine in ("x86", "arm") else 8

    @property
    def symstore_key(self) -> str:
        """``<GUID hex upper><age hex>`` as a symbol server names the folder."""
        return f"{self.guid.hex.upper()}{self.age:X}"

    def matches(self, guid: uuid.UUID | str, age: int) -> bool:
        """Whether this PDB is the one an image's CodeView record (RSDS GUID + age) asks for."""
        g = guid if isinstance(guid, uuid.UUID) else uuid.UUID(str(guid).strip("{}"))
        return g == self.guid and age == self.age

    def global_type(self, name: str):
        """The Type of a global/static variable, or None (public-only PDBs have no types for data)."""
        ti = self.symbols.data_type_index(name)
        if ti is None or ti == 0:
            return None
        return self.types.type_by_key(ti)

    def close(self) -> None:
        self.msf.close()

    def __enter__(self) -> PdbFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- streams ------------------------------------------------------------
    def named_stream(self, name: str) -> bytes | None:
        idx = self.info.named_streams.get(name)
        if idx is None or not self.msf.has_stream(idx):
            return None
        return self.msf.stream(idx)

    @cached_property
    def strings(self) -> bytes | None:
        data = self.named_stream("/names")
        return parse_string_table(data) if data else None

    def _debug_stream(self, slot: int) -> bytes:
        if self.dbi is None:
            return b""
        idx = self.dbi.debug_stream(slot)
        if idx == _dbi.NO_STREAM or not self.msf.has_stream(idx):
            return b""
        return self.msf.stream(idx)

    @cached_property
    def symrec(self) -> bytes:
        if self.dbi is None:
            return b""
        idx = self.dbi.header.symrec_stream
        if idx == _dbi.NO_STREAM or not self.msf.has_stream(idx):
            return b""
        return self.msf.stream(idx)

    # --- addresses ----------------------------------------------------------
    @cached_property
    def omap_from_src(self) -> Omap | None:
        data = self._debug_stream(_dbi.DBG_OMAP_FROM_SRC)
        return Omap(data) if len(data) >= 8 else None

    @cached_property
    def sections(self) -> list[SectionHeader]:
        """The section headers segment numbers refer to (the original ones when OMAP is used)."""
        if self.omap_from_src is not None:
            orig = self._debug_stream(_dbi.DBG_SECTION_HDR_ORIG)
            if orig:
                return _dbi.parse_section_headers(orig)
        return _dbi.parse_section_headers(self._debug_stream(_dbi.DBG_SECTION_HDR))

    @cached_property
    def image_sections(self) -> list[SectionHeader]:
        """The final image's section headers."""
        return _dbi.parse_section_headers(self._debug_stream(_dbi.DBG_SECTION_HDR))

    def rva_of(self, segment: int, offset: int) -> int | None:
        secs = self.sections
        if not 1 <= segment <= len(secs):
            return None
        rva = secs[segment - 1].virtual_address + offset
        om = self.omap_from_src
        if om is not None:
            rva = om.map(rva)
            if rva == 0:
                return None
        return rva

    def rvas_of(self, segments: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Vector form of :meth:`rva_of`; -1 where there is no RVA."""
        secs = self.sections
        va = np.array([0] + [s.virtual_address for s in secs], dtype=np.int64)
        seg = np.asarray(segments, dtype=np.int64)
        ok = (seg >= 1) & (seg <= len(secs))
        rva = np.where(ok, va[np.where(ok, seg, 0)] + np.asarray(offsets, np.int64), -1)
        om = self.omap_from_src
        if om is not None and len(om):
            src = np.array(om.sources, np.int64)
            dst = np.array(om.targets, np.int64)
            i = np.searchsorted(src, rva, side="right") - 1
            ii = np.maximum(i, 0)
            mapped = np.where(dst[ii] != 0, dst[ii] + (rva - src[ii]), 0)
            rva = np.where(ok & (i >= 0) & (mapped != 0), mapped, -1)
        return rva

    # --- content ------------------------------------------------------------
    @cached_property
    def types(self) -> TypeStream:
        return TypeStream(self, 2, pointer_size=self.pointer_size)

    @cached_property
    def ids(self) -> TypeStream:
        return TypeStream(self, 4, pointer_size=self.pointer_size)

    @cached_property
    def symbols(self) -> PdbSymbols:
        return PdbSymbols(self)

    @cached_property
    def fpo(self) -> list[FpoData]:
        return _dbi.parse_fpo(self._debug_stream(_dbi.DBG_FPO))

    @cached_property
    def frame_data(self) -> list[FrameData]:
        """New-style x86 frame data sorted by RVA (empty for other machines)."""
        return _dbi.parse_frame_data(self._debug_stream(_dbi.DBG_NEW_FPO), self.strings)

    def frame_data_at(self, rva: int) -> FrameData | None:
        """The innermost frame-data record whose code range holds ``rva``."""
        fd = self.frame_data
        if not hasattr(self, "_fd_keys"):
            self._fd_keys = [f.rva for f in fd]
        i = bisect.bisect_right(self._fd_keys, rva) - 1
        # records may nest (a function and its sub-ranges): look back a few
        for j in range(i, max(i - 16, -1), -1):
            f = fd[j]
            if f.rva <= rva < f.rva + f.code_size:
                return f
        return None


def open_pdb(path: str | os.PathLike[str]) -> PdbFile:
    """Open a PDB (MSF 7.00). Raises BadFileError / UnsupportedFormatError."""
    return _open(Msf(path), path)


def open_pdb_bytes(data: bytes, path: str = "<memory>") -> PdbFile:
    """A PDB held in memory (tests, or a PDB extracted from a cabinet)."""
    msf = Msf(None, data=data)
    msf.path = path
    return _open(msf, path)


def _open(msf: Msf, path) -> PdbFile:
    try:
        return PdbFile(msf)
    except BadFileError:
        msf.close()
        raise
    except _PARSE_ERRORS as e:
        msf.close()
        raise BadFileError(path, f"corrupt PDB ({type(e).__name__}: {e})") from None
