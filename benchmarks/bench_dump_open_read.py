"""Open time and random 4 KB virtual reads: bugcheck's reader vs kdmp-parser.

Builds a kernel bitmap dump of a machine with 16 GB of RAM (a sparse file,
a few thousand mapped pages spread over physical memory) with the project's
dump writer, then times opening it and reading random 4 KB virtual ranges
through each reader's page-table translation. Prints figures; asserts nothing.

    python benchmarks/bench_dump_open_read.py [--ram-gb 16] [--pages 4000] [--reads 20000] [--kind kernel_bitmap]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bugcheck.dumpfile.writer import DumpDescription, write_dump


def build(path: Path, ram_gb: int, pages: int, kind: str, seed: int = 1):
    rng = random.Random(seed)
    mappings: dict[int, bytes] = {}
    # Clusters of 1-64 pages at scattered kernel addresses, like pool and driver images.
    va = 0xFFFF_A000_0000_0000
    left = pages
    while left > 0:
        n = min(left, rng.randint(1, 64))
        va += rng.randint(1, 4096) * 0x1000 * 16
        mappings[va] = rng.randbytes(n * 0x1000)
        va += n * 0x1000
        left -= n
    desc = DumpDescription(
        bugcheck_code=0xD1,
        bugcheck_parameters=(0x10, 2, 0, 0xFFFFF800_12345678),
        contexts=[{"rip": 0xFFFFF800_12345678, "rsp": 0xFFFF_A000_0000_1000}],
        mappings=mappings,
        ram_size=ram_gb << 30,
        spread_seed=seed,
    )
    t0 = time.perf_counter()
    layout = write_dump(desc, path, kind)
    return layout, time.perf_counter() - t0


def time_open(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        obj = fn()
        times.append(time.perf_counter() - t0)
        del obj
    return statistics.median(times)


def time_reads(read, addrs) -> float:
    t0 = time.perf_counter()
    for a in addrs:
        read(a)
    return len(addrs) / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ram-gb", type=int, default=16)
    ap.add_argument("--pages", type=int, default=4000)
    ap.add_argument("--reads", type=int, default=20000)
    ap.add_argument("--kind", default="kernel_bitmap", choices=["kernel_bitmap", "complete_bitmap", "full"])
    ap.add_argument("--open-repeat", type=int, default=5)
    ap.add_argument("--dir", default=None, help="where to write the dump (default: a temporary directory)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / f"bench-{args.kind}.dmp"
        layout, write_s = build(path, args.ram_gb, args.pages, args.kind)
        st = path.stat()
        print(
            f"dump: {args.kind}, {args.ram_gb} GB RAM, {len(layout.va_to_pa)} mapped pages, "
            f"{len(layout.table_pfns)} page-table pages"
        )
        print(
            f"  file size {st.st_size / 2**20:.1f} MiB apparent, {st.st_blocks * 512 / 2**20:.1f} MiB on disk; "
            f"written in {write_s * 1000:.0f} ms"
        )

        rng = random.Random(2)
        vas = list(layout.va_to_pa)
        aligned = [rng.choice(vas) for _ in range(args.reads)]
        # Unaligned reads stay inside mapped memory when the next page is mapped too.
        pairs = [v for v in vas if v + 0x1000 in layout.va_to_pa]
        unaligned = [rng.choice(pairs) + rng.randrange(1, 0x1000) for _ in range(args.reads)]
        sample = aligned[:200] + unaligned[:200]

        print(
            f"{'reader':<14}{'open (median)':>16}{'aligned 4KB reads/s':>22}{'unaligned 4KB reads/s':>24}  check"
        )
        # bugcheck
        try:
            import bugcheck

            open_s = time_open(lambda: bugcheck.open(path), args.open_repeat)
            d = bugcheck.open(path)
            bad = sum(d.read_virtual(a, 0x1000) != layout.read_virtual(a, 0x1000) for a in sample)
            ra = time_reads(lambda a: d.read_virtual(a, 0x1000), aligned)
            ru = time_reads(lambda a: d.read_virtual(a, 0x1000), unaligned)
            print(
                f"{'bugcheck':<14}{open_s * 1000:>13.2f} ms{ra:>22,.0f}{ru:>24,.0f}  "
                f"{'ok' if not bad else f'{bad} mismatches'}"
            )
        except Exception as exc:  # report, keep going: this is a benchmark
            print(f"{'bugcheck':<14}failed: {type(exc).__name__}: {exc}")

        # kdmp-parser: its Python binding reads whole pages, so an unaligned read is two pages.
        try:
            import kdmp_parser

            open_s = time_open(lambda: kdmp_parser.KernelDumpParser(path), args.open_repeat)
            k = kdmp_parser.KernelDumpParser(path)

            def kread(a):
                off = a & 0xFFF
                first = k.read_virtual_page(a & ~0xFFF)
                if not off:
                    return bytes(first)
                return bytes(first[off:] + k.read_virtual_page((a & ~0xFFF) + 0x1000)[:off])

            bad = sum(kread(a) != layout.read_virtual(a, 0x1000) for a in sample)
            ra = time_reads(kread, aligned)
            ru = time_reads(kread, unaligned)
            print(
                f"{'kdmp-parser':<14}{open_s * 1000:>13.2f} ms{ra:>22,.0f}{ru:>24,.0f}  "
                f"{'ok' if not bad else f'{bad} mismatches'}"
            )
        except Exception as exc:
            print(f"{'kdmp-parser':<14}failed: {type(exc).__name__}: {exc}")
        print("goals: open < 50 ms, >= 100,000 random 4 KB virtual reads/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
