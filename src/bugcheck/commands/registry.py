"""The WinDbg command table.

Each command family lives in its own module under ``bugcheck.commands`` and
registers its commands here with :func:`command`. A handler takes the
:class:`~bugcheck.commands.session.Session` and the argument text (everything
after the command name, unparsed) and returns a :class:`Result`: structured
``data`` (JSON-able: dicts, lists, str, int, float, bool, None) plus the WinDbg
``text`` rendered from it. Keeping both lets ``--json`` and the Python API
(``dump.run("kv")``) share one code path with the text output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    text: str
    data: Any = None
    #: name of the JSON schema the data follows (``bugcheck.<kind>/1``)
    schema: str = ""

    def to_json(self) -> dict:
        return {"schema": self.schema or "bugcheck.text/1", "data": self.data, "text": self.text}


Handler = Callable[["Session", str], Result]  # noqa: F821


@dataclass
class CommandSpec:
    name: str
    handler: Handler
    summary: str
    #: names that also run this handler (``!db`` for ``!dq``..., ``kb`` for ``k``)
    aliases: tuple[str, ...] = field(default_factory=tuple)


_COMMANDS: dict[str, CommandSpec] = {}


def command(name: str, summary: str, aliases: tuple[str, ...] = ()):
    """Decorator: register ``fn(session, args) -> Result`` under ``name`` (lower-case, with ``.``/``!``)."""

    def register(fn: Handler) -> Handler:
        spec = CommandSpec(name, fn, summary, tuple(aliases))
        for n in (name, *aliases):
            _COMMANDS[n.lower()] = spec
        return fn

    return register


def lookup(name: str) -> CommandSpec | None:
    return _COMMANDS.get(name.lower())


def all_commands() -> list[CommandSpec]:
    seen: dict[str, CommandSpec] = {}
    for spec in _COMMANDS.values():
        seen[spec.name] = spec
    return sorted(seen.values(), key=lambda s: s.name)
