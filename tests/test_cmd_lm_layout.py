"""``lm`` rows padded as kd pads them.

Real output (uncollapsed):
- MS docs "Debugging a kernel-mode driver" lab (debuglab, ``0: Kd> lm``):
  ``fffff801`09200000 fffff801`0925f000   volmgrx    (no symbols)           `` and
  ``fffff801`09261000 fffff801`092de000   mcupdate_GenuineIntel   (no symbols)           ``.
- A Chinese WinDbg notes repo, ``kd> lm m T*`` on x86: header ``start    end        module name``,
  ``b1d28000 b1d4d000   TAOKernelXP   (deferred)             ``,
  ``b2ce8000 b2d0a700   TFsFlt     (deferred)             ``,
  ``f889a000 f88a3f00   termdd     (pdb symbols)          d:\\symcachel\\termdd.pdb\\...``.
- DebugPrivilege/InsightEngineering ``lmvm EvilDriver`` and ``lmvm SysmonDrv``:
  ``fffff807`84da0000 fffff807`84da7000   EvilDriver   (no symbols)           ``,
  ``fffff802`5c000000 fffff802`5c02e000   SysmonDrv   (deferred)             `` - the name
  fills eight columns and three blanks follow it.
- ``lmvm`` output of nt (18362 and 19041), stornvme, sqlservr: ``Browse full module list``, then
  the detail lines in the order ``Loaded symbol image file``, ``Image path``, ``Image name``,
  ``Browse all global symbols  functions  data``, ``Image was built with /Brepro flag.``,
  ``Timestamp``, ``CheckSum``, ``ImageSize``, versions, ``Translations``,
  ``Information from resource tables:``; without a version resource kd lists
  ``Translations:     0000.04b0 0000.04e4 0409.04b0 0409.04e4``.
"""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.commands.session import Session
from bugcheck.commands.symbols_cmds import LM_HEADER, lm_row
from corpus import corpus_file, dump


@pytest.mark.parametrize(
    ("head", "name", "state", "path", "want"),
    [
        ("fffff801`09200000 fffff801`0925f000   ", "volmgrx", "(no symbols)", None,
         "fffff801`09200000 fffff801`0925f000   volmgrx    (no symbols)           "),
        ("fffff801`09261000 fffff801`092de000   ", "mcupdate_GenuineIntel", "(no symbols)", None,
         "fffff801`09261000 fffff801`092de000   mcupdate_GenuineIntel   (no symbols)           "),
        ("b1d28000 b1d4d000   ", "TAOKernelXP", "(deferred)", None,
         "b1d28000 b1d4d000   TAOKernelXP   (deferred)             "),
        ("b2ce8000 b2d0a700   ", "TFsFlt", "(deferred)", None,
         "b2ce8000 b2d0a700   TFsFlt     (deferred)             "),
        ("f889a000 f88a3f00   ", "termdd", "(pdb symbols)", "d:\\s\\termdd.pdb",
         "f889a000 f88a3f00   termdd     (pdb symbols)          d:\\s\\termdd.pdb"),
        ("fffff807`84da0000 fffff807`84da7000   ", "EvilDriver", "(no symbols)", None,
         "fffff807`84da0000 fffff807`84da7000   EvilDriver   (no symbols)           "),
        ("fffff802`5c000000 fffff802`5c02e000   ", "SysmonDrv", "(deferred)", None,
         "fffff802`5c000000 fffff802`5c02e000   SysmonDrv   (deferred)             "),
    ],
)  # fmt: skip
def test_lm_row(head, name, state, path, want):
    assert lm_row(head, name, state, path) == want


def test_lm_on_triage_dump():
    d = bugcheck.open(dump("ojusha-100623-4953-01.dmp"))
    s = Session(
        d, sympath=str(corpus_file("symstore")), offline=True, symbols_dir=str(corpus_file("symbols", "isf"))
    )
    (res,) = s.run("lm")
    lines = res.text.splitlines()
    assert lines[0] == LM_HEADER
    rows = {line.split()[2]: line for line in lines[1:] if line.count("`") == 2}
    assert rows["hal"].endswith("   hal        (deferred)             ")
    assert rows["mcupdate_GenuineIntel"].endswith("   mcupdate_GenuineIntel   (deferred)             ")


