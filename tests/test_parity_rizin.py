"""Same crash, three formats: rizin-triage_x64.dmp and its kernel-bitmap and full re-packs.

The re-packs hold the triage dump's captured memory behind generated page
tables, its driver list as a real PsLoadedModuleList (``_KLDR_DATA_TABLE_ENTRY``
records laid out with the 19041 types) and its debugger data block. The tool
must give the same answers on all three: the JSON data of ``Session.run``.

Two differences are inherent to the re-pack and tolerated where they occur,
each checked rather than assumed:

* a page is the unit of a kernel dump, so bytes of a page the triage dump only
  partly captured read as zeros after re-packing. A value the triage tool
  could not read (None) may read as 0 in the re-pack; a kernel global the
  triage dump lacks (KeActiveProcessors, KeMaximumIncrement) reads as zero.
* a stack scan accepts a return address whose preceding code the triage dump
  did not capture, but rejects it when those bytes read as zeros. Frames must
  agree up to such an address; there they may part.

WinDbg's unloaded-module list (MmUnloadedDrivers) is only in the triage dump's
own list, so ``lm`` compares loaded modules.
"""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.commands.registry import lookup
from bugcheck.commands.session import Session, load_commands
from bugcheck.errors import BugcheckError
from corpus import corpus_file, dump

TABLE = ("symbols", "isf", "windows", "ntkrnlmp.pdb", "5278AFF86C341677D7D7835C85B7B844-1.json.xz")
KINDS = ("kernel_bitmap", "full")


@pytest.fixture(scope="module")
def dumps(tmp_path_factory):
    from bugcheck.dumpfile.writer import repack
    from bugcheck.symbols.isf import load_isf

    src_path = dump("rizin-triage_x64.dmp")
    table = load_isf(corpus_file(*TABLE))
    src = bugcheck.open(src_path)
    out = {"triage": src_path}
    folder = tmp_path_factory.mktemp("parity")
    for kind in KINDS:
        out[kind] = folder / f"rizin-{kind}.dmp"
        repack(src, out[kind], kind, types=table)
    return out


@pytest.fixture(scope="module")
def sessions(dumps):
    symbols_dir = str(corpus_file("symbols", "isf"))
    sympath = str(corpus_file("symstore"))
    load_commands()
    out = {}
    for name, path in dumps.items():
        s = Session(bugcheck.open(path), offline=True, symbols_dir=symbols_dir, sympath=sympath)
        s.raise_errors = True
        out[name] = s
    return out


def _data(sessions, line):
    name = line.split()[0]
    if lookup(name) is None:
        pytest.skip(f"{name} is not implemented yet")
    return {k: [r.data for r in s.run(line)] for k, s in sessions.items()}


def _absent_in_triage_zero_in_repack(sessions, kind, va: int, n: int = 1) -> bool:
    tri, rep = sessions["triage"].dump, sessions[kind].dump
    for i in range(n):
        try:
            tri.read_virtual(va + i, 1)
            return False
        except BugcheckError:
            pass
        if rep.read_virtual(va + i, 1) != b"\0":
            return False
    return True


