"""Time ``!process 0 7`` and ``!process 0 0`` on a writer-made kernel with 500 processes x 20 threads.

Builds the kernel with the real 19041 layouts (ISF table from the corpus),
writes it as a kernel bitmap dump, then runs each command through a fresh
:class:`~bugcheck.commands.session.Session` (the whole command: target set-up,
symbol table load, list walks, rendering). Reports wall seconds and peak
memory (tracemalloc's Python peak and the process's ru_maxrss).

    python benchmarks/bench_process_list.py [--processes 500] [--threads 20] [--profile] [--keep DUMP]

Each command runs in its own interpreter: once timed, once under tracemalloc
(Python heap peak; it slows the run, so it is not timed) and, with --profile,
once under cProfile to split the time by layer.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import resource
import subprocess
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


def run(path: Path, line: str, mode: str = "time") -> dict:
    """Run ``line`` on a fresh session. ``mode``: "time" (plain), "memory" (under tracemalloc,
    which slows allocation-heavy code several-fold, so it is timed separately) or "profile"."""
    import bugcheck
    from bugcheck.commands.session import Session

    gc.collect()
    if mode == "memory":
        tracemalloc.start()
    prof = cProfile.Profile() if mode == "profile" else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    s = Session(bugcheck.open(path), offline=True, symbols_dir=str(CORPUS / "symbols" / "isf"))
    res = s.run(line)
    if prof:
        prof.disable()
    elapsed = time.perf_counter() - t0
    out = {
        "command": line,
        "seconds": elapsed,
        "maxrss_mb": _maxrss_mb(),
        "text_lines": sum(r.text.count("\n") for r in res),
        "processes": len(res[-1].data.get("processes", [])) if isinstance(res[-1].data, dict) else None,
    }
    if mode == "memory":
        out["py_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    if prof:
        out["layers"] = _by_layer(prof)
    return out


def _by_layer(prof: cProfile.Profile) -> dict[str, float]:
    """Own time (seconds) per bugcheck layer (package directory), plus everything else."""
    stats = pstats.Stats(prof)
    layers: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():
        if "/bugcheck/" in filename:
            rest = filename.split("/bugcheck/", 1)[1]
            layer = rest.split("/", 1)[0] if "/" in rest else rest
        else:
            layer = "(python, numpy, iced)"
        layers[layer] = layers.get(layer, 0.0) + tottime
    return dict(sorted(layers.items(), key=lambda kv: -kv[1]))


def _child(path: Path, line: str, mode: str) -> dict:
    """Run one command in a fresh interpreter so ru_maxrss is the command's own peak."""
    here = str(Path(__file__).parent)
    code = (
        f"import json, sys; sys.path.insert(0, {here!r}); import bench_process_list as b; "
        f"print(json.dumps(b.run(b.Path({str(path)!r}), {line!r}, {mode!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--processes", type=int, default=500)
    ap.add_argument("--threads", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="also show each command's time by layer")
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
        rss = 0.0
        for line in ("!process 0 0", "!process 0 7"):
            r = _child(path, line, "time")
            m = _child(path, line, "memory")
            worst = max(worst, r["seconds"])
            rss = max(rss, r["maxrss_mb"])
            print(
                f"{line:14s} {r['seconds']:7.2f} s   maxrss {r['maxrss_mb']:7.1f} MB   "
                f"tracemalloc peak {m['py_peak_mb']:7.1f} MB   {r['processes']} processes, "
                f"{r['text_lines']} lines"
            )
            if args.profile:
                p = _child(path, line, "profile")
                total = sum(p["layers"].values()) or 1.0
                shares = ", ".join(f"{k} {v:.1f} s ({100 * v / total:.0f}%)" for k, v in p["layers"].items())
                print(f"    own time by layer (under cProfile, {p['seconds']:.1f} s): {shares}")
        ok = worst < GOAL_SECONDS and rss < GOAL_MB
        print(f"goal (< {GOAL_SECONDS} s, < {GOAL_MB} MB): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
