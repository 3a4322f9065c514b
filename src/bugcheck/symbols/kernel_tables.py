"""Which kernel symbol table fits a dump, when the dump does not name its kernel PDB.

A triage (mini) dump has no CodeView record for ntoskrnl, but its header holds
the absolute addresses of three kernel globals: PsLoadedModuleList,
PsActiveProcessHead and KdDebuggerDataBlock. Subtracting the kernel base gives
three RVAs that fingerprint one kernel build; a table whose three RVAs all
match is the right one. The differences between the three addresses do not
depend on the base, so a candidate is found even when the base is unknown, and
the base it implies is checked against the one the driver list gives.

Decompressing every table to read three numbers is slow (~3 s for 79 tables),
so a folder is indexed once into a small JSON file in the user cache, keyed by
the folder's file list (names, sizes, mtimes).
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bugcheck.errors import BadFileError

KEY_SYMBOLS = ("PsLoadedModuleList", "PsActiveProcessHead", "KdDebuggerDataBlock")
INDEX_FORMAT = 2
#: Kernel PDB names a table folder may hold (x64 MP, UP, and 32-bit PAE kernels).
KERNEL_PDBS = ("ntkrnlmp.pdb", "ntoskrnl.pdb", "ntkrpamp.pdb", "ntkrnlpa.pdb")
_TABLE_NAME = re.compile(r"^([0-9A-Fa-f]{32})-([0-9A-Fa-f]+)\.json(\.xz|\.gz)?$")
_MAX_TABLES = 10000
#: Stop decompressing once this much text is scanned (kernel tables are ~6-10 MB).
_MAX_SCAN = 256 << 20


@dataclass(frozen=True)
class TableEntry:
    path: Path
    pdb_name: str
    guid: str
    age: int
    rvas: tuple[int, int, int] | None  # in KEY_SYMBOLS order; None when a symbol is absent

    @property
    def label(self) -> str:
        return f"{self.pdb_name} {self.guid}-{self.age:X}"


@dataclass(frozen=True)
class KernelTableMatch:
    path: Path
    pdb_name: str
    guid: str
    age: int
    kernel_base: int
    reason: str


def _candidate_files(folder: Path) -> list[tuple[Path, str, str, int]]:
    """(path, pdb name, GUID, age) for every table under ``folder`` in Volatility's layout."""
    dirs: list[Path] = []
    if folder.name.lower().endswith(".pdb"):
        dirs.append(folder)
    for sub in ("windows", "."):
        base = folder / sub
        if base.is_dir():
            for name in KERNEL_PDBS:
                d = base / name
                if d.is_dir():
                    dirs.append(d)
    out: list[tuple[Path, str, str, int]] = []
    seen: set[Path] = set()
    for d in dirs:
        try:
            entries = sorted(os.listdir(d))
        except OSError:
            continue
        for fn in entries:
            m = _TABLE_NAME.match(fn)
            if not m:
                continue
            p = (d / fn).resolve()
            if p in seen or not p.is_file():
                continue
            seen.add(p)
            out.append((d / fn, d.name, m.group(1).upper(), int(m.group(2), 16)))
            if len(out) > _MAX_TABLES:
                return out
    return out


def _fingerprint(files: list[tuple[Path, str, str, int]]) -> str:
    h = hashlib.sha256(str(INDEX_FORMAT).encode())
    for p, *_ in files:
        try:
            st = p.stat()
        except OSError:
            continue
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


_SYM_RX = {
    s: re.compile(rb'"' + s.encode() + rb'"\s*:\s*\{[^{}]*?"address"\s*:\s*(\d+)') for s in KEY_SYMBOLS
}


def _open_stream(path: Path):
    low = path.name.lower()
    if low.endswith(".xz"):
        return lzma.open(path, "rb")
    if low.endswith(".gz"):
        import gzip

        return gzip.open(path, "rb")
    return open(path, "rb")


