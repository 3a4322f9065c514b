"""Time ``!process 0 7`` and ``!process 0 0`` on a writer-made kernel with 500 processes x 20 threads.

Builds the kernel with the real 19041 layouts (ISF table from the corpus),
writes it as a kernel bitmap dump, then runs each command through a fresh
:class:`~bugcheck.commands.session.Session` (the whole command: target set-up,
symbol table load, list walks, rendering). Reports wall seconds and peak
memory (tracemalloc's Python peak and the process's ru_maxrss).

    python benchmarks/bench_process_list.py [--processes 500] [--threads 20] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("BUGCHECK_CORPUS", REPO.parent / "shared" / "corpus"))
TABLE = CORPUS / "symbols/isf/windows/ntkrnlmp.pdb/5278AFF86C341677D7D7835C85B7B844-1.json.xz"
GOAL_SECONDS = 2.0
GOAL_MB = 500


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(path: Path, processes: int, threads: int) -> dict:
    from bugcheck.dumpfile.synth import build_kernel, write_kernel_dump
    from bugcheck.symbols.isf import load_isf

    t0 = time.perf_counter()
    kernel = build_kernel(load_isf(TABLE), processes=processes, threads_per_process=threads, processors=4)
    t1 = time.perf_counter()
    write_kernel_dump(kernel, path, "kernel_bitmap")
    t2 = time.perf_counter()
    return {"build_s": t1 - t0, "write_s": t2 - t1, "size_mb": path.stat().st_size / 2**20}


def run(path: Path, line: str, profile: bool = False) -> dict:
    import bugcheck
    from bugcheck.commands.session import Session

    gc.collect()
    tracemalloc.start()
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    s = Session(bugcheck.open(path), offline=True, symbols_dir=str(CORPUS / "symbols" / "isf"))
    res = s.run(line)
    if prof:
        prof.disable()
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    out = {
        "command": line,
        "seconds": elapsed,
        "py_peak_mb": peak / 2**20,
        "maxrss_mb": _maxrss_mb(),
        "text_lines": sum(r.text.count("\n") for r in res),
        "processes": len(res[-1].data.get("processes", [])) if isinstance(res[-1].data, dict) else None,
    }
    if prof:
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(25)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=500)
    ap.add_argument("--threads", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of each command")
    ap.add_argument("--keep", help="write the dump here and keep it")
    args = ap.parse_args(argv)
    if not TABLE.is_file():
        print(f"corpus table missing: {TABLE}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "bench-processes.dmp"
        info = build(path, args.processes, args.threads)
        print(
            f"dump: {args.processes} processes x {args.threads} threads, {info['size_mb']:.1f} MB "
            f"(build {info['build_s']:.2f} s, write {info['write_s']:.2f} s)"
        )
        worst = 0.0
        for line in ("!process 0 0", "!process 0 7"):
            r = run(path, line, args.profile)
            worst = max(worst, r["seconds"])
            print(
                f"{line:14s} {r['seconds']:6.2f} s   python peak {r['py_peak_mb']:7.1f} MB   "
                f"maxrss {r['maxrss_mb']:7.1f} MB   {r['processes']} processes, {r['text_lines']} lines"
            )
        ok = worst < GOAL_SECONDS and _maxrss_mb() < GOAL_MB
        print(f"goal (< {GOAL_SECONDS} s, < {GOAL_MB} MB): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
