"""``r``: the register display and register assignment.

:func:`context_text` is also what ``.trap`` / ``.cxr`` print after installing a
context: the register block, then the symbol line and the current instruction
with its memory operand.
"""

from __future__ import annotations

import re

from bugcheck import disasm
from bugcheck.commands.disassembly import reader, symbolizer
from bugcheck.commands.registry import Result, command
from bugcheck.errors import CommandError
from bugcheck.render import registers as render

_ASSIGN = re.compile(r"^\s*@?([A-Za-z][A-Za-z0-9]*)\s*=\s*(.+)$")


def context_text(session, ctx, trap: bool = False) -> list[str]:
    """The lines ``r`` (or ``.trap`` with ``trap=True``, ``.cxr``) prints for ``ctx``."""
    arch = getattr(ctx, "arch", "x64")
    regs = dict(getattr(ctx, "regs", {}) or {})
    lines = render.register_block(regs, arch, trap)
    if arch in ("x64", "x86", "arm64"):
        lines += disasm.current_instruction_lines(reader(session), regs, arch, symbolizer(session))
    else:
        pc = regs.get("pc")
        name = symbolizer(session)(pc) if pc is not None else None
        if name:
            lines.append(f"{name}:")
    return lines


def _context(session):
    ctx = session.context
    if ctx is None:
        raise CommandError("No register context is available in this dump")
    return ctx


@command("r", "Display or set registers")
def r_command(session, args: str) -> Result:
    ctx = _context(session)
    arch = getattr(ctx, "arch", "x64")
    text = args.strip()
    if not text:
        lines = context_text(session, ctx, trap=False)
        return Result("\n".join(lines), {"arch": arch, "registers": dict(ctx.regs)}, "bugcheck.registers/1")
    m = _ASSIGN.match(text)
    if m:
        name, expr = m.group(1).lower(), m.group(2)
        value = session.evaluate(expr)
        new = ctx.copy() if hasattr(ctx, "copy") else ctx
        try:
            render.set_register(new.regs, name, value, arch)
        except KeyError:
            raise CommandError(f"Bad register error in '{text}'") from None
        if new is not ctx:
            session.set_context(new, getattr(session, "context_reason", "") or "r")
        return Result(
            "",
            {"register": name, "value": render.register_value(new.regs, name, arch)},
            "bugcheck.registers/1",
        )
    out = []
    data = {}
    for name in [n for n in re.split(r"[\s,]+", text) if n]:
        shown = render.format_register(ctx.regs, name, arch)
        if shown is None:
            raise CommandError(f"Bad register error in 'r {text}'")
        out.append(shown)
        data[name.lower().lstrip("@")] = render.register_value(ctx.regs, name, arch)
    return Result(" ".join(out), {"arch": arch, "registers": data}, "bugcheck.registers/1")
