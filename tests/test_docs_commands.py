"""The command reference and the usage guide stay true to the command registry.

docs/COMMANDS.md is generated; a command renamed, added or re-summarized in the
code must show up as a stale page here, not as a silently wrong reference.
docs/USAGE.md is written by hand, so every command its examples use is looked
up in the registry the way the debugger itself parses a command line.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bugcheck.commands import registry
from bugcheck.commands.session import Session, load_commands, split_commands
from corpus import corpus_file

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "gen_commands_doc.py"
COMMANDS_MD = REPO / "docs" / "COMMANDS.md"
USAGE_MD = REPO / "docs" / "USAGE.md"


def _gen():
    """The generator script as a module (registered first: its dataclasses look themselves up)."""
    if "gen_commands_doc" in sys.modules:
        return sys.modules["gen_commands_doc"]
    spec = importlib.util.spec_from_file_location("gen_commands_doc", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_commands_doc"] = mod
    spec.loader.exec_module(mod)
    return mod


def code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def usage_commands(text: str) -> list[str]:
    """Every debugger command in USAGE.md's code blocks.

    ``kd`` blocks are command files (every line is commands); in ``text`` blocks
    the commands follow a ``N: kd>`` prompt; in ``sh`` blocks they are the
    ``-c`` argument of bugcheck, or what ``echo`` pipes into it.
    """
    found: list[str] = []
    for lang, body in code_blocks(text):
        for line in body.splitlines():
            if lang == "kd":
                found += split_commands(line)
            elif lang == "text":
                m = re.match(r"^\d+: kd> (.*)$", line)
                if m:
                    found += split_commands(m.group(1))
            elif lang == "sh" and "bugcheck" in line:
                words = shlex.split(line.replace("\\$", "$"), posix=True)
                for i, w in enumerate(words[:-1]):
                    if w == "-c" or (w == "echo" and "|" in words[i + 1 :]):
                        found += split_commands(words[i + 1])
    return found


def test_commands_md_is_current():
    gen = _gen()
    assert gen.main(["--check"]) == 0, "docs/COMMANDS.md is stale: run python scripts/gen_commands_doc.py"


def test_commands_md_examples_are_current():
    """The examples are still what the CLI prints on the corpus dump (rerun; ~10 s)."""
    corpus_file("dumps", "rizin-triage_x64.dmp")
    gen = _gen()
    assert gen.main(["--check", "--examples"]) == 0, (
        "an example in docs/COMMANDS.md no longer matches the CLI: run python scripts/gen_commands_doc.py"
    )


def test_check_examples_notices_a_changed_output(tmp_path, monkeypatch):
    corpus_file("dumps", "rizin-triage_x64.dmp")
    gen = _gen()
    monkeypatch.setattr(gen, "EXAMPLES", [("target", ".bugcheck", 10)])
    page = tmp_path / "COMMANDS.md"
    assert gen.main(["--out", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert "0: kd> .bugcheck\nBugcheck code 1000007E" in text
    assert gen.main(["--check", "--examples", "--out", str(page)]) == 0
    page.write_text(text.replace("Bugcheck code 1000007E", "Bugcheck code 0000007E"), encoding="utf-8")
    assert gen.main(["--check", "--out", str(page)]) == 0  # the registry part alone is unchanged
    assert gen.main(["--check", "--examples", "--out", str(page)]) == 1


def test_commands_md_names_every_registered_command():
    load_commands()
    text = COMMANDS_MD.read_text(encoding="utf-8")
    specs = [s for s in registry.all_commands() if s.handler.__module__.startswith("bugcheck.")]
    assert len(specs) > 20
    for spec in specs:
        for name in (spec.name, *spec.aliases):
            assert f"`{name}`" in text, f"{name} missing from docs/COMMANDS.md"


def test_check_notices_an_edited_page(tmp_path):
    gen = _gen()
    copy = tmp_path / "COMMANDS.md"
    text = COMMANDS_MD.read_text(encoding="utf-8")
    copy.write_text(text.replace("Display the crash dump header", "Display the header"), encoding="utf-8")
    assert gen.main(["--check", "--out", str(copy)]) == 1
    assert gen.main(["--check", "--out", str(tmp_path / "absent.md")]) == 1


def test_check_notices_a_new_command():
    gen = _gen()
    load_commands()
    name = "zzdocprobe"

    def probe(session, args):
        return registry.Result("")

    probe.__module__ = "bugcheck.commands.zzdocprobe"  # as if a command module of the package added it
    registry.command(name, "A command added after the page was written")(probe)
    try:
        assert gen.main(["--check"]) == 1
    finally:
        registry._COMMANDS.pop(name, None)
    assert gen.main(["--check"]) == 0


def test_commands_registered_by_tests_are_not_documented():
    gen = _gen()
    load_commands()
    name = "zzdoctestonly"
    registry.command(name, "A test's throwaway command")(lambda s, a: registry.Result(""))
    try:
        assert name not in [e.name for e in gen.registry_entries()]
        assert gen.main(["--check"]) == 0
    finally:
        registry._COMMANDS.pop(name, None)


def test_check_notices_a_changed_summary():
    gen = _gen()
    load_commands()
    spec = registry.lookup(".dumpdebug")
    old = spec.summary
    spec.summary = old + " (changed)"
    try:
        assert gen.main(["--check"]) == 1
    finally:
        spec.summary = old


def test_usage_commands_exist_in_the_registry():
    load_commands()
    session = Session(SimpleNamespace())
    commands = usage_commands(USAGE_MD.read_text(encoding="utf-8"))
    # the guide shows at least the analysis, stack, module and symbol commands
    assert len(commands) >= 15, commands
    unknown = [c for c in commands if session.find_command(c)[0] is None]
    assert not unknown, f"docs/USAGE.md uses commands the registry does not have: {unknown}"


@pytest.mark.parametrize(
    "line, want",
    [
        ('bugcheck -c "!analyze -v; lm; kv" MEMORY.DMP', ["!analyze -v", "lm", "kv"]),
        ('echo "r rip; q" | bugcheck shell X', ["r rip", "q"]),
        ('bugcheck -c "\\$\\$ note; lmvm nt" X', ["lmvm nt"]),
    ],
)
def test_usage_parser_reads_sh_lines(line, want):
    assert usage_commands(f"```sh\n{line}\n```\n") == want


def test_usage_parser_reads_prompts_and_command_files():
    text = "```text\n0: kd> kb 3\nnoise\n```\n```kd\n$$ c\n.cxr @$bug_param4\nq\n```\n"
    assert usage_commands(text) == ["kb 3", ".cxr @$bug_param4", "q"]


def test_an_unknown_usage_command_is_caught():
    load_commands()
    session = Session(SimpleNamespace())
    assert session.find_command("!nosuchext 1")[0] is None
    assert session.find_command("kv 5")[0] is not None
