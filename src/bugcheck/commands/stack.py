"""The ``k`` family: stack backtraces in WinDbg's x64/x86/ARM64 layouts.

``k`` walks from the register context in effect (crash context, or what
``.trap``/``.cxr``/``.thread``/``~Ns`` selected). Variants:

- ``k``/``kn``/``kL``/``kp``/``kP``: Child-SP, RetAddr, Call Site (no private
  symbols here, so ``kp`` has no parameter lists to add);
- ``kb``: plus the four "Args to Child";
- ``kv``: ``kb`` plus ``(TrapFrame @ ...)`` annotations;
- ``kc``: call sites only; ``kf``: plus the stack bytes each frame uses;
- a trailing number is the frame count (in the default radix, as WinDbg reads it).

:func:`stack_text` gives ``!analyze``'s STACK_TEXT lines for the same frames.
"""

from __future__ import annotations

import re

from bugcheck.commands.registry import Result, command
from bugcheck.errors import CommandError
from bugcheck.stack.frames import StackWalk
from bugcheck.stack.walker import walk
from bugcheck.symbols.resolver import hex_addr

#: WinDbg's default ``k`` depth (``.kframes`` shows and changes it per session): 256 frames in
#: current releases ("Default stack trace depth is 0n256 frames"); older kd used 20
DEFAULT_FRAMES = 0x100
MAX_FRAMES = 0x400
LAST_SET_CONTEXT = "*** Stack trace for last set context - .thread/.cxr resets it"

_ALL = ["kb", "kv", "kn", "kc", "kp", "kl", "kf"]
_COMBOS = [
    a + b
    for a in ("kb", "kv", "kp", "kc", "kf", "k")
    for b in ("n", "l", "nl", "ln", "f", "fn", "nf")
    if a + b not in _ALL and a + b != "k"
]


def _hex(v: int | None, ps: int) -> str:
    # unreadable stack arguments print as zeros, as dbgeng's walker leaves them
    return hex_addr(0 if v is None else v, ps)


def session_walk(session, max_frames: int = 256, context=None) -> StackWalk:
    """The stack from the session's current context (or ``context``)."""
    ctx = context if context is not None else session.context
    if ctx is None:
        raise CommandError("No register context is available in this dump")
    target = session.slot("target")
    store = None
    if target is not None:
        try:
            store = target.store
        except Exception:  # a broken symbol path must not stop a stack walk
            store = None
    reason = getattr(session, "context_reason", "") if context is None else ""
    first = {"cxr": "context_record", "trap": "trap_frame"}.get(reason, "context")
    return walk(
        session.dump, session.symbols, session.kernel, ctx, max_frames, store=store, first_method=first
    )


def _call_site(f, verbose: bool) -> str:
    text = f.symbol
    if verbose and f.trap_frame is not None:
        text += f" (TrapFrame @ {_hex(f.trap_frame, 8)})"
    return text


def render(
    sw: StackWalk,
    ps: int,
    *,
    args: bool,
    verbose: bool,
    numbers: bool = True,
    only_calls: bool = False,
    memory: bool = False,
) -> list[str]:
    """The backtrace lines (header first) in WinDbg's layout."""
    if ps == 4:
        return _render_x86(sw, args=args, numbers=numbers, only_calls=only_calls, verbose=verbose)
    lines: list[str] = []
    num = " # " if numbers else ""
    w = 17 if ps == 8 else 8
    if only_calls:
        lines.append(f"{num}Call Site")
    else:
        sp_head = "Child-SP" if ps == 8 else "ChildEBP"
        mem = "  Memory  " if memory else ""
        head = f"{num}{mem}{sp_head:<{w + 1}}{'RetAddr':<{w + 5 if ps == 8 else w + 1}}"
        if args:
            head += ": " + f"{'Args to Child':<{4 * w + 4}}" + ": Call Site"
        else:
            head += "Call Site"
        lines.append(head)
    for i, f in enumerate(sw.frames):
        if sw.first_scan is not None and i == sw.first_scan:
            lines.append("WARNING: Stack unwind information not available. Following frames may be wrong.")
        prefix = f"{f.number:02x} " if numbers else ""
        if only_calls:
            lines.append(prefix + f.symbol)
            continue
        if memory:
            prev = sw.frames[i - 1] if i else None
            used = f"{f.sp - prev.sp:x}" if prev is not None and f.sp >= prev.sp else ""
            prefix += f"{used:>8}  "
        ret = _hex(f.return_address, ps)
        row = f"{prefix}{_hex(f.sp, ps)} {ret}" + ("     " if ps == 8 else " ")
        if args:
            row += ": " + " ".join(_hex(a, ps) for a in f.args[:4]) + " : "
        row += _call_site(f, verbose)
        lines.append(row)
    return lines


