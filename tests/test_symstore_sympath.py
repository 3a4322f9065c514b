from pathlib import Path

from bugcheck.symbols.sympath import (
    MICROSOFT_SYMBOL_SERVER,
    CacheDir,
    LocalDir,
    SymbolServer,
    default_symbol_cache,
    environment_sympath,
    parse_sympath,
    resolve_sympath,
    symfix,
)

MS = MICROSOFT_SYMBOL_SERVER


def test_srv_cache_url():
    assert parse_sympath(f"srv*C:\\sym*{MS}") == [SymbolServer(("C:\\sym", MS))]
    assert parse_sympath(f"SRV*/tmp/c1*/tmp/c2*{MS}") == [SymbolServer(("/tmp/c1", "/tmp/c2", MS))]


def test_srv_url_only_gets_default_cache(tmp_path):
    got = parse_sympath(f"srv*{MS}", default_cache=tmp_path)
    assert got == [SymbolServer((str(tmp_path), MS))]
    # srv**URL: an empty tier is the default downstream store too
    assert parse_sympath(f"srv**{MS}", default_cache=tmp_path) == got


def test_symsrv_long_form():
    got = parse_sympath(f"symsrv*symsrv.dll*/var/sym*{MS}")
    assert got == [SymbolServer(("/var/sym", MS))]


def test_local_store_only():
    assert parse_sympath("srv*/mnt/store") == [SymbolServer(("/mnt/store",))]


def test_plain_folders_and_separators():
    got = parse_sympath(" /a/b ; ;/c/d;")
    assert got == [LocalDir("/a/b"), LocalDir("/c/d")]


def test_cache_star_applies_to_elements_on_its_right(tmp_path):
    got = parse_sympath(f"/before;cache*/cc;srv*{MS};/plain", default_cache=tmp_path)
    assert got == [LocalDir("/before"), CacheDir("/cc"), SymbolServer(("/cc", MS)), LocalDir("/plain")]
    got = parse_sympath(f"cache*;srv*/st*{MS}", default_cache=tmp_path)
    assert got == [CacheDir(str(tmp_path)), SymbolServer((str(tmp_path), "/st", MS))]


def test_symfix_default_and_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv("BUGCHECK_CACHE_DIR", str(tmp_path))
    assert default_symbol_cache() == tmp_path / "symbols"
    assert symfix() == f"srv*{tmp_path / 'symbols'}*{MS}"
    assert symfix("/x/y") == f"srv*/x/y*{MS}"
    assert parse_sympath(symfix()) == [SymbolServer((str(tmp_path / "symbols"), MS))]


def test_default_cache_without_override_is_per_user(monkeypatch):
    monkeypatch.delenv("BUGCHECK_CACHE_DIR", raising=False)
    import platformdirs

    assert default_symbol_cache() == Path(platformdirs.user_cache_path("bugcheck")) / "symbols"


def test_environment_alt_path_first():
    env = {"_NT_SYMBOL_PATH": f"srv*/s*{MS}", "_NT_ALT_SYMBOL_PATH": "/alt"}
    assert environment_sympath(env) == f"/alt;srv*/s*{MS}"
    sp = resolve_sympath(None, env=env)
    assert sp.elements == [LocalDir("/alt"), SymbolServer(("/s", MS))]
    assert environment_sympath({}) == ""


def test_explicit_wins_over_environment_and_offline_flag():
    env = {"_NT_SYMBOL_PATH": "/env"}
    sp = resolve_sympath("/cli", env=env, offline=True)
    assert sp.elements == [LocalDir("/cli")] and sp.offline and str(sp) == "/cli"
    assert resolve_sympath(None, env={}).elements == []


def test_bare_url_is_a_store(tmp_path):
    assert parse_sympath("http://127.0.0.1:1/s", default_cache=tmp_path) == [
        SymbolServer((str(tmp_path), "http://127.0.0.1:1/s"))
    ]
