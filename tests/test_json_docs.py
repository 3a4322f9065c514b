"""docs/JSON.md documents every schema, and every example on the page validates."""

from __future__ import annotations

import json
import re

from bugcheck import schemas
from corpus import REPO_ROOT

PAGE = REPO_ROOT / "docs" / "JSON.md"


def _json_blocks(text: str) -> list[str]:
    return re.findall(r"^```json\n(.*?)^```", text, flags=re.S | re.M)


def test_json_docs_cover_every_schema():
    text = PAGE.read_text(encoding="utf-8")
    for name in schemas.names():
        if name == schemas.ENVELOPE:
            assert "## The envelope (`bugcheck.envelope/1`)" in text
        else:
            assert f"### `{name}`" in text, f"docs/JSON.md has no section for {name}"
            assert f"`{name}`" in text.split("## Schemas", 1)[1].split("###", 1)[0], (
                f"{name} not in the table"
            )


def test_json_docs_examples_validate():
    blocks = _json_blocks(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= len(schemas.names()) - 1
    seen = set()
    for block in blocks:
        doc = json.loads(block)
        schemas.validate(doc, use_jsonschema=False)
        schemas.validate(doc)
        seen.add(doc["schema"])
    # one example per documented schema
    assert seen >= set(schemas.names()) - {schemas.ENVELOPE}
