"""A damaged amdppm.pdb or amdppm.sys in the symbol store: the dump is still analyzed, no traceback.

rizin-triage_x64.dmp crashed in amdppm.sys; the tool finds the image in the
store by TimeDateStamp+SizeOfImage and its PDB by the image's CodeView GUID and
age. Both are replaced by seeded damaged copies (MSF superblock, stream
directory, stream data, truncation; PE headers, data directories, sections) in
a store laid out under tmp_path. A bad symbol file is the symbol file's
problem, not the dump's: the run must still exit 0 and print the analysis.
"""

from __future__ import annotations

import pytest

from corpus import corpus_root
from fuzz import mutate, runner
from fuzz.cases import STORE_PDB, STORE_SYS, commands_for, store_copy, warm_cache

PDB_CASES, PE_CASES = 14, 14


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    corpus = corpus_root()
    if corpus is None:
        pytest.skip("test corpus not found")
    root = tmp_path_factory.mktemp("robust-symbols")
    cache = warm_cache(tmp_path_factory.getbasetemp() / "robust-cache", corpus)
    return corpus, root, cache


def _run_store_cases(env, which: str, recipes_for, count: int, seed: int):
    corpus, root, cache = env
    dump = corpus / "dumps" / "rizin-triage_x64.dmp"
    data = (corpus / "symstore" / which).read_bytes()
    cmds = "!analyze -v; " + commands_for(dump.read_bytes()[:0x100]) + "; x amdppm!*; lmv m amdppm"
    jobs, meta = [], []
    for i, recipe in enumerate(recipes_for(data, seed, count)):
        store = store_copy(corpus, root / f"{which.split('/')[0]}-{i:02d}", which, mutate.apply(data, recipe))
        base = ["-y", str(store), "--offline", "--symbols-dir", str(corpus / "symbols" / "isf")]
        jobs.append({"args": base + (["-c", cmds] if i % 2 else []) + [str(dump)], "cache_dir": cache})
        meta.append((recipe, [dump, store / which]))
    results = runner.run_many(jobs)
    report = []
    for (recipe, files), run in zip(meta, results, strict=True):
        probs = runner.problems(run, files)
        if run.returncode != 0:
            probs.append(f"exit {run.returncode}: the dump is fine, only {which} is damaged")
        elif "FAILURE_BUCKET_ID" not in run.stdout:
            probs.append("no !analyze result")
        for prob in probs:
            report.append(f"{which} recipe={mutate.describe(recipe)}\n  {run.command_line()}\n  -> {prob}")
    assert not report, f"{len(report)} problem(s):\n" + "\n".join(report)
    return results


def test_damaged_pdb_in_store(env):
    _run_store_cases(env, STORE_PDB, mutate.pdb_recipes, PDB_CASES, 301)


def test_damaged_image_in_store(env):
    _run_store_cases(env, STORE_SYS, mutate.pe_recipes, PE_CASES, 302)


def test_intact_store_resolves_amdppm(env):
    """The baseline the damaged runs are compared with: amdppm symbols do load from this layout."""
    corpus, root, cache = env
    store = store_copy(corpus, root / "intact")
    dump = corpus / "dumps" / "rizin-triage_x64.dmp"
    isf = str(corpus / "symbols" / "isf")
    run = runner.run_cli(["-y", str(store), "--offline", "--symbols-dir", isf, str(dump)], cache_dir=cache)
    assert runner.problems(run, [dump]) == []
    assert "SYMBOL_NAME:  amdppm!WriteIoMemRawEx+" in run.stdout
