"""Same crash, three formats: rizin-triage_x64.dmp and its kernel-bitmap and full re-packs.

The re-packs hold the triage dump's captured memory behind generated page
tables, its driver list as a real PsLoadedModuleList (``_KLDR_DATA_TABLE_ENTRY``
records laid out with the 19041 types) and its debugger data block. The tool
must give the same answers on all three: the JSON data of ``Session.run``.

One difference is inherent to the re-pack and tolerated where it occurs: a
page is the unit of a kernel dump, so bytes of a page the triage dump only
partly captured read as zeros after re-packing. A value the triage tool could
not read (None, printed ``??``) may read as 0 in the re-pack. Values that can
never be zero (the active-processor set, the clock increment, code where a
call returns) are treated as missing there too, so everything else, stacks
included, must be identical.
"""

from __future__ import annotations

import re

import pytest

import bugcheck
from bugcheck.commands.registry import lookup
from bugcheck.commands.session import Session, load_commands
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
    images = _images(src)
    for kind in KINDS:
        out[kind] = folder / f"rizin-{kind}.dmp"
        repack(src, out[kind], kind, types=table, images=images)
    return out


def _images(src):
    """amdppm's and Wdf01000's images from the corpus symbol store, as a kernel dump holds them."""
    from bugcheck.kernel.modules import from_triage
    from bugcheck.symbols.pe.mapping import module_images
    from bugcheck.symbols.store import SymbolStore

    store = SymbolStore(str(corpus_file("symstore")), offline=True, quiet=True)
    images = module_images(from_triage(src).modules, store)
    assert len(images) == 2
    return images


def _sessions(dumps):
    symbols_dir = str(corpus_file("symbols", "isf"))
    sympath = str(corpus_file("symstore"))
    load_commands()
    out = {}
    for name, path in dumps.items():
        s = Session(bugcheck.open(path), offline=True, symbols_dir=symbols_dir, sympath=sympath)
        s.raise_errors = True
        out[name] = s
    return out


@pytest.fixture(scope="module")
def sessions(dumps):
    return _sessions(dumps)


def _data(sessions, line):
    name = line.split()[0]
    if lookup(name) is None:
        pytest.skip(f"{name} is not implemented yet")
    return {k: [r.data for r in s.run(line)] for k, s in sessions.items()}


#: where the tool found a module's image (the store's file, or the dump's memory once the
#: re-pack holds it): how the answer was reached, not the answer
SOURCE_KEYS = {"image_file"}


