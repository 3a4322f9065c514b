"""The shipped JSON Schemas: well-formed, complete, and the built-in validator's behaviour."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import bugcheck
from bugcheck import schemas

SRC = Path(bugcheck.__file__).parent
#: schema names in the package that are not command output (data files with their own format)
NOT_OUTPUT = {"bugcheck.catalog/1"}


def _walk_keywords(node, found: set) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            found.add(k)
            if k in ("properties", "$defs"):
                for sub in v.values():
                    _walk_keywords(sub, found)
            elif k in ("items", "additionalProperties", "anyOf") or isinstance(v, dict | list):
                if k not in ("enum", "const", "required"):
                    _walk_keywords(v, found)
    elif isinstance(node, list):
        for sub in node:
            _walk_keywords(sub, found)


def test_json_schema_names_match_files():
    names = schemas.names()
    assert "bugcheck.envelope/1" in names and "bugcheck.analysis/1" in names
    for name in names:
        doc = schemas.load(name)
        assert doc["$id"] == name and doc["title"] == name
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert doc.get("description"), name


def test_json_every_emitted_schema_has_a_file():
    emitted = set()
    for py in SRC.rglob("*.py"):
        emitted |= set(re.findall(r"[\"'](bugcheck\.[a-z_]+/[0-9]+)[\"']", py.read_text(encoding="utf-8")))
    emitted -= NOT_OUTPUT
    missing = sorted(emitted - set(schemas.names()))
    assert not missing, f"commands emit schemas without a file in data/schemas: {missing}"


def test_json_schemas_use_only_builtin_keywords():
    for name in schemas.names():
        found: set = set()
        _walk_keywords(schemas.load(name), found)
        # property names appear as keys under "properties"; only check keyword-looking ones
        keywords = {k for k in found if k.startswith("$") or k in _JSON_SCHEMA_KEYWORDS}
        assert keywords <= schemas.KEYWORDS, (name, keywords - schemas.KEYWORDS)


_JSON_SCHEMA_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const",
    "anyOf", "oneOf", "allOf", "not", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minItems", "maxItems", "uniqueItems", "pattern", "minLength", "maxLength", "format",
    "patternProperties", "propertyNames", "if", "then", "else", "dependentRequired", "contains",
}  # fmt: skip


def test_json_schemas_are_valid_draft_2020_12():
    jsonschema = pytest.importorskip("jsonschema")
    for name in schemas.names():
        jsonschema.Draft202012Validator.check_schema(schemas.load(name))


FRAME = {
    "number": 0,
    "pc": 0xFFFFF8047BDF5A80,
    "sp": 0xFFFF850429890EE8,
    "return_address": 0,
    "args": [1, None, 3, 4],
    "method": "context",
    "trap_frame": None,
    "symbol": "nt!KeBugCheckEx",
    "module": "nt",
    "fp": None,
}


@pytest.mark.parametrize("use", [False, True])
def test_json_validator_accepts_and_rejects(use):
    if use:
        pytest.importorskip("jsonschema")
    good = {"schema": "bugcheck.stack/1", "data": {"frames": [FRAME], "warnings": []}, "text": "x"}
    schemas.validate(good, use_jsonschema=use)
    bad_cases = [
        # wrong type deep inside
        {**good, "data": {"frames": [{**FRAME, "pc": "fffff804"}], "warnings": []}},
        # bool is not an integer
        {**good, "data": {"frames": [{**FRAME, "number": True}], "warnings": []}},
        # method outside the enum
        {**good, "data": {"frames": [{**FRAME, "method": "guess"}], "warnings": []}},
        # a required field missing
        {**good, "data": {"warnings": []}},
        # negative address
        {**good, "data": {"frames": [{**FRAME, "sp": -8}], "warnings": []}},
        # envelope without text
        {"schema": "bugcheck.stack/1", "data": {"frames": [], "warnings": []}},
        # malformed schema name
        {**good, "schema": "stack"},
    ]
    for bad in bad_cases:
        with pytest.raises(schemas.SchemaError):
            schemas.validate(bad, use_jsonschema=use)


def test_json_validator_any_of_and_refs():
    ok_error = {"error": "the dump lacks memory"}
    schemas.validate(ok_error, "bugcheck.analysis/1", use_jsonschema=False)
    with pytest.raises(schemas.SchemaError) as e:
        schemas.validate({"bugcheck": {"code": 1}}, "bugcheck.analysis/1", use_jsonschema=False)
    assert "matches none" in str(e.value)
    schemas.validate({"reloaded": ["nt"]}, "bugcheck.reload/1", use_jsonschema=False)
    schemas.validate({"modules": 3, "forced": True}, "bugcheck.reload/1", use_jsonschema=False)
    with pytest.raises(schemas.SchemaError):
        schemas.validate({"modules": "3"}, "bugcheck.reload/1", use_jsonschema=False)
    # text/1 takes any data
    for value in (None, 1, "x", [1], {"a": {"b": []}}):
        schemas.validate(value, "bugcheck.text/1", use_jsonschema=False)


def test_json_unknown_schema_names():
    with pytest.raises(schemas.SchemaError, match="no such schema"):
        schemas.load("bugcheck.nothing/1")
    with pytest.raises(schemas.SchemaError, match="no version 2"):
        schemas.load("bugcheck.stack/2")
    with pytest.raises(schemas.SchemaError):
        schemas.validate({"schema": "bugcheck.nothing/1", "data": {}, "text": ""})


def test_json_load_returns_a_copy():
    a = schemas.load("bugcheck.modules/1")
    a["title"] = "changed"
    assert schemas.load("bugcheck.modules/1")["title"] == "bugcheck.modules/1"
    json.dumps(a)


def test_json_schemas_command_line(tmp_path, capsys):
    good = {"schema": "bugcheck.evaluate/1", "data": {"expression": "1+2", "value": 3}, "text": "3"}
    bad = {"schema": "bugcheck.evaluate/1", "data": {"expression": "1+2", "value": "3"}, "text": "3"}
    f = tmp_path / "out.jsonl"
    f.write_text(json.dumps(good) + "\n\n" + json.dumps(good) + "\n")
    assert schemas.main([str(f)]) == 0
    f.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n{not json\n")
    assert schemas.main([str(f)]) == 1
    out = capsys.readouterr()
    assert f"{f}:2: bugcheck.evaluate/1: $.value" in out.out
    assert f"{f}:3: not JSON" in out.out
    assert "1 valid, 2 invalid" in out.err