def _scan_rvas(path: Path) -> tuple[int, int, int] | None:
    """The three RVAs, read by streaming the text and stopping once all are seen.

    In a table the symbols section comes before user_types (keys are sorted), so
    streaming stops well before the end. A regex hit is only trusted when it
    appears once; anything ambiguous falls back to a full JSON parse.
    """
    found: dict[str, list[int]] = {s: [] for s in KEY_SYMBOLS}
    tail = b""
    scanned = 0
    try:
        with _open_stream(path) as f:
            while scanned < _MAX_SCAN:
                chunk = f.read(1 << 20)
                if not chunk:
                    break
                scanned += len(chunk)
                buf = tail + chunk
                for s, rx in _SYM_RX.items():
                    for m in rx.finditer(buf):
                        # Only count matches that end in the new part (not rescanning the overlap).
                        if m.end() > len(tail):
                            found[s].append(int(m.group(1)))
                tail = buf[-512:]
                if b'"user_types"' in chunk and all(found.values()):
                    break
    except (OSError, lzma.LZMAError, EOFError) as e:
        raise BadFileError(path, f"cannot decompress symbol table: {e}") from None
    if all(len(v) == 1 for v in found.values()):
        return tuple(found[s][0] for s in KEY_SYMBOLS)  # type: ignore[return-value]
    # Ambiguous or missing: ask the real parser.
    from bugcheck.symbols.isf import load_isf

    t = load_isf(path, use_cache=False)
    vals = [t.symbol_by_name(s) for s in KEY_SYMBOLS]
    if any(v is None for v in vals):
        return None
    return tuple(v.rva for v in vals)  # type: ignore[union-attr,return-value]


class KernelTableIndex:
    """The three key RVAs of every kernel table in a folder, built once and cached."""

    def __init__(
        self, folder: str | os.PathLike[str], *, cache_dir: Path | None = None, use_cache: bool = True
    ):
        # absolute, so the paths handed out stay valid whatever the working directory
        self.folder = Path(folder).absolute()
        self.entries: list[TableEntry] = []
        self.from_cache = False
        self.problems: list[str] = []
        files = _candidate_files(self.folder)
        fp = _fingerprint(files)
        if cache_dir is None:
            from bugcheck.symbols.sympath import user_cache_dir

            cache_dir = user_cache_dir() / "kernel-tables"
        key = hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:24]
        self._index_path = cache_dir / f"{key}.json"
        if use_cache and self._load(fp):
            return
        self._build(files)
        if use_cache:
            self._save(fp)

    def _load(self, fp: str) -> bool:
        try:
            with open(self._index_path, encoding="utf-8") as f:
                doc = json.load(f)
            if doc.get("fingerprint") != fp or doc.get("format") != INDEX_FORMAT:
                return False
            self.entries = [
                TableEntry(
                    self.folder / e["path"],
                    e["pdb"],
                    e["guid"],
                    int(e["age"]),
                    tuple(e["rvas"]) if e["rvas"] else None,
                )
                for e in doc["tables"]
            ]
            self.problems = list(doc.get("problems", []))
            self.from_cache = True
            return True
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def _save(self, fp: str) -> None:
        doc = {
            "format": INDEX_FORMAT,
            "fingerprint": fp,
            "folder": str(self.folder.resolve()),
            "tables": [
                # relative to the folder: the same folder is reached by other relative paths
                # from other working directories
                {
                    "path": str(e.path.relative_to(self.folder)),
                    "pdb": e.pdb_name,
                    "guid": e.guid,
                    "age": e.age,
                    "rvas": e.rvas,
                }
                for e in self.entries
            ],
            "problems": self.problems,
        }
        try:
            self._index_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._index_path.parent, prefix=".kt-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(doc, f)
            os.replace(tmp, self._index_path)
        except OSError:
            pass

    def _build(self, files: list[tuple[Path, str, str, int]]) -> None:
        def one(item):
            path, pdb, guid, age = item
            try:
                return TableEntry(path, pdb, guid, age, _scan_rvas(path)), None
            except BadFileError as e:
                return None, str(e)

        # lzma releases the GIL while decompressing, so two threads use both cores.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as ex:
            results = list(ex.map(one, files))
        self.entries = [e for e, _ in results if e is not None]
        self.problems = [p for _, p in results if p is not None]

    # ---- queries --------------------------------------------------------------------------
    def by_guid(self, guid: str, age: int) -> TableEntry | None:
        g = guid.replace("-", "").strip("{}").upper()
        for e in self.entries:
            if e.guid == g and e.age == age:
                return e
        return None

    def matches(
        self,
        ps_loaded_module_list: int,
        ps_active_process_head: int,
        kd_debugger_data_block: int,
        kernel_base: int | None = None,
    ) -> list[KernelTableMatch]:
        """Every table whose three RVAs fit the addresses (with one consistent, page-aligned base)."""
        out: list[KernelTableMatch] = []
        addrs = (ps_loaded_module_list, ps_active_process_head, kd_debugger_data_block)
        if any(not isinstance(a, int) or a <= 0 for a in addrs):
            return out
        for e in self.entries:
            if e.rvas is None:
                continue
            bases = {a - r for a, r in zip(addrs, e.rvas, strict=True)}
            if len(bases) != 1:
                continue
            base = bases.pop()
            if base <= 0 or base & 0xFFF:
                continue
            if kernel_base is not None and base != kernel_base:
                continue
            how = "kernel base" if kernel_base is not None else "implied kernel base"
            reason = (
                f"PsLoadedModuleList, PsActiveProcessHead and KdDebuggerDataBlock RVAs match "
                f"{e.pdb_name} {e.guid}-{e.age:X} ({how} {_fmt_addr(base)})"
            )
            out.append(KernelTableMatch(e.path, e.pdb_name, e.guid, e.age, base, reason))
        return out


