"""ISF table load time (first and cached) and kernel-table identification time (cold and warm).

Uses the corpus tables (``BUGCHECK_CORPUS`` or ../shared/corpus) and a fresh
temporary cache directory, so "first" really is first. Prints figures; asserts nothing.

    python benchmarks/bench_isf.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TABLE = "5278AFF86C341677D7D7835C85B7B844-1.json.xz"


def corpus() -> Path:
    env = os.environ.get("BUGCHECK_CORPUS")
    root = Path(env) if env else REPO.parent / "shared" / "corpus"
    if not (root / "MANIFEST.md").is_file():
        sys.exit(f"corpus not found at {root} (set BUGCHECK_CORPUS)")
    return root


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    root = corpus()
    isf_root = root / "symbols" / "isf"
    table = isf_root / "windows" / "ntkrnlmp.pdb" / TABLE

    from bugcheck.symbols.isf import load_isf
    from bugcheck.symbols.kernel_tables import KernelTableIndex

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        print(f"ISF table {table.name} ({table.stat().st_size / 1e6:.2f} MB xz)")
        nocache = [timed(lambda: load_isf(table, use_cache=False))[0] for _ in range(args.repeat)]
        first, _ = timed(lambda: load_isf(table, cache_dir=cache / "isf"))
        warm = [timed(lambda: load_isf(table, cache_dir=cache / "isf"))[0] for _ in range(args.repeat)]
        t = load_isf(table, cache_dir=cache / "isf")
        ty, _ = timed(lambda: [t.find_type(n) for n in ("_EPROCESS", "_KTHREAD", "_KPRCB", "_KTRAP_FRAME")])
        allt, _ = timed(lambda: [t.find_type(n) for n in t.type_names()])
        sym, _ = timed(lambda: t.symbol_at(t.symbol_by_name("KeBugCheckEx").rva + 4))
        print(f"  load without cache      median {statistics.median(nocache) * 1e3:7.1f} ms")
        print(f"  first load (cache write)        {first * 1e3:7.1f} ms")
        print(f"  repeat load (cached)    median {statistics.median(warm) * 1e3:7.1f} ms")
        print(f"  4 kernel structs built          {ty * 1e3:7.1f} ms")
        print(f"  all {len(t.type_names())} types built        {allt * 1e3:7.1f} ms")
        print(f"  first name+address lookup       {sym * 1e3:7.1f} ms")

        n = len(list((isf_root / "windows" / "ntkrnlmp.pdb").iterdir()))
        print(f"Kernel-table index over {n} tables")
        cold, ix = timed(lambda: KernelTableIndex(isf_root, cache_dir=cache / "kt"))
        warm_ix = [
            timed(lambda: KernelTableIndex(isf_root, cache_dir=cache / "kt"))[0] for _ in range(args.repeat)
        ]
        # rizin-triage_x64.dmp's header addresses and kernel base
        q = (0xFFFFF8047C62A390, 0xFFFFF8047C61E200, 0xFFFFF8047C600B20, 0xFFFFF8047BA00000)
        m, found = timed(lambda: ix.matches(*q))
        print(f"  cold (decompress + scan)        {cold * 1e3:7.1f} ms")
        print(f"  warm (index file)       median {statistics.median(warm_ix) * 1e3:7.1f} ms")
        print(f"  match query                     {m * 1e3:7.3f} ms -> {found[0].guid if found else None}")


if __name__ == "__main__":
    main()
