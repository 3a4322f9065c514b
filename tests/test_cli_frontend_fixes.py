"""Front-end behaviours found by the issue audit: each through the real CLI or session on the corpus."""

import json
import subprocess
import sys

from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from bugcheck.commands.session import Session
from bugcheck.dumpfile import open_dump
from corpus import corpus_file, dump


def _sym_args():
    return [
        "-y",
        str(corpus_file("symstore")),
        "--offline",
        "--symbols-dir",
        str(corpus_file("symbols", "isf")),
    ]


def _cli(*args, check=True):
    r = subprocess.run(
        [sys.executable, "-m", "bugcheck.cli", *args], capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in r.stdout + r.stderr
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_json_without_commands_is_one_analysis_object():
    r = _cli("--json", *_sym_args(), str(dump("rizin-triage_x64.dmp")))
    lines = r.stdout.splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["schema"] == "bugcheck.analysis/1"
    assert doc["data"]["failure_bucket_id"] == "AV_amdppm!WriteIoMemRawEx"
    assert doc["target"]["bugcheck_code"] == 0x1000007E


def test_triage_file_changes_the_owner(tmp_path):
    rules = tmp_path / "mine.ini"
    rules.write_text("amdppm!*=AmdPpmOwners\n")
    r = _cli("--triage", str(rules), "--brief", *_sym_args(), str(dump("rizin-triage_x64.dmp")))
    assert "Followup:     AmdPpmOwners" in r.stdout
    r = _cli("--triage", str(tmp_path / "missing.ini"), str(dump("rizin-triage_x64.dmp")), check=False)
    assert r.returncode == 2 and "triage rules file not found" in r.stderr


def test_noisy_symbol_loading_goes_to_stderr():
    quiet = _cli(*_sym_args(), "-c", "ln fffff8048b58334c", str(dump("rizin-triage_x64.dmp")))
    noisy = _cli("-n", *_sym_args(), "-c", "ln fffff8048b58334c", str(dump("rizin-triage_x64.dmp")))
    assert quiet.stdout == noisy.stdout
    assert "DBGHELP: amdppm - pdb symbols" in noisy.stderr and "SYMSRV:" in noisy.stderr
    assert "DBGHELP" not in quiet.stderr


def test_banner_says_which_kernel_table_was_chosen():
    r = _cli(*_sym_args(), "-c", ".echo", str(dump("rizin-triage_x64.dmp")))
    assert "offline symbol table chosen" in r.stdout and "5278AFF86C341677D7D7835C85B7B844-1" in r.stdout


def _session():
    return Session(
        open_dump(dump("rizin-triage_x64.dmp")),
        sympath=str(corpus_file("symstore")),
        offline=True,
        symbols_dir=str(corpus_file("symbols", "isf")),
    )


def test_argumentless_commands_need_their_exact_name():
    s = _session()
    (res,) = s.run("qqq")
    assert "Syntax error" in res.text and not s.quit_requested


def test_lm_shows_the_kernel_by_its_pdb_image_name():
    (res,) = _session().run("lm n m nt")
    assert res.text.splitlines()[1].split()[2:4] == ["nt", "ntkrnlmp.exe"]


def test_dt_completes_types_and_fields():
    from bugcheck.shell import _completer

    c = _completer(_session())

    def done(text):
        return [x.text for x in c.get_completions(Document(text), CompleteEvent())]

    assert "nt!_EPROCESS" in done("dt nt!_EPRO")
    assert "ImageFileName" in done("dt nt!_EPROCESS Image")
    assert done("dt nt!_EPROCESS ffffc08bdce94180 Uniq") == ["UniqueProcessId"]
