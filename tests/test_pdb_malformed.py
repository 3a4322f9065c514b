"""Truncated and corrupted PDBs must raise BadFileError and nothing else."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bugcheck.errors import BadFileError, UnsupportedFormatError
from bugcheck.symbols.pdb import open_pdb, open_pdb_bytes
from bugcheck.symbols.pdb.msf import MSF2_MAGIC
from corpus import corpus_file


@pytest.fixture(scope="module")
def sample() -> bytes:
    return corpus_file("symbols", "pdb", "debugpy", "attach_amd64.pdb").read_bytes()


def exercise(data: bytes) -> None:
    """Open and touch every lazy part; only BadFileError may escape."""
    try:
        pdb = open_pdb_bytes(data, "cut.pdb")
    except BadFileError:
        return
    for step in (
        lambda: (pdb.guid, pdb.age, pdb.info_age, pdb.machine, pdb.symstore_key),
        lambda: pdb.symbols.symbol_at(0x1234),
        lambda: pdb.symbols.symbol_by_name("printf"),
        lambda: pdb.symbols.symbols_matching("*a*"),
        lambda: pdb.types.type_names()[:5],
        lambda: [pdb.types.type_by_key(ti).members for ti in list(pdb.types.indices())[:400]],
        lambda: [
            m.resolved_type() for m in (pdb.types.find_type("_iobuf") or pdb.types.type_by_key(0x74)).members
        ],
        lambda: (pdb.fpo, pdb.frame_data, pdb.frame_data_at(0x1000)),
    ):
        try:
            step()
        except BadFileError:
            pass


def test_truncated_files(sample):
    rng = random.Random(5)
    cuts = [0, 1, 31, 32, 52, 56, 100, 4096, 4097, 8192] + sorted(rng.sample(range(8192, len(sample)), 25))
    for n in cuts:
        exercise(sample[:n])


def test_not_a_pdb(tmp_path):
    p = tmp_path / "x.pdb"
    p.write_bytes(b"MZ" + bytes(200))
    with pytest.raises(BadFileError, match="not a PDB"):
        open_pdb(p)
    with pytest.raises(BadFileError):
        open_pdb(tmp_path / "missing.pdb")
    with pytest.raises(BadFileError):
        open_pdb(tmp_path)


def test_msf2_is_unsupported(tmp_path):
    p = tmp_path / "old.pdb"
    p.write_bytes(MSF2_MAGIC + bytes(4096))
    with pytest.raises(UnsupportedFormatError, match="2.0"):
        open_pdb(p)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 255)), min_size=1, max_size=12))
def test_random_corruption(sample, edits):
    buf = bytearray(sample)
    # aim most edits at the superblock, the directory and the first blocks where structure lives
    hot = [0, 4096 * 2, len(buf) - 8192]
    for i, (pos, val) in enumerate(edits):
        base = hot[i % len(hot)]
        buf[(base + pos % 8192) % len(buf)] = val
    exercise(bytes(buf))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**31))
def test_corrupt_stream_directory(sample, value, where):
    """Overwrite one word of the stream directory (sizes and block numbers)."""
    import struct

    bs, _f, _n, dirbytes, _u, mapaddr = struct.unpack_from("<6I", sample, 32)
    first_dir_block = struct.unpack_from("<I", sample, mapaddr * bs)[0]
    buf = bytearray(sample)
    off = first_dir_block * bs + 4 * (where % max(1, min(dirbytes, bs) // 4))
    struct.pack_into("<I", buf, off, value)
    exercise(bytes(buf))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["tpi", "dbi", "symrec", "publics", "globals"]),
    st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=16),
)
def test_corrupt_streams(sample, which, edits):
    """Corrupt bytes inside one stream's blocks (type records, DBI, symbol records, GSI tables)."""
    pdb = open_pdb_bytes(sample)
    h = pdb.dbi.header
    index = {
        "tpi": 2,
        "dbi": 3,
        "symrec": h.symrec_stream,
        "publics": h.public_stream,
        "globals": h.global_stream,
    }
    blocks = pdb.msf._blocks[index[which]]
    bs = pdb.msf.block_size
    buf = bytearray(sample)
    for pos, val in edits:
        b = blocks[(pos // bs) % len(blocks)]
        buf[b * bs + pos % bs] = val
    exercise(bytes(buf))
