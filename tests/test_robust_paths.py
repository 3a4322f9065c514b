"""Names from a dump never become file-system paths; dumps are opened read-only; lists are bounded.

The CLI runs behind audit hooks (tests/fuzz/audited_cli.py) that record every
open (mode and flags), mapping, listing and stat. A writer-made kernel dump
carries module base names such as ``..\\..\\..\\evil1.sys`` and ``C:evil4.sys``
and looping process / thread / module lists; a corpus triage dump gets the same
kind of name patched into its driver-list string pool.
"""

from __future__ import annotations

import os
import struct

import pytest

from corpus import corpus_root
from fuzz import mutate, runner
from fuzz.cases import store_copy, warm_cache, write_case
from fuzz.synth_dumps import EVIL_NAMES, write_hostile_dump

COMMANDS = (
    "lm; lmv m evil1; .reload; lm; kv; !process 0 0; !process 0 7; !thread; x *!*; ln @rip; !analyze -v"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    corpus = corpus_root()
    if corpus is None:
        pytest.skip("test corpus not found")
    root = tmp_path_factory.mktemp("robust-paths")
    cache = warm_cache(tmp_path_factory.getbasetemp() / "robust-cache", corpus)
    # the store sits deep enough that "..\\..\\.." from inside it stays under tmp
    store = store_copy(corpus, root / "a" / "b" / "c" / "store")
    images = root / "a" / "b" / "c" / "images"
    images.mkdir()
    return corpus, root, cache, store, images


def _escapes(run: runner.CliRun, roots: list) -> list[str]:
    """Touched paths built from a hostile name: any with '..', a drive, a stream, or outside the roots."""
    bad = []
    allowed = [os.path.realpath(r) for r in roots]
    for event, path, _detail in run.events:
        if "evil" not in path and "/etc/" not in path.replace("\\", "/")[-12:]:
            continue
        norm = os.path.normpath(path)
        inside = any(norm == a or norm.startswith(a + os.sep) for a in allowed)
        if ".." in path.replace("\\", "/").split("/") or ":" in path or "\\" in path or not inside:
            bad.append(f"{event} {path}")
    return bad


def test_hostile_module_names_never_become_paths(env):
    corpus, root, cache, store, images = env
    dump = write_case(root / "hostile.dmp", write_hostile_dump(corpus, root / "w.dmp").read_bytes())
    log = root / "audit-hostile.jsonl"
    run = runner.run_cli(
        ["-y", str(store), "-i", str(images), "--offline", "--symbols-dir", str(corpus / "symbols" / "isf"),
         "-c", COMMANDS, str(dump)],
        cache_dir=cache,
        audit_log=log,
    )  # fmt: skip
    assert runner.problems(run, [dump]) == []
    assert run.returncode == 0
    assert run.events, "the audit hook recorded nothing"
    assert _escapes(run, [store, images, cache]) == []
    # the lookups did happen, by bare names (the PDB by its CodeView record's name)
    touched = [e[1] for e in run.events]
    assert any(p.endswith(os.sep + "evil1.pdb") for p in touched), touched[:50]
    # the names are still shown (as data), and the looping lists were cut short with a warning
    lm = run.stdout.split("kd> .reload")[0]
    assert "evil1" in lm
    assert "loops back" in run.stdout or "stopped" in run.stdout, run.stdout[-2000:]


def test_patched_triage_driver_names(env):
    """A triage dump's DUMP_STRING names rewritten to path-like text: looked up nowhere outside the store."""
    corpus, root, cache, store, images = env
    data = bytearray((corpus / "dumps" / "rizin-triage_x64.dmp").read_bytes())
    lay = mutate.dump_layout(bytes(data))
    patched = 0
    for entry, name in zip(lay.drivers, EVIL_NAMES * 4, strict=False):
        off = struct.unpack_from("<I", data, entry)[0]
        n = struct.unpack_from("<I", data, off)[0]
        raw = name.encode("utf-16-le")
        if len(raw) // 2 > n:
            continue
        struct.pack_into("<I", data, off, len(raw) // 2)
        data[off + 4 : off + 4 + len(raw) + 2] = raw + b"\0\0"
        patched += 1
    assert patched >= 5
    dump = write_case(root / "patched-names.dmp", bytes(data))
    run = runner.run_cli(
        ["-y", str(store), "-i", str(images), "--offline", "-c", COMMANDS, str(dump)],
        cache_dir=cache,
        audit_log=root / "audit-patched.jsonl",
    )
    assert runner.problems(run, [dump]) == []
    assert _escapes(run, [store, images, cache]) == []


def test_dump_opened_read_only(env):
    """A 0444 copy opens, and neither the dump nor anything beside it is opened for writing."""
    corpus, root, cache, store, _images = env
    src = corpus / "dumps" / "rizin-triage_x64.dmp"
    dump = write_case(root / "ro.dmp", src.read_bytes())
    assert not os.access(dump, os.W_OK) or os.geteuid() == 0
    run = runner.run_cli(
        ["-y", str(store), "--offline", "--symbols-dir", str(corpus / "symbols" / "isf"), str(dump)],
        cache_dir=cache,
        audit_log=root / "audit-ro.jsonl",
    )
    assert runner.problems(run, [dump]) == []
    assert run.returncode == 0 and "FAILURE_BUCKET_ID" in run.stdout
    opens = [e for e in run.events if e[0] == "open" and os.path.realpath(e[1]) == str(dump.resolve())]
    assert opens, "the dump was never opened?"
    writes = [
        e
        for e in run.events
        if e[0] == "open" and (any(c in str(e[2][0] or "") for c in "wax+") or e[2][1] & 0o3)
    ]
    outside = [e for e in writes if not os.path.realpath(e[1]).startswith(str(cache.resolve()))]
    assert outside == [], outside


def test_write_detector_catches_a_writer(tmp_path):
    """The audit check itself: a run that opens its input for writing is reported."""
    f = tmp_path / "x.dmp"
    f.write_bytes(b"x")
    run = runner.CliRun([str(f)], 0, "", "", 0.1, events=[["open", str(f), ["r+b", os.O_RDWR]]])
    assert runner.write_attempts(run, [f])
    run.events = [["open", str(f), ["rb", os.O_RDONLY]]]
    assert not runner.write_attempts(run, [f])


def test_driver_name_too_long_for_a_file_name(env):
    """A damaged driver-list string (found by tests/fuzz/explore.py, seed 7): a few hundred
    characters of junk, longer in bytes than any file name. Looking it up in the store or an
    image folder is a miss, not an OSError."""
    corpus, root, cache, store, images = env
    data = mutate.apply(
        (corpus / "dumps" / "rizin-triage_x64.dmp").read_bytes(), (("junk", 0x15D4F, 0x1000, 0x323978D1),)
    )
    dump = write_case(root / "long-name.dmp", data)
    run = runner.run_cli(
        ["-y", str(store), "-i", str(images), "--offline", "--symbols-dir", str(corpus / "symbols" / "isf"),
         str(dump)],
        cache_dir=cache,
        audit_log=root / "audit-long-name.jsonl",
    )  # fmt: skip
    assert runner.problems(run, [dump]) == []
    assert run.returncode == 0 and "FAILURE_BUCKET_ID:  AV_amdppm!WriteIoMemRawEx" in run.stdout
