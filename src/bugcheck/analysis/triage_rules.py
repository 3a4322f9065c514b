"""Triage rules: which stack frame is to blame, and who follows it up.

WinDbg's ``!analyze`` walks the faulting stack from the top and asks
``triage.ini`` who owns each ``module!function``. The bugcheck and exception
machinery (``nt!KeBugCheckEx``, ``nt!KiPageFault``, ``nt!RtlDispatchException``
...) is marked ``ignore`` so the walk goes past it to the code that actually
faulted. This module reads the same file format so users can reuse their own
triage.ini:

* ``Module[!Function]=Owner``, one per line; ``;`` or ``#`` start comments.
* ``*`` is a wildcard only as the last character of the module or function
  name; anywhere else it is a literal character. ``default`` as a module or
  function name matches anything, so ``default=MachineOwner`` is the global
  owner and ``nt!default`` equals ``nt!*``. A module without ``!Function``
  covers all of its functions.
* When several rules match, the more precise one wins, and a more precise
  module always beats a more precise function (``mod2!*`` beats
  ``mod*!functionC``).
* Owner ``ignore`` skips the frame. ``maybe_`` and ``last_`` owners are weaker:
  a definite owner lower on the stack beats a ``maybe_`` one above it, and a
  ``maybe_`` one beats a ``last_`` one.
* Spaces inside an owner string are dropped, as WinDbg does.

The defaults ship in ``bugcheck/data/triage.ini``; files given to
:meth:`TriageRules.load` (or listed in ``BUGCHECK_TRIAGE``, separated by the
OS path separator) are read after it, and their lines replace default lines
for the same ``Module!Function`` pattern.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bugcheck.errors import BadFileError

IGNORE = "ignore"
DEFAULT_OWNER = "MachineOwner"
#: a user triage file larger than this is not a triage file
MAX_RULES_FILE = 4 * 1024 * 1024
#: module names the kernel image goes by; rules written for ``nt`` apply to all
KERNEL_MODULES = frozenset({"nt", "ntoskrnl", "ntkrnlmp", "ntkrnlpa", "ntkrpamp", "ntkrnlup"})
#: modules treated as "the kernel" when there are no function names (minidumps without symbols)
CORE_MODULES = KERNEL_MODULES | frozenset({"hal", "halmacpi", "halacpi", "halaacpi", "halamd64"})

Frame = tuple[str | None, str | None, int]


def _canon_module(name: str | None) -> str:
    if not name:
        return ""
    n = name.strip().lower()
    for ext in (".sys", ".exe", ".dll"):
        if n.endswith(ext):
            n = n[: -len(ext)]
    return "nt" if n in KERNEL_MODULES else n


@dataclass(frozen=True)
class _Pattern:
    """One side (module or function) of a rule: exact text, a prefix, or anything."""

    text: str
    #: 0 = anything ("default", "*" or omitted), 1 = prefix ("Ke*"), 2 = exact
    kind: int

    @classmethod
    def parse(cls, raw: str, lower: bool) -> _Pattern:
        t = raw.strip()
        if lower:
            t = t.lower()
        if t in ("", "*") or t.lower() == "default":
            return cls("", 0)
        if t.endswith("*"):
            return cls(t[:-1], 1)
        return cls(t, 2)

    def matches(self, value: str) -> bool:
        if self.kind == 0:
            return True
        if self.kind == 1:
            return value.startswith(self.text)
        return value == self.text

    def score(self) -> tuple[int, int]:
        # exact beats any prefix, a longer prefix beats a shorter one, anything is last
        return (self.kind, len(self.text))


@dataclass(frozen=True)
class Rule:
    module: _Pattern
    function: _Pattern
    owner: str
    source: str = ""
    line: int = 0

    @property
    def key(self) -> tuple[str, str]:
        def show(p: _Pattern) -> str:
            return "*" if p.kind == 0 else p.text + ("*" if p.kind == 1 else "")

        return (show(self.module), show(self.function))

    def matches(self, module: str, function: str | None) -> bool:
        if not self.module.matches(module):
            return False
        if function is None:
            # no symbol: only rules that do not care about the function apply
            return self.function.kind == 0
        return self.function.matches(function)

    def precision(self) -> tuple[int, int, int, int]:
        return (*self.module.score(), *self.function.score())


def parse_rules(text: str, source: str = "") -> tuple[list[Rule], list[str]]:
    """Rules in file order, plus one warning per line that could not be read."""
    rules: list[Rule] = []
    warnings: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in ";#" or (line.startswith("[") and line.endswith("]")):
            continue
        if "=" not in line:
            warnings.append(f"{source}:{lineno}: no '=' in triage rule: {line[:80]}")
            continue
        lhs, rhs = line.split("=", 1)
        owner = "".join(rhs.split())
        if not owner or not lhs.strip():
            warnings.append(f"{source}:{lineno}: empty module or owner: {line[:80]}")
            continue
        mod, _, func = lhs.strip().partition("!")
        mpat = _Pattern.parse(mod, lower=True)
        if mpat.kind and mpat.text in KERNEL_MODULES:
            mpat = _Pattern("nt", mpat.kind)
        # WinDbg matches function names case-insensitively too
        fpat = _Pattern.parse(func, lower=True)
        rules.append(Rule(mpat, fpat, owner, source, lineno))
    return rules, warnings


def _default_text() -> str:
    return resources.files("bugcheck").joinpath("data", "triage.ini").read_text(encoding="utf-8")


def _read_user_file(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_RULES_FILE + 1)
    except OSError as e:
        raise BadFileError(path, f"cannot read triage rules: {e.strerror or e}") from None
    if len(data) > MAX_RULES_FILE:
        raise BadFileError(path, f"triage rules file is larger than {MAX_RULES_FILE} bytes")
    if b"\x00" in data:
        raise BadFileError(path, "triage rules file is binary, not text")
    for enc in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


@dataclass
class TriageRules:
    rules: list[Rule] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, extra_paths: Iterable[str | os.PathLike] = (), *, use_env: bool = True) -> TriageRules:
        """The shipped defaults merged with the user's files (later files win per pattern)."""
        paths: list[Path] = []
        if use_env and os.environ.get("BUGCHECK_TRIAGE"):
            paths += [Path(p) for p in os.environ["BUGCHECK_TRIAGE"].split(os.pathsep) if p]
        paths += [Path(p) for p in extra_paths]
        rules, warnings = parse_rules(_default_text(), "triage.ini")
        merged: dict[tuple[str, str], Rule] = {r.key: r for r in rules}
        for p in paths:
            user_rules, w = parse_rules(_read_user_file(p), str(p))
            warnings += w
            for r in user_rules:
                merged.pop(r.key, None)  # re-insert so file order stays meaningful
                merged[r.key] = r
        return cls(list(merged.values()), warnings)

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> TriageRules:
        rules, warnings = parse_rules(text, source)
        merged = {r.key: r for r in rules}
        return cls(list(merged.values()), warnings)

    def match(self, module: str | None, function: str | None) -> Rule | None:
        """The most precise rule for ``module!function`` (module precision first), or None."""
        mod = _canon_module(module)
        func = function.lower() if function else None
        best: Rule | None = None
        best_score: tuple[int, int, int, int] | None = None
        for r in self.rules:
            if r.matches(mod, func):
                s = r.precision()
                if best_score is None or s > best_score:
                    best, best_score = r, s
        return best

    def owner(self, module: str | None, function: str | None = None) -> str:
        """The owner string for a frame: ``ignore``, ``MachineOwner``, ``maybe_...``, ``last_...``,
        or ``""`` when no rule (not even ``default``) matches."""
        r = self.match(module, function)
        return r.owner if r is not None else ""


