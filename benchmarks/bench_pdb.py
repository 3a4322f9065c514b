"""PDB reader speed: open the largest corpus PDB and resolve 100,000 random addresses.

Prints time to first lookup (goal < 0.3 s), per-lookup time (goal < 5 us), peak memory,
and the time to decode a large kernel type by name.
"""

from __future__ import annotations

import random
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bugcheck.symbols.pdb import open_pdb  # noqa: E402
from corpus import corpus_root  # noqa: E402

N = 100_000


def main() -> int:
    root = corpus_root()
    if root is None:
        print("corpus not found (set BUGCHECK_CORPUS)")
        return 1
    pdbs = [
        p
        for p in list((root / "symbols").rglob("*.pdb")) + list((root / "symstore").rglob("*.pdb"))
        if p.is_file()
    ]
    path = max(pdbs, key=lambda p: p.stat().st_size)
    bench(path)
    most = max(pdbs, key=lambda p: len(open_pdb(p).symbols))
    if most != path:
        print("-- the PDB with the most symbols:")
        bench(most)
    return 0


def bench(path: Path) -> None:
    root = corpus_root()
    print(f"file: {path.name} ({path.stat().st_size / 1e6:.1f} MB)")

    t0 = time.perf_counter()
    pdb = open_pdb(path)
    t_open = time.perf_counter() - t0
    first = pdb.symbols.symbol_at(0x1000)
    t_first = time.perf_counter() - t0
    print(f"open: {t_open * 1e3:.1f} ms; first lookup done at {t_first * 1e3:.1f} ms ({first})")
    print(f"symbols: {len(pdb.symbols)}")

    span = max(s.virtual_address + s.virtual_size for s in pdb.sections) if pdb.sections else 1 << 20
    rng = random.Random(0)
    addrs = [rng.randrange(0, span) for _ in range(N)]
    lookup = pdb.symbols.symbol_at
    t0 = time.perf_counter()
    for a in addrs:
        lookup(a)
    dt = time.perf_counter() - t0
    print(f"{N} lookups: {dt:.3f} s, {dt / N * 1e6:.2f} us per lookup")

    t0 = time.perf_counter()
    n = 0
    for name in pdb.types.type_names()[:2000]:
        t = pdb.types.find_type(name)
        n += len(t.members) if t else 0
    print(f"2000 types by name: {(time.perf_counter() - t0) * 1e3:.1f} ms ({n} members)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the whole process: {rss:.1f} MB (the file is mmapped; numpy import included)")
    # Python heap owned by the reader, measured on a second, fresh open
    tracemalloc.start()
    p3 = open_pdb(path)
    p3.symbols.symbol_at(0x1000)
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"peak Python heap for open + symbol index: {peak / 1e6:.1f} MB")

    big = root / "symbols" / "pdb" / "win10-19041-ntdll-x64-a.pdb"
    if big.exists():
        t0 = time.perf_counter()
        p2 = open_pdb(big)
        ep = p2.types.find_type("_EPROCESS")
        print(
            f"ntdll: open + _EPROCESS ({ep.size:#x}, {len(ep.members)} members): {(time.perf_counter() - t0) * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    raise SystemExit(main())
