"""Run the real ``bugcheck`` console script on damaged files, bounded in time and memory.

:func:`run_cli` starts ``python tests/fuzz/audited_cli.py`` (the CLI's ``main``
behind audit hooks) with ``RLIMIT_AS`` set in the child, a wall-clock timeout
and a private cache folder; :func:`problems` lists every way the run broke the
untrusted-input rule (exit status other than 0/2, a traceback, an internal error
masked as a command result, more than one stderr line on exit 2 or one that
does not name the file, a hang, running out of memory, writing to the dump).
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
WRAPPER = HERE / "audited_cli.py"

#: the command list a user would type into kd after loading a dump
BROAD_COMMANDS = (
    "lm; lmv m nt; kv; r; u @rip; ub @rip; dps @rsp; db @rsp; !thread; !process -1 7; !process 0 0; "
    "!running; !irql; dt nt!_EPROCESS; .trap @rsp; .cxr @rsp; !pte @rsp; x nt!Ke*; ln @rip; "
    "vertarget; .dumpdebug; k; .bugcheck"
)

DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY = 2 << 30


@dataclass
class CliRun:
    args: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    events: list[list] = field(default_factory=list)

    def command_line(self) -> str:
        return "bugcheck " + " ".join(_quote(a) for a in self.args)


def _quote(a: str) -> str:
    return (
        a if a and all(c.isalnum() or c in "/._-@*:=+," for c in a) else "'" + a.replace("'", "'\\''") + "'"
    )


def _limit(memory: int):
    def set_limits() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return set_limits


def run_cli(
    args: list[str],
    *,
    cache_dir: Path,
    timeout: float = DEFAULT_TIMEOUT,
    memory: int = DEFAULT_MEMORY,
    audit_log: Path | None = None,
) -> CliRun:
    """Run ``bugcheck ARGS`` in a child process; never raises for what the child does."""
    env = dict(os.environ)
    env.pop("BUGCHECK_DEBUG", None)
    env.update(
        BUGCHECK_CACHE_DIR=str(cache_dir),
        BUGCHECK_PLAIN_SHELL="1",
        OPENBLAS_NUM_THREADS="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    log = audit_log or Path(os.devnull)
    if audit_log is not None and audit_log.exists():
        audit_log.unlink()
    argv = [sys.executable, str(WRAPPER), str(log), *map(str, args)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
            preexec_fn=_limit(memory),
        )
        run = CliRun(list(map(str, args)), p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        run = CliRun(list(map(str, args)), None, out, err, time.monotonic() - t0, timed_out=True)
    if audit_log is not None and audit_log.exists():
        run.events = [json.loads(ln) for ln in audit_log.read_text().splitlines() if ln.strip()]
    return run


def run_many(jobs: list[dict], workers: int = 2, progress=None) -> list[CliRun]:
    """``run_cli(**job)`` for each job, ``workers`` at a time, results in order.

    ``progress(done, total)`` is called after each run when given.
    """
    done = [0]

    def one(job):
        r = run_cli(**job)
        done[0] += 1
        if progress is not None:
            progress(done[0], len(jobs))
        return r

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


#: the exception's name as Python prints it, not inside a symbol name like HalpMcaMemoryErrorRecord
_MEMORY_ERROR = re.compile(r"(?<![A-Za-z0-9_])MemoryError(?![A-Za-z0-9_])")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def problems(run: CliRun, files: list[Path | str], *, timeout: float = DEFAULT_TIMEOUT) -> list[str]:
    """Every way ``run`` broke the rule for untrusted input; ``files`` are the inputs it may name."""
    out: list[str] = []
    both = run.stdout + run.stderr
    if run.timed_out:
        out.append(f"hang: still running after {timeout:.0f} s")
    elif run.returncode not in (0, 2):
        out.append(f"exit status {run.returncode}")
    if "Traceback (most recent call last)" in both:
        out.append("traceback: " + _tail(both, "Traceback"))
    m = _MEMORY_ERROR.search(both)
    if m:
        out.append("ran out of memory: " + _tail(both, m.group(0)))
    for line in both.splitlines():
        if "internal error in" in line:
            out.append("internal error: " + line.strip()[:300])
            break
    if run.returncode == 2:
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        names = [str(f) for f in files] + [Path(f).name for f in files]
        if len(lines) != 1:
            out.append(f"exit 2 with {len(lines)} stderr lines (want exactly one): {run.stderr[:300]!r}")
        elif not lines[0].startswith("bugcheck: ") or not any(n in lines[0] for n in names):
            out.append(f"exit 2 line does not name the file: {lines[0][:300]!r}")
        elif not any(lines[0].partition(n)[2].lstrip(": ").strip() for n in names if n in lines[0]):
            out.append(f"exit 2 line names the file but no problem: {lines[0][:300]!r}")
    out += write_attempts(run, files)
    return out


def write_attempts(run: CliRun, files: list[Path | str]) -> list[str]:
    """Opens of the input files for writing, and writable mappings of them."""
    inputs = {os.path.realpath(str(f)) for f in files}
    bad = []
    for event, path, detail in run.events:
        if event == "open" and os.path.realpath(path) in inputs:
            mode, flags = detail
            if (mode and any(c in str(mode) for c in "wax+")) or (flags or 0) & _WRITE_FLAGS:
                bad.append(f"opened {path} for writing (mode={mode!r}, flags={flags:#x})")
        elif event == "mmap.__new__":
            _length, access, _off, target = detail
            # access 1 is ACCESS_READ; 0 (default) with a read-only descriptor fails anyway
            if target and os.path.realpath(target) in inputs and access not in (0, 1):
                bad.append(f"mapped {target} with access {access}")
    return bad


def _tail(text: str, marker: str) -> str:
    i = text.find(marker)
    lines = [ln for ln in text[i:].splitlines() if ln.strip()]
    return " | ".join(lines[-4:])[:600]
