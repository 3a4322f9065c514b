"""Small pieces of the PDB reader that the corpus does not exercise (OMAP, name rules, leaves)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from bugcheck.symbols.pdb.dbi import Omap, SectionHeader
from bugcheck.symbols.pdb.leaves import numeric, simple_type
from bugcheck.symbols.pdb.symbols import undecorate_c, undecorate_msvc, wildcard_regex


def test_omap_translation():
    om = Omap(struct.pack("<6I", 0x1000, 0x5000, 0x1100, 0, 0x1200, 0x2000))
    assert om.map(0x1000) == 0x5000
    assert om.map(0x10FF) == 0x50FF
    assert om.map(0x1150) == 0  # dropped code
    assert om.map(0x1210) == 0x2010
    assert om.map(0x0FFF) == 0


def test_vector_and_scalar_rva_agree_with_omap():
    from bugcheck.symbols.pdb import PdbFile

    pdb = PdbFile.__new__(PdbFile)
    pdb.__dict__["sections"] = [
        SectionHeader(".text", 0x1000, 0x1000, 0),
        SectionHeader(".data", 0x200, 0x2000, 0),
    ]
    pdb.__dict__["omap_from_src"] = Omap(struct.pack("<6I", 0x1000, 0x8000, 0x1800, 0, 0x2000, 0x9000))
    segs = np.array([1, 1, 2, 3, 0, 1])
    offs = np.array([0x10, 0x900, 0x4, 0, 0, 0x7FF])
    vec = pdb.rvas_of(segs, offs).tolist()
    scalar = [pdb.rva_of(int(s), int(o)) for s, o in zip(segs, offs, strict=True)]
    assert vec == [-1 if x is None else x for x in scalar]
    assert scalar == [0x8010, None, 0x9004, None, None, 0x87FF]


@pytest.mark.parametrize(
    ("raw", "machine", "shown"),
    [
        ("_KeBugCheckEx@20", "x86", "KeBugCheckEx"),
        ("@KfRaiseIrql@4", "x86", "KfRaiseIrql"),
        ("_PsInitialSystemProcess", "x86", "PsInitialSystemProcess"),
        ("?Foo@@YAXXZ", "x86", "Foo"),
        ("_KeBugCheckEx", "x64", "_KeBugCheckEx"),
        ("_", "x86", "_"),
    ],
)
def test_undecorate_c(raw, machine, shown):
    assert undecorate_c(raw, machine) == shown


def test_wildcards():
    rx = wildcard_regex("Ke*Check?x")
    assert rx.match("KeBugCheckEx") and rx.match("kebugcheckex")
    assert not rx.match("KeBugCheckEx2")
    assert wildcard_regex("a.b").match("a.b") and not wildcard_regex("a.b").match("axb")


def test_numeric_leaves():
    assert numeric(struct.pack("<H", 0x7FFF), 0) == (0x7FFF, 2)
    assert numeric(struct.pack("<Hb", 0x8000, -1), 0) == (-1, 3)
    assert numeric(struct.pack("<Hh", 0x8001, -2), 0) == (-2, 4)
    assert numeric(struct.pack("<HI", 0x8004, 0xFFFFFFFF), 0) == (0xFFFFFFFF, 6)
    assert numeric(struct.pack("<Hq", 0x8009, -5), 0) == (-5, 10)
    assert numeric(struct.pack("<HQ", 0x800A, 1 << 63), 0) == (1 << 63, 10)
    with pytest.raises(ValueError):
        numeric(struct.pack("<H", 0x80FF), 0)


def test_simple_types_use_windbg_names():
    assert simple_type(0x0022, 8).name == "Uint4B"
    assert simple_type(0x0013, 8).name == "Int8B"
    assert simple_type(0x0071, 8).name == "Wchar"
    assert simple_type(0x0603, 8).name == "Ptr64 Void"
    assert simple_type(0x0403, 4).size == 4
    t = simple_type(0x0620, 8)
    assert t.size == 8 and t.resolved_target().name == "UChar"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("?PnpPrepareHardware@FxPkgPnp@@QEAAJXZ", "FxPkgPnp::PnpPrepareHardware"),
        ("?_PnpStartDevice@FxPkgPnp@@CAJPEAV1@PEAVFxIrp@@@Z", "FxPkgPnp::_PnpStartDevice"),
        ("??0FxPkgPnp@@IEAA@PEAU_FX_DRIVER_GLOBALS@@@Z", "FxPkgPnp::FxPkgPnp"),
        ("??1FxObject@@UEAA@XZ", "FxObject::~FxObject"),
        ("??_7FxDevice@@6B@", "FxDevice::`vftable'"),
        ("??_C@_02LMMGGCAJ@?3?5@", "`string'"),
        ("?Get@?$Foo@H@@QAEHXZ", "?Get@?$Foo@H@@QAEHXZ"),  # templates stay mangled
        ("?Invoke@1@QAE", "?Invoke@1@QAE"),  # dangling back-reference
    ],
)
def test_undecorate_msvc(raw, shown):
    assert undecorate_msvc(raw) == shown
    assert undecorate_c(raw, "x86") == shown
