"""Regression: a dump cut inside its 8-byte signature is called truncated, not "not a crash dump"."""

from __future__ import annotations

import pytest

import bugcheck
from bugcheck.errors import BadFileError


@pytest.mark.parametrize("sig", [b"PAGEDU64", b"PAGEDUMP"])
def test_cut_inside_signature_is_truncated(tmp_path, sig):
    for n in range(1, 8):
        p = tmp_path / f"cut{n}.dmp"
        p.write_bytes(sig[:n])
        with pytest.raises(BadFileError, match="truncated dump header"):
            bugcheck.open(p)
    # other short files are still simply not dumps
    p = tmp_path / "other.dmp"
    p.write_bytes(b"PAGX")
    with pytest.raises(BadFileError, match="not a crash dump"):
        bugcheck.open(p)
