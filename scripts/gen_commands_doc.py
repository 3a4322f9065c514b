#!/usr/bin/env python3
"""Write docs/COMMANDS.md from the command registry, with real output from a corpus dump.

The names, aliases and one-line summaries come from the registry itself, so the
reference cannot drift from the code unnoticed: ``--check`` rebuilds the page
(reusing the examples already in it, so no dump is needed) and exits 1 when
the file on disk differs. Syntax lines and "not yet" notes are kept here, next
to the family table, because the registry has no field for them; they were
written by reading each command module, and a command the tables below do not
know still gets a row (its summary, its name as syntax) instead of vanishing.

Examples are the exact stdout of the ``bugcheck`` CLI on
``rizin-triage_x64.dmp`` (the banner before the first prompt dropped, long
outputs cut to the first lines and the cut said below the block).

    python scripts/gen_commands_doc.py            # regenerate (needs the corpus)
    python scripts/gen_commands_doc.py --check    # exit 1 when docs/COMMANDS.md is stale
    python scripts/gen_commands_doc.py --check --examples   # ... or when an example's output changed
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "COMMANDS.md"
EXAMPLE_DUMP = "rizin-triage_x64.dmp"
#: the command line shown in the page (run from the repository root)
SHOWN_CLI = (
    "bugcheck -y ../shared/corpus/symstore --offline --symbols-dir ../shared/corpus/symbols/isf "
    '-c "CMD" ../shared/corpus/dumps/rizin-triage_x64.dmp'
)
EXAMPLE_TIMEOUT = 120

# -- families ----------------------------------------------------------------------------------------

FAMILIES: list[tuple[str, str, str]] = [
    ("target", "Dump and target", "What the dump is: the crash code, the header, the Windows version."),
    ("memory", "Memory", "Virtual and physical memory, strings, pointers with symbols, page tables."),
    ("symbols", "Symbols, modules and types", "Loaded modules, symbol lookup, type layouts, symbol path."),
    ("disasm", "Disassembly and registers", "Registers of the context in effect and the code around them."),
    (
        "stack",
        "Stack and register context",
        "Backtraces, and the commands that choose which context they start from.",
    ),
    ("kernel", "Kernel objects", "Processes, threads and processors, read through the kernel's types."),
    ("analysis", "Analysis", "The automatic crash analysis and the image integrity check."),
    ("meta", "Meta: expressions, logs, help", "Expressions, output, logs, help and leaving."),
    ("other", "Other commands", "Registered commands this page has no family for yet."),
]

#: command module -> family (a command's own entry in FAMILY_OF_COMMAND wins)
FAMILY_OF_MODULE = {
    "target": "target",
    "memory_display": "memory",
    "symbols_cmds": "symbols",
    "dt": "symbols",
    "disassembly": "disasm",
    "registers": "disasm",
    "stack": "stack",
    "context": "stack",
    "process": "kernel",
    "thread": "kernel",
    "processor": "kernel",
    "analyze_show": "analysis",
    "chkimg": "analysis",
    "meta": "meta",
}

FAMILY_OF_COMMAND = {
    "dps": "memory",
    "dqs": "memory",
    "dds": "memory",
    "version": "meta",
    "!analyze": "analysis",
    "~": "stack",
}

# -- syntax (from the argument parsing in each command module) ---------------------------------------

SYNTAX: dict[str, list[str]] = {
    ".bugcheck": [".bugcheck"],
    ".dumpdebug": [".dumpdebug"],
    "vertarget": ["vertarget"],
    "db": ["db [ADDRESS [L COUNT | L?COUNT | END]]"],
    "dw": ["dw [ADDRESS [L COUNT | END]]"],
    "dd": ["dd [ADDRESS [L COUNT | END]]"],
    "dq": ["dq [ADDRESS [L COUNT | END]]"],
    "dc": ["dc [ADDRESS [L COUNT | END]]"],
    "dp": ["dp [ADDRESS [L COUNT | END]]"],
    "dyb": ["dyb [ADDRESS [L COUNT | END]]"],
    "da": ["da [ADDRESS [L MAXCHARS]]"],
    "du": ["du [ADDRESS [L MAXCHARS]]"],
    "dps": ["dps [ADDRESS [L COUNT | END]]"],
    "dqs": ["dqs [ADDRESS [L COUNT | END]]"],
    "dds": ["dds [ADDRESS [L COUNT | END]]"],
    "!db": ["!db [#]PHYSADDR [L COUNT]"],
    "!dw": ["!dw [#]PHYSADDR [L COUNT]"],
    "!dd": ["!dd [#]PHYSADDR [L COUNT]"],
    "!dq": ["!dq [#]PHYSADDR [L COUNT]"],
    "!dc": ["!dc [#]PHYSADDR [L COUNT]"],
    "!pte": ["!pte VA"],
    "!vtop": ["!vtop DIRBASE VA"],
    "lm": ["lm [v|n|t|i|f|l|sm|1m] [m PATTERN] [a ADDRESS]", "lmvm MODULE"],
    "!lmi": ["!lmi MODULE | ADDRESS"],
    "x": ["x MODULE!PATTERN"],
    "ln": ["ln [ADDRESS]"],
    "dt": ["dt [-r[N]] [-v] [MODULE!]TYPE [ADDRESS] [FIELD...] [-y FIELDPREFIX]", "dt MODULE!PATTERN"],
    ".sympath": [".sympath [+] [PATH]"],
    ".symfix": [".symfix[+] [CACHE]"],
    ".reload": [".reload [/f] [MODULE...]"],
    "r": ["r", "r REG[,REG...]", "r REG=EXPR"],
    "u": ["u [ADDRESS] [L COUNT | END]"],
    "ub": ["ub [ADDRESS] [L COUNT]"],
    "uf": ["uf ADDRESS"],
    "k": ["k[b|v|c|p|P|n|f|L...] [FRAMES]", "k[b|v|...] = BASEPTR STACKPTR INSTRUCTIONPTR [FRAMES]"],
    "kd": ["kd [COUNT]"],
    ".kframes": [".kframes [COUNT]"],
    ".trap": [".trap [ADDRESS]"],
    ".cxr": [".cxr [ADDRESS]"],
    ".thread": [".thread [ADDRESS]"],
    ".process": [".process [/i] [/r] [ADDRESS]"],
    ".frame": [".frame [/r] [N]"],
    "~": ["~", "~Ns"],
    "!process": ["!process [ADDRESS | PID | 0 | -1] [FLAGS] [IMAGE]"],
    "!thread": ["!thread [-p] [-t] [ADDRESS] [FLAGS]"],
    "!pcr": ["!pcr [PROCESSOR]"],
    "!prcb": ["!prcb [PROCESSOR]"],
    "!irql": ["!irql [PROCESSOR]"],
    "!running": ["!running [-i] [-t]"],
    "!analyze": ["!analyze [-v]", "!analyze -show [CODE [ARG1 [ARG2 [ARG3 [ARG4]]]]]"],
    "!chkimg": ["!chkimg [-d] [MODULE]"],
    "?": ["? EXPR", "?"],
    ".help": [".help"],
    ".formats": [".formats EXPR"],
    ".echo": [".echo TEXT"],
    ".cls": [".cls"],
    ".logopen": [".logopen [FILE]"],
    ".logappend": [".logappend [FILE]"],
    ".logclose": [".logclose"],
    "q": ["q"],
    "version": ["version"],
}

# -- what a command does not do yet (each read from the module's code) ------------------------------

NOT_YET: dict[str, str] = {
    "db": "Ranges above 16 MB (64 MB with `L?`) are refused with `Range error` (WinDbg allows 256 MB). "
    "The same limit holds for `dw dd dq dc dp dyb`.",
    "da": "Characters outside printable ASCII print as `.`; `du` does the same for UTF-16 characters "
    "above 0x7E (no Unicode output).",
    "dps": "A range is silently cut to 1 MB of memory (0x20000 entries for `dps` on x64). The first use needs an address "
    "(a bare `dps` continues only after an earlier one). Same for `dqs`, `dds`.",
    "!db": "Only the address and `L` count forms: WinDbg's caching options (`[c|uc|wc]`) "
    "are not recognized. Refused on minidumps (no physical memory). Same for `!dw !dd !dq !dc`.",
    "!pte": "Needs page tables, so it is refused on minidumps. On x86 and ARM64 it prints one plain line "
    "per level instead of WinDbg's column layout.",
    "!vtop": "Needs page tables (refused on minidumps). `DIRBASE` 0 means the dump's own page directory.",
    "lm": "The filter options `o k u d e c` are accepted but ignored: every module is listed.",
    "x": "Only the last word (`MODULE!PATTERN`) is used; options such as `/v /t /a /n` are ignored, and "
    "no type information is printed (`<no type information>` / `(<no parameter info>)`).",
    "dt": "Options may stand anywhere on the line, but only `-r[N]`, `-v` and `-y FIELD` (a field-name "
    "prefix) act: `-l FIELD` does not walk the list (the field name is skipped), and `-b -a -n` are "
    "accepted and ignored.",
    ".reload": "Only `/f` acts; other options (`/i /user /n /unl` ...) are ignored, and in "
    "`MODULE=BASE,SIZE` the part after `=` is ignored.",
    "u": "x64, x86 and ARM64 only; at most 0x10000 instructions.",
    "ub": "At most 0x1000 instructions.",
    "uf": "Options (`/c /o /i /D` ...) are ignored.",
    "r": "No register masks (`rM`), no floating-point or vector registers (`r xmm0` is a "
    "`Bad register error`). `r REG=EXPR` changes a copy of the context, never the dump.",
    "k": "`kp`/`kP` print no parameter lists (no private symbols are used); the `L` (source lines) "
    "letter is accepted but changes nothing; frame numbers are always shown. "
    "The count is capped at 0x400 frames.",
    ".trap": "On x86 and ARM64 the trap frame layout comes from kernel symbols (`_KTRAP_FRAME`); "
    "without them the command fails. `.trap` alone resets the context silently.",
    ".cxr": "The display options `/r` and `/w` are skipped.",
    ".thread": "The options `/p /r /w` are ignored. A thread that is not running needs kernel symbols "
    "(`_KTHREAD.KernelStack`) and its saved stack in the dump.",
    ".process": "Records the implicit process only: memory is still read through the crash's page "
    "tables (no address-space switch); `/i` and `/r` print kd's messages and load nothing.",
    ".frame": "No local variables (there is no `dv`).",
    "~": "Only `~` (list processors) and `~Ns`; processor numbers are decimal.",
    "!process": "Options starting with `/` (`/m`, `/s`) are ignored. Flag bits 1 (statistics), "
    "2 (wait states) and 4 (thread list) act. Without the kernel's symbols only the fields the dump's "
    "KDDEBUGGER_DATA64 block locates are shown; the rest print as `?` (same for `!thread`, `!running`, "
    "`!prcb`, `!pcr`, `!irql`).",
    "!thread": "FLAGS as kd documents them: 0x2 the thread's block and wait states, 0x4 (with 0x2) the "
    "stack, default 0x6, without 0x2 only the THREAD line and wait objects; 0x8 and 0x10 are accepted "
    "and ignored (the stack always shows Child-SP and RetAddr; user-mode frames are read through the "
    "current process). `-p` shows the owning process first, `-t` takes a thread id.",
    "!running": "Only `-i` (include idle processors) and `-t` (stacks) act.",
    "!analyze": "Only `-v` (also `-vv`, `-vN`) and `-show` act; other options (`-hang`, `-f`, `-xml` ...) "
    "give the short form.",
    "!chkimg": "Only `-d` (and `-v`) act; `-f` never repairs memory and `-lo`, `-db`, `-ss`, `-p`, `-mmw` "
    "are ignored. Bytes the kernel rewrites at load (the image's dynamic value relocations: import "
    "call optimization, retpoline) are counted apart from errors. With no module it checks `nt`.",
    "?": "MASM expressions only; C++ expressions (`??`) are not supported.",
    ".logopen": "`/t` and `/u` are accepted but ignored (no timestamp in the name; the log is always "
    "UTF-8). Same for `.logappend`.",
    ".cls": "Clears only when stdout is a terminal; logs and pipes get nothing.",
}

# -- examples: (family, command line, lines kept) ------------------------------------------------------

EXAMPLES: list[tuple[str, str, int]] = [
    ("target", ".bugcheck", 10),
    ("target", "vertarget", 10),
    ("target", ".dumpdebug", 10),
    ("memory", "db @rsp L20", 10),
    ("memory", "dq @rsp L4", 10),
    ("memory", "dps @rsp L6", 10),
    ("memory", "!pte @rip", 10),
    ("symbols", "lm", 8),
    ("symbols", "lmvm amdppm", 12),
    ("symbols", "!lmi amdppm", 14),
    ("symbols", "x nt!KeBugCheck*", 6),
    ("symbols", "ln fffff8048b58334c", 10),
    ("symbols", "dt nt!_LIST_ENTRY", 10),
    ("disasm", "r", 12),
    ("disasm", "u @rip L4", 10),
    ("disasm", "ub fffff8048b58334c L3", 10),
    ("disasm", "uf amdppm!WriteIoMemRawEx", 10),
    ("stack", "k 5", 10),
    ("stack", ".cxr @$bug_param4; kb 4", 20),
    ("stack", ".frame 2", 10),
    ("kernel", "!process", 10),
    ("kernel", "!thread", 10),
    ("kernel", "!prcb", 10),
    ("kernel", "!irql", 10),
    ("kernel", "!running", 10),
    ("analysis", "!analyze", 16),
    ("analysis", "!analyze -show 7e", 14),
    ("analysis", "!chkimg amdppm", 10),
    ("meta", "? @$bug_code", 10),
    ("meta", ".formats 0x41", 12),
]

#: a stack-variant summary the registry generates for every k letter combination
_K_VARIANT = re.compile(r"^Stack backtrace \((k\w+)\)$")


@dataclass
class Entry:
    name: str
    aliases: tuple[str, ...]
    summary: str
    module: str


def registry_entries() -> list[Entry]:
    """Every command the package registers; refuses when a command module failed to import."""
    from bugcheck.commands import session as session_mod
    from bugcheck.commands.registry import all_commands

    session_mod.load_commands()
    broken = getattr(session_mod, "_BROKEN_MODULES", {})
    if broken:
        names = ", ".join(f"{k} ({v})" for k, v in sorted(broken.items()))
        raise SystemExit(f"gen_commands_doc: command modules failed to import: {names}")
    out = []
    for spec in all_commands():
        where = getattr(spec.handler, "__module__", "") or ""
        # the package's own commands; tests register throwaway ones into the same table
        if not where.startswith("bugcheck."):
            continue
        out.append(Entry(spec.name, tuple(spec.aliases), spec.summary, where.rsplit(".", 1)[-1]))
    return out


def family_of(e: Entry) -> str:
    return FAMILY_OF_COMMAND.get(e.name) or FAMILY_OF_MODULE.get(e.module, "other")


def _syntax(e: Entry) -> list[str]:
    if e.name in SYNTAX:
        return SYNTAX[e.name]
    # a summary such as "...: lm [v|n] [m PATTERN]" already spells the syntax
    head, sep, tail = e.summary.rpartition(": ")
    if sep and tail.lower().startswith(e.name.lower()):
        return [tail]
    return [e.name]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(text: str) -> str:
    return "`" + _cell(text) + "`" if "`" not in text else "``" + _cell(text) + "``"


# -- the page -------------------------------------------------------------------------------------------


def render(entries: list[Entry], example: Callable[[str, int], str]) -> str:
    """The whole page; ``example(cmd, keep)`` returns one example's markdown block."""
    by_family: dict[str, list[Entry]] = {}
    for e in entries:
        by_family.setdefault(family_of(e), []).append(e)
    total_names = sum(1 + len(e.aliases) for e in entries)
    lines = [
        "# Command reference",
        "",
        "<!-- Generated by scripts/gen_commands_doc.py from the command registry. Do not edit by hand:",
        "     change the code (or the tables in the script) and run the script again. -->",
        "",
        f"bugcheck understands {len(entries)} commands ({total_names} names with aliases) of WinDbg/kd's "
        "language. Each",
        "command prints WinDbg's layout as text, or the same result as JSON with `--json` (see",
        "[JSON.md](JSON.md)). `.help` (or `?` alone) lists them from inside the debugger.",
        "",
        "Conventions in the syntax column: `ADDRESS` and `EXPR` are MASM expressions (hex by default,",
        "`@rsp`, `nt!KeBugCheckEx`, `poi(...)`, `$bug_param1`...); `L COUNT` is a count of units;",
        "`[...]` is optional, `a | b` is a choice. Several commands go on one line separated by `;`.",
        "",
        "Every example below is the exact output of",
        "",
        "```sh",
        SHOWN_CLI,
        "```",
        "",
        "run from the repository root on the corpus minidump `rizin-triage_x64.dmp` (an x64 Windows 10 "
        "triage",
        "dump, bugcheck 0x1000007E in amdppm.sys), with the banner before the first prompt left out.",
        "Long outputs are cut to their first lines; the note under the block says so. A minidump holds",
        "little memory, so some examples show the message a command gives when the dump lacks what it needs.",
        "",
        "**Not yet** notes say what a command does not do in this version, as read from its code.",
        "",
        "## Contents",
        "",
    ]
    families = [f for f in FAMILIES if by_family.get(f[0])]
    for _key, title, _ in families:
        anchor = re.sub(r"[^a-z0-9 -]", "", title.lower()).replace(" ", "-")
        lines.append(f"- [{title}](#{anchor})")
    lines.append("")
    examples_by_family: dict[str, list[tuple[str, int]]] = {}
    for fam, cmd, keep in EXAMPLES:
        examples_by_family.setdefault(fam, []).append((cmd, keep))
    for key, title, blurb in families:
        lines += [f"## {title}", "", blurb, ""]
        lines += _table(by_family[key])
        notes = [(e.name, NOT_YET[e.name]) for e in sorted(by_family[key], key=_order) if e.name in NOT_YET]
        if notes:
            lines += ["", "**Not yet:**", ""]
            lines += [f"- {_code(name)}: {text}" for name, text in notes]
        exs = examples_by_family.get(key, [])
        if exs:
            lines += ["", "### Examples", ""]
            for cmd, keep in exs:
                lines += [example(cmd, keep), ""]
        if lines[-1] != "":
            lines.append("")
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def _order(e: Entry) -> tuple[int, str]:
    """The order of the SYNTAX table (related commands together), unknown commands last by name."""
    keys = list(SYNTAX)
    return (keys.index(e.name) if e.name in SYNTAX else len(keys), e.name)


