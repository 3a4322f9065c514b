"""The JSON Schemas of ``--json`` output and ``Dump.run()`` data, and a validator for them.

Every command's ``Result.schema`` names a schema ``bugcheck.<kind>/<version>``;
the schema files live in ``bugcheck/data/schemas/<kind>.json`` (JSON Schema
draft 2020-12), so other tools can check our output without importing us.
A version only changes when a field is removed or changes meaning; new fields
may appear within a version, so consumers must ignore fields they do not know.

:func:`validate` uses the ``jsonschema`` package when it is installed and a
small built-in validator otherwise. The built-in one understands exactly the
keywords the shipped schemas use (listed in :data:`KEYWORDS`), so the schemas
can be checked without adding a dependency.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from bugcheck.errors import BugcheckError

ENVELOPE = "bugcheck.envelope/1"
TEXT = "bugcheck.text/1"

#: keywords the built-in validator implements (the shipped schemas use no others)
KEYWORDS = frozenset(
    {
        "$schema", "$id", "$defs", "$ref", "title", "description",
        "type", "properties", "required", "additionalProperties", "items",
        "enum", "const", "anyOf", "minimum", "minItems", "maxItems", "pattern",
    }
)  # fmt: skip

_NAME = re.compile(r"^bugcheck\.([a-z_]+)/([0-9]+)$")


class SchemaError(BugcheckError, ValueError):
    """A document does not follow its schema (``errors`` lists every problem found)."""

    def __init__(self, schema: str, errors: list[str]):
        self.schema = schema
        self.errors = errors
        shown = "; ".join(errors[:5]) + (f" (and {len(errors) - 5} more)" if len(errors) > 5 else "")
        super().__init__(f"{schema}: {shown}")


def _kind(name: str) -> str:
    m = _NAME.match(name)
    if m is None:
        raise SchemaError(name, ["not a schema name (expected bugcheck.<kind>/<version>)"])
    kind, version = m.groups()
    if version != "1":
        raise SchemaError(name, [f"no version {version} of bugcheck.{kind} (this release has /1)"])
    return kind


def names() -> list[str]:
    """Every schema this release ships, as ``bugcheck.<kind>/1``."""
    folder = resources.files("bugcheck") / "data" / "schemas"
    return sorted(f"bugcheck.{p.name[:-5]}/1" for p in folder.iterdir() if p.name.endswith(".json"))


@cache
def _load_text(kind: str) -> str:
    f = resources.files("bugcheck") / "data" / "schemas" / f"{kind}.json"
    if not f.is_file():
        raise SchemaError(f"bugcheck.{kind}/1", ["no such schema"])
    return f.read_text(encoding="utf-8")


def load(name: str) -> dict:
    """The schema document for ``name`` (``bugcheck.modules/1``); a fresh copy each call."""
    return json.loads(_load_text(_kind(name)))


def errors(instance: Any, name: str, *, use_jsonschema: bool | None = None) -> list[str]:
    """Every way ``instance`` breaks schema ``name`` (empty when it conforms).

    ``use_jsonschema``: None picks the ``jsonschema`` package when installed,
    False forces the built-in validator, True requires the package.
    """
    schema = load(name)
    if use_jsonschema is not False:
        try:
            import jsonschema
        except ImportError:
            if use_jsonschema:
                raise
        else:
            v = jsonschema.Draft202012Validator(schema)
            return [
                f"{_path(list(e.absolute_path))}: {e.message}"
                for e in sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
            ]
    out: list[str] = []
    _check(instance, schema, schema, [], out)
    return out


def validate(doc: Any, name: str | None = None, *, use_jsonschema: bool | None = None) -> None:
    """Raise :class:`SchemaError` unless ``doc`` follows its schema.

    With ``name``, ``doc`` is the data of that schema (what ``Dump.run()``
    returns). Without it, ``doc`` is an envelope as ``bugcheck --json`` prints
    it: the envelope is checked, then its ``data`` against the schema it names.
    """
    if name is not None:
        problems = errors(doc, name, use_jsonschema=use_jsonschema)
        if problems:
            raise SchemaError(name, problems)
        return
    problems = errors(doc, ENVELOPE, use_jsonschema=use_jsonschema)
    if problems:
        raise SchemaError(ENVELOPE, problems)
    validate(doc["data"], doc["schema"], use_jsonschema=use_jsonschema)


# -- the built-in validator ---------------------------------------------------------------------

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _path(parts: list) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _resolve(root: dict, ref: str) -> dict:
    if not ref.startswith("#/"):
        raise SchemaError(str(root.get("$id")), [f"only local $ref is supported, not {ref!r}"])
    node: Any = root
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _check(v: Any, s: Any, root: dict, at: list, out: list[str]) -> None:
    if s is True or s == {} or s is None:
        return
    if s is False:
        out.append(f"{_path(at)}: no value is allowed here")
        return
    unknown = set(s) - KEYWORDS
    if unknown:
        raise SchemaError(str(root.get("$id")), [f"built-in validator lacks keyword(s) {sorted(unknown)}"])
    if "$ref" in s:
        _check(v, _resolve(root, s["$ref"]), root, at, out)
    if "anyOf" in s:
        best: list[str] | None = None
        for sub in s["anyOf"]:
            trial: list[str] = []
            _check(v, sub, root, at, trial)
            if not trial:
                best = None
                break
            if best is None or len(trial) < len(best):
                best = trial
        if best is not None:
            out.append(f"{_path(at)}: matches none of the allowed shapes")
            out.extend(best)
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_TYPES[t](v) for t in types):
            out.append(f"{_path(at)}: {_short(v)} is not of type {' or '.join(types)}")
            return
    if "enum" in s and v not in s["enum"]:
        out.append(f"{_path(at)}: {_short(v)} is not one of {s['enum']}")
    if "const" in s and v != s["const"]:
        out.append(f"{_path(at)}: {_short(v)} is not {s['const']!r}")
    if "minimum" in s and _TYPES["number"](v) and v < s["minimum"]:
        out.append(f"{_path(at)}: {v} is less than {s['minimum']}")
    if "pattern" in s and isinstance(v, str) and not re.search(s["pattern"], v):
        out.append(f"{_path(at)}: {_short(v)} does not match {s['pattern']!r}")
    if isinstance(v, list):
        if "minItems" in s and len(v) < s["minItems"]:
            out.append(f"{_path(at)}: {len(v)} items, fewer than {s['minItems']}")
        if "maxItems" in s and len(v) > s["maxItems"]:
            out.append(f"{_path(at)}: {len(v)} items, more than {s['maxItems']}")
        if "items" in s:
            for i, item in enumerate(v):
                _check(item, s["items"], root, [*at, i], out)
    if isinstance(v, dict):
        for key in s.get("required", ()):
            if key not in v:
                out.append(f"{_path(at)}: {key!r} is a required property")
        props = s.get("properties", {})
        extra = s.get("additionalProperties", True)
        for key, value in v.items():
            if key in props:
                _check(value, props[key], root, [*at, key], out)
            elif extra is not True:
                _check(value, extra, root, [*at, key], out)


def _short(v: Any) -> str:
    text = json.dumps(v, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def main(argv: list[str] | None = None) -> int:
    """``python -m bugcheck.schemas [FILE...]``: check JSON lines (``bugcheck --json`` output).

    Reads stdin without files. Prints one line per invalid document and
    returns 1 when any document is invalid, 0 otherwise.
    """
    import sys

    args = sys.argv[1:] if argv is None else argv
    sources = [(a, open(a, encoding="utf-8")) for a in args] if args else [("<stdin>", sys.stdin)]  # noqa: SIM115
    bad = count = 0
    for label, f in sources:
        with f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                count += 1
                try:
                    validate(json.loads(line))
                except json.JSONDecodeError as e:
                    bad += 1
                    print(f"{label}:{n}: not JSON: {e}")
                except SchemaError as e:
                    bad += 1
                    print(f"{label}:{n}: {e}")
    print(f"{count - bad} valid, {bad} invalid", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
