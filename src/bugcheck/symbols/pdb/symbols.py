"""Public and global symbols of a PDB, as a SymbolSource addressed by RVA.

Record offsets come from the public stream's address map and the global
stream's hash records, so the symbol record stream is never walked in Python
when those are present; kinds, sections and offsets are then read for all
records at once with numpy and converted to RVAs through the PDB's copy of the
image section headers (and OMAP when the image was rewritten after linking).
"""

from __future__ import annotations

import bisect
import re
import struct
from dataclasses import dataclass

import numpy as np

from bugcheck.errors import BadFileError
from bugcheck.symbols.types import Symbol

S_PUB32 = 0x110E
S_PUB32_ST = 0x1009
S_LDATA32, S_GDATA32 = 0x110C, 0x110D
S_LDATA32_ST, S_GDATA32_ST = 0x1006, 0x1007
S_PROCREF, S_LPROCREF = 0x1125, 0x1127
S_LPROC32, S_GPROC32 = 0x110F, 0x1110
S_LPROC32_ID, S_GPROC32_ID = 0x1146, 0x1147

PUB_FUNCTION = 0x2
PUB_CODE = 0x1

#: symbol kinds, lowest preferred when several names share one RVA
RANK_PROC, RANK_DATA, RANK_PUBLIC = 0, 1, 2

MAX_RECORDS = 8_000_000
_STDCALL = re.compile(r"@\d+$")


@dataclass(frozen=True)
class PublicRecord:
    """One S_PUB32 as stored (for tools and tests that want the raw view)."""

    name: str
    section: int
    offset: int
    rva: int | None
    flags: int


_SPECIAL = {"0": None, "1": None, "_7": "`vftable'", "_8": "`vbtable'"}


def undecorate_msvc(name: str) -> str:
    """The qualified name WinDbg shows for a simple MSVC-mangled name, else the name unchanged.

    Handles ``?Fn@Class@Ns@@...`` (with name back-references), constructors,
    destructors and vftables; templates and operators are left mangled.
    """
    if name.startswith("??_C@"):
        return "`string'"
    if not name.startswith("?") or len(name) > 4096:
        return name
    pos = 1
    special = None
    if name.startswith("??"):
        for code in ("_7", "_8", "0", "1"):
            if name.startswith(code, 2):
                special = code
                pos = 2 + len(code)
                break
        else:
            return name
    parts: list[str] = []
    seen: list[str] = []
    while pos < len(name):
        if name[pos] == "@":
            break
        if name[pos].isdigit():
            k = int(name[pos])
            if k >= len(seen):
                return name
            parts.append(seen[k])
            pos += 1
            continue
        if name[pos] == "?":
            return name  # template or nested special name
        end = name.find("@", pos)
        if end < 0:
            return name
        frag = name[pos:end]
        if not frag.replace("_", "a").replace("$", "a").isalnum():
            return name
        parts.append(frag)
        if len(seen) < 10:
            seen.append(frag)
        pos = end + 1
    if not parts:
        return name
    scopes = parts[::-1]
    if special is None:
        return "::".join(scopes)
    if special == "0":
        return "::".join(scopes + [scopes[-1]])
    if special == "1":
        return "::".join(scopes + ["~" + scopes[-1]])
    return "::".join(scopes + [_SPECIAL[special]])


def undecorate_c(name: str, machine: str) -> str:
    """WinDbg's display of an x86 C name: ``_Name@12``/``@Name@8``/``_Name`` -> ``Name``."""
    if name.startswith("?"):
        return undecorate_msvc(name)
    if machine != "x86" or not name or name[0] not in "_@":
        return name
    base = name[1:]
    if not base:
        return name
    m = _STDCALL.search(base)
    if m and m.start() > 0:
        base = base[: m.start()]
    return base


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    out = []
    for ch in pattern:
        out.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(out) + r"\Z", re.IGNORECASE | re.DOTALL)


