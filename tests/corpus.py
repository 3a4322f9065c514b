"""Where the shared test corpus lives, and how tests skip without it.

The corpus (real dumps, PDBs, images) is never copied into this repository:
tests open it where it lies. ``BUGCHECK_CORPUS`` overrides the default
``../shared/corpus`` (relative to the repository root).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def corpus_root() -> Path | None:
    env = os.environ.get("BUGCHECK_CORPUS")
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"
    return root if (root / "MANIFEST.md").is_file() else None


def corpus_file(*parts: str) -> Path:
    """Path of a corpus file, or skip the calling test with the reason."""
    root = corpus_root()
    if root is None:
        pytest.skip("test corpus not found (set BUGCHECK_CORPUS or place it at ../shared/corpus)")
    p = root.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"corpus file missing: {p}")
    return p


def dump(name: str) -> Path:
    return corpus_file("dumps", name)


def all_dumps() -> list[Path]:
    """Every dump file in the corpus (empty list when the corpus is absent)."""
    root = corpus_root()
    if root is None:
        return []
    return sorted((root / "dumps").rglob("*.dmp"))


def corpus_session(name: str, *, store: bool = True, raise_errors: bool = False):
    """A debugger session on corpus dump ``name`` as the CLI opens it offline: the corpus ISF
    tables for the kernel and, with ``store``, the corpus symbol store for drivers."""
    import bugcheck
    from bugcheck.commands.session import Session, load_commands

    load_commands()
    options = {"offline": True, "symbols_dir": str(corpus_file("symbols", "isf"))}
    if store:
        options["sympath"] = str(corpus_file("symstore"))
    s = Session(bugcheck.open(dump(name)), **options)
    s.raise_errors = raise_errors
    return s