def _strength(owner: str) -> int:
    low = owner.lower()
    if low.startswith("last_"):
        return 1
    if low.startswith("maybe_"):
        return 2
    return 3


def pick_culprit(frames: Sequence[Frame], rules: TriageRules | None = None) -> int | None:
    """Index of the frame WinDbg would blame, walking from the top of the stack.

    ``frames`` are ``(module, function, offset)`` tuples; ``function`` is None
    when no symbol is known. Frames whose owner is ``ignore`` are skipped; the
    first definite owner wins, else the first ``maybe_``, else the first
    ``last_``. In the kernel itself a frame without a function name cannot be
    matched against the rules (a minidump without kernel symbols), so it is
    skipped too: the first frame in a non-kernel module wins there. Returns
    None for an empty stack, or when no frame is usable at all.
    """
    if rules is None:
        rules = default_rules()
    best: tuple[int, int] | None = None  # (strength, index)
    fallback: int | None = None
    for i, (module, function, _offset) in enumerate(frames):
        mod = _canon_module(module)
        if not mod:
            continue  # an address outside every module is never the culprit
        if fallback is None:
            fallback = i
        if function is None and mod in CORE_MODULES:
            continue
        owner = rules.owner(mod, function)
        if not owner or owner.lower() == IGNORE:
            continue
        strength = _strength(owner)
        if strength == 3:
            return i
        if best is None or strength > best[0]:
            best = (strength, i)
    if best is not None:
        return best[1]
    return fallback


_DEFAULT: TriageRules | None = None


def default_rules() -> TriageRules:
    """The shipped rules plus ``BUGCHECK_TRIAGE`` files, loaded once."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = TriageRules.load()
    return _DEFAULT
