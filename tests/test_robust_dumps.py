"""Damaged dumps through the real console script: exit 0 or 2, one stderr line, no traceback, bounded.

A fixed, seeded sample of recipes (truncations at the structures, nasty words in
the dump and TRIAGE_DUMP headers, data-block and driver-list entries, CONTEXT
registers, garbage blocks, and combinations) is applied to read-only copies of
corpus triage dumps and of writer-made full / bitmap dumps with looping lists.
Each copy is run as a user would: ``bugcheck -y STORE --offline --symbols-dir
ISF DUMP`` (banner and ``!analyze -v``) or with ``-c`` and a broad command list,
under a 60 s timeout and a 2 GB address-space limit. The larger exploration is
``tests/fuzz/explore.py``.
"""

from __future__ import annotations

import hashlib

import pytest

from corpus import corpus_root
from fuzz import mutate, runner
from fuzz.cases import commands_for, store_copy, warm_cache, write_case
from fuzz.synth_dumps import write_hostile_dump

#: (corpus dump, how many recipes, seed); small enough to keep the file well under a minute
TRIAGE_SAMPLE = (
    ("rizin-triage_x64.dmp", 26, 101),
    ("proxyrule-011620-8250-01.dmp", 12, 102),
    ("rizin-triage_arm64.dmp", 8, 103),
    ("ojusha-100623-4953-01.dmp", 8, 104),
)
WRITER_SAMPLE = (("full", 6, 201), ("kernel_bitmap", 8, 202), ("complete_bitmap", 4, 203))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    corpus = corpus_root()
    if corpus is None:
        pytest.skip("test corpus not found")
    root = tmp_path_factory.mktemp("robust-dumps")
    cache = warm_cache(tmp_path_factory.getbasetemp() / "robust-cache", corpus)
    store = store_copy(corpus, root / "store")
    return corpus, root, cache, store


def _jobs(env, name: str, data: bytes, count: int, seed: int, extra=()):
    corpus, root, cache, store = env
    base = ["-y", str(store), "--offline", "--symbols-dir", str(corpus / "symbols" / "isf")]
    cmds = "!analyze -v; " + commands_for(data)
    jobs, meta = [], []
    for i, recipe in enumerate(mutate.dump_recipes(data, seed, count) + list(extra)):
        tag = hashlib.sha1(repr(recipe).encode()).hexdigest()[:8]
        f = write_case(root / f"{name}-{i:02d}-{tag}.dmp", mutate.apply(data, recipe))
        # alternate the two ways a user runs it; both kinds see every damage category
        args = base + [str(f)] if i % 2 else base + ["-c", cmds, str(f)]
        jobs.append({"args": args, "cache_dir": cache})
        meta.append((name, recipe, f))
    return jobs, meta


def _check(jobs, meta):
    results = runner.run_many(jobs)
    report = []
    for (name, recipe, f), run in zip(meta, results, strict=True):
        for prob in runner.problems(run, [f]):
            report.append(f"{name} recipe={mutate.describe(recipe)}\n  {run.command_line()}\n  -> {prob}")
    assert not report, f"{len(report)} problem(s):\n" + "\n".join(report)
    return results


def test_damaged_triage_dumps(env):
    corpus = env[0]
    jobs, meta = [], []
    for name, count, seed in TRIAGE_SAMPLE:
        p = corpus / "dumps" / name
        if not p.exists():
            continue
        j, m = _jobs(env, p.stem, p.read_bytes(), count, seed)
        jobs += j
        meta += m
    results = _check(jobs, meta)
    # the sample must reach both outcomes: rejected files and partly analyzed ones
    codes = {r.returncode for r in results}
    assert codes == {0, 2}, codes


def test_damaged_writer_dumps(env):
    corpus, root = env[0], env[1]
    jobs, meta = [], []
    for kind, count, seed in WRITER_SAMPLE:
        seed_path = write_hostile_dump(corpus, root / f"seed-{kind}.dmp", kind)
        data = seed_path.read_bytes()
        # page tables: self-maps, loops to the top level, wild frames, large-page bits
        tables = mutate.page_table_pages(seed_path)
        assert len(tables) >= 4, kind
        paging = mutate.paging_recipes(data, tables, seed, 4)
        j, m = _jobs(env, f"writer-{kind}", data, count, seed, paging)
        jobs += j
        meta += m
    _check(jobs, meta)


def test_truncated_everywhere_is_one_line(env):
    """Every cut of the classic triage dump at its structure boundaries: exit 0 or one clean line."""
    corpus, root, cache, store = env
    data = (corpus / "dumps" / "proxyrule-011620-8250-01.dmp").read_bytes()
    lay = mutate.dump_layout(data)
    t = lay.triage
    cuts = sorted({0, 3, 0x1000, 0x2000, 0x2040, t["DriverListOffset"] + 5, t["StringPoolOffset"] + 9})
    jobs, meta = [], []
    for c in cuts:
        f = write_case(root / f"cut-{c:x}.dmp", data[:c])
        jobs.append({"args": ["--offline", str(f)], "cache_dir": cache})
        meta.append(("proxyrule", (("cut", c),), f))
    results = _check(jobs, meta)
    for run, c in zip(results, cuts, strict=True):
        if c < 0x2000:  # the dump header itself is incomplete: nothing to analyze
            assert run.returncode == 2, (c, run.stdout[:300])


def test_truncated_triage_is_still_analyzed(env):
    """Cut inside the data blocks: the header, context and stack survive, so !analyze still answers."""
    corpus, root, cache, store = env
    data = (corpus / "dumps" / "rizin-triage_x64.dmp").read_bytes()
    lay = mutate.dump_layout(data)
    t = lay.triage
    stack_end = t["CallStackOffset"] + t["SizeOfCallStack"]
    tables_end = max(t["DataBlocksOffset"] + 16 * t["DataBlocksCount"], stack_end)
    last_block_end = max(off + n for _e, _a, off, n in lay.blocks)
    cuts = [tables_end + 0x100, (tables_end + last_block_end) // 2, last_block_end - 0x10]
    jobs, meta = [], []
    for c in cuts:
        f = write_case(root / f"partial-{c:x}.dmp", data[:c])
        args = ["-y", str(store), "--offline", "--symbols-dir", str(corpus / "symbols" / "isf"), str(f)]
        jobs.append({"args": args, "cache_dir": cache})
        meta.append(("rizin", (("cut", c),), f))
    for run, c in zip(_check(jobs, meta), cuts, strict=True):
        assert run.returncode == 0, (c, run.stderr)
        assert "WARNING: Dump file has been truncated" in run.stdout, c
        assert "point beyond the end of the file" in run.stdout, c
        assert "Bugcheck Analysis" in run.stdout and "FAILURE_BUCKET_ID:" in run.stdout, c
        assert "amdppm" in run.stdout.split("FAILURE_BUCKET_ID:")[1].splitlines()[0], c
