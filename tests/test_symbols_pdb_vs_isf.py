"""The x64 ntdll PDBs carry kernel types; compare them with the 19041 kernel symbol tables.

Two independent readers (our PDB reader over Microsoft's PDB, our ISF reader over
Volatility's JSON made from kernel PDBs) are compared member by member: name,
offset, bitfield position/length and the size of each member's type.

What the corpus shows (checked when this test was written): ``_EPROCESS`` and
``_KTRAP_FRAME`` of both ntdll PDBs equal those of several 19041 tables exactly.
``_KTHREAD`` and ``_KPRCB`` equal no table exactly: the ntdll builds sit between
the kernel revisions in the set, and the nearest table differs only in a few
reserved members at one or two offsets (e.g. ``SpecCtrl`` at +0x7f became the
``RunningNonRetpolineCode`` bitfield; ``PrcbPad20`` became ``MsrIa32TsxCtrl``).
The test asserts exactly that, so a reader bug anywhere else in these layouts fails it.
"""

from pathlib import Path

import pytest

from bugcheck.symbols.isf import load_isf
from bugcheck.symbols.pdb import open_pdb
from corpus import corpus_file, corpus_root

PDBS = ["win10-19041-ntdll-x64-a.pdb", "win10-19041-ntdll-x64-b.pdb"]
EXACT = ["_EPROCESS", "_KTRAP_FRAME"]
NEAR = ["_KTHREAD", "_KPRCB"]


def _rows(t):
    return {(m.name, m.offset, m.bit_position, m.bit_length, m.resolved_type().size) for m in t.members}


@pytest.fixture(scope="module")
def tables_19041():
    root = corpus_root()
    if root is None:
        pytest.skip("test corpus not found")
    folder = Path(root) / "symbols" / "isf" / "windows" / "ntkrnlmp.pdb"
    out = []
    for f in sorted(folder.glob("*.json.xz")):
        t = load_isf(f)
        ep = t.find_type("_EPROCESS")
        # the 19041 family: _EPROCESS is 0xA40 there (17763's is smaller)
        if ep is not None and ep.size == 0xA40:
            out.append((f.name, t))
    assert len(out) >= 10
    return out


@pytest.mark.parametrize("pdb_name", PDBS)
def test_exact_layouts(tables_19041, pdb_name):
    pdb = open_pdb(corpus_file("symbols", "pdb", pdb_name))
    for type_name in EXACT:
        a = pdb.types.find_type(type_name)
        matches = [
            n
            for n, t in tables_19041
            if t.find_type(type_name).size == a.size and _rows(t.find_type(type_name)) == _rows(a)
        ]
        assert matches, f"{type_name} of {pdb_name} equals no 19041 table"


@pytest.mark.parametrize("pdb_name", PDBS)
def test_near_layouts_differ_only_in_reserved_members(tables_19041, pdb_name):
    pdb = open_pdb(corpus_file("symbols", "pdb", pdb_name))
    for type_name in NEAR:
        a = pdb.types.find_type(type_name)
        ra = _rows(a)
        best = min(
            ((len(ra ^ _rows(t.find_type(type_name))), n, t.find_type(type_name)) for n, t in tables_19041),
            key=lambda x: x[0],
        )
        diff, name, b = best
        assert b.size == a.size
        changed = ra ^ _rows(b)
        offsets = {r[1] for r in changed}
        assert diff <= 4 and len(offsets) <= 2, (type_name, name, sorted(changed))
        # every other member: same name, offset, bits and size
        assert len(ra - changed) == len(ra) - len(ra & changed) and len(ra - changed) > 50
