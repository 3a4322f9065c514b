"""``.formats`` floats as kd's C runtime prints them.

Published ``.formats`` output (DebugPrivilege ``.formats 57724231h``; a Chinese notes page
``1: kd> .formats a9c``; a paging walk-through ``.formats nt!NtCreateFile``; MS docs ``.formats 1c407e62``):
``Float:   low 2.66366e+014 high 0``, ``Float:   low 3.80593e-042 high 0`` / ``Double:  1.34188e-320``,
``Float:   low 4.3642e-011 high -1.#QNAN`` / ``Double:  -1.#QNAN``.
"""

from __future__ import annotations

from bugcheck.commands.expr import formats_table
from bugcheck.commands.meta import _msvc_floats, msvc_g


def test_three_digit_exponents():
    assert msvc_g(0x57724231, 32) == "2.66366e+014"
    assert msvc_g(0x57724231, 64) == "7.24847e-315"
    assert msvc_g(0xA9C, 32) == "3.80593e-042"
    assert msvc_g(0xA9C, 64) == "1.34188e-320"
    assert msvc_g(0, 32) == "0"


def test_nan_and_infinity():
    assert msvc_g(0xFFFFF805, 32) == "-1.#QNAN"
    assert msvc_g(0xFFFFF8052E3FF090, 64) == "-1.#QNAN"
    assert msvc_g(0x7F800000, 32) == "1.#INF"


def test_table_lines():
    lines = _msvc_floats(formats_table(0xA9C), 0xA9C).splitlines()
    assert "  Float:   low 3.80593e-042 high 0" in lines
    assert "  Double:  1.34188e-320" in lines


def test_invalid_times():
    """``kd> .formats cr0`` (80050031): ``Time:    ***** Invalid``; ``.formats nt!NtCreateFile``
    (fffff805`2e3ff090): ``Time:    ***** Invalid FILETIME``."""
    assert "  Time:    ***** Invalid" in _msvc_floats(formats_table(0x80050031), 0x80050031).splitlines()
    big = 0xFFFFF8052E3FF090
    assert "  Time:    ***** Invalid FILETIME" in _msvc_floats(formats_table(big), big).splitlines()
    assert "  Time:    Thu Jan  1 00:45:16 1970" in _msvc_floats(formats_table(0xA9C), 0xA9C).splitlines()
