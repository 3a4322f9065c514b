"""Session: command-line splitting, dispatch of glued arguments, errors as kd prints them."""

from __future__ import annotations

import pytest

from bugcheck.commands import registry
from bugcheck.commands.registry import Result
from bugcheck.commands.session import Session, register_provider, split_commands
from test_cmd_memory_display import BASE, FakeDump


@pytest.mark.parametrize(
    "line,parts",
    [
        ("kv", ["kv"]),
        ("r; kv ;db @rsp", ["r", "kv", "db @rsp"]),
        ('.echo "a;b"; r', ['.echo "a;b"', "r"]),
        ("$$ a comment; r", ["r"]),
        ("r; $$ note; kv", ["r", "kv"]),
        ("* everything; here", []),
        ("  ;; ", []),
    ],
)
def test_split(line, parts):
    assert split_commands(line) == parts


@pytest.fixture
def s():
    return Session(FakeDump())


def test_glued_arguments_reach_the_longest_registered_name(s):
    seen = []

    @registry.command("zzk", "test command")
    def zzk(session, args):
        seen.append(("zzk", args))
        return Result("ok")

    @registry.command("zzkv", "test command")
    def zzkv(session, args):
        seen.append(("zzkv", args))
        return Result("ok")

    s.run("zzk 5; zzkv; zzkb 3; zzkv7")
    assert seen == [("zzk", "5"), ("zzkv", ""), ("zzk", "b 3"), ("zzkv", "7")]


def test_unknown_commands(s):
    (r,) = s.run("!nosuchext 1")
    assert r.text == "No export nosuchext found"
    (r,) = s.run("frobnicate")
    assert r.text == "       ^ Syntax error in 'frobnicate'"
    (r,) = s.run("? nosuchsym")
    assert r.text == "Couldn't resolve error at 'nosuchsym'"


def test_internal_errors_become_one_line(s):
    @registry.command("zzboom", "test command")
    def boom(session, args):
        raise ValueError("kaput")

    s.raise_errors = False
    (r,) = s.run("zzboom")
    assert r.text == "bugcheck: internal error in 'zzboom': ValueError: kaput"
    s.raise_errors = True
    with pytest.raises(ValueError):
        s.run("zzboom")


def test_quit_stops_the_line(s):
    results = s.run("? 1; q; ? 2")
    assert [r.text for r in results] == ["Evaluate expression: 1 = 00000000`00000001", "quit:"]
    assert s.quit_requested


def test_context_set_and_reset(s):
    from bugcheck.dumpfile.context import Context

    assert s.evaluate("@rsp") == BASE + 0x10
    s.set_context(Context("x64", {"rsp": 0x1234, "rip": 0x5678}), ".trap")
    assert s.evaluate("@rsp") == 0x1234 and s.evaluate("$ip") == 0x5678
    assert s.context_reason == ".trap"
    s.reset_context()
    assert s.evaluate("$csp") == BASE + 0x10


def test_pseudo_registers(s):
    assert s.evaluate("$bug_code") == 0xD1
    assert s.evaluate("@$bug_param2") == 2
    assert s.evaluate("$ptrsize") == 8
    assert s.evaluate("$ra") == int.from_bytes(s.read_virtual(BASE + 0x10, 8), "little")
    assert s.evaluate("@esp") == (BASE + 0x10) & 0xFFFFFFFF
    s.pseudo_hooks["$thread"] = lambda sess: 0xFFFF9189527E9080
    assert s.evaluate("@$thread") == 0xFFFF9189527E9080
    with pytest.raises(Exception, match="Bad register"):
        s.evaluate("$peb")


def test_symbols_provider_and_fallback(s):
    from bugcheck.commands.session import PlainSymbols

    plain = PlainSymbols(s)  # what a session uses when no layer provides symbols
    assert plain.resolve("nt") is None
    assert plain.format_address(BASE) == "0xfffff800`62600000"

    class Resolver:
        def resolve(self, name):
            return {"nt!KiPageFault": 0xFFFFF80062A05000}.get(name)

        def format_address(self, a):
            return "nt!Thing"

    from bugcheck.commands import session as session_mod

    previous = session_mod._PROVIDERS.get("symbols")
    register_provider("symbols", lambda session: Resolver())
    try:
        s2 = Session(FakeDump())
        assert s2.evaluate("nt!KiPageFault+0x469") == 0xFFFFF80062A05469
        assert s2.format_address(1) == "nt!Thing"
    finally:
        if previous is None:
            session_mod._PROVIDERS.pop("symbols", None)
        else:
            session_mod._PROVIDERS["symbols"] = previous


def test_help_lists_registered_commands(s):
    (r,) = s.run(".help")
    names = [ln.split()[0] for ln in r.text.splitlines()]
    for needed in ("db", "dd", "dq", "da", "du", ".bugcheck", "vertarget", ".formats", "q", "!pte"):
        assert needed in names
    (r2,) = s.run("?")
    assert r2.text == r.text


