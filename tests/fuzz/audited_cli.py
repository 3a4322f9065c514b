"""Run ``bugcheck`` with a record of the files it touches (argv: LOG then the CLI's arguments).

Python's audit hooks report every ``open`` (with its mode and flags), ``mmap``,
directory listing and file-system change; ``os.stat``/``os.lstat`` are wrapped
too because probing a path is how a store lookup starts. Each event is one JSON
line ``[event, path, detail]`` in LOG. Interpreter and library files (``.py``,
``.pyc``, ``.so``) are left out: they are not the tool's decisions.
"""

from __future__ import annotations

import json
import os
import sys

_SKIP_SUFFIXES = (".py", ".pyc", ".so", ".pth", ".json.xz")
_EVENTS = {
    "open", "mmap.__new__", "os.listdir", "os.scandir", "os.mkdir", "os.rename", "os.remove",
    "os.rmdir", "os.symlink", "os.link", "os.truncate", "os.chmod", "shutil.copyfile", "shutil.move",
}  # fmt: skip


def _install(log_path: str) -> None:
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    busy = [False]

    def emit(event: str, path, detail) -> None:
        if busy[0]:
            return
        busy[0] = True
        try:
            if isinstance(path, str | bytes | os.PathLike):
                p = os.fsdecode(os.fspath(path))
                if p.endswith(_SKIP_SUFFIXES) or "__pycache__" in p:
                    return
            else:
                p = repr(path)
            os.write(fd, (json.dumps([event, p, detail], default=repr) + "\n").encode())
        finally:
            busy[0] = False

    def hook(event: str, args) -> None:
        if event not in _EVENTS:
            return
        if event == "open":
            path, mode, flags = args
            emit(event, path, [mode, flags])
        elif event == "mmap.__new__":
            fileno, length, access, offset = args
            emit(event, f"fd:{fileno}", [length, access, offset, _fd_path(fileno)])
        else:
            emit(event, args[0] if args else None, list(args[1:]))

    real_stat, real_lstat = os.stat, os.lstat

    def stat(path, *a, **k):
        emit("stat", path, None)
        return real_stat(path, *a, **k)

    def lstat(path, *a, **k):
        emit("stat", path, None)
        return real_lstat(path, *a, **k)

    os.stat, os.lstat = stat, lstat
    sys.addaudithook(hook)


def _fd_path(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def main() -> int:
    log, args = sys.argv[1], sys.argv[2:]
    from bugcheck import cli

    _install(log)
    sys.argv = ["bugcheck", *args]
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
