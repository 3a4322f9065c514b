"""Every shell line in docs/USAGE.md runs, in a folder laid out as the guide describes.

The guide promises its command lines were run as shown; this keeps the promise
as the code changes. The folder holds a MEMORY.DMP (the corpus minidump re-packed
as a kernel bitmap dump by the project's writer), the minidump itself under
Minidump/, and links to the corpus symbol store, ISF tables and a driver image.
Lines that need Microsoft's symbol server are not run here (tests stay offline).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from corpus import corpus_file

REPO = Path(__file__).resolve().parent.parent
USAGE_MD = REPO / "docs" / "USAGE.md"
KERNEL_TABLE = "5278AFF86C341677D7D7835C85B7B844-1.json.xz"
#: what a line's output must never contain: a crash, or a command the debugger did not understand
BAD_OUTPUT = ("Traceback", "internal error", "Syntax error", "No export", "Bad register", "Couldn't resolve")
LINE_TIMEOUT = 120
#: what the guide says a line shows (line prefix -> text its output must contain)
PROMISED = {
    "bugcheck -y symbols --offline --symbols-dir isf Minidump": "FAILURE_BUCKET_ID:  AV_amdppm!WriteIoMemRawEx",
    "bugcheck --brief -y symbols Minidump": "Probably caused by : amdppm.sys ( amdppm!WriteIoMemRawEx+70 )",
    'echo "r rip; q"': "rip=fffff8047bdf5a80",
    'bugcheck --offline --symbols-dir isf -c "lm m nt': "(symbol table)",
    "bugcheck --offline -i images": "compared with images/amdppm.sys",
    "BUGCHECK_TRIAGE=owners.ini": "AmdDriverTeam",
    "bugcheck --triage owners.ini": "AmdDriverTeam",
    "bugcheck --json -y symbols Minidump": '"schema": "bugcheck.analysis/1"',
    "bugcheck missing.dmp": "exit status 2",
}


def _blocks(lang: str) -> list[tuple[int, str]]:
    """(index, body) of USAGE.md's fenced blocks in ``lang``."""
    text = USAGE_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
    return [(i, body) for i, (lg, body) in enumerate(blocks) if lg == lang]


def _needs_network(line: str) -> bool:
    return "https://" in line or ".symfix" in line


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder with the files the guide's lines name."""
    from bugcheck import open as open_dump
    from bugcheck.dumpfile.writer import repack
    from bugcheck.symbols.isf import load_isf

    mini = corpus_file("dumps", "rizin-triage_x64.dmp")
    isf = corpus_file("symbols", "isf")
    store = corpus_file("symstore")
    image = corpus_file("symstore", "amdppm.sys", "c9c030003b000", "amdppm.sys")
    table = corpus_file("symbols", "isf", "windows", "ntkrnlmp.pdb", KERNEL_TABLE)
    d = tmp_path_factory.mktemp("usage")
    (d / "Minidump").mkdir()
    (d / "images").mkdir()
    (d / "Minidump" / "022121-01.dmp").symlink_to(mini)
    (d / "images" / "amdppm.sys").symlink_to(image)
    (d / "symbols").symlink_to(store, target_is_directory=True)
    (d / "isf").symlink_to(isf, target_is_directory=True)
    repack(open_dump(mini), d / "MEMORY.DMP", "kernel_bitmap", types=load_isf(table))
    kd = _blocks("kd")
    assert kd, "USAGE.md shows no command file"
    (d / "triage.txt").write_text(kd[0][1], encoding="utf-8")
    return d


def _env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "_NT_SYMBOL_PATH",
            "_NT_ALT_SYMBOL_PATH",
            "BUGCHECK_SYMBOLS_DIR",
            "BUGCHECK_TRIAGE",
            "BUGCHECK_DEBUG",
        )
    }
    # the console script next to this interpreter comes first
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _run_block(workdir: Path, body: str) -> list[tuple[str, int, str]]:
    """Run a block's lines in order (later lines may use files earlier ones wrote)."""
    out = []
    for line in body.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or _needs_network(line):
            continue
        p = subprocess.run(
            ["bash", "-c", line],
            cwd=workdir,
            env=_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=LINE_TIMEOUT,
            check=False,
        )
        out.append((line, p.returncode, p.stdout + p.stderr))
    return out


def test_usage_shell_lines_run(workdir):
    blocks = _blocks("sh")
    lines = [ln.strip() for _, body in blocks for ln in body.splitlines() if ln.strip()]
    offline = [ln for ln in lines if not _needs_network(ln)]
    # nearly everything is checked here; only the symbol-server lines are left to a person
    assert len(offline) >= 20 and len(lines) - len(offline) <= 3, (len(lines), len(offline))
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [r for block in pool.map(lambda b: _run_block(workdir, b[1]), blocks) for r in block]
    assert len(results) == len(offline)
    problems = []
    for line, rc, output in results:
        if rc != 0:
            problems.append(f"{line}: exit status {rc}: {output[-300:]}")
        for bad in BAD_OUTPUT:
            if bad in output:
                problems.append(f"{line}: output contains {bad!r}")
        if "bugcheck" in line and not output.strip():
            problems.append(f"{line}: no output")
        for prefix, want in PROMISED.items():
            if line.startswith(prefix) and want not in output:
                problems.append(f"{line}: output lacks {want!r}")
    promised = [p for p in PROMISED if any(line.startswith(p) for line, _, _ in results)]
    assert len(promised) == len(PROMISED), f"lines gone from the guide: {set(PROMISED) - set(promised)}"
    assert not problems, "\n".join(problems)


def _shown_after_commands() -> list[tuple[str, str]]:
    """(shell line, output block) for each ``text`` block right after an ``sh`` block: its last line."""
    text = USAGE_MD.read_text(encoding="utf-8")
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)
    pairs = []
    for (lang, body), (next_lang, shown) in zip(blocks, blocks[1:], strict=False):
        lines = [ln.strip() for ln in body.splitlines() if ln.strip()]
        if lang == "sh" and next_lang == "text" and lines and "bugcheck" in lines[-1]:
            pairs.append((lines[-1], shown))
    return pairs


def _line_pattern(line: str) -> re.Pattern:
    """A shown line as a pattern: ``...`` stands for text left out."""
    return re.compile(".*".join(re.escape(part) for part in line.rstrip().split("...")))


def test_usage_outputs_are_what_bugcheck_prints(workdir):
    """Each output block the guide shows is made of lines the command really prints."""
    pairs = _shown_after_commands()
    assert len(pairs) >= 4, pairs
    problems = []
    for line, shown in pairs:
        if _needs_network(line):
            continue
        (_, rc, output) = _run_block(workdir, line)[0]
        real = [ln.rstrip() for ln in output.splitlines()]
        for want in shown.splitlines():
            if want.strip() in ("", "..."):
                continue
            pat = _line_pattern(want)
            if not any(pat.fullmatch(r) for r in real):
                problems.append(f"{line}: shows {want!r}, which it does not print")
    assert not problems, "\n".join(problems)


def test_exit_status_for_bad_input(workdir):
    """2 for a missing file, a file that is not a dump, and no dump at all (on Linux)."""
    (workdir / "zeros.dmp").write_bytes(bytes(8192))
    for line, why in [
        ("bugcheck missing.dmp", "no such file"),
        ("bugcheck zeros.dmp", "not a crash dump"),
        ("bugcheck", "no dump file given"),
    ]:
        (_, rc, output) = _run_block(workdir, line)[0]
        assert rc == 2, line
        assert why in output, line
