"""Debugger housekeeping: ``?``, ``.formats``, ``.echo``, ``.cls``, ``.help``, logs, ``q``, ``version``."""

from __future__ import annotations

import math
import os
import platform
import re
import struct
import sys

import bugcheck
from bugcheck.commands import registry
from bugcheck.commands.expr import evaluate_line, formats_table
from bugcheck.commands.registry import Result, command
from bugcheck.errors import CommandError


def _help(session) -> Result:
    specs = registry.all_commands()
    width = max((len(s.name) for s in specs), default=8)
    lines = []
    for s in specs:
        lines.append(f"{s.name:<{width}}  {s.summary}")
    data = [{"name": s.name, "summary": s.summary, "aliases": list(s.aliases)} for s in specs]
    return Result("\n".join(lines), data, "bugcheck.help/1")


@command("?", "Evaluate a MASM expression (with no argument: list the commands)")
def cmd_evaluate(session, args: str) -> Result:
    if not args.strip():
        return _help(session)
    value = session.evaluate(args.strip())
    text = evaluate_line(value, session.pointer_size)
    return Result(text, {"expression": args.strip(), "value": value}, "bugcheck.evaluate/1")


@command(".help", "List the commands with a one-line summary")
def cmd_help(session, args: str) -> Result:
    return _help(session)


@command(".formats", "Show a value in hex, decimal, octal, binary, chars, time and float")
def cmd_formats(session, args: str) -> Result:
    if not args.strip():
        raise CommandError("Usage: .formats expression")
    value = session.evaluate(args.strip())
    return Result(_msvc_floats(formats_table(value), value), {"value": value}, "bugcheck.formats/1")


def msvc_g(raw: int, bits: int) -> str:
    """A float the way kd's C runtime prints ``%g``: three-digit exponents (``2.66366e+014``),
    ``1.#QNAN`` / ``1.#INF`` with the sign bit shown (published ``.formats`` output)."""
    if bits == 32:
        x = struct.unpack("<f", struct.pack("<I", raw & 0xFFFFFFFF))[0]
        negative = bool(raw >> 31 & 1)
    else:
        x = struct.unpack("<d", struct.pack("<Q", raw & 0xFFFFFFFFFFFFFFFF))[0]
        negative = bool(raw >> 63 & 1)
    if math.isnan(x):
        return ("-" if negative else "") + "1.#QNAN"
    if math.isinf(x):
        return ("-" if negative else "") + "1.#INF"
    return re.sub(r"e([+-])(\d\d)$", r"e\g<1>0\2", f"{x:g}")


def _msvc_floats(table: str, value: int) -> str:
    value &= 0xFFFFFFFFFFFFFFFF
    lines = table.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("  Float:"):
            lines[i] = f"  Float:   low {msvc_g(value, 32)} high {msvc_g(value >> 32, 32)}"
        elif line.startswith("  Double:"):
            lines[i] = f"  Double:  {msvc_g(value, 64)}"
        elif line.startswith("  Time:"):
            # kd reads 32-bit values as a signed time_t and wider ones as a FILETIME:
            # ".formats cr0" (80050031) -> "***** Invalid", ".formats nt!NtCreateFile" ->
            # "***** Invalid FILETIME"
            if 0x80000000 <= value <= 0xFFFFFFFF:
                lines[i] = "  Time:    ***** Invalid"
            elif value > 0xFFFFFFFF and (value >> 63 or "Invalid" in line):
                lines[i] = "  Time:    ***** Invalid FILETIME"
    return "\n".join(lines)


@command(".echo", "Print the rest of the line")
def cmd_echo(session, args: str) -> Result:
    text = args.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1]
    return Result(text, {"text": text})


@command(".cls", "Clear the screen")
def cmd_cls(session, args: str) -> Result:
    # an ANSI clear only when writing to a terminal; logs and pipes get nothing
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    return Result(clear, {"clear": True})


def _open_log(session, args: str, mode: str) -> Result:
    path = args.strip()
    if path.startswith("/t ") or path.startswith("/u "):
        path = path[3:].strip()
    if len(path) >= 2 and path[0] == path[-1] == '"':
        path = path[1:-1]
    if not path:
        path = "dbgeng.log"
    session.close()
    try:
        session.log_file = open(path, mode, encoding="utf-8")  # noqa: SIM115 - lives until .logclose
    except OSError as e:
        raise CommandError(f"Unable to open log file '{path}', {e.strerror}") from e
    session.log_path = path
    return Result(f"Opened log file '{path}'", {"log": path, "append": mode == "a"})


@command(".logopen", "Open a log file (overwrite)")
def cmd_logopen(session, args: str) -> Result:
    return _open_log(session, args, "w")


@command(".logappend", "Open a log file (append)")
def cmd_logappend(session, args: str) -> Result:
    return _open_log(session, args, "a")


@command(".logclose", "Close the log file")
def cmd_logclose(session, args: str) -> Result:
    if session.log_file is None:
        return Result("No log file open", {"log": None})
    path = session.log_path
    session.close()
    session.log_path = None
    return Result(f"Closing open log file {path}", {"log": path})


@command("q", "Quit", aliases=("qq", "qd"))
def cmd_quit(session, args: str) -> Result:
    session.quit_requested = True
    return Result("quit:", {"quit": True})


@command("version", "Show the debugger and target versions")
def cmd_version(session, args: str) -> Result:
    from bugcheck.commands.session import _BROKEN_MODULES
    from bugcheck.commands.target import version_lines

    lines = version_lines(session)
    lines += [
        "",
        f"bugcheck version {bugcheck.__version__} (Python {platform.python_version()}, {sys.platform})",
        f"command modules: {len(registry.all_commands())} commands",
    ]
    for name, why in sorted(_BROKEN_MODULES.items()):
        lines.append(f"command module {name} failed to load: {why}")
    for slot, why in sorted(getattr(session, "slot_errors", {}).items()):
        lines.append(f"{slot}: unavailable ({why})")
    if os.environ.get("_NT_SYMBOL_PATH"):
        lines.append(f"_NT_SYMBOL_PATH={os.environ['_NT_SYMBOL_PATH']}")
    return Result(
        "\n".join(lines), {"version": bugcheck.__version__, "broken_modules": dict(_BROKEN_MODULES)}
    )