def _table(entries: list[Entry]) -> list[str]:
    rows = ["| Command | Syntax | What it does |", "|---|---|---|"]
    variants = []
    plain = []
    for e in sorted(entries, key=_order):
        m = _K_VARIANT.match(e.summary)
        if m and m.group(1) == e.name and not e.aliases and e.name not in SYNTAX:
            variants.append(e.name)
        else:
            plain.append(e)
    variant_row = ""
    if variants:
        names = " ".join(_code(n) for n in variants)
        variant_row = (
            f"| {names} | same as `k` | Stack backtrace in that variant's layout "
            "(registry summary: `Stack backtrace (NAME)`) |"
        )
    for e in plain:
        names = " ".join(_code(n) for n in (e.name, *e.aliases))
        syntax = "<br>".join(_code(s) for s in _syntax(e))
        rows.append(f"| {names} | {syntax} | {_cell(e.summary)} |")
        if e.name == "k" and variant_row:
            rows.append(variant_row)
            variant_row = ""
    if variant_row:
        rows.append(variant_row)
    return rows


# -- examples: run the CLI, or reuse the blocks already in the page ------------------------------------

_MARK_OPEN = "<!-- example: {} -->"
_MARK_CLOSE = "<!-- /example -->"


def corpus_root() -> Path | None:
    env = os.environ.get("BUGCHECK_CORPUS")
    root = Path(env) if env else REPO.parent / "shared" / "corpus"
    return root if (root / "dumps" / EXAMPLE_DUMP).is_file() else None