def _compare(a, b, path="", problems=None):
    """Differences between triage data ``a`` and re-pack data ``b``; None in ``a`` may be 0 in ``b``."""
    problems = [] if problems is None else problems
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k in SOURCE_KEYS:
                continue
            if k not in a or k not in b:
                problems.append(f"{path}.{k}: only in {'re-pack' if k in b else 'triage'}")
            else:
                _compare(a[k], b[k], f"{path}.{k}", problems)
    elif isinstance(a, list) and isinstance(b, list) and path.endswith(".instructions"):
        _compare_listing(a, b, path, problems)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            problems.append(f"{path}: {len(a)} items vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _compare(x, y, f"{path}[{i}]", problems)
    elif a is None and b in (None, 0):
        pass
    elif isinstance(a, str) and isinstance(b, str) and _same_missing_list(a, b):
        pass
    elif a != b:
        problems.append(f"{path}: {a!r} vs {b!r}")
    return problems


def _compare_listing(a: list, b: list, path: str, problems: list) -> None:
    """Disassembly: identical up to the first byte the triage dump lacks (``???``); from there the
    re-pack decodes zeros, so its instruction boundaries may differ, but every byte the triage
    dump knows must be the same byte in the re-pack."""
    known = next((i for i, x in enumerate(a) if x.get("bytes") is None), len(a))
    for i, (x, y) in enumerate(zip(a[:known], b[:known], strict=False)):
        _compare(x, y, f"{path}[{i}]", problems)
    rep: dict[int, int] = {}
    for x in b:
        for i, byte in enumerate(bytes.fromhex(x.get("bytes") or "")):
            rep[x["address"] + i] = byte
    end = max(rep) if rep else 0
    for x in a[known:]:
        for i, byte in enumerate(bytes.fromhex(x.get("bytes") or "")):
            va = x["address"] + i
            if va <= end and rep.get(va) != byte:
                problems.append(f"{path}: byte at {va:#x} is {byte:#04x} vs {rep.get(va)!r}")


def _same_missing_list(a: str, b: str) -> bool:
    """A list head the triage dump lacks reads as a null link from the re-pack's zero bytes."""
    m = re.fullmatch(r"list head (0x[0-9a-f]+) is not in the dump \(0x[0-9a-f]+\)", a)
    return bool(m) and b == f"list at {m.group(1)} ends in a null link"


def _check_frames(tri: list[dict], rep: list[dict]) -> int:
    """The walks agree frame for frame: addresses, stack pointers, symbols, arguments, how found."""
    assert [(f["pc"], f["sp"], f["symbol"]) for f in tri] == [(f["pc"], f["sp"], f["symbol"]) for f in rep]
    assert _compare(tri, rep) == []
    return len(tri)


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
    assert len(tri["frames"]) >= 20
    _check_frames(tri["frames"], rep["frames"])


@pytest.mark.parametrize("kind", KINDS)
def test_thread(sessions, kind):
    d = _data(sessions, "!thread")
    tri, rep = dict(d["triage"][-1]), dict(d[kind][-1])
    tf, rf = tri.pop("frames"), rep.pop("frames")
    tri.pop("stack_lines"), rep.pop("stack_lines")
    assert _compare(tri, rep) == []
    _check_frames(tf["frames"], rf["frames"])


@pytest.mark.parametrize("kind", KINDS)
def test_running(sessions, kind):
    d = _data(sessions, "!running")
    tri, rep = dict(d["triage"][-1]), dict(d[kind][-1])
    t_src, r_src = dict(tri.pop("mask_source", {})), dict(rep.pop("mask_source", {}))
    assert t_src == r_src
    assert _compare(tri, rep) == []
    assert len(tri["rows"]) >= 2


@pytest.mark.parametrize("kind", KINDS)
def test_analyze(sessions, kind):
    tri = _data(sessions, "!analyze -v")
    tri, rep = tri["triage"][-1], tri[kind][-1]
    for key in (
        "FAILURE_BUCKET_ID",
        "MODULE_NAME",
        "SYMBOL_NAME",
        "IMAGE_NAME",
        "IMAGE_VERSION",
        "BUGCHECK_CODE",
    ):
        assert tri["fields"].get(key) == rep["fields"].get(key), key
    assert tri["fields"]["FAILURE_BUCKET_ID"] == "AV_amdppm!WriteIoMemRawEx"
    # amdppm's resources are discardable, so not in the re-pack's memory: its file gives the version
    assert rep["fields"]["IMAGE_VERSION"] == "10.0.19041.1110"
    assert tri["failure_bucket_id"] == rep["failure_bucket_id"]
    assert _check_frames(tri["stack"], rep["stack"]) >= 20
    assert tri["fields"]["STACK_TEXT"] == rep["fields"]["STACK_TEXT"]


# Commands run in order in fresh sessions (some switch processor or context); every result's
# data must agree, a value the triage dump lacks (None) being 0 at most in the re-pack.
SEQUENCES = [
    ["!process -1 7"],
    ["!process 0 0"],
    ["!process 0 7"],
    ["!irql", "!pcr", "!prcb"],
    ["~3s", "r", "kv", "!pcr", "!prcb", "!thread"],
    ["~5s", "r", "kv", "!irql"],
    ["!running -t", "!running -i"],
    [".trap ffff850429891f90", "r", "kv", ".frame 1"],
    [".cxr ffff850429891720", "r", "kv", ".cxr"],
    [".thread ffffc08bde9e1640", "kv"],
    ["kn", "kc", "kp", "kL", "kb 5", "kd 4"],
    ["ln fffff8048b58334c", "x amdppm!Write*", "dps ffff850429892120 L10", "dq ffff850429892120 L8"],
    ["db fffff8048b580000 L40", "dd ffff850429892120 L8", "lm", "lmv m amdppm", "!lmi amdppm"],
    ["u fffff8048b58334c", "ub fffff8048b58334c", "uf amdppm!WriteIoMemRawEx"],
    # code the triage dump did not capture: its image file fills it, as the re-pack holds it
    ["u amdppm!InitAcpiCpc L20", "uf amdppm!WriteGenAddrEx", "db amdppm L100"],
    ["u Wdf01000+0x7c000 L10", "ub Wdf01000+0x16f81", "u nt!KiIdleLoop L4"],
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("commands", SEQUENCES, ids=lambda c: "; ".join(c))
def test_command_sequences(dumps, kind, commands):
    fresh = _sessions({"triage": dumps["triage"], kind: dumps[kind]})
    for line in commands:
        got = {k: [r.data for r in s.run(line)] for k, s in fresh.items()}
        problems = _compare(got["triage"], got[kind], line)
        assert problems == [], "\n".join(problems[:20])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("module", ["amdppm", "Wdf01000"])
def test_chkimg(dumps, kind, module):
    """!chkimg compares what each form holds (a few thousand bytes in the triage dump, every code
    byte in the re-pack): the verdict is the same, and every difference it sets apart lies
    where the image's dynamic value relocations say the kernel rewrites code at load."""
    from bugcheck.symbols.pe import PeImage
    from bugcheck.symbols.pe.mapping import rewritten_code

    fresh = _sessions({"triage": dumps["triage"], kind: dumps[kind]})
    got = {k: s.run(f"!chkimg {module}")[-1].data for k, s in fresh.items()}
    tri, rep = got["triage"], got[kind]
    assert tri["errors"] == rep["errors"] == 0 and tri["ranges"] == rep["ranges"] == []
    assert tri["checked_bytes"] < rep["checked_bytes"] == rep["code_bytes"]
    assert tri["loader_rewritten_bytes"] > 0
    target = fresh["triage"].slot("target")
    m = target.resolver.module_by_name(module)
    with PeImage.from_file(target.store.find_image(m.image_name, m.timestamp, m.size)) as image:
        sites = rewritten_code(image)
    from bugcheck.commands.chkimg import check_module

    with PeImage.from_file(target.store.find_image(m.image_name, m.timestamp, m.size)) as image:
        res = check_module(fresh["triage"].dump, m, image)
    assert res["rewritten"]
    for va, dump_bytes, _file_bytes in res["rewritten"]:
        rva = va - m.base
        inside = any(a <= rva and rva + len(dump_bytes) <= b for a, b in sites)
        assert inside, hex(va)


def test_chkimg_sees_a_changed_code_byte(dumps, tmp_path):
    """The re-pack check can fail: one code byte changed in the placed image is one error."""
    from bugcheck.dumpfile.writer import repack
    from bugcheck.symbols.isf import load_isf

    src = bugcheck.open(dumps["triage"])
    images = _images(src)
    base = next(b for b, im in images.items() if im.size == 0x3B000)  # amdppm
    pieces = [list(p) for p in images[base].placed()]
    # a byte of .text (RVA 0x1000 on) that the triage dump did not capture
    captured = {b.address for b in src.virtual.blocks}
    va, data = next((va, d) for va, d in pieces if va >= base + 0x1000 and len(d) > 0x200)
    at = next(i for i in range(0x100, len(data)) if va + i not in captured and not _in_block(src, va + i))
    changed = bytearray(data)
    changed[at] ^= 0xFF
    placed = {b: im for b, im in images.items() if b != base}
    placed[base] = [(v, bytes(changed) if v == va else d) for v, d in pieces]
    out = tmp_path / "patched.dmp"
    repack(src, out, "kernel_bitmap", types=load_isf(corpus_file(*TABLE)), images=placed)
    s = _sessions({"patched": out})["patched"]
    r = s.run("!chkimg amdppm")[-1].data
    assert r["errors"] == 1 and r["ranges"][0]["address"] == va + at


def _in_block(dump, va: int) -> bool:
    return any(b.address <= va < b.address + b.size for b in dump.virtual.blocks)