def _compare(a, b, path="", problems=None):
    """Differences between triage data ``a`` and re-pack data ``b``; None in ``a`` may be 0 in ``b``."""
    problems = [] if problems is None else problems
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                problems.append(f"{path}.{k}: only in {'re-pack' if k in b else 'triage'}")
            else:
                _compare(a[k], b[k], f"{path}.{k}", problems)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append(f"{path}: {len(a)} items vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _compare(x, y, f"{path}[{i}]", problems)
    elif a is None and b in (None, 0):
        pass
    elif a != b:
        problems.append(f"{path}: {a!r} vs {b!r}")
    return problems


def _frames_agree(sessions, kind, tri: list[dict], rep: list[dict]) -> int:
    """Number of leading frames that agree; asserts any parting is the tolerated kind."""
    n = 0
    for x, y in zip(tri, rep, strict=False):
        if (x["pc"], x["sp"], x["symbol"]) != (y["pc"], y["sp"], y["symbol"]):
            break
        n += 1
    if n < max(len(tri), len(rep)):
        assert n > 0, "the frames differ from the first one"
        prev_t, prev_r = tri[n - 1], rep[n - 1]
        ra = prev_t["return_address"]
        if ra != prev_r["return_address"]:
            # The scan in the triage dump took a return address with no captured code before it.
            assert _absent_in_triage_zero_in_repack(sessions, kind, ra - 2, 2), (
                f"frame {n} differs and {ra:#x} is not preceded by uncaptured code"
            )
    return n


def _check_frames(sessions, kind, tri: list[dict], rep: list[dict]) -> int:
    """Frames agree in full up to where they may part; the last shared frame's return
    address and the home-space arguments read above it are where the walks diverge."""
    n = _frames_agree(sessions, kind, tri, rep)
    assert _compare(tri[: n - 1], rep[: n - 1]) == []
    last_t = {k: v for k, v in tri[n - 1].items() if k not in ("return_address", "args")}
    last_r = {k: v for k, v in rep[n - 1].items() if k not in ("return_address", "args")}
    assert _compare(last_t, last_r) == []
    if n == len(tri) == len(rep):
        assert _compare(tri, rep) == []
    return n


@pytest.mark.parametrize("kind", KINDS)
def test_same_kernel_table_modules_and_processors(sessions, kind):
    tri, rep = sessions["triage"], sessions[kind]
    assert rep.dump.kind.name == {"kernel_bitmap": "KERNEL_BITMAP", "full": "FULL"}[kind]
    t_target, r_target = tri.slot("target"), rep.slot("target")
    assert r_target.module_list.source == "PsLoadedModuleList"
    assert t_target.module_list.source == "triage driver list"
    assert t_target.kernel_table_reason and r_target.kernel_table_reason
    assert "5278AFF86C341677D7D7835C85B7B844" in r_target.kernel_table_reason
    assert [p.prcb for p in r_target.kernel.processors()] == [p.prcb for p in t_target.kernel.processors()]
    assert r_target.kernel.current_thread().address == t_target.kernel.current_thread().address
    assert r_target.kernel.current_process().pid == t_target.kernel.current_process().pid


@pytest.mark.parametrize("kind", KINDS)
def test_registers(sessions, kind):
    d = _data(sessions, "r")
    assert d["triage"] == d[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_loaded_modules(sessions, kind):
    d = _data(sessions, "lm")
    tri, rep = d["triage"][-1], d[kind][-1]
    assert len(tri["modules"]) > 100
    assert tri["modules"] == rep["modules"]


@pytest.mark.parametrize("kind", KINDS)
def test_stack_kv(sessions, kind):
    d = _data(sessions, "kv")
    tri, rep = d["triage"][-1], d[kind][-1]
    assert tri["context"] == rep["context"]
    _check_frames(sessions, kind, tri["frames"], rep["frames"])


@pytest.mark.parametrize("kind", KINDS)
def test_thread(sessions, kind):
    d = _data(sessions, "!thread")
    tri, rep = dict(d["triage"][-1]), dict(d[kind][-1])
    tf, rf = tri.pop("frames"), rep.pop("frames")
    tri.pop("stack_lines"), rep.pop("stack_lines")
    if tri.get("increment_error") and rep.get("increment_error") is None:
        # nt!KeMaximumIncrement's bytes were not captured: the re-pack reads them as zero.
        assert rep.get("max_increment") == 0
        assert _uncaptured_global(sessions, kind, "KeMaximumIncrement", 4)
        for k in ("increment_error", "max_increment", "user_time_100ns", "kernel_time_100ns"):
            tri.pop(k, None), rep.pop(k, None)
    assert _compare(tri, rep) == []
    _check_frames(sessions, kind, tf["frames"], rf["frames"])


def _uncaptured_global(sessions, kind, name: str, size: int) -> bool:
    """Is ``nt!name`` absent from the triage dump and zero in the re-pack (a partly captured page)?"""
    addr = sessions["triage"].slot("target")._kernel_symbol(name)
    return bool(addr) and _absent_in_triage_zero_in_repack(sessions, kind, addr, size)


@pytest.mark.parametrize("kind", KINDS)
def test_running(sessions, kind):
    d = _data(sessions, "!running")
    tri, rep = dict(d["triage"][-1]), dict(d[kind][-1])
    t_src, r_src = dict(tri.pop("mask_source", {})), dict(rep.pop("mask_source", {}))
    if t_src.get("system") != r_src.get("system"):
        # The triage dump lacks nt!KeActiveProcessors, so the mask comes from the PRCBs; the
        # re-pack reads the global's zero-filled bytes.
        assert r_src["system"] == "nt!KeActiveProcessors" and rep["system_mask"] == 0
        assert _uncaptured_global(sessions, kind, "KeActiveProcessors", 8)
        tri.pop("system_mask"), rep.pop("system_mask"), t_src.pop("system"), r_src.pop("system")
    assert t_src == r_src
    assert _compare(tri, rep) == []
    assert len(tri["rows"]) >= 2


@pytest.mark.parametrize("kind", KINDS)
def test_analyze(sessions, kind):
    tri = _data(sessions, "!analyze -v")
    tri, rep = tri["triage"][-1], tri[kind][-1]
    for key in ("FAILURE_BUCKET_ID", "MODULE_NAME", "SYMBOL_NAME", "IMAGE_NAME", "BUGCHECK_CODE"):
        assert tri["fields"].get(key) == rep["fields"].get(key), key
    assert tri["fields"]["FAILURE_BUCKET_ID"] == "AV_amdppm!WriteIoMemRawEx"
    assert tri["failure_bucket_id"] == rep["failure_bucket_id"]
    n = _check_frames(sessions, kind, tri["stack"], rep["stack"])
    assert n >= 10
    t_lines = tri["fields"]["STACK_TEXT"].splitlines()
    r_lines = rep["fields"]["STACK_TEXT"].splitlines()
    # The last agreeing frame's line shows its return address, which may be where they part.
    assert t_lines[: n - 1] == r_lines[: n - 1]