def _cname(buf: bytes, pos: int) -> str:
    end = buf.find(b"\0", pos)
    if end < 0:
        end = len(buf)
    return buf[pos:end].decode("utf-8", "replace")


def _pname(buf: bytes, pos: int) -> str:
    n = buf[pos] if pos < len(buf) else 0
    return buf[pos + 1 : pos + 1 + n].decode("utf-8", "replace")


class PdbSymbols:
    """SymbolSource over one PDB; built on first use."""

    def __init__(self, pdb):
        self._pdb = pdb
        self._built = False
        self._by_name: dict[str, int] | None = None
        self._by_lower: dict[str, int] | None = None

    # --- record offsets ---------------------------------------------------
    def _gsi_offsets(self, data: bytes) -> np.ndarray | None:
        """Record offsets (+1 removed) of a GSI hash table, or None when not the VC7+ layout."""
        if len(data) < 16:
            return None
        sig, ver, hr_size, _nb = struct.unpack_from("<4I", data, 0)
        if sig != 0xFFFFFFFF or ver != 0xEFFE0000 + 19990810 or 16 + hr_size > len(data):
            return None
        hr = np.frombuffer(data, dtype="<u4", count=hr_size // 4, offset=16)
        return hr[0::2].astype(np.int64) - 1

    def _scan_offsets(self, symrec: bytes) -> np.ndarray:
        """Walk the record stream (fallback for old layouts)."""
        out = []
        pos, n = 0, len(symrec)
        while pos + 4 <= n and len(out) < MAX_RECORDS:
            (ln,) = struct.unpack_from("<H", symrec, pos)
            if ln < 2:
                break
            out.append(pos)
            pos += 2 + ln
        return np.array(out, dtype=np.int64)

    def _record_offsets(self) -> tuple[np.ndarray, np.ndarray]:
        pdb = self._pdb
        msf = pdb.msf
        dbi = pdb.dbi
        symrec = pdb.symrec
        pub = glob = None
        if dbi.header.public_stream != 0xFFFF and msf.has_stream(dbi.header.public_stream):
            pdata = msf.stream(dbi.header.public_stream)
            if len(pdata) >= 28:
                sym_hash, addr_map = struct.unpack_from("<II", pdata, 0)
                if 28 + sym_hash + addr_map <= len(pdata) and self._gsi_offsets(pdata[28:]) is not None:
                    pub = np.frombuffer(pdata, dtype="<u4", count=addr_map // 4, offset=28 + sym_hash)
                    pub = pub.astype(np.int64)
        if dbi.header.global_stream != 0xFFFF and msf.has_stream(dbi.header.global_stream):
            glob = self._gsi_offsets(msf.stream(dbi.header.global_stream))
        if pub is None or glob is None:
            allr = self._scan_offsets(symrec)
            return allr, np.zeros(0, dtype=np.int64)
        return pub, glob

    # --- build --------------------------------------------------------------
    def _build(self) -> None:
        if self._built:
            return
        try:
            self._build_all()
        except BadFileError:
            raise
        except (struct.error, IndexError, ValueError, KeyError, OverflowError) as e:
            raise BadFileError(self._pdb.path, f"corrupt symbol records ({type(e).__name__})") from None

    def _build_all(self) -> None:
        pdb = self._pdb
        symrec = pdb.symrec
        n = len(symrec)
        names: list[str] = []
        raw: list[str] = []
        rvas_l: list[np.ndarray] = []
        ranks_l: list[np.ndarray] = []
        sizes_l: list[np.ndarray] = []
        funcs_l: list[np.ndarray] = []
        self._publics_raw: list[PublicRecord] = []
        self._dtypes: dict[int, int] = {}
        if pdb.dbi is None or n == 0:
            self._finish(
                [], [], np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.int64), np.zeros(0, bool)
            )
            return
        a, b = self._record_offsets()
        offs = np.unique(np.concatenate([a, b]))
        offs = offs[(offs >= 0) & (offs + 14 <= n)]
        buf = np.frombuffer(symrec, dtype=np.uint8)

        def u16(o):
            return buf[o].astype(np.int64) | (buf[o + 1].astype(np.int64) << 8)

        def u32(o):
            return u16(o) | (u16(o + 2) << 16)

        kinds = u16(offs + 2)
        # publics and data: same layout (u32 flags/type, u32 offset, u16 segment, name)
        sel = np.isin(kinds, (S_PUB32, S_GDATA32, S_LDATA32, S_PUB32_ST, S_GDATA32_ST, S_LDATA32_ST))
        o = offs[sel]
        k = kinds[sel]
        seg = u16(o + 12)
        soff = u32(o + 8)
        flg = u32(o + 4)
        rva = pdb.rvas_of(seg, soff)
        machine = pdb.machine
        ol, kl, sl, fl, segl, soffl = (
            o.tolist(),
            k.tolist(),
            (rva).tolist(),
            flg.tolist(),
            seg.tolist(),
            soff.tolist(),
        )
        keep = []
        for i, off in enumerate(ol):
            kind = kl[i]
            st = kind in (S_PUB32_ST, S_GDATA32_ST, S_LDATA32_ST)
            name = _pname(symrec, off + 14) if st else _cname(symrec, off + 14)
            is_pub = kind in (S_PUB32, S_PUB32_ST)
            r = sl[i]
            if is_pub:
                self._publics_raw.append(PublicRecord(name, segl[i], soffl[i], r if r >= 0 else None, fl[i]))
            if r < 0:
                continue
            keep.append(i)
            raw.append(name)
            names.append(undecorate_c(name, machine) if is_pub else name)
            if not is_pub:
                self._dtypes[len(names) - 1] = fl[i]
        keep_a = np.array(keep, dtype=np.int64)
        if len(keep_a):
            rvas_l.append(rva[keep_a])
            kk = k[keep_a]
            is_pub = np.isin(kk, (S_PUB32, S_PUB32_ST))
            ranks_l.append(np.where(is_pub, RANK_PUBLIC, RANK_DATA).astype(np.int8))
            sizes_l.append(np.zeros(len(keep_a), np.int64))
            funcs_l.append(is_pub & ((flg[keep_a] & (PUB_FUNCTION | PUB_CODE)) != 0))
        # procedure references -> the S_GPROC32 in the module's stream (name, size)
        pr = offs[np.isin(kinds, (S_PROCREF, S_LPROCREF))]
        if len(pr):
            p_rva, p_size, p_names = self._procs(pr.tolist(), symrec)
            if p_names:
                names.extend(p_names)
                raw.extend(p_names)
                rvas_l.append(np.array(p_rva, np.int64))
                ranks_l.append(np.full(len(p_names), RANK_PROC, np.int8))
                sizes_l.append(np.array(p_size, np.int64))
                funcs_l.append(np.ones(len(p_names), bool))
        self._finish(
            names,
            raw,
            np.concatenate(rvas_l) if rvas_l else np.zeros(0, np.int64),
            np.concatenate(ranks_l) if ranks_l else np.zeros(0, np.int8),
            np.concatenate(sizes_l) if sizes_l else np.zeros(0, np.int64),
            np.concatenate(funcs_l) if funcs_l else np.zeros(0, bool),
        )

    def _procs(self, offsets: list[int], symrec: bytes):
        pdb = self._pdb
        modules = pdb.dbi.modules
        rvas, sizes, names = [], [], []
        for off in offsets:
            _sum, ib, imod = struct.unpack_from("<IIH", symrec, off + 4)
            if not 1 <= imod <= len(modules):
                continue
            mod = modules[imod - 1]
            if mod.sym_stream == 0xFFFF or not pdb.msf.has_stream(mod.sym_stream):
                continue
            ms = pdb.msf.stream(mod.sym_stream)
            if ib + 39 > len(ms):
                continue
            (kind,) = struct.unpack_from("<H", ms, ib + 2)
            if kind not in (S_GPROC32, S_LPROC32, S_GPROC32_ID, S_LPROC32_ID):
                continue
            (length,) = struct.unpack_from("<I", ms, ib + 16)
            (poff, pseg) = struct.unpack_from("<IH", ms, ib + 32)
            rva = pdb.rva_of(pseg, poff)
            if rva is None:
                continue
            rvas.append(rva)
            sizes.append(length)
            names.append(_cname(ms, ib + 39))
        return rvas, sizes, names

    def _finish(self, names, raw, rvas, ranks, sizes, funcs) -> None:
        order = np.lexsort((ranks, rvas)) if len(rvas) else np.zeros(0, np.int64)
        self._names = names
        self._raw = raw
        self._order = order.tolist()
        self._sizes = [int(x) for x in sizes]
        self._funcs = [bool(x) for x in funcs]
        self._rva_of_index = [int(x) for x in rvas]
        # lookup arrays: one entry per distinct RVA, the preferred record for it
        srt = rvas[order] if len(rvas) else rvas
        first = np.ones(len(srt), bool)
        if len(srt) > 1:
            first[1:] = srt[1:] != srt[:-1]
        self._lk_rvas = srt[first].tolist()
        self._lk_syms: list[Symbol | None] = [None] * len(self._lk_rvas)
        self._lk_index = order[first].tolist()
        self._built = True

    # --- SymbolSource -----------------------------------------------------------
    def _symbol(self, i: int) -> Symbol:
        return Symbol(self._names[i], self._rva_of_index[i], self._sizes[i], self._funcs[i])

    def symbol_at(self, rva: int) -> Symbol | None:
        if not self._built:
            self._build()
        pos = bisect.bisect_right(self._lk_rvas, rva) - 1
        if pos < 0:
            return None
        sym = self._lk_syms[pos]
        if sym is None:
            sym = self._lk_syms[pos] = self._symbol(self._lk_index[pos])
        return sym

    def _index(self) -> None:
        if self._by_name is not None:
            return
        self._build()
        by_name: dict[str, int] = {}
        by_lower: dict[str, int] = {}
        for i in self._order:
            for nm in (self._names[i], self._raw[i]):
                by_name.setdefault(nm, i)
                by_lower.setdefault(nm.lower(), i)
        self._by_name, self._by_lower = by_name, by_lower

    def symbol_by_name(self, name: str) -> Symbol | None:
        self._index()
        i = self._by_name.get(name)
        if i is None:
            i = self._by_lower.get(name.lower())
        return None if i is None else self._symbol(i)

    def data_type_index(self, name: str) -> int | None:
        """The type index of a global/static data symbol (S_GDATA32/S_LDATA32), for ``dt``/``dx``."""
        self._index()
        i = self._by_name.get(name)
        if i is None:
            i = self._by_lower.get(name.lower())
        if i is None:
            return None
        ti = self._dtypes.get(i)
        if ti is None:
            # a public shadowing the data record of the same name
            for j, nm in enumerate(self._names):
                if nm == self._names[i] and j in self._dtypes:
                    return self._dtypes[j]
        return ti

    def symbols_matching(self, pattern: str) -> list[Symbol]:
        self._build()
        rx = wildcard_regex(pattern)
        out = []
        seen = set()
        for i in self._order:
            nm = self._names[i]
            if rx.match(nm) or rx.match(self._raw[i]):
                sym = self._symbol(i)
                key = (sym.name, sym.rva)
                if key not in seen:
                    seen.add(key)
                    out.append(sym)
        return out

    def publics(self) -> list[PublicRecord]:
        """Every S_PUB32 record with its section:offset and RVA (None when unmappable)."""
        self._build()
        return list(self._publics_raw)

    def __len__(self) -> int:
        self._build()
        return len(self._order)
