"""A larger, by-hand robustness run (not part of the suite): damaged files through the real CLI.

    python tests/fuzz/explore.py --per-file 60 --seed 1 --out /tmp/robust

For every corpus dump (and writer-made full/bitmap dumps, and the amdppm
PDB/image in a symbol-store copy) it writes damaged copies (read-only) under
``--out``, runs ``bugcheck`` twice on each (default ``!analyze -v``, and ``-c``
with a broad command list) and prints one line per problem with the recipe to
replay it (:func:`fuzz.mutate.apply`). A summary lists cases and problems.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from corpus import corpus_root  # noqa: E402
from fuzz import mutate, runner  # noqa: E402
from fuzz.cases import STORE_PDB, STORE_SYS, commands_for, store_copy, write_case  # noqa: E402
from fuzz.synth_dumps import write_hostile_dump  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-file", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bugcheck-robust"))
    ap.add_argument("--only", default="", help="substring of the seed file names to use")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip", default="", help="comma list: dumps,writer,pdb,pe")
    ap.add_argument("--synth", type=int, default=0, help="also this many swizzled synthetic kernels")
    a = ap.parse_args()
    corpus = corpus_root()
    if corpus is None:
        print("corpus not found")
        return 1
    out = a.out
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cache"
    isf = corpus / "symbols" / "isf"
    clean_store = store_copy(corpus, out / "store-clean")
    skip = set(filter(None, a.skip.split(",")))

    seeds: list[tuple[str, bytes]] = []
    if "dumps" not in skip:
        for p in sorted((corpus / "dumps").rglob("*.dmp")):
            if a.only in p.name and p.stat().st_size > 0x3000 and p.open("rb").read(8) != bytes(8):
                seeds.append((p.name, p.read_bytes()))
    if "writer" not in skip:
        for kind in ("full", "kernel_bitmap", "complete_bitmap"):
            w = write_hostile_dump(corpus, out / f"seed-{kind}.dmp", kind)
            seeds.append((w.name, w.read_bytes()))

    jobs, meta = [], []
    for name, data in seeds:
        cmds = commands_for(data)
        recipes = mutate.dump_recipes(data, a.seed, a.per_file)
        if name.startswith("seed-"):  # writer-made: damage the page tables too
            tables = mutate.page_table_pages(out / name)
            recipes += mutate.paging_recipes(data, tables, a.seed, a.per_file)
        for i, recipe in enumerate(recipes):
            mutated = mutate.apply(data, recipe)
            tag = hashlib.sha1(repr(recipe).encode()).hexdigest()[:8]
            f = write_case(out / f"{Path(name).stem}-{i:03d}-{tag}.dmp", mutated)
            base = ["-y", str(clean_store), "--offline", "--symbols-dir", str(isf)]
            for args in (base + [str(f)], base + ["-c", "!analyze -v; " + cmds, str(f)]):
                jobs.append({"args": args, "cache_dir": cache})
                meta.append((name, recipe, [f]))

    kinds = ("kernel_bitmap", "full", "complete_bitmap")
    for i in range(a.synth):  # synthetic kernels whose pool and stack pointers are swizzled
        f = out / f"swizzled-{i:03d}.dmp"
        write_hostile_dump(corpus, f, kinds[i % 3], swizzle=a.seed * 1000 + i)
        f.chmod(0o444)
        base = ["-y", str(clean_store), "--offline", "--symbols-dir", str(isf)]
        cmds = "!analyze -v; " + runner.BROAD_COMMANDS + "; !process 0 7; !process 0 1f; ~1s; kv; !thread"
        jobs.append({"args": base + ["-c", cmds, str(f)], "cache_dir": cache})
        meta.append((f.name, (("synth-swizzle", a.seed * 1000 + i, kinds[i % 3]),), [f]))

    rizin = corpus / "dumps" / "rizin-triage_x64.dmp"
    for which, rec_fn, wanted in (
        (STORE_PDB, mutate.pdb_recipes, "pdb"),
        (STORE_SYS, mutate.pe_recipes, "pe"),
    ):
        if wanted in skip:
            continue
        data = (corpus / "symstore" / which).read_bytes()
        for i, recipe in enumerate(rec_fn(data, a.seed, a.per_file)):
            store = store_copy(corpus, out / f"store-{wanted}-{i:03d}", which, mutate.apply(data, recipe))
            base = ["-y", str(store), "--offline", "--symbols-dir", str(isf)]
            for args in (base + [str(rizin)], base + ["-c", "!analyze -v; " + commands_for(b""), str(rizin)]):
                jobs.append({"args": args, "cache_dir": cache})
                meta.append((which, recipe, [rizin, store / which]))

    # warm the kernel-table index once, then run everything
    runner.run_cli(["--offline", "--symbols-dir", str(isf), "-c", "vertarget", str(rizin)], cache_dir=cache)
    print(f"{len(jobs)} runs over {len(seeds)} seed dumps + store files", flush=True)
    results = runner.run_many(
        jobs, workers=a.workers, progress=lambda d, n: d % 100 == 0 and print(f"{d}/{n}", flush=True)
    )
    found = []
    slowest = 0.0
    for (name, recipe, files), run in zip(meta, results, strict=True):
        slowest = max(slowest, run.seconds)
        for prob in runner.problems(run, files):
            found.append({"seed": name, "recipe": mutate.describe(recipe), "cmd": run.command_line(),
                          "problem": prob})  # fmt: skip
            print(f"[{name}] {prob}\n    recipe={mutate.describe(recipe)}\n    {run.command_line()[:400]}")
    exits = {}
    for r in results:
        exits[r.returncode] = exits.get(r.returncode, 0) + 1
    print(f"runs={len(results)} exit codes={exits} slowest={slowest:.1f}s problems={len(found)}")
    (out / "problems.json").write_text(json.dumps(found, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
