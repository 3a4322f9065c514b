"""Without symbols (or memory) the API answers with less, never with an exception."""

from __future__ import annotations

import pytest

from bugcheck import schemas
from bugcheck.api import open_dump
from bugcheck.errors import BadFileError
from corpus import corpus_file, dump


@pytest.mark.parametrize(
    "name",
    [
        "rizin-triage_x64.dmp",
        "rizin-triage_arm64.dmp",
        "proxyrule-011620-8250-01.dmp",
        "imhex-full-header-only.dmp",
    ],
)
def test_api_degrades_without_symbols(name, tmp_path, monkeypatch):
    monkeypatch.delenv("_NT_SYMBOL_PATH", raising=False)
    monkeypatch.delenv("BUGCHECK_SYMBOLS_DIR", raising=False)
    # an empty local symbol path: nothing to find, nothing downloaded
    with open_dump(dump(name), sympath=str(tmp_path), offline=True) as d:
        a = d.analyze()
        schemas.validate(a, "bugcheck.analysis/1")
        mods = d.modules()
        schemas.validate({"modules": mods}, "bugcheck.modules/1")
        procs = d.processes()
        assert procs == []
        assert any("process list" in n or "kernel" in n for n in d.notes), d.notes
        t = d.current_thread()
        # without kernel symbols the crash thread is still found through the dump's own
        # debugger-data offsets where the dump records them (proxyrule); never an exception
        assert t is None or isinstance(t.address, int)
        frames = d.stack()
        schemas.validate({"frames": frames, "warnings": []}, "bugcheck.stack/1")
        assert d.process(4) is None  # no process list to search
        stray = d.thread(0xFFFF800000000000)  # a view at an address the dump lacks: no exception
        assert stray is None or stray.to_dict()["tid"] is None
        for doc in d.run_all("kv; !thread; !process 0 0; lm"):
            schemas.validate(doc.data, doc.schema)


def test_api_triage_modules_without_symbols():
    with open_dump(dump("proxyrule-011620-8250-01.dmp"), offline=True) as d:
        a = d.analyze()
        assert a["failure_bucket_id"]  # a bucket from module+offset names
        names = [m["name"] for m in d.modules()]
        assert names and "nt" in names
        assert d.stack()[0]["module"] == "nt"


def test_api_bad_files(tmp_path):
    with pytest.raises(BadFileError, match="no such file"):
        open_dump(tmp_path / "missing.dmp")
    with pytest.raises(BadFileError, match="directory"):
        open_dump(tmp_path)
    junk = tmp_path / "junk.dmp"
    junk.write_bytes(b"\0" * 8192)
    with pytest.raises(BadFileError):
        open_dump(junk)


def test_api_zero_filled_field_dump():
    path = corpus_file("dumps", "criticalrocket", "111217-47250-01.dmp")
    with pytest.raises(BadFileError):
        open_dump(path)
