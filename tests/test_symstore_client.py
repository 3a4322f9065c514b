"""The symbol-store client against a loopback HTTP server and local stores made in tmp_path."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bugcheck.errors import BadFileError, SymbolError
from bugcheck.symbols import cab
from bugcheck.symbols.store import SymbolStore, image_key, pdb_key, safe_name
from corpus import corpus_file

AMD_GUID = "1C19FDDB-27BB-3399-D9B4-5973EFEAFCF3"
AMD_PDB_KEY = "1C19FDDB27BB3399D9B45973EFEAFCF31"


def _sha(p: Path) -> str:
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


class _Server:
    """Serves /<path> from an overlay folder, then the corpus symstore (case-sensitive, like nginx)."""

    def __init__(self, roots: list[Path], delay: dict[str, float] | None = None):
        self.roots = roots
        self.delay = delay or {}
        self.hits: Counter[str] = Counter()
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                outer.hits[path] += 1
                time.sleep(outer.delay.get(path, 0))
                rel = path.lstrip("/")
                if ".." in rel.split("/"):
                    self.send_error(400)
                    return
                for r in outer.roots:
                    f = r / rel
                    if f.is_file():
                        data = f.read_bytes()
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data)
                        return
                self.send_error(404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/download/symbols"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, suffix: str) -> int:
        return sum(n for p, n in self.hits.items() if p.endswith(suffix))


@pytest.fixture
def symstore():
    return corpus_file("symstore")


@pytest.fixture
def overlay(tmp_path):
    d = tmp_path / "overlay" / "download" / "symbols"
    d.mkdir(parents=True)
    return d


@pytest.fixture
def server(symstore, overlay):
    # The corpus is mounted under /download/symbols/ through a symlinked folder in tmp.
    root = overlay.parent.parent
    corpus_root = overlay.parent.parent.parent / "corpus-view" / "download"
    corpus_root.mkdir(parents=True)
    (corpus_root / "symbols").symlink_to(symstore)
    with _Server([root, corpus_root.parent]) as s:
        yield s


def _gcab(tmp: Path, src: Path, out_name: str) -> Path:
    if shutil.which("gcab") is None:
        pytest.skip("gcab not installed: cannot make CAB-compressed copies")
    work = tmp / ("gcab-" + out_name)
    work.mkdir()
    shutil.copyfile(src, work / src.name)
    subprocess.run(["gcab", "-c", "-z", "-n", str(work / out_name), str(work / src.name)], check=True)
    return work / out_name


def test_keys():
    assert pdb_key(AMD_GUID, 1) == AMD_PDB_KEY
    assert pdb_key("{" + AMD_GUID.lower() + "}", 0x1A) == AMD_PDB_KEY[:-1] + "1A"
    import uuid

    u = uuid.UUID(AMD_GUID)
    assert pdb_key(u, 1) == AMD_PDB_KEY
    assert pdb_key(u.bytes_le, 1) == AMD_PDB_KEY
    assert image_key(0xC9C03000, 0x3B000) == "C9C030003b000"
    assert image_key(0x1234, 0xABC) == "00001234abc"
    with pytest.raises(SymbolError):
        pdb_key("not-a-guid", 1)
    with pytest.raises(SymbolError):
        image_key(-1, 5)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "  ",
        "..",
        ".",
        "../x.pdb",
        "a/b.pdb",
        "a\\b.pdb",
        "C:x.pdb",
        "c:\\w\\x.pdb",
        "x\x00.pdb",
        "x" * 300,
        "\u4f60" * 100 + ".sys",  # 104 characters, but 304 bytes on disk: too long for a file name
        None,
    ],
)
def test_unsafe_names_refused(bad, tmp_path, server):
    with pytest.raises(SymbolError):
        safe_name(bad)
    st = SymbolStore(f"srv*{tmp_path / 'cache'}*{server.url}")
    with pytest.raises(SymbolError):
        st.find_pdb(bad, AMD_GUID, 1)
    with pytest.raises(SymbolError):
        st.find_image(bad, 1, 2)
    assert sum(server.hits.values()) == 0
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.pdb"))


def test_download_then_cache_hit(tmp_path, server, symstore):
    cache = tmp_path / "cache"
    st = SymbolStore(f"srv*{cache}*{server.url}", quiet=True)
    p = st.find_pdb("amdppm.pdb", AMD_GUID, 1)
    assert p == cache / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb"
    assert _sha(p) == _sha(symstore / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb")
    assert server.count("/amdppm.pdb") == 1
    assert any("HTTPGET" in line for line in st.log)
    # A new client (as in a new process) finds it in the cache without asking the server.
    st2 = SymbolStore(f"srv*{cache}*{server.url}", quiet=True)
    assert st2.find_pdb("amdppm.pdb", AMD_GUID, 1) == p
    assert server.count("/amdppm.pdb") == 1
    assert not list(cache.rglob("*.tmp")) and not list(cache.rglob("*.part"))


def test_image_lookup_lowercase_store(tmp_path, server, symstore):
    # The corpus store spells the image key in lower case; Microsoft's server ignores case.
    st = SymbolStore(f"srv*{tmp_path / 'c'}*{server.url}", quiet=True)
    p = st.find_image("Wdf01000.sys", 0xA9A9D36E, 0xD1000)
    assert p is not None
    assert _sha(p) == _sha(symstore / "Wdf01000.sys" / "a9a9d36ed1000" / "Wdf01000.sys")


def test_not_found_is_remembered(tmp_path, server):
    cache = tmp_path / "cache"
    st = SymbolStore(f"srv*{cache}*{server.url}", quiet=True)
    assert st.find_pdb("nothere.pdb", AMD_GUID, 1) is None
    first = sum(server.hits.values())
    assert first >= 3  # plain, compressed, file.ptr
    t = time.perf_counter()
    st2 = SymbolStore(f"srv*{cache}*{server.url}", quiet=True)
    assert st2.find_pdb("nothere.pdb", AMD_GUID, 1) is None
    assert time.perf_counter() - t < 0.5
    assert sum(server.hits.values()) == first
    assert any("remembered" in line for line in st2.log)
    # An expired marker is ignored.
    st3 = SymbolStore(f"srv*{cache}*{server.url}", quiet=True, negative_ttl=0)
    assert st3.find_pdb("nothere.pdb", AMD_GUID, 1) is None
    assert sum(server.hits.values()) > first


def test_offline_never_touches_network(tmp_path, server):
    st = SymbolStore(f"srv*{tmp_path / 'c'}*{server.url}", offline=True)
    assert st.find_pdb("amdppm.pdb", AMD_GUID, 1) is None
    assert sum(server.hits.values()) == 0
    assert any("offline" in line for line in st.log)


def test_compressed_over_http(tmp_path, server, overlay, symstore):
    src = symstore / "amdppm.sys" / "c9c030003b000" / "amdppm.sys"
    cabf = _gcab(tmp_path, src, "amdppm.sy_")
    d = overlay / "amdppm2.sys" / "C9C030003b000"
    d.mkdir(parents=True)
    shutil.copyfile(cabf, d / "amdppm2.sy_")
    # the member is named amdppm.sys; a one-member cab is accepted whatever its member is called
    st = SymbolStore(f"srv*{tmp_path / 'c'}*{server.url}", quiet=True)
    p = st.find_image("amdppm2.sys", 0xC9C03000, 0x3B000)
    assert p is not None and p.name == "amdppm2.sys"
    assert _sha(p) == _sha(src)
    assert server.count("/amdppm2.sy_") == 1


def test_corrupt_cab_is_bad_file(tmp_path, server, overlay):
    d = overlay / "bad.pdb" / AMD_PDB_KEY
    d.mkdir(parents=True)
    (d / "bad.pd_").write_bytes(b"MSCF" + os.urandom(200))
    st = SymbolStore(f"srv*{tmp_path / 'c'}*{server.url}", quiet=True)
    with pytest.raises(BadFileError):
        st.find_pdb("bad.pdb", AMD_GUID, 1)
    # Nothing half-written stays in the cache.
    assert not (tmp_path / "c" / "bad.pdb" / AMD_PDB_KEY / "bad.pdb").exists()
    not_cab = tmp_path / "x.pd_"
    not_cab.write_bytes(b"this is not a cabinet")
    with pytest.raises(BadFileError):
        cab.extract_member(not_cab)


def test_truncated_cab_is_bad_file(tmp_path, symstore):
    cabf = _gcab(tmp_path, symstore / "amdppm.sys" / "c9c030003b000" / "amdppm.sys", "t.sy_")
    data = cabf.read_bytes()
    cut = tmp_path / "cut.sy_"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadFileError):
        cab.extract_member(cut)
    assert cab.members(cabf)[0][2] == "mszip"


def test_remote_file_ptr_message(tmp_path, server, overlay):
    d = overlay / "moved.pdb" / AMD_PDB_KEY
    d.mkdir(parents=True)
    (d / "file.ptr").write_text("MSG: this file is no longer here")
    (overlay / "evil.pdb" / AMD_PDB_KEY).mkdir(parents=True)
    (overlay / "evil.pdb" / AMD_PDB_KEY / "file.ptr").write_text("PATH:/etc/passwd")
    st = SymbolStore(f"srv*{tmp_path / 'c'}*{server.url}", quiet=True)
    assert st.find_pdb("moved.pdb", AMD_GUID, 1) is None
    assert any("no longer here" in line for line in st.log)
    assert st.find_pdb("evil.pdb", AMD_GUID, 1) is None
    assert any("refusing PATH" in line for line in st.log)


def test_local_stores_two_tier_ptr_and_compressed(tmp_path, symstore):
    pdb = symstore / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb"
    two = tmp_path / "two"
    (two / "am" / "amdppm.pdb" / AMD_PDB_KEY).mkdir(parents=True)
    (two / "index2.txt").write_text("")
    (two / "am" / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb").symlink_to(pdb)
    st = SymbolStore(f"srv*{two}")
    assert st.find_pdb("amdppm.pdb", AMD_GUID, 1) == two / "am" / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb"

    ptr_store = tmp_path / "ptr"
    (ptr_store / "user32.pdb" / "KEY1").mkdir(parents=True)
    user32 = symstore / "user32.pdb" / "15F778B3671D4EFDBDCDE79905308B792" / "user32.pdb"
    (ptr_store / "user32.pdb" / "15F778B3671D4EFDBDCDE79905308B792").mkdir()
    (ptr_store / "user32.pdb" / "15F778B3671D4EFDBDCDE79905308B792" / "file.ptr").write_text(f"PATH:{user32}")
    cache = tmp_path / "cache"
    st = SymbolStore(f"srv*{cache}*{ptr_store}")
    got = st.find_pdb("user32.pdb", "15F778B3671D4EFDBDCDE79905308B79", 2)
    assert got is not None and _sha(got) == _sha(user32)
    assert got.is_relative_to(cache)

    comp = tmp_path / "comp"
    (comp / "amdppm.sys" / "C9C030003b000").mkdir(parents=True)
    src = symstore / "amdppm.sys" / "c9c030003b000" / "amdppm.sys"
    shutil.copyfile(_gcab(tmp_path, src, "amdppm.sy_"), comp / "amdppm.sys" / "C9C030003b000" / "amdppm.sy_")
    st = SymbolStore(f"srv*{cache}*{comp}")
    got = st.find_image("amdppm.sys", 0xC9C03000, 0x3B000)
    assert got == cache / "amdppm.sys" / "C9C030003b000" / "amdppm.sys"
    assert _sha(got) == _sha(src)
    assert not (comp / "amdppm.sys" / "C9C030003b000" / "amdppm.sys").exists()  # source store untouched


def test_plain_folder(tmp_path, symstore):
    d = tmp_path / "plain"
    d.mkdir()
    (d / "amdppm.pdb").symlink_to(symstore / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb")
    st = SymbolStore(f"{tmp_path / 'nothing'};{d}")
    assert st.find_pdb("amdppm.pdb", AMD_GUID, 1) == d / "amdppm.pdb"
    # and the corpus store itself used as a plain folder finds its store layout
    st = SymbolStore(str(symstore))
    assert st.find_pdb("amdppm.pdb", AMD_GUID, 1) is not None


def test_timeout_on_silent_server(tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)  # accepts connections into the backlog, never answers
    try:
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/s"
        st = SymbolStore(
            f"srv*{tmp_path / 'c'}*{url}", timeout=(0.5, 0.5), retries=1, backoff=0.05, quiet=True
        )
        t = time.perf_counter()
        assert st.find_pdb("amdppm.pdb", AMD_GUID, 1) is None
        assert time.perf_counter() - t < 5
        assert any("Timeout" in line for line in st.log)
        # A transient failure is not remembered as a miss.
        assert not (tmp_path / "c" / ".bugcheck-misses").exists()
    finally:
        sock.close()


def _fetch_worker(sympath: str, q) -> None:
    st = SymbolStore(sympath, quiet=True)
    p = st.find_image("Wdf01000.sys", 0xA9A9D36E, 0xD1000)
    q.put(str(p))


def test_two_processes_share_one_cache(tmp_path, symstore, overlay):
    root = overlay.parent.parent
    view = tmp_path / "view" / "download"
    view.mkdir(parents=True)
    (view / "symbols").symlink_to(symstore)
    slow = "/download/symbols/Wdf01000.sys/a9a9d36ed1000/Wdf01000.sys"
    with _Server([root, view.parent], delay={slow: 0.6}) as srv:
        sympath = f"srv*{tmp_path / 'shared'}*{srv.url}"
        ctx = multiprocessing.get_context("spawn")
        q = ctx.Queue()
        procs = [ctx.Process(target=_fetch_worker, args=(sympath, q)) for _ in range(2)]
        for p in procs:
            p.start()
        results = [q.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(30)
        assert results[0] == results[1] != "None"
        assert srv.hits[slow] == 1
        assert _sha(Path(results[0])) == _sha(symstore / "Wdf01000.sys" / "a9a9d36ed1000" / "Wdf01000.sys")


class _Flaky:
    """A server whose answers per request are scripted: ("500",), ("short", data), ("ok", data)."""

    def __init__(self, script: list[tuple]):
        self.script = list(script)
        self.seen = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                outer.seen += 1
                step = outer.script.pop(0) if outer.script else ("404",)
                if step[0] in ("500", "404"):
                    self.send_error(int(step[0]))
                    return
                data = step[1]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data) + (100 if step[0] == "short" else 0)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/s"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_retry_after_server_error_then_success(tmp_path):
    srv = _Flaky([("500",), ("ok", b"PDBDATA")])
    try:
        st = SymbolStore(f"srv*{tmp_path / 'c'}*{srv.url}", retries=2, backoff=0.01, quiet=True)
        p = st.find_pdb("x.pdb", AMD_GUID, 1)
        assert p is not None and p.read_bytes() == b"PDBDATA"
        assert srv.seen == 2
    finally:
        srv.close()


def test_short_body_is_retried_and_never_cached(tmp_path):
    srv = _Flaky([("short", b"HALF"), ("short", b"HALF")])
    try:
        st = SymbolStore(f"srv*{tmp_path / 'c'}*{srv.url}", retries=1, backoff=0.01, quiet=True)
        assert st.find_pdb("x.pdb", AMD_GUID, 1) is None
        assert srv.seen == 2
        assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    finally:
        srv.close()


def test_hit_in_far_tier_fills_every_nearer_cache(tmp_path, symstore):
    near, mid = tmp_path / "near", tmp_path / "mid"
    st = SymbolStore(f"srv*{near}*{mid}*{symstore}")
    p = st.find_pdb("amdppm.pdb", AMD_GUID, 1)
    assert p == near / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb"
    assert (mid / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb").is_file()
    assert _sha(p) == _sha(symstore / "amdppm.pdb" / AMD_PDB_KEY / "amdppm.pdb")


def test_odd_characters_stay_in_one_url_segment(tmp_path, server):
    st = SymbolStore(f"srv*{tmp_path / 'c'}*{server.url}", quiet=True)
    assert st.find_pdb("a?b#c d%.pdb", AMD_GUID, 1) is None
    assert server.hits
    assert all("/a%3Fb%23c%20d%25.pdb/" in p for p in server.hits)


def test_a_folder_the_system_refuses_is_a_miss(tmp_path, monkeypatch):
    """An OSError while looking into a local folder (a name too long for the file system, a
    folder without permission) is "not found there", never a crash."""
    st = SymbolStore(str(tmp_path), offline=True, quiet=True)
    with pytest.raises(SymbolError):
        st.find_image("\u00e9" * 200 + ".sys", 1, 2)  # 204 characters, 404 bytes

    def refuse(*_args, **_kw):
        raise OSError(36, "File name too long")

    monkeypatch.setattr(SymbolStore, "_find_in_dir", refuse)
    assert st.find_image("amdppm.sys", 1, 2) is None
    assert any("File name too long" in line for line in st.log)
