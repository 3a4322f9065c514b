"""Build a PE+PDB pair from layouts.c with clang-19 and lld-link-19 (no binaries are committed).

Usage: python tests/native/build.py OUT_DIR [x64|x86]
Also records clang's own record layouts (-fdump-record-layouts) as the layout oracle.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "layouts.c"
TARGETS = {"x64": ("x86_64-pc-windows-msvc", "x64"), "x86": ("i686-pc-windows-msvc", "x86")}


def tools_available() -> bool:
    return bool(shutil.which("clang-19") and shutil.which("lld-link-19"))


def build_pair(out_dir: Path, arch: str = "x64") -> tuple[Path, Path, str]:
    """Returns (dll, pdb, clang record-layout dump)."""
    triple, machine = TARGETS[arch]
    out_dir.mkdir(parents=True, exist_ok=True)
    obj = out_dir / f"layouts_{arch}.obj"
    dll = out_dir / f"layouts_{arch}.dll"
    pdb = out_dir / f"layouts_{arch}.pdb"
    r = subprocess.run(
        ["clang-19", f"--target={triple}", "-g", "-gcodeview", "-O0", "-c", str(SOURCE), "-o", str(obj),
         "-Xclang", "-fdump-record-layouts-simple"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    subprocess.run(
        ["lld-link-19", "/debug", "/dll", "/noentry", "/nodefaultlib", f"/machine:{machine}",
         f"/out:{dll}", f"/pdb:{pdb}", str(obj)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dll, pdb, r.stdout


if __name__ == "__main__":
    out = Path(sys.argv[1])
    print(*build_pair(out, sys.argv[2] if len(sys.argv) > 2 else "x64")[:2])
