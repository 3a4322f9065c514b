"""WinDbg symbol paths: the string users already have, turned into an ordered search plan.

People bring their ``_NT_SYMBOL_PATH`` from Windows, so the syntax is WinDbg's
own: ``;``-separated elements, each a plain folder, ``srv*[cache*]...*upstream``
(``symsrv*symsrv.dll*...`` is the long spelling of the same), or ``cache*DIR``,
which makes DIR a downstream cache for every element to its right. Parsing is
pure: nothing here touches the disk or the network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MICROSOFT_SYMBOL_SERVER = "https://msdl.microsoft.com/download/symbols"


def user_cache_dir() -> Path:
    """The per-user cache root; ``BUGCHECK_CACHE_DIR`` overrides it (tests, CI, shared caches)."""
    env = os.environ.get("BUGCHECK_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_path("bugcheck"))


def default_symbol_cache() -> Path:
    """Where ``.symfix`` and ``srv*URL`` put downloads when the path names no cache."""
    return user_cache_dir() / "symbols"


def is_url(text: str) -> bool:
    low = text.lower()
    return low.startswith("http://") or low.startswith("https://")


@dataclass(frozen=True)
class LocalDir:
    """A plain folder: searched for the file itself, ``symbols/<ext>/``, ``<ext>/`` and store layout."""

    path: str


@dataclass(frozen=True)
class SymbolServer:
    """A symbol-store chain: ``tiers[0]`` is nearest (a cache), the last tier is upstream.

    Every tier is a local directory or an http(s) URL. What is found in a farther
    tier is copied into the nearer local tiers, as symsrv does.
    """

    tiers: tuple[str, ...]

    @property
    def caches(self) -> tuple[str, ...]:
        return tuple(t for t in self.tiers if not is_url(t))


@dataclass(frozen=True)
class CacheDir:
    """``cache*DIR``: a downstream cache for every element to its right."""

    path: str


Element = LocalDir | SymbolServer | CacheDir


@dataclass
class SymbolPath:
    """A parsed symbol path plus the switch that keeps the client off the network."""

    elements: list[Element] = field(default_factory=list)
    offline: bool = False
    text: str = ""

    def __str__(self) -> str:
        return self.text


def _clean(part: str) -> str:
    part = part.strip().strip('"').strip()
    if part and not is_url(part):
        part = os.path.expanduser(part)
    return part


def parse_sympath(text: str | None, *, default_cache: Path | None = None) -> list[Element]:
    """Split a WinDbg symbol path into elements, in search order.

    A bare ``srv*`` means the default downstream store plus Microsoft's public server.
    ``srv*URL`` with no cache gets the default downstream store (WinDbg's
    ``sym`` folder; ours is the user cache dir), and an empty tier (``srv**URL``)
    means the same. Unknown syntax is kept as a plain folder, as WinDbg does.
    """
    if not text:
        return []
    cache_default = str(default_cache if default_cache is not None else default_symbol_cache())
    out: list[Element] = []
    active_cache: str | None = None
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        low = item.lower()
        if low.startswith("srv*") or low == "srv" or low.startswith("symsrv*"):
            parts = item.split("*")
            if low.startswith("symsrv*"):
                parts = parts[2:]  # drop "symsrv" and the dll name
            else:
                parts = parts[1:]
            tiers = [_clean(p) for p in parts]
            if not any(tiers):
                # a bare "srv*": the default downstream store and Microsoft's public server,
                # as WinDbg reads it (and as WinDbg Preview's default symbol path)
                tiers = [active_cache or cache_default, MICROSOFT_SYMBOL_SERVER]
            tiers = [t if t else cache_default for t in tiers]
            if len(tiers) == 1 and is_url(tiers[0]):
                tiers.insert(0, active_cache or cache_default)
            elif active_cache is not None and tiers[0] != active_cache:
                tiers.insert(0, active_cache)
            out.append(SymbolServer(tuple(tiers)))
        elif low.startswith("cache*") or low == "cache":
            path = _clean(item[6:]) if len(item) > 6 else ""
            active_cache = path or cache_default
            out.append(CacheDir(active_cache))
        elif is_url(item):
            # A bare URL is only meaningful as a store; treat it like srv*URL.
            out.append(SymbolServer((active_cache or cache_default, item)))
        else:
            out.append(LocalDir(_clean(item)))
    return out


def symfix(cache: str | os.PathLike[str] | None = None) -> str:
    """The path ``.symfix [CACHE]`` sets: Microsoft's public server behind a local cache."""
    c = str(cache) if cache else str(default_symbol_cache())
    return f"srv*{c}*{MICROSOFT_SYMBOL_SERVER}"


def environment_sympath(env: Mapping[str, str] | None = None) -> str:
    """``_NT_ALT_SYMBOL_PATH`` then ``_NT_SYMBOL_PATH``, joined, as WinDbg searches them."""
    env = os.environ if env is None else env
    parts = [env.get("_NT_ALT_SYMBOL_PATH", ""), env.get("_NT_SYMBOL_PATH", "")]
    return ";".join(p for p in parts if p and p.strip())


def resolve_sympath(
    explicit: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    offline: bool = False,
    default_cache: Path | None = None,
) -> SymbolPath:
    """The symbol path in effect: ``-y``/``.sympath`` text if given, else the environment.

    ``offline`` is recorded on the result so the store never opens a socket;
    ``.sympath`` text wins over the environment, as in WinDbg.
    """
    text = explicit if explicit is not None else environment_sympath(env)
    return SymbolPath(parse_sympath(text, default_cache=default_cache), offline=offline, text=text or "")
