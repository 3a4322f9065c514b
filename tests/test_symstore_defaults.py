"""Symbol path defaults and an unreachable server, as a user without network meets them."""

import socket

from bugcheck.symbols.store import SymbolStore
from bugcheck.symbols.sympath import MICROSOFT_SYMBOL_SERVER, SymbolServer, parse_sympath


def test_bare_srv_means_default_cache_and_microsofts_server(tmp_path):
    (el,) = parse_sympath("srv*", default_cache=tmp_path)
    assert isinstance(el, SymbolServer) and el.tiers == (str(tmp_path), MICROSOFT_SYMBOL_SERVER)
    # srv*DIR is a store (no server), as in WinDbg
    (el,) = parse_sympath("srv*/some/store", default_cache=tmp_path)
    assert el.tiers == ("/some/store",)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now: connections are refused
    return port


def test_unreachable_server_is_asked_once_per_run(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/symbols"
    store = SymbolStore(f"srv*{tmp_path}*{url}", retries=1, backoff=0.01, timeout=(1, 1))
    assert store.find_pdb("a.pdb", "1C19FDDB27BB3399D9B45973EFEAFCF3", 1) is None
    gets = sum("HTTPGET" in line for line in store.log)
    assert gets == 1
    assert store.find_pdb("b.pdb", "1C19FDDB27BB3399D9B45973EFEAFCF3", 1) is None
    assert sum("HTTPGET" in line for line in store.log) == gets  # not asked again
    assert any("could not be reached earlier" in line for line in store.log)
    # a refused connection is not a "not found": nothing is remembered on disk
    assert not list(tmp_path.rglob("*.miss*"))


def test_default_symbol_path_is_srv(monkeypatch):
    from bugcheck.dumpfile import open_dump
    from bugcheck.kernel.target import DEFAULT_SYMBOL_PATH, Target
    from corpus import dump

    monkeypatch.delenv("_NT_SYMBOL_PATH", raising=False)
    monkeypatch.delenv("_NT_ALT_SYMBOL_PATH", raising=False)
    t = Target(open_dump(dump("proxyrule-011620-8250-01.dmp")), offline=True)
    assert DEFAULT_SYMBOL_PATH == "srv*"
    assert any(MICROSOFT_SYMBOL_SERVER in getattr(e, "tiers", ()) for e in t.store.elements)