def _fmt_addr(v: int) -> str:
    if v > 0xFFFFFFFF:
        return f"{v >> 32:08x}`{v & 0xFFFFFFFF:08x}"
    return f"{v:08x}"


def identify_kernel_table(
    folder: str | os.PathLike[str],
    *,
    ps_loaded_module_list: int,
    ps_active_process_head: int,
    kd_debugger_data_block: int,
    kernel_base: int | None = None,
    cache_dir: Path | None = None,
) -> KernelTableMatch | None:
    """The one table that fits, or None (none fits, or several fit and nothing breaks the tie)."""
    index = KernelTableIndex(folder, cache_dir=cache_dir)
    found = index.matches(ps_loaded_module_list, ps_active_process_head, kd_debugger_data_block, kernel_base)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        # Tables with the same three RVAs may differ elsewhere; refuse to guess.
        return None
    return None


def table_for_guid(
    folder: str | os.PathLike[str], guid: str, age: int, *, pdb_name: str | None = None
) -> Path | None:
    """The table for a known kernel PDB identity (full and bitmap dumps: the image's CodeView record).

    Looks the file up by name, so no index is needed.
    """
    g = guid.replace("-", "").strip("{}").upper()
    if not re.fullmatch(r"[0-9A-F]{32}", g) or not isinstance(age, int) or age < 0:
        return None
    for path, pdb, fguid, fage in _candidate_files(Path(folder)):
        if fguid == g and fage == age and (pdb_name is None or pdb.lower() == pdb_name.lower()):
            return path
    return None


def identify_for_dump(dump: object, folder: str | os.PathLike[str], **kw) -> KernelTableMatch | None:
    """Convenience for a ``bugcheck.dumpfile.DumpFile``: header addresses plus the driver list's nt base."""
    header = getattr(dump, "header", None)
    if header is None:
        return None
    base = None
    triage = getattr(dump, "triage", None)
    drivers = getattr(triage, "drivers", None) if triage is not None else None
    if drivers:
        first = drivers[0]
        base = getattr(first, "base", None)
        if base is None and isinstance(first, tuple | list) and len(first) > 1:
            base = first[1]
    return identify_kernel_table(
        folder,
        ps_loaded_module_list=getattr(header, "ps_loaded_module_list", 0),
        ps_active_process_head=getattr(header, "ps_active_process_head", 0),
        kd_debugger_data_block=getattr(header, "kd_debugger_data_block", 0),
        kernel_base=base if isinstance(base, int) else None,
        **kw,
    )
