"""The bugcheck catalog and WinDbg's "Bugcheck Analysis" box.

The catalog is data (``bugcheck/data/bugcheck_codes.json``), not code, so a
new Windows release only needs new lines there. Each entry carries the code,
the symbolic name Windows uses, a description written for this project, and,
where known, the meaning of the four arguments. Codes whose first argument
selects a case (0x1A, 0x133, 0x1C7, ...) also carry a subtype table whose
entries override the argument meanings for that case, which is how
``!analyze -show 0x9F 3`` can print per-case text.

Codes with the 0x10000000 flag (``..._M`` variants such as 0x1000007E) are the
same failure reported through a different path; they share their base entry's
text and arguments but keep their own name, as WinDbg prints
``SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M (1000007e)``.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

#: WinDbg wraps bugcheck descriptions to this many columns.
WRAP_WIDTH = 79
_M_FLAG = 0x10000000
_BOX_RULE = "*" * 79
_BOX_BLANK = "*" + " " * 77 + "*"
_BOX_TITLE = "*" + " " * 24 + "Bugcheck Analysis" + " " * 36 + "*"


@dataclass(frozen=True)
class Subtype:
    value: int
    description: str
    #: meanings of arguments 2..4 for this case ("" = no meaning known)
    args: tuple[str, str, str]


@dataclass(frozen=True)
class BugcheckInfo:
    code: int
    name: str
    description: str
    #: meanings of arguments 1..4 ("" = no meaning known); empty tuple when undocumented
    args: tuple[str, ...] = ()
    #: 1-based index of the argument that selects a subtype, or 0
    subtype_arg: int = 0
    subtypes: dict[int, Subtype] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    #: the entry this one was derived from (for ``_M`` variants), else ``code``
    base_code: int = -1

    def subtype(self, value: int) -> Subtype | None:
        return self.subtypes.get(value)

    def arg_meanings(self, args: tuple[int, ...] | list[int] = ()) -> list[str]:
        """Meaning of each of the four arguments, resolved through the subtype table when one applies."""
        meanings = list(self.args) + [""] * (4 - len(self.args))
        if self.subtype_arg and len(args) >= self.subtype_arg:
            st = self.subtypes.get(args[self.subtype_arg - 1])
            if st is not None:
                i = self.subtype_arg - 1
                meanings[i] = st.description
                rest = [j for j in range(4) if j != i]
                for j, text in zip(rest, st.args, strict=False):
                    meanings[j] = text
        return meanings[:4]

    def to_json(self) -> dict:
        return {
            "code": self.code,
            "name": self.name,
            "description": self.description,
            "args": list(self.args),
            "subtype_arg": self.subtype_arg,
            "subtypes": {
                f"0x{v:x}": {"description": s.description, "args": list(s.args)}
                for v, s in sorted(self.subtypes.items())
            },
        }


def _parse_int(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


@lru_cache(maxsize=1)
def _load() -> tuple[dict[int, BugcheckInfo], dict[str, int]]:
    raw = resources.files("bugcheck").joinpath("data", "bugcheck_codes.json").read_text(encoding="utf-8")
    doc = json.loads(raw)
    by_code: dict[int, BugcheckInfo] = {}
    by_name: dict[str, int] = {}
    for e in doc["codes"]:
        code = _parse_int(e["code"])
        subtypes = {}
        for key, st in (e.get("subtypes") or {}).items():
            v = _parse_int(key)
            a = tuple((list(st.get("args", [])) + ["", "", ""])[:3])
            subtypes[v] = Subtype(v, st["description"], a)  # type: ignore[arg-type]
        info = BugcheckInfo(
            code=code,
            name=e["name"],
            description=e["description"],
            args=tuple(e.get("args", ())),
            subtype_arg=int(e.get("subtype_arg", 0)),
            subtypes=subtypes,
            aliases=tuple(e.get("aliases", ())),
            base_code=code,
        )
        by_code[code] = info
        by_name[info.name] = code
        for alias in info.aliases:
            by_name.setdefault(alias, code)
        for vkey, vname in (e.get("variants") or {}).items():
            vcode = _parse_int(vkey)
            by_code[vcode] = BugcheckInfo(
                code=vcode,
                name=vname,
                description=info.description,
                args=info.args,
                subtype_arg=info.subtype_arg,
                subtypes=info.subtypes,
                base_code=code,
            )
            by_name[vname] = vcode
    return by_code, by_name


def lookup(code: int) -> BugcheckInfo | None:
    """Catalog entry for a bugcheck code, or None when Windows does not document it.

    A 0x10000000-flagged code without its own ``_M`` entry falls back to its base
    entry (same name), since the flag only records how the crash was raised.
    """
    code &= 0xFFFFFFFF
    by_code, _ = _load()
    info = by_code.get(code)
    if info is None and code & _M_FLAG:
        info = by_code.get(code & ~_M_FLAG)
    return info


def lookup_name(name: str) -> BugcheckInfo | None:
    """Entry for a symbolic name (``"DRIVER_IRQL_NOT_LESS_OR_EQUAL"``) or one of its aliases."""
    by_code, by_name = _load()
    code = by_name.get(name.upper())
    return by_code.get(code) if code is not None else None


def all_codes() -> list[BugcheckInfo]:
    """Every entry, ``_M`` variants included, in code order."""
    by_code, _ = _load()
    return [by_code[c] for c in sorted(by_code)]


def _wrap(text: str, width: int = WRAP_WIDTH) -> list[str]:
    lines: list[str] = []
    for para in text.split("\n"):
        lines.extend(textwrap.wrap(para, width=width, break_long_words=False, break_on_hyphens=False) or [""])
    return lines


def format_arg(index: int, value: int, meaning: str, pointer_size: int = 8) -> list[str]:
    """``Arg1: ffffd8024aaa8010, memory referenced``; extra meaning lines follow tab-indented."""
    digits = 16 if pointer_size == 8 else 8
    value &= (1 << (digits * 4)) - 1
    head = f"Arg{index}: {value:0{digits}x}"
    if not meaning:
        return [head]
    out: list[str] = []
    for n, para in enumerate(meaning.split("\n")):
        # multi-line catalog texts are pre-wrapped as WinDbg prints them; only a single
        # over-long line is wrapped here
        lead = len(head) + 2 if n == 0 and not out else 8
        if "\n" in meaning or lead + len(para) <= WRAP_WIDTH + 5:
            pieces = [para]
        else:
            # first piece starts after "ArgN: value, " (or a tab), the rest after a tab
            pad = " " * max(0, lead - 8)
            pieces = textwrap.wrap(para, width=WRAP_WIDTH - 8, initial_indent=pad, break_long_words=False)
            pieces = [pieces[0][len(pad) :], *pieces[1:]] if pieces else [""]
        for piece in pieces:
            out.append(f"{head}, {piece}" if not out else "\t" + piece)
    return out


def bugcheck_header(code: int) -> list[str]:
    """The name line and description lines WinDbg prints above ``Arguments:``."""
    info = lookup(code)
    if info is None:
        return [f"Unknown bugcheck code ({code & 0xFFFFFFFF:x})", "Unknown bugcheck description"]
    return [f"{info.name} ({code & 0xFFFFFFFF:x})", *_wrap(info.description)]


def render_bugcheck_box(code: int, args: tuple[int, ...] | list[int] = (), pointer_size: int = 8) -> str:
    """WinDbg's ``Bugcheck Analysis`` banner, the name/description and the ``ArgN:`` lines."""
    args = list(args)[:4]
    args += [0] * (4 - len(args))
    info = lookup(code)
    meanings = info.arg_meanings(args) if info is not None else [""] * 4
    lines = [_BOX_RULE, _BOX_BLANK, _BOX_TITLE, _BOX_BLANK, _BOX_RULE, ""]
    lines += bugcheck_header(code)
    lines.append("Arguments:")
    for i, (value, meaning) in enumerate(zip(args, meanings, strict=True), start=1):
        lines += format_arg(i, value, meaning, pointer_size)
    return "\n".join(lines) + "\n"
