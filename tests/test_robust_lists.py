"""Hostile kernel lists in writer-made dumps: loops are cut, and endless non-looping lists are bounded.

A looping list (an entry pointing at itself or back into the list) is caught by
cycle detection. A *ladder* (2 MB of pool where every 16-byte slot's Flink is
the next slot) never loops, so only a bound on the work stops it; each walk is
run through the real CLI under a time and memory limit.
"""

from __future__ import annotations

import pytest

from corpus import corpus_root
from fuzz import runner
from fuzz.cases import warm_cache, write_case
from fuzz.synth_dumps import write_hostile_dump, write_ladder_dump

TIMEOUT = 30.0
MEMORY = 1 << 30


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    corpus = corpus_root()
    if corpus is None:
        pytest.skip("test corpus not found")
    root = tmp_path_factory.mktemp("robust-lists")
    cache = warm_cache(tmp_path_factory.getbasetemp() / "robust-cache", corpus)
    return corpus, root, cache


def _run(env, dump, commands: str, memory: int = MEMORY, timeout: float = TIMEOUT):
    corpus, _root, cache = env
    isf = str(corpus / "symbols" / "isf")
    run = runner.run_cli(
        ["--offline", "--symbols-dir", isf, "-c", commands, str(dump)],
        cache_dir=cache,
        timeout=timeout,
        memory=memory,
    )
    return run, runner.problems(run, [dump], timeout=timeout)


def test_looping_lists_are_cut_with_a_warning(env):
    corpus, root, _cache = env
    dump = write_case(root / "loops.dmp", write_hostile_dump(corpus, root / "l.dmp", evil=False).read_bytes())
    run, probs = _run(env, dump, "!process 0 0; !process 0 7; lm; !thread")
    assert probs == []
    assert run.returncode == 0
    # the process list loops back into itself: listed once, then a warning
    assert run.stdout.count("loops back") >= 1
    listing = run.stdout.split("kd> !process 0 7")[0]
    assert listing.count("Image: System") == 1


def test_endless_process_list_is_bounded(env):
    corpus, root, _cache = env
    dump = write_case(
        root / "ladder-p.dmp", write_ladder_dump(corpus, root / "p.dmp", processes=True).read_bytes()
    )
    run, probs = _run(env, dump, "!process 0 0; vertarget")
    assert probs == []
    assert "entries; stopped" in run.stdout


def test_endless_irp_list_is_bounded(env):
    corpus, root, _cache = env
    dump = write_case(
        root / "ladder-i.dmp", write_ladder_dump(corpus, root / "i.dmp", irps=True).read_bytes()
    )
    run, probs = _run(env, dump, "!thread; !process -1 0; kv")
    assert probs == []


def test_endless_thread_list_is_bounded(env):
    corpus, root, _cache = env
    dump = write_case(
        root / "ladder-t.dmp", write_ladder_dump(corpus, root / "t.dmp", threads=True).read_bytes()
    )
    run, probs = _run(env, dump, "!process -1 7", memory=600 << 20)
    assert probs == []
    # the ladder's slots are no threads (their object headers say so): kd stops listing at the
    # first one; the walk behind the listing was still bounded (time and memory above)
    assert "*** Error in reading nt!_ETHREAD" in run.stdout


def test_endless_process_list_with_threads_is_bounded(env):
    """Per-command budgets (threads listed, processes detailed, stack-scan slots, IRPs) bound it."""
    corpus, root, _cache = env
    dump = write_case(
        root / "ladder-p7.dmp", write_ladder_dump(corpus, root / "p7.dmp", processes=True).read_bytes()
    )
    run, probs = _run(env, dump, "!process 0 7", timeout=15.0)
    assert probs == []
