"""The console script on every corpus dump: banner and .bugcheck against MANIFEST.md's facts."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys

import pytest

from corpus import all_dumps, corpus_file, corpus_root
from corpus import dump as corpus_dump


def bugcheck(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "bugcheck.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def manifest_rows() -> dict[str, dict]:
    """The dumps table of MANIFEST.md, keyed by file name (only single-file rows)."""
    root = corpus_root()
    if root is None:
        return {}
    rows = {}
    for line in (root / "MANIFEST.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 9 or not cells[0].endswith(".dmp"):
            continue
        rows[cells[0]] = {
            "build": int(re.match(r"\d+", cells[3]).group(0)),
            "cpus": int(cells[5]),
            "code": cells[6],
            "params": cells[7],
            "time": cells[8],
        }
    return rows


ROWS = manifest_rows()


@pytest.mark.parametrize("name", sorted(ROWS) or ["(corpus absent)"])
def test_banner_and_bugcheck_match_manifest(name):
    path = corpus_dump(name)
    fact = ROWS[name]
    r = bugcheck("-c", ".bugcheck; vertarget", path)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0] == f"Loading Dump File [{path}]"
    version = next(ln for ln in out if " Kernel Version " in ln)
    mp = f"MP ({fact['cpus']} procs)" if fact["cpus"] > 1 else "UP"
    assert re.fullmatch(
        rf"Windows [\d.]+ Kernel Version {fact['build']} {re.escape(mp)} Free (x64|ARM 64-bit \(AArch64\))",
        version,
    )
    # crash time, to the second (MANIFEST rounds some to the minute)
    when = next(ln for ln in out if ln.startswith("Debug session time: "))
    m = re.match(
        r"Debug session time: (\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d)\.\d{3} (\d{4}) \(UTC \+ 0:00\)$", when
    )
    assert m, when
    t = dt.datetime.strptime(f"{m.group(1)} {m.group(2)}", "%a %b %d %H:%M:%S %Y")
    fmt = "%Y-%m-%d %H:%M:%S" if fact["time"].count(":") == 2 else "%Y-%m-%d %H:%M"
    assert t.strftime(fmt) == fact["time"].removesuffix(" UTC")
    assert re.match(
        r"System Uptime: \d+ days \d+:\d\d:\d\d\.\d{3}$", next(ln for ln in out if "Uptime" in ln)
    )
    code_line = out.index(next(ln for ln in out if ln.startswith("Bugcheck code ")))
    if fact["code"].startswith("0x"):
        assert out[code_line] == f"Bugcheck code {int(fact['code'], 16):08X}"
        params = [int(p, 16) for p in fact["params"].split(",")]
        shown = [int(a.replace("`", ""), 16) for a in out[code_line + 1].split()[1:]]
        assert out[code_line + 1].startswith("Arguments ") and shown == params
    # vertarget repeats the version block
    assert out.count(version) == 2


def test_every_dump_opens_or_fails_in_one_line():
    dumps = all_dumps()
    if not dumps:
        pytest.skip("test corpus not found")
    for path in dumps:
        r = bugcheck("-c", ".bugcheck", path)
        assert "Traceback" not in r.stderr, (path, r.stderr)
        if r.returncode != 0:
            assert r.returncode == 2 and r.stdout == ""
            assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"bugcheck: {path}: "), r.stderr


def test_zero_filled_dump_is_one_line_exit_2():
    path = corpus_file("dumps", "criticalrocket", "111217-47250-01.dmp")
    r = bugcheck(path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.startswith(f"bugcheck: {path}: ") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_truncated_dump_prints_a_warning_line():
    path = corpus_dump("imhex-full-header-only.dmp")
    r = bugcheck("-c", "vertarget", path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "Kernel Complete Dump File: Full address space is available" in lines
    assert any("truncated" in ln.lower() for ln in lines[: lines.index("0: kd> vertarget")])


def test_missing_file_and_no_dump():
    r = bugcheck("/nonexistent/x.dmp")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "bugcheck: /nonexistent/x.dmp: no such file\n"
    r = bugcheck()
    assert r.returncode == 2 and "MEMORY.DMP" in r.stderr and "bugcheck DUMP" in r.stderr


def test_json_lines_parse():
    path = corpus_dump("rizin-triage_x64.dmp")
    r = bugcheck("--json", "-c", ".bugcheck; db @rsp L10; ? 0n1234; nosuchcommand", path)
    assert r.returncode == 0, r.stderr
    docs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [d.get("command") for d in docs] == [
        "banner",
        ".bugcheck",
        "db @rsp L10",
        "? 0n1234",
        "nosuchcommand",
    ]
    assert docs[0]["data"]["build"] == 19041
    assert docs[1]["data"] == {
        "code": 0x1000007E,
        "parameters": [0xFFFFFFFFC0000005, 0xFFFFF8048B58334C, 0xFFFF850429891EE8, 0xFFFF850429891720],
    }
    assert docs[3]["data"]["value"] == 1234
    assert docs[4]["schema"] == "bugcheck.error/1"


def test_kd_switches_and_log(tmp_path):
    path = corpus_dump("proxyrule-011620-8250-01.dmp")
    log = tmp_path / "out.log"
    r = bugcheck("-y", "srv*c:\\sym", "-i", "c:\\img", "-logo", log, "-c", "? 1+1; q; ? 2", "-z", path)
    assert r.returncode == 0, r.stderr
    assert "Symbol search path is: srv*c:\\sym" in r.stdout
    assert "Executable search path is: c:\\img" in r.stdout
    assert "Evaluate expression: 2 = 00000000`00000002" in r.stdout
    assert "= 00000000`00000002\n" in r.stdout and "Evaluate expression: 2 " in r.stdout
    assert "quit:" in r.stdout and r.stdout.count("Evaluate expression") == 1  # nothing after q
    text = log.read_text()
    assert "Loading Dump File" in text and "kd> ? 1+1" in text


def test_brief_prints_only_command_output():
    path = corpus_dump("ojusha-100623-4953-01.dmp")
    r = bugcheck("--brief", "-c", ".bugcheck", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "Bugcheck code 0000001A"


def test_broken_pipe_is_quiet():
    path = corpus_dump("rizin-triage_x64.dmp")
    p = subprocess.run(
        f"{sys.executable} -m bugcheck.cli -c 'db @rsp L10000' '{path}' | head -1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.stdout.startswith("Loading Dump File")
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


def test_ctrl_c_exits_130_without_traceback():
    import signal
    import time

    path = corpus_dump("rizin-triage_x64.dmp")
    p = subprocess.Popen(
        [sys.executable, "-m", "bugcheck.cli", "--brief", "-c", "db 0 L?1000000", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert "Traceback" not in err


def test_memory_range_limits():
    path = corpus_dump("rizin-triage_x64.dmp")
    r = bugcheck("--brief", "-c", "db 0 L2000000; dd 0 L?4000000", path)
    assert r.stdout.splitlines() == ["Range error in '0 L2000000'", "Range too large"]