def test_reload_dots_63_then_64():
    """Real kd load output (WinDbg 6.12 on a 22621 minidump; WinDbg 10.0.27871 on a 26100 one;
    MicrosoftDocs/windows-driver-docs#1151): 63 dots, then lines of 64, then the rest."""
    from bugcheck.commands.symbols_cmds import reload_dot_lines

    assert [len(x) for x in reload_dot_lines(250)] == [63, 64, 64, 59]
    assert [len(x) for x in reload_dot_lines(63)] == [63]
    assert reload_dot_lines(0) == []


def test_reload_prints_the_user_symbols_line():
    d = bugcheck.open(dump("ojusha-100623-4953-01.dmp"))
    s = Session(
        d, sympath=str(corpus_file("symstore")), offline=True, symbols_dir=str(corpus_file("symbols", "isf"))
    )
    (res,) = s.run(".reload")
    lines = res.text.splitlines()
    assert lines[0] == "Loading Kernel Symbols"
    assert len(lines[1]) == 63
    i = lines.index("Loading User Symbols")
    assert all(set(x) == {"."} for x in lines[1:i])


def test_expanded_sympath():
    """MS docs (.symfix, getting started with WinDbg): ``srv*`` expands to the cache and
    Microsoft's server; other elements are shown lower-cased."""
    from bugcheck.commands.symbols_cmds import expand_sympath

    assert expand_sympath("srv*") == "cache*;SRV*https://msdl.microsoft.com/download/symbols"
    assert expand_sympath("c:\\someSymbols") == "c:\\somesymbols"
    assert expand_sympath("c:\\someSymbols;srv*") == (
        "c:\\somesymbols;cache*;SRV*https://msdl.microsoft.com/download/symbols"
    )


def test_lmvm_detail_order():
    d = bugcheck.open(dump("rizin-triage_x64.dmp"))
    s = Session(
        d, sympath=str(corpus_file("symstore")), offline=True, symbols_dir=str(corpus_file("symbols", "isf"))
    )
    (res,) = s.run("lmvm amdppm")
    lines = res.text.splitlines()
    assert lines[:2] == ["Browse full module list", LM_HEADER]
    heads = [ln.split(":")[0].strip() for ln in lines[3:]]
    # the image came from the symbol store: kd names the file it mapped (minidump lmvm output:
    # "Mapped memory image file: c:\\symbols\\ntoskrnl.exe\\...\\ntoskrnl.exe")
    order = ["Loaded symbol image file", "Mapped memory image file", "Image path", "Image name", "Browse all global symbols  functions  data",
             "Image was built with /Brepro flag.", "Timestamp", "CheckSum", "ImageSize", "File version",
             "Product version", "Translations", "Information from resource tables"]  # fmt: skip
    assert heads[: len(order)] == order
    assert "    Translations:     0409.04b0" in lines
    (res,) = s.run("lmvm hal")  # no image at hand
    assert res.text.splitlines()[-2:] == [
        "    Translations:     0000.04b0 0000.04e4 0409.04b0 0409.04e4",
        "    Information from resource tables:",
    ]


def test_path_validation_summary(tmp_path):
    """A cdb ``.sympath d:\\WinRestore\\Symbols\\`` and a ``.symfix``/``.sympath`` session in published
    notes: ``Response                         Time (ms)     Location`` then ``OK`` / ``Deferred`` rows
    with the location at column 47."""
    from bugcheck.commands.symbols_cmds import path_validation_lines

    assert path_validation_lines(f"srv*;{tmp_path}") == [
        "************* Path validation summary **************",
        "Response                         Time (ms)     Location",
        "Deferred                                       srv*",
        f"OK                                             {tmp_path}",
    ]
    assert path_validation_lines("") == []
