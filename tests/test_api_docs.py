"""docs/API.md's examples run and print what the page says (doctest over the markdown)."""

from __future__ import annotations

import doctest

from corpus import REPO_ROOT, corpus_file


def test_api_docs_examples_run(monkeypatch):
    root = corpus_file("MANIFEST.md").parent
    monkeypatch.setenv("BUGCHECK_CORPUS", str(root))
    monkeypatch.delenv("_NT_SYMBOL_PATH", raising=False)
    monkeypatch.delenv("BUGCHECK_SYMBOLS_DIR", raising=False)
    monkeypatch.chdir(REPO_ROOT)
    failed, attempted = doctest.testfile(
        str(REPO_ROOT / "docs" / "API.md"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        report=True,
        verbose=False,
    )
    assert attempted > 20
    assert failed == 0, f"{failed} of {attempted} examples in docs/API.md failed (see the output above)"
