"""Symbol-store client: find a PDB or image by its identity along a WinDbg symbol path.

A store keys files by identity, not by name alone: PDBs by
``name/GUID+AGE/name`` (GUID upper-case hex without dashes, age = the DBI
stream's age in hex), images by ``name/TIMESTAMP(%08X)SIZEOFIMAGE(%x)/name``.
Each location may hold the file itself, a CAB-compressed ``name.pd_``, or a
``file.ptr`` redirect. Downloads land in the nearest local cache, atomically
and under a per-file lock, so several processes can share one cache; a miss is
remembered (with a timestamp) so a repeated lookup costs nothing.

Names come from dumps and images, which we do not trust: anything that is not a
plain file name is refused with :class:`SymbolError` before it gets near a path.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

from bugcheck.errors import BadFileError, SymbolError
from bugcheck.symbols import cab
from bugcheck.symbols.sympath import (
    CacheDir,
    Element,
    LocalDir,
    SymbolPath,
    SymbolServer,
    default_symbol_cache,
    is_url,
    parse_sympath,
)

#: Longest file name we accept from a dump or image.
MAX_NAME = 255
#: Largest download we accept (big PDBs are a few hundred MB).
MAX_DOWNLOAD = 2 << 30
#: How long a remembered miss stays valid.
NEGATIVE_TTL = 24 * 3600.0
_MISS_DIR = ".bugcheck-misses"
_PTR_MAX = 4096
_KEY_RX = re.compile(r"^[0-9A-Za-z]{1,80}$")
_DRIVE_RX = re.compile(r"^[A-Za-z]:")
_LIST_LIMIT = 4096


def safe_name(name: object) -> str:
    """``name`` if it is a plain file name, else SymbolError (never a path)."""
    if not isinstance(name, str):
        raise SymbolError(f"refusing symbol file name {name!r}: not text")
    problem = None
    if not name or not name.strip():
        problem = "empty"
    elif len(name) > MAX_NAME or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME:
        problem = f"longer than {MAX_NAME} characters or bytes"
    elif "\x00" in name or any(ord(c) < 0x20 for c in name):
        problem = "contains control characters"
    elif "/" in name or "\\" in name:
        problem = "contains a path separator"
    elif _DRIVE_RX.match(name) or ":" in name:
        problem = "contains a drive letter or stream separator"
    elif name in (".", "..") or name.strip(".") == "":
        problem = "is a relative directory"
    if problem:
        raise SymbolError(f"refusing symbol file name {name!r}: {problem}")
    return name


def pdb_key(guid: object, age: int) -> str:
    """``GUIDHEX+AGE`` as symbol stores index PDBs (age is the DBI age, in hex)."""
    if isinstance(guid, uuid.UUID):
        g = guid.hex.upper()
    elif isinstance(guid, bytes | bytearray):
        if len(guid) != 16:
            raise SymbolError(f"PDB GUID must be 16 bytes, got {len(guid)}")
        g = uuid.UUID(bytes_le=bytes(guid)).hex.upper()
    elif isinstance(guid, str):
        g = guid.strip().strip("{}").replace("-", "").upper()
    else:
        raise SymbolError(f"unusable PDB GUID {guid!r}")
    if not re.fullmatch(r"[0-9A-F]{32}", g):
        raise SymbolError(f"unusable PDB GUID {guid!r}")
    if not isinstance(age, int) or age < 0 or age > 0xFFFFFFFF:
        raise SymbolError(f"unusable PDB age {age!r}")
    return f"{g}{age:X}"


def image_key(timestamp: int, size_of_image: int) -> str:
    """``%08X%x`` of TimeDateStamp and SizeOfImage, as symbol stores index images."""
    for v, what in ((timestamp, "TimeDateStamp"), (size_of_image, "SizeOfImage")):
        if not isinstance(v, int) or v < 0 or v > 0xFFFFFFFF:
            raise SymbolError(f"unusable {what} {v!r}")
    return f"{timestamp:08X}{size_of_image:x}"


def compressed_name(name: str) -> str:
    return name[:-1] + "_"


def _child_ci(parent: Path, name: str) -> Path | None:
    """``parent/name``, matched case-insensitively as Windows stores are (bounded listing)."""
    p = parent / name
    if os.path.lexists(p):
        return p
    try:
        with os.scandir(parent) as it:
            for i, ent in enumerate(it):
                if i >= _LIST_LIMIT:
                    break
                if ent.name.lower() == name.lower():
                    return parent / ent.name
    except OSError:
        return None
    return None


class SymbolStore:
    """Looks files up along a symbol path; ``log`` records every place tried (``!sym noisy``)."""

    def __init__(
        self,
        sympath: str | SymbolPath | Sequence[Element] | None,
        offline: bool = False,
        *,
        quiet: bool = False,
        timeout: float | tuple[float, float] = (5.0, 30.0),
        retries: int = 2,
        backoff: float = 0.5,
        negative_ttl: float = NEGATIVE_TTL,
        default_cache: Path | None = None,
        session=None,
        on_log: Callable[[str], None] | None = None,
        lock_timeout: float = 600.0,
    ):
        if isinstance(sympath, SymbolPath):
            offline = offline or sympath.offline
            elements = list(sympath.elements)
        elif isinstance(sympath, str) or sympath is None:
            elements = parse_sympath(sympath, default_cache=default_cache)
        else:
            elements = list(sympath)
        self.elements: list[Element] = elements
        self.offline = offline
        self.quiet = quiet
        self.timeout = timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff
        self.negative_ttl = negative_ttl
        self.default_cache = Path(default_cache) if default_cache else default_symbol_cache()
        self._session = session
        self._on_log = on_log
        self.log: list[str] = []
        #: servers that could not be connected to in this run: not asked again
        self._unreachable: set[str] = set()
        self._connect_failed = False
        self.lock_timeout = lock_timeout

    # ---- public API -----------------------------------------------------------------------
    def find_pdb(self, name: str, guid: object, age: int) -> Path | None:
        return self.find(safe_name(name), pdb_key(guid, age))

    def find_image(self, name: str, timestamp: int, size_of_image: int) -> Path | None:
        return self.find(safe_name(name), image_key(timestamp, size_of_image))

    def find(self, name: str, key: str) -> Path | None:
        """The local path of ``name`` indexed under ``key``, fetching it if needed; None when absent."""
        name = safe_name(name)
        if not _KEY_RX.match(key):
            raise SymbolError(f"refusing symbol index key {key!r}")
        self._say(f"SYMSRV:  BYINDEX: {name}/{key}/{name}")
        for el in self.elements:
            if isinstance(el, (LocalDir, CacheDir)):
                try:
                    if isinstance(el, LocalDir):
                        hit = self._find_in_dir(Path(el.path), name, key)
                    else:
                        hit = self._find_in_store(Path(el.path), name, key, caches=[])
                except OSError as e:  # a folder the system refuses to look into: not found there
                    self._say(f"DBGHELP: {el.path} - {e.strerror or e}")
                    hit = None
            elif isinstance(el, SymbolServer):
                hit = self._find_in_server(el, name, key)
            else:
                continue
            if hit is not None:
                self._say(f"SYMSRV:  RESULT: 0x00000000 {hit}")
                return hit
        self._say("SYMSRV:  RESULT: 0x80190194 (not found)")
        return None

    # ---- logging --------------------------------------------------------------------------
    def _say(self, line: str) -> None:
        self.log.append(line)
        if self._on_log is not None:
            self._on_log(line)

    # ---- local lookups --------------------------------------------------------------------
    def _find_in_dir(self, d: Path, name: str, key: str) -> Path | None:
        """A plain folder: the file itself, ``symbols/<ext>/``, ``<ext>/``, then store layout."""
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        for cand in (d / name, d / "symbols" / ext / name, d / ext / name):
            if cand.is_file():
                self._say(f"DBGHELP: {cand} - found (unverified: the reader checks its identity)")
                return cand
        self._say(f"DBGHELP: {d / name} - file not found")
        return self._find_in_store(d, name, key, caches=[], quiet_miss=True)

    def _store_dirs(self, root: Path, name: str, key: str) -> list[Path]:
        """Where ``name/key`` may live under ``root``: two-tier first when ``index2.txt`` says so."""
        out: list[Path] = []
        bases = []
        if (root / "index2.txt").is_file():
            bases.append(root / name[:2].lower())
            bases.append(root / name[:2])
        bases.append(root)
        for b in bases:
            n = _child_ci(b, name) if b.is_dir() else None
            if n is None:
                continue
            k = _child_ci(n, key)
            if k is not None and k.is_dir() and k not in out:
                out.append(k)
        return out

    def _find_in_store(
        self, root: Path, name: str, key: str, caches: list[Path], quiet_miss: bool = False
    ) -> Path | None:
        """A local store tier; a hit that is not already in ``caches[0]`` is copied there."""
        for d in self._store_dirs(root, name, key):
            plain = _child_ci(d, name)
            if plain is not None and plain.is_file():
                self._say(f"SYMSRV:  {plain} - found")
                return self._publish(plain, caches, name, key, decompress=False)
            comp = _child_ci(d, compressed_name(name))
            if comp is not None and comp.is_file():
                self._say(f"SYMSRV:  {comp} - found compressed")
                return self._publish(comp, caches, name, key, decompress=True)
            ptr = _child_ci(d, "file.ptr")
            if ptr is not None and ptr.is_file():
                target = self._follow_ptr(ptr.read_bytes()[:_PTR_MAX], str(ptr), local=True)
                if target is not None:
                    return self._publish(target, caches, name, key, decompress=cab.is_cab(target))
        if not quiet_miss:
            self._say(f"SYMSRV:  {root / name / key / name} - file not found")
        return None

    def _follow_ptr(self, data: bytes, where: str, *, local: bool) -> Path | None:
        text = data.decode("utf-8", "replace").strip().strip("\x00")
        if text.upper().startswith("MSG:"):
            self._say(f"SYMSRV:  {where}: {text[4:].strip()}")
            return None
        if text.upper().startswith("PATH:"):
            target = text[5:].strip()
            if not local:
                self._say(f"SYMSRV:  {where}: refusing PATH redirect from a remote store: {target}")
                return None
            if "\x00" in target or not target:
                self._say(f"SYMSRV:  {where}: unusable PATH redirect")
                return None
            p = Path(target.replace("\\", "/")) if "\\" in target and "/" not in target else Path(target)
            if not p.is_absolute():
                p = Path(where).parent / p
            if p.is_file():
                self._say(f"SYMSRV:  {where} -> {p}")
                return p
            self._say(f"SYMSRV:  {where} -> {p} - file not found")
            return None
        self._say(f"SYMSRV:  {where}: unrecognized file.ptr contents")
        return None

    # ---- cache writes ---------------------------------------------------------------------
    def _target(self, cache: Path, name: str, key: str) -> Path:
        if (cache / "index2.txt").is_file():
            return cache / name[:2].lower() / name / key / name
        return cache / name / key / name

    def _publish(self, src: Path, caches: list[Path], name: str, key: str, *, decompress: bool) -> Path:
        """Put ``src`` (decompressed if a CAB) into every downstream cache, as symsrv does.

        Returns the copy in the nearest cache (or ``src`` when there is no cache).
        """
        nearest = self._publish_one(src, caches[:1], name, key, decompress=decompress)
        for c in caches[1:]:
            self._publish_one(nearest, [c], name, key, decompress=False)
        return nearest

    def _publish_one(self, src: Path, caches: list[Path], name: str, key: str, *, decompress: bool) -> Path:
        if not caches:
            if not decompress:
                return src
            caches = [self.default_cache]
        target = self._target(caches[0], name, key)
        if target.is_file():
            # Already there (or src is the cached copy itself).
            return target

        def produce(tmp: Path) -> None:
            if decompress:
                cab.decompress_to(src, tmp, want=name)
            else:
                shutil.copyfile(src, tmp)

        try:
            return self._atomic_write(target, produce)
        except OSError as e:
            self._say(f"SYMSRV:  cannot write {target}: {e}")
            if decompress:
                raise BadFileError(src, f"cannot decompress into the cache: {e}") from None
            return src

    def _atomic_write(self, target: Path, produce: Callable[[Path], None]) -> Path:
        """Run ``produce`` into a temp file beside ``target`` and rename it in, under a file lock."""
        from filelock import FileLock

        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if target.is_file():
                return target  # another process finished first
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="." + target.name + ".", suffix=".tmp")
            os.close(fd)
            try:
                produce(Path(tmp))
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        return target

    # ---- negative cache -------------------------------------------------------------------
    def _miss_marker(self, cache: Path, url: str, name: str, key: str) -> Path:
        h = hashlib.sha256(f"{url.rstrip('/')}|{name.lower()}|{key.upper()}".encode()).hexdigest()[:40]
        return cache / _MISS_DIR / h

    def _recent_miss(self, marker: Path) -> bool:
        if self.negative_ttl <= 0:
            return False
        try:
            stamp = float(marker.read_text(encoding="ascii").split()[0])
        except (OSError, ValueError, IndexError):
            return False
        age = time.time() - stamp
        # A stamp slightly in the future (clock skew between machines sharing a cache) still counts.
        return -300 <= age < self.negative_ttl

    def _remember_miss(self, marker: Path, url: str) -> None:
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=marker.parent, suffix=".tmp")
            with os.fdopen(fd, "w", encoding="ascii", errors="replace") as f:
                f.write(f"{time.time():.3f} {url}\n")
            os.replace(tmp, marker)
        except OSError:
            pass

    # ---- servers --------------------------------------------------------------------------
    def _find_in_server(self, el: SymbolServer, name: str, key: str) -> Path | None:
        caches: list[Path] = []
        for tier in el.tiers:
            if is_url(tier):
                cache = caches[0] if caches else self.default_cache
                hit = self._find_http(tier, name, key, cache)
                if hit is not None:
                    # Copy into any farther-down local caches as well (nearest first).
                    return self._publish(hit, caches, name, key, decompress=False) if caches else hit
            else:
                hit = self._find_in_store(Path(tier), name, key, caches=list(caches))
                if hit is not None:
                    return hit
                caches.append(Path(tier))
        return None

    def _http(self):
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.headers["User-Agent"] = "Microsoft-Symbol-Server/10.0.0.0"
        return self._session

    def _find_http(self, base: str, name: str, key: str, cache: Path) -> Path | None:
        if self.offline:
            self._say(f"SYMSRV:  {base}: skipped (offline)")
            return None
        if base in self._unreachable:
            self._say(f"SYMSRV:  {base}: skipped (could not be reached earlier in this run)")
            return None
        marker = self._miss_marker(cache, base, name, key)
        if self._recent_miss(marker):
            self._say(f"SYMSRV:  {base}/{name}/{key}/{name} - not found (remembered)")
            return None
        root = base.rstrip("/")
        target = self._target(cache, name, key)
        if target.is_file():
            return target
        # Microsoft's server ignores case; stores served from Linux folders often use lower-case keys.
        tries = [(key, name, "plain")]
        if key.lower() != key:
            tries.append((key.lower(), name, "plain"))
        tries += [(key, compressed_name(name), "cab"), (key, "file.ptr", "ptr")]
        for k, remote, kind in tries:
            # Names may hold '#', '?', '%' or spaces: quote them so they stay one path segment.
            url = f"{root}/{quote(name, safe='')}/{k}/{quote(remote, safe='')}"
            self._say(f"SYMSRV:  HTTPGET: {url}")
            self._connect_failed = False
            got = self._download(url, target, name, kind)
            if got == "transient":
                # The server could not be reached: do not remember a miss we did not observe,
                # but stop asking it during this run (one failure per module would add up).
                if self._connect_failed:
                    self._unreachable.add(base)
                return None
            if isinstance(got, Path):
                return got
        self._remember_miss(marker, base)
        return None

    def _download(self, url: str, target: Path, name: str, kind: str):
        """Fetch ``url``; returns the final Path, None for 404, or "transient" after retries fail."""
        from filelock import FileLock
        from filelock import Timeout as LockTimeout

        target.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(target) + ".lock", timeout=self.lock_timeout)
        try:
            lock.acquire()
        except LockTimeout:
            self._say(f"SYMSRV:  {target}: another process has held its lock for {self.lock_timeout:.0f} s")
            return "transient"
        try:
            return self._download_locked(url, target, name, kind)
        finally:
            lock.release()

    def _download_locked(self, url: str, target: Path, name: str, kind: str):
        import requests

        if target.is_file():
            self._say(f"SYMSRV:  {target} - fetched meanwhile by another process")
            return target
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * (2 ** (attempt - 1)))
            try:
                with self._http().get(url, stream=True, timeout=self.timeout, allow_redirects=True) as r:
                    self._say(f"SYMSRV:  HTTP STATUS: {r.status_code}")
                    if r.status_code in (404, 410, 403):
                        return None
                    if r.status_code >= 500 or r.status_code == 429:
                        continue
                    if r.status_code != 200:
                        return None
                    if kind == "ptr":
                        data = r.raw.read(_PTR_MAX + 1, decode_content=True)
                        p = self._follow_ptr(data[:_PTR_MAX], url, local=False)
                        return p
                    return self._receive(r, url, target, name, kind)
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as e:
                self._say(f"SYMSRV:  {url}: {type(e).__name__}: {_short(e)}")
                self._connect_failed = isinstance(e, requests.ConnectionError | requests.Timeout)
                if _name_not_resolved(e):
                    break  # no DNS answer (an offline machine): retrying cannot help
                continue
            except _ShortRead as e:
                self._say(f"SYMSRV:  {url}: {e}")
                continue
            except requests.RequestException as e:
                self._say(f"SYMSRV:  {url}: {type(e).__name__}: {_short(e)}")
                return "transient"
        return "transient"

    def _receive(self, r, url: str, target: Path, name: str, kind: str) -> Path:
        try:
            total = max(0, int(r.headers.get("Content-Length") or 0))
        except ValueError:
            total = 0
        if total > MAX_DOWNLOAD:
            raise BadFileError(url, f"download is {total} bytes, over the {MAX_DOWNLOAD}-byte cap")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix="." + target.name + ".", suffix=".part")
        tmp_p = Path(tmp)
        try:
            got = 0
            with os.fdopen(fd, "wb") as f, _progress(name, total, self.quiet) as advance:
                for chunk in r.iter_content(1 << 16):
                    got += len(chunk)
                    if got > MAX_DOWNLOAD:
                        raise BadFileError(url, f"download exceeds the {MAX_DOWNLOAD}-byte cap")
                    f.write(chunk)
                    advance(len(chunk))
            if total and got != total:
                raise _ShortRead(f"short read ({got} of {total} bytes)")
            if kind == "cab":
                out_fd, out_tmp = tempfile.mkstemp(
                    dir=target.parent, prefix="." + target.name + ".", suffix=".tmp"
                )
                os.close(out_fd)
                try:
                    cab.decompress_to(tmp_p, out_tmp, want=name)
                    os.replace(out_tmp, target)
                finally:
                    if os.path.exists(out_tmp):
                        os.unlink(out_tmp)
            else:
                os.replace(tmp_p, target)
            self._say(f"SYMSRV:  {url} -> {target}")
            return target
        finally:
            if tmp_p.exists():
                tmp_p.unlink()


class _ShortRead(Exception):
    """The connection ended before Content-Length bytes arrived (retried)."""


def _name_not_resolved(e: Exception) -> bool:
    """Whether a connection error is a failed host-name lookup (not a flaky connection)."""
    text = repr(e)
    return any(
        m in text
        for m in ("NameResolutionError", "Failed to resolve", "Name or service not known", "getaddrinfo failed",
                  "Temporary failure in name resolution", "nodename nor servname")
    )  # fmt: skip


def _short(e: Exception) -> str:
    s = str(e)
    return s if len(s) < 160 else s[:157] + "..."


class _progress:
    """A rich progress bar on stderr for a download, only when stderr is a terminal."""

    def __init__(self, name: str, total: int, quiet: bool):
        self.name, self.total, self.quiet = name, total, quiet
        self._p = None
        self._task = None

    def __enter__(self):
        if self.quiet or not sys.stderr.isatty():
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self._p = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._p.__enter__()
        self._task = self._p.add_task(f"SYMSRV: {self.name}", total=self.total or None)
        return lambda n: self._p.advance(self._task, n)

    def __exit__(self, *exc):
        if self._p is not None:
            self._p.__exit__(*exc)
        return False