def test_echo_formats_and_log(s, tmp_path):
    log = tmp_path / "x.log"
    out = [r.text for r in s.run(f'.echo "hello; world"; .logopen {log}; .formats 0n10; .logclose')]
    assert out[0] == "hello; world"
    assert out[1] == f"Opened log file '{log}'"
    assert "  Decimal: 10" in out[2]
    assert out[3] == f"Closing open log file {log}"
    text = log.read_text()
    assert "0: kd> .formats 0n10" in text and "  Hex:     00000000`0000000a" in text


def test_kernel_pseudo_registers_on_triage_dump():
    import bugcheck
    from corpus import dump as corpus_dump

    d = bugcheck.open(corpus_dump("rizin-triage_x64.dmp"))
    s = Session(d)
    assert s.evaluate("$thread") == d.triage.thread_address
    assert s.evaluate("@$proc") == d.triage.process_address
    assert s.evaluate("$prcb") == d.triage.prcb_address


def test_default_dump_on_windows(tmp_path, monkeypatch):
    import os
    import time

    from bugcheck import cli

    monkeypatch.setenv("SystemRoot", str(tmp_path))
    assert cli.default_dump(windows=True)[0] is None
    (tmp_path / "Minidump").mkdir()
    old, new = tmp_path / "Minidump" / "a.dmp", tmp_path / "Minidump" / "b.dmp"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    t = time.time()
    os.utime(old, (t, t))
    os.utime(new, (t - 100, t - 100))
    path, why = cli.default_dump(windows=True)
    assert path == old and "newest minidump" in why
    (tmp_path / "MEMORY.DMP").write_bytes(b"z")
    assert cli.default_dump(windows=True)[0] == tmp_path / "MEMORY.DMP"


@pytest.mark.parametrize(
    "argv,out,interactive",
    [
        (["-i", "d.dmp"], [], True),
        (["-i", "d.dmp", "-c", "kv"], [], True),
        (["-c", "kv", "-i", "d.dmp"], [], True),
        (["shell", "d.dmp"], ["d.dmp"], True),
        (["-i", "c:\\img", "d.dmp"], ["-i", "c:\\img", "d.dmp"], False),
        (["-i", "c:\\img", "-z", "d.dmp"], ["-i", "c:\\img", "-z", "d.dmp"], False),
        (["-logo", "x.log", "-loga", "y", "d.dmp"], ["--logo", "x.log", "--loga", "y", "d.dmp"], False),
    ],
)
def test_preparse(argv, out, interactive):
    from bugcheck.cli import preparse

    got, inter = preparse(argv)
    assert inter == interactive
    if "-i" in argv and interactive:
        assert got == [a for a in argv if a != "-i"]
    else:
        assert got == out


def test_other_processor_of_a_large_triage_dump_uses_its_prcb_context():
    import bugcheck
    from corpus import dump as corpus_dump

    d = bugcheck.open(corpus_dump("noamhuang-033124-5078-01.dmp"))
    s = Session(d)
    crash_cpu = d.crash_processor
    assert s.prompt == f"{crash_cpu}: kd> "
    assert s.evaluate("@rip") == d.crash_context.pc
    other = 0 if crash_cpu != 0 else 1
    s.set_processor(other)
    assert s.prompt == f"{other}: kd> "
    ctx = s.context
    assert ctx is not d.crash_context and ctx.pc and ctx.pc != d.crash_context.pc
    assert s.processor_context(other) is ctx
    s.set_processor(crash_cpu)
    assert s.context is d.crash_context


def test_sub_registers(s):
    from bugcheck.dumpfile.context import Context

    s.set_context(Context("x64", {"rax": 0x1122334455667788, "r8": 0xAABBCCDDEEFF0011}))
    assert [s.evaluate(f"@{r}") for r in ("eax", "ax", "al", "ah", "r8d", "r8w", "r8b")] == [
        0x55667788,
        0x7788,
        0x88,
        0x77,
        0xEEFF0011,
        0x0011,
        0x11,
    ]
    s.set_context(Context("x86", {"eax": 0x11223344, "esp": 0x8015_2F00}))
    assert [s.evaluate(f"@{r}") for r in ("ax", "al", "ah", "sp")] == [0x3344, 0x44, 0x33, 0x2F00]
    s.set_context(Context("arm64", {"x3": 0x1_0000_0005, "fp": 0x2_0000_0007}))
    assert (s.evaluate("@w3"), s.evaluate("@w29"), s.evaluate("@x3")) == (5, 7, 0x1_0000_0005)


def test_failing_provider_falls_back(s):
    from bugcheck.commands import session as session_mod
    from bugcheck.errors import SymbolError

    previous = session_mod._PROVIDERS.get("symbols")

    def broken(session):
        raise SymbolError("no kernel symbols")

    register_provider("symbols", broken)
    try:
        s2 = Session(FakeDump())
        assert s2.format_address(BASE) == "0xfffff800`62600000"
        assert s2.slot_errors == {"symbols": "SymbolError: no kernel symbols"}
        assert "symbols: unavailable (SymbolError: no kernel symbols)" in s2.run("version")[0].text
    finally:
        if previous is None:
            session_mod._PROVIDERS.pop("symbols", None)
        else:
            session_mod._PROVIDERS["symbols"] = previous