def run_example(corpus: Path, cmd: str) -> str:
    """stdout of the CLI for ``cmd`` from the first prompt on (the banner before it dropped)."""
    argv = [
        sys.executable,
        "-m",
        "bugcheck.cli",
        "-y",
        str(corpus / "symstore"),
        "--offline",
        "--symbols-dir",
        str(corpus / "symbols" / "isf"),
        "-c",
        cmd,
        str(corpus / "dumps" / EXAMPLE_DUMP),
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("BUGCHECK_DEBUG", "_NT_SYMBOL_PATH")}
    env["BUGCHECK_PLAIN_SHELL"] = "1"
    proc = subprocess.run(
        argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"gen_commands_doc: '{cmd}' exited {proc.returncode}: {proc.stderr.strip()}")
    out = proc.stdout.replace(str(corpus), "../shared/corpus")
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^\d+: kd> ", line):
            lines = lines[i:]
            break
    return "\n".join(line.rstrip() for line in lines)


def example_block(cmd: str, keep: int, output: str) -> str:
    lines = output.splitlines()
    shown = lines[:keep]
    block = [_MARK_OPEN.format(cmd), "```text", *shown, "```"]
    if len(lines) > keep:
        block.append(f"*(first {keep} of {len(lines)} lines)*")
    block.append(_MARK_CLOSE)
    return "\n".join(block)