def _render_x86(
    sw: StackWalk, *, args: bool, numbers: bool, only_calls: bool, verbose: bool = False
) -> list[str]:
    """x86 layout: ChildEBP (the frame's ebp), RetAddr and three Args to Child; ``kv`` adds what
    the frame's FPO record says."""
    num = " # " if numbers else ""
    if only_calls:
        lines = [f"{num}Call Site"]
    else:
        lines = [f"{num}ChildEBP RetAddr  " + ("Args to Child              " if args else "")]
    for i, f in enumerate(sw.frames):
        if sw.first_scan is not None and i == sw.first_scan:
            lines.append("WARNING: Stack unwind information not available. Following frames may be wrong.")
        prefix = f"{f.number:02x} " if numbers else ""
        if only_calls:
            lines.append(prefix + f.symbol)
            continue
        ebp = f.fp if f.fp is not None else f.sp
        row = f"{prefix}{_hex(ebp, 4)} {_hex(f.return_address, 4)} "
        if args:
            row += " ".join(_hex(a, 4) for a in f.args[:3]) + " "
        site = f.symbol
        if verbose and f.fpo:
            site += f" ({f.fpo})"
        lines.append(row + site)
    return lines


_COUNT = re.compile(r"^\s*(\S.*)?$")


def _k(session, name: str, argtext: str) -> Result:
    letters = name[1:].lower()
    count = getattr(session, "kframes", None) or DEFAULT_FRAMES
    text = argtext.strip()
    context = None
    if text.startswith("="):
        context, text = _explicit_context(session, text[1:])
    if text:
        try:
            count = session.evaluate(text)
        except Exception as e:
            raise CommandError(f"Syntax error in '{name} {text}'") from e
        if count <= 0:
            raise CommandError(f"Syntax error in '{name} {text}'")
        count = min(count, MAX_FRAMES)
    sw = session_walk(session, count + 1, context)
    if len(sw.frames) > count:
        # walked one more so the last shown frame still has its return address and args
        del sw.frames[count:]
    ps = session.pointer_size
    lines = []
    if getattr(session, "context_reason", "") and context is None:
        lines.append(LAST_SET_CONTEXT)
    lines += render(
        sw,
        ps,
        args="b" in letters or "v" in letters,
        verbose="v" in letters,
        only_calls="c" in letters,
        memory="f" in letters,
    )
    if not sw.frames:
        lines += sw.warnings or ["No stack frames: the register context is not available"]
    data = {
        "command": name,
        "context": getattr(session, "context_reason", "") or "default",
        "frames": [f.to_dict() for f in sw.frames],
        "warnings": sw.warnings,
    }
    return Result("\n".join(lines), data, "bugcheck.stack/1")


def _explicit_context(session, text: str):
    """``k = BasePtr StackPtr InstructionPtr [FrameCount]``: a context from three values."""
    from bugcheck.dumpfile.context import Context

    values = []
    rest = text
    for _ in range(3):
        rest = rest.strip()
        if not rest:
            break
        v, end = session.evaluate_prefix(rest)
        values.append(v)
        rest = rest[end:]
    if len(values) != 3:
        raise CommandError("k = needs BasePtr StackPtr InstructionPtr")
    base, stack, ip = values
    names = {"x64": ("rbp", "rsp", "rip"), "x86": ("ebp", "esp", "eip"), "arm64": ("fp", "sp", "pc")}
    bp_name, sp_name, ip_name = names.get(session.machine, names["x64"])
    return Context(session.machine, {bp_name: base, sp_name: stack, ip_name: ip}), rest.strip()


def _make(name: str):
    def handler(session, args: str) -> Result:
        return _k(session, name, args)

    return handler


@command("k", "Display the stack backtrace (kb kv kn kc kp kL kf: variants)", aliases=())
def k_command(session, args: str) -> Result:
    return _k(session, "k", args)


for _n in [*_ALL, *_COMBOS, "kP"]:
    command(_n, f"Stack backtrace ({_n})")(_make(_n))


@command(".kframes", "Show or set the default number of frames k commands print")
def kframes_command(session, args: str) -> Result:
    text = args.strip()
    if text:
        n = session.evaluate(text)
        if not 0 < n <= 0xFFFF:
            raise CommandError(f"Invalid frame count {text}")
        session.kframes = n
    n = getattr(session, "kframes", None) or DEFAULT_FRAMES
    return Result(f"Default stack trace depth is 0n{n} frames", {"frames": n})


@command("kd", "Display raw stack words with symbols, from the stack pointer: kd [count]")
def kd_command(session, args: str) -> Result:
    """WinDbg's ``kd`` is not a backtrace: it lists the stack's pointer-sized words (like ``dps``)."""
    from bugcheck.commands.symbols_cmds import dps

    ctx = session.context
    regs = ctx.regs if ctx is not None else {}
    sp = regs.get("rsp", regs.get("esp", regs.get("sp")))
    if sp is None:
        return Result("Unable to get the stack pointer", {"entries": []}, schema="bugcheck.pointers/1")
    count = args.strip() or "0x40"
    return dps(session, f"{sp:#x} L{count}")
