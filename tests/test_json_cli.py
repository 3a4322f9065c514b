"""Every document ``bugcheck --json`` prints follows the schema it names.

Runs the CLI as a user would (a subprocess) over the corpus dumps with a broad
command list, and checks each line with the built-in validator and, when the
package is installed, with ``jsonschema`` too (so the two cannot drift apart).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bugcheck import schemas
from corpus import corpus_file, dump

COMMANDS = (
    "lm; lm v m amdppm; !lmi amdppm; vertarget; .bugcheck; .dumpdebug; !analyze -v; !analyze -show; "
    "!analyze -show 0x50 1 2 3 4; kv; kb; k 3; r; r rip; ? 1+2; .formats 10; .echo hi; ~; db @rsp; "
    "dq @rsp L4; dps @rsp L4; da @rip; u @rip; ub @rip; x amdppm!Write*; ln @rip; .sympath; .reload; "
    "dt nt!_KTRAP_FRAME; dt nt!_KTRAP*; !thread; !process -1 0; !process 0 0; !process 0 7; !irql; !prcb; "
    "!pcr; !running; !running -it; .frame 1; .cxr; .thread; !pte @rsp; .help; nosuchcmd; !nosuch; version; !chkimg amdppm; !chkimg nt; "
    "~0s; ~1s; r; kv"
)

try:
    import jsonschema  # noqa: F401

    VALIDATORS = (False, True)
except ImportError:
    VALIDATORS = (False,)


def _run(dump_path, *options) -> list[dict]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bugcheck.cli",
            "--json",
            "--offline",
            *options,
            "-c",
            COMMANDS,
            str(dump_path),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def _check_all(docs: list[dict]) -> None:
    problems = []
    for doc in docs:
        for use in VALIDATORS:
            try:
                schemas.validate(doc, use_jsonschema=use)
            except schemas.SchemaError as e:
                problems.append(f"{doc.get('command')!r} ({'jsonschema' if use else 'built-in'}): {e}")
    assert not problems, "\n".join(problems)


def _by_command(docs: list[dict]) -> dict[str, dict]:
    return {d.get("command"): d for d in docs}


def test_json_cli_rizin_x64_with_symbols():
    c = corpus_file("MANIFEST.md").parent
    docs = _run(
        dump("rizin-triage_x64.dmp"),
        "-y",
        str(c / "symstore"),
        "--symbols-dir",
        str(c / "symbols" / "isf"),
    )
    # the banner plus one document per command
    assert docs[0]["command"] == "banner"
    assert len(docs) == 1 + len([c for c in COMMANDS.split(";") if c.strip()])
    _check_all(docs)
    got = _by_command(docs)
    # the commands that matter produce their own schema here, not an error
    expect = {
        "lm": "bugcheck.modules/1",
        "!lmi amdppm": "bugcheck.module/1",
        "!analyze -v": "bugcheck.analysis/1",
        "kv": "bugcheck.stack/1",
        "!thread": "bugcheck.thread/1",
        "!process -1 0": "bugcheck.process/1",
        "!process 0 0": "bugcheck.processes/1",
        "dt nt!_KTRAP_FRAME": "bugcheck.dt/1",
        "!running": "bugcheck.running/1",
        "u @rip": "bugcheck.disassembly/1",
        "nosuchcmd": "bugcheck.error/1",
    }
    for cmd, schema in expect.items():
        assert got[cmd]["schema"] == schema, (cmd, got[cmd]["data"])
    assert got["!analyze -v"]["data"]["failure_bucket_id"] == "AV_amdppm!WriteIoMemRawEx"
    amdppm = [m for m in got["lm"]["data"]["modules"] if m["name"] == "amdppm"]
    assert amdppm and amdppm[0]["start"] == 0xFFFFF8048B580000


@pytest.mark.parametrize(
    "name",
    [
        "rizin-triage_x64.dmp",
        "rizin-triage_arm64.dmp",
        "proxyrule-011620-8250-01.dmp",
        "imhex-full-header-only.dmp",
    ],
)
def test_json_cli_without_symbols(name):
    docs = _run(dump(name))
    _check_all(docs)
    assert {d["schema"] for d in docs} >= {"bugcheck.banner/1", "bugcheck.modules/1", "bugcheck.error/1"}


def test_json_cli_ojusha_isf():
    c = corpus_file("MANIFEST.md").parent
    docs = _run(dump("ojusha-100623-4953-01.dmp"), "--symbols-dir", str(c / "symbols" / "isf"))
    _check_all(docs)
    got = _by_command(docs)
    assert got["!process 0 0"]["schema"] == "bugcheck.processes/1"
    assert got["!process 0 0"]["data"]["processes"]


def test_a_dump_that_cannot_be_opened_is_a_json_error_document_too(tmp_path):
    """--json: the one-line error still goes to stderr with exit 2, and stdout carries it as a
    bugcheck.error/1 document, so a pipeline reading JSON sees why nothing else came."""
    from bugcheck import schemas

    zeros = tmp_path / "zeros.dmp"
    zeros.write_bytes(bytes(0x3000))
    proc = subprocess.run(
        [sys.executable, "-m", "bugcheck.cli", "--json", "--offline", str(zeros)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"bugcheck: {zeros}: not a crash dump (file is all zeros)"
    (doc,) = [json.loads(line) for line in proc.stdout.splitlines()]
    schemas.validate(doc)
    assert doc["schema"] == "bugcheck.error/1" and doc["data"]["error"] == proc.stderr.strip()