def existing_examples(text: str) -> dict[str, str]:
    """cmd -> the example block as it stands in the page (markers included)."""
    out = {}
    pat = re.compile(r"<!-- example: (.*?) -->\n.*?<!-- /example -->", re.S)
    for m in pat.finditer(text):
        out[m.group(1)] = m.group(0)
    return out


def _report_stale(path: Path, current: str, wanted: str, missing: list[str]) -> None:
    print(f"{path} is stale: run scripts/gen_commands_doc.py", file=sys.stderr)
    if missing:
        print("examples missing: " + ", ".join(missing), file=sys.stderr)
    diff = difflib.unified_diff(
        current.splitlines(), wanted.splitlines(), "on disk", "regenerated", lineterm="", n=1
    )
    for i, line in enumerate(diff):
        if i >= 40:
            print("...", file=sys.stderr)
            break
        print(line, file=sys.stderr)


def run_examples(corpus: Path, jobs: int) -> dict[str, str]:
    cmds = [cmd for _, cmd, _ in EXAMPLES]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return dict(zip(cmds, pool.map(lambda c: run_example(corpus, c), cmds), strict=True))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the page is stale; write nothing")
    ap.add_argument(
        "--examples",
        action="store_true",
        help="with --check: also run the examples again and compare their output (needs the corpus)",
    )
    ap.add_argument("--out", type=Path, default=DOC, help="the page to write or check (docs/COMMANDS.md)")
    ap.add_argument("--jobs", type=int, default=2, help="examples run in parallel")
    args = ap.parse_args(argv)
    entries = registry_entries()
    corpus = corpus_root()
    if (args.examples or not args.check) and corpus is None:
        print(f"gen_commands_doc: corpus not found (needs dumps/{EXAMPLE_DUMP}; set BUGCHECK_CORPUS)")
        return 2

    if args.check:
        if not args.out.is_file():
            print(f"{args.out}: missing; run scripts/gen_commands_doc.py", file=sys.stderr)
            return 1
        current = args.out.read_text(encoding="utf-8")
        missing: list[str] = []
        if args.examples:
            outputs = run_examples(corpus, args.jobs)
            wanted = render(entries, lambda cmd, keep: example_block(cmd, keep, outputs[cmd]))
        else:
            have = existing_examples(current)

            def reuse(cmd: str, keep: int) -> str:
                if cmd not in have:
                    missing.append(cmd)
                    return ""
                return have[cmd]

            wanted = render(entries, reuse)
        if missing or wanted != current:
            _report_stale(args.out, current, wanted, missing)
            return 1
        return 0

    outputs = run_examples(corpus, args.jobs)
    text = render(entries, lambda cmd, keep: example_block(cmd, keep, outputs[cmd]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(entries)} commands, {len(outputs)} examples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
