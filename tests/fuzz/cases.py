"""Shared set-up for the robustness runs: symbol-store copies, command lists, a warm cache."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

from fuzz import runner

STORE_PDB = "amdppm.pdb/1C19FDDB27BB3399D9B45973EFEAFCF31/amdppm.pdb"
STORE_SYS = "amdppm.sys/c9c030003b000/amdppm.sys"


def commands_for(data: bytes) -> str:
    """The broad command list, with .exr/.trap/.cxr at the dump's own exception-record addresses."""
    extra = ""
    cmds = runner.BROAD_COMMANDS
    if len(data) >= 0x60 and data[4:8] == b"DU64":
        p = struct.unpack_from("<4Q", data, 0x40)
        extra = f"; .exr {p[2]:x}; .trap {p[3]:x}; .cxr {p[3]:x}; kv; .cxr"
        if struct.unpack_from("<I", data, 0x30)[0] == 0xAA64:  # ARM64 register names
            cmds = cmds.replace("@rip", "@pc").replace("@rsp", "@sp")
    return cmds + extra


def store_copy(corpus: Path, dest: Path, which: str | None = None, data: bytes | None = None) -> Path:
    """The corpus symbol store copied to ``dest``, with ``which`` (a relative path) replaced by ``data``."""
    if not dest.exists():
        shutil.copytree(corpus / "symstore", dest)
        for p in dest.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
    if which is not None:
        (dest / which).write_bytes(data)
    return dest


def write_case(path: Path, data: bytes) -> Path:
    """A damaged copy, read-only as a dump handed over by a stranger may well be."""
    path.write_bytes(data)
    path.chmod(0o444)
    return path


def warm_cache(cache: Path, corpus: Path) -> Path:
    """Build the kernel-table index and ISF caches once, so each run measures the tool, not the index."""
    marker = cache / ".warm"
    if not marker.exists():
        cache.mkdir(parents=True, exist_ok=True)
        isf = corpus / "symbols" / "isf"
        dump = corpus / "dumps" / "rizin-triage_x64.dmp"
        runner.run_cli(
            ["--offline", "--symbols-dir", str(isf), "-c", "vertarget", str(dump)], cache_dir=cache
        )
        marker.write_text("")
    return cache
