"""``!analyze``: the command front end, and ``!analyze -show`` itself.

``-show CODE [ARG1 [ARG2 [ARG3 [ARG4]]]]`` needs no dump analysis: it prints
the catalog's name, description and argument meanings for any code (missing
arguments count as 0, so ``!analyze -show 9f 3`` explains subtype 3), or for
the dump's own bugcheck when no code is given. Like WinDbg, an undocumented
code prints ``Unknown bugcheck code (...)`` and the raw arguments.

Every other form runs the analysis engine (``bugcheck.analysis.analyze``):
bare ``!analyze`` prints kd's short form, ``-v`` the full report.
"""

from __future__ import annotations

import shlex

from bugcheck.analysis.analyze import SCHEMA as ANALYSIS_SCHEMA
from bugcheck.analysis.analyze import analyze
from bugcheck.analysis.catalog import bugcheck_header, format_arg, lookup
from bugcheck.commands import registry
from bugcheck.commands.registry import Result
from bugcheck.errors import BugcheckError, CommandError, MemoryNotPresent

SCHEMA = "bugcheck.bugcheck_show/1"


def _number(session, text: str) -> int:
    evaluate = getattr(session, "evaluate", None)
    if evaluate is not None:
        try:
            return int(evaluate(text)) & 0xFFFFFFFFFFFFFFFF
        except BugcheckError:
            pass
    t = text.strip().replace("`", "")
    try:
        return int(t[2:] if t.lower().startswith("0x") else t, 16)
    except ValueError:
        raise CommandError(f"Couldn't resolve error at '{text}'") from None


def show_text(code: int, args: list[int], pointer_size: int = 8) -> str:
    """The ``-show`` layout: a blank line, the name and description, a blank line, the arguments."""
    lines = ["", *bugcheck_header(code), "", "Arguments:"]
    info = lookup(code)
    meanings = info.arg_meanings(args) if info is not None else [""] * 4
    for i, (value, meaning) in enumerate(zip(args, meanings, strict=True), start=1):
        lines += format_arg(i, value, meaning, pointer_size)
    return "\n".join(lines) + "\n"


def show(session, args: str) -> Result:
    """``!analyze -show [CODE [ARGS...]]`` (``args`` is the text after ``-show``)."""
    words = args.split()
    dump = getattr(session, "dump", None)
    if not words:
        if dump is None or getattr(dump, "bugcheck_code", None) is None:
            raise CommandError("!analyze -show: no bugcheck code given and no dump loaded")
        code = int(dump.bugcheck_code)
        values = [int(v) for v in (dump.bugcheck_parameters or ())]
    else:
        if len(words) > 5:
            raise CommandError("!analyze -show takes a bugcheck code and at most four arguments")
        code = _number(session, words[0]) & 0xFFFFFFFF
        values = [_number(session, w) for w in words[1:]]
    values = (values + [0, 0, 0, 0])[:4]
    pointer_size = getattr(session, "pointer_size", 8) or 8
    if pointer_size == 4:
        values = [v & 0xFFFFFFFF for v in values]
    info = lookup(code)
    data = {
        "code": code,
        "known": info is not None,
        "name": info.name if info else None,
        "description": info.description if info else None,
        "args": values,
        "arg_meanings": info.arg_meanings(values) if info else ["", "", "", ""],
    }
    return Result(show_text(code, values, pointer_size), data, SCHEMA)


def analyze_command(session, args: str) -> Result:
    try:
        words = shlex.split(args, posix=True)
    except ValueError:
        words = args.split()
    if words and words[0].lower() == "-show":
        rest = args.split(None, 1)
        return show(session, rest[1] if len(rest) > 1 else "")
    # bare `!analyze` (or -brief) is kd's short form; -v, -vv... the full one
    lowered = args.lower().split()
    verbose = any(w.startswith("-v") for w in lowered) and not any(
        w in ("-brief", "--brief") for w in lowered
    )
    try:
        result = analyze(session)
    except MemoryNotPresent as e:
        return Result(
            f"!analyze: the dump lacks memory the analysis needs ({e})", {"error": str(e)}, ANALYSIS_SCHEMA
        )
    return Result(result.text(verbose=verbose), result.to_dict(), ANALYSIS_SCHEMA)


registry.command("!analyze", "Analyze the bugcheck (-v verbose; -show CODE [ARGS] explains a code)")(
    analyze_command
)
