"""The interactive prompt through a pseudo-terminal: prompt, completion, Ctrl-C, paging, q."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from corpus import dump as corpus_dump

pexpect = pytest.importorskip("pexpect")


def spawn(path, tmp_path, rows=200):
    env = dict(
        os.environ, XDG_STATE_HOME=str(tmp_path), HOME=str(tmp_path), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1"
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "bugcheck.cli", "shell", str(path)],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(rows, 200),
    )
    return child


def test_prompt_completion_ctrl_c_and_quit(tmp_path):
    path = corpus_dump("rizin-triage_x64.dmp")
    child = spawn(path, tmp_path)
    child.expect(r"Loading Dump File")
    child.expect(r"(\d+): kd>")
    cpu = child.match.group(1)
    child.sendline("? 0n1234")
    child.expect(r"Evaluate expression: 1234 = 00000000`000004d2")
    child.expect(f"{cpu}: kd>")
    # tab completes the command name
    child.send(".bugc\t")
    child.expect("heck")
    child.send("\r")
    child.expect("Bugcheck code 1000007E")
    child.expect(f"{cpu}: kd>")
    # after the command name, tab completes module and symbol names
    child.send("? amdpp\t")
    child.expect("m!")
    child.send("\x7f\r")  # drop the '!' the completion added: the module name alone is its base
    child.expect("Evaluate expression: -?\\d+ = fffff804`8b580000")
    child.expect(f"{cpu}: kd>")
    # Ctrl-C at the prompt drops the line, not the session
    child.send("db garbage")
    child.sendcontrol("c")
    child.expect(f"{cpu}: kd>")
    child.sendline("vertarget")
    child.expect("Kernel Version 19041")
    child.expect(f"{cpu}: kd>")
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    # history persisted under the (redirected) state dir
    hist = [p for p in tmp_path.rglob("history")]
    assert hist and "vertarget" in hist[0].read_text()


def test_long_output_pages(tmp_path):
    path = corpus_dump("rizin-triage_x64.dmp")
    child = spawn(path, tmp_path, rows=20)
    child.expect(r"(\d+): kd>")
    cpu = child.match.group(1)
    child.sendline("db 0 L1000")
    child.expect("-- More --")
    child.sendline("q")
    child.expect(f"{cpu}: kd>")
    child.sendline("q")
    child.expect(pexpect.EOF)


def test_plain_input_when_not_a_tty():
    path = corpus_dump("proxyrule-011620-8250-01.dmp")
    r = subprocess.run(
        [sys.executable, "-m", "bugcheck.cli", "shell", str(path)],
        input="? 1+1\n.bugcheck\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert "kd> ? 1+1\nEvaluate expression: 2 = 00000000`00000002\n" in r.stdout
    assert "Bugcheck code 1000007E" in r.stdout


def test_interrupted_command_returns_to_prompt(capsys):
    from bugcheck.commands import registry
    from bugcheck.commands.registry import Result
    from bugcheck.commands.session import Session
    from bugcheck.shell import _run_line
    from test_cmd_memory_display import FakeDump

    @registry.command("zzslow", "test command")
    def slow(session, args):
        raise KeyboardInterrupt

    s = Session(FakeDump())
    _run_line(s, "zzslow; ? 1", json_mode=False, use_pager=False)
    assert "Command interrupted" in capsys.readouterr().out
    assert not s.quit_requested
    assert s.run("? 2")[0].text.startswith("Evaluate expression: 2")
    del Result
