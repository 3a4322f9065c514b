"""``dt``: display a type, or memory laid out as one (adapter over :mod:`bugcheck.render.typedump`).

Types come from ``session.find_type(module, name)`` when the session offers it,
else from the resolver's ``find_type("mod!name")`` (PDB or ISF, whichever the
module loaded).
"""

from __future__ import annotations

import re

from bugcheck.commands.disassembly import reader, symbolizer
from bugcheck.commands.registry import Result, command
from bugcheck.errors import BugcheckError, CommandError
from bugcheck.render import typedump


def _resolver(session):
    symbols = session.symbols
    return getattr(symbols, "_resolver", None) or symbols


def find_type(session, name: str):
    """``(module name, Type)`` for ``nt!_EPROCESS`` / ``_EPROCESS``, or None."""
    module, _, tname = name.rpartition("!")
    fn = getattr(session, "find_type", None)
    if callable(fn):
        try:
            got = fn(module or None, tname)
        except (BugcheckError, TypeError):
            got = None
        if got is not None:
            if isinstance(got, tuple):
                mod, t = got
                return getattr(mod, "name", mod) or module, t
            return module or "nt", got
    res = _resolver(session)
    fn = getattr(res, "find_type", None)
    if callable(fn):
        try:
            got = fn(name)
        except BugcheckError:
            got = None
        if got is not None:
            mod, t = got
            return getattr(mod, "name", str(mod)), t
    return None


def _type_names(session, module: str) -> tuple[str, list[str]]:
    res = _resolver(session)
    mod = None
    if module and hasattr(res, "module_by_name"):
        mod = res.module_by_name(module)
    elif hasattr(res, "kernel"):
        mod = res.kernel
    if mod is None or not hasattr(res, "load"):
        return module, []
    try:
        types = res.load(mod).types
    except BugcheckError:
        types = None
    if types is None:
        return mod.name, []
    return mod.name, list(types.type_names())


_OPT = re.compile(r"^-(r(\d*)|v|b|a\d*|l|n|y)$", re.IGNORECASE)


@command("dt", "Display type: a structure layout, or memory as that type")
def dt_command(session, args: str) -> Result:
    words = args.split()
    recurse = 0
    verbose = False
    rest: list[str] = []
    partial: list[str] = []
    i = 0
    # kd takes options anywhere on the line ("dt nt!_HEAP_VS_CONTEXT ffffe0099a6002c0 -r1",
    # "dt nt!_EPROCESS ffff9003e19ae080 -y ThreadListHead" in published sessions)
    while i < len(words):
        w = words[i]
        i += 1
        m = _OPT.match(w)
        if not m:
            rest.append(w)
            continue
        opt = m.group(1).lower()
        if opt.startswith("r"):
            recurse = int(m.group(2)) if m.group(2) else typedump.MAX_DEPTH
        elif opt == "v":
            verbose = True
        elif opt == "y" and i < len(words):
            partial.append(words[i] + "*")  # -y: the next field name is a prefix
            i += 1
        elif opt == "l" and i < len(words):
            i += 1  # -l FIELD: list walking is not offered; the field name is skipped
    if not rest:
        raise CommandError("Syntax error: dt needs a type name")
    name = rest[0]
    pointer_size = session.pointer_size
    if "*" in name or "?" in name:
        module, _, pat = name.rpartition("!")
        mod_name, names = _type_names(session, module)
        lines = typedump.list_types(names, pat, mod_name)
        return Result("\n".join(lines), {"types": [ln.strip() for ln in lines]}, "bugcheck.types/1")
    found = find_type(session, name)
    if found is None:
        raise CommandError(f"Symbol {name} not found.")
    module, t = found
    address = None
    fields: list[str] = list(partial)
    for w in rest[1:]:
        head = w.split(".", 1)[0]
        if t.member(head) is not None or "*" in head:
            fields.append(w)
            continue
        if address is None:
            address = session.evaluate(w)
        else:
            fields.append(w)
    lines = typedump.dump_type(
        t,
        module=module,
        address=address,
        read=reader(session) if address is not None else None,
        recurse=recurse,
        verbose=verbose,
        pointer_size=pointer_size,
        fields=fields,
        symbolize=symbolizer(session),
        header="!" not in name,
    )
    data = {"type": f"{module}!{t.name}", "address": address, "size": t.size}
    return Result("\n".join(lines), data, "bugcheck.dt/1")
