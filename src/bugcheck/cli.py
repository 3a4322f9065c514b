"""The ``bugcheck`` console script: kd's command line, for dump files.

``bugcheck DUMP`` prints the load banner and ``!analyze -v``; ``-c "cmd; cmd"``
runs commands and exits; ``shell``/``-i`` opens the interactive prompt. kd's
switches keep their meaning (``-z``, ``-y``, ``-i``, ``-logo``, ``-loga``,
``-n``, ``-v``). Every problem with an input file is one line on stderr and exit
status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

from bugcheck.errors import BadFileError, BugcheckError

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPT = 0, 2, 130

#: kd's single-dash long switches and the argparse spelling they map to
_KD_LONG = {"-logo": "--logo", "-loga": "--loga"}

_USAGE = (
    "bugcheck [-c CMDS] [-y SYMPATH] [-i IMAGEPATH] [-logo FILE | -loga FILE] [-n] [-v]\n"
    "                [--offline] [--symbols-dir DIR] [--json] [--brief] [--interactive] [-z] DUMP\n"
    "       bugcheck shell DUMP"
)


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bugcheck",
        usage=_USAGE,
        description="Analyze a Windows kernel crash dump the way kd does.",
    )
    p.add_argument("dump", nargs="?", help="crash dump file (MEMORY.DMP, Minidump\\*.dmp)")
    p.add_argument("-z", dest="dump_z", metavar="DUMP", help="crash dump file (kd spelling)")
    p.add_argument("-c", dest="commands", metavar="CMDS", help='run these commands ("cmd; cmd") and exit')
    p.add_argument("-y", dest="sympath", metavar="SYMPATH", help="symbol search path (srv*CACHE*URL;DIR...)")
    p.add_argument(
        "-i",
        dest="image_path",
        metavar="IMAGEPATH",
        help="executable image search path (-i with no path before the dump: interactive prompt)",
    )
    p.add_argument("--logo", metavar="FILE", help="log output to FILE (kd: -logo), overwriting it")
    p.add_argument("--loga", metavar="FILE", help="append output to FILE (kd: -loga)")
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="verbose: time each command and name command modules that failed to load (on stderr)",
    )
    p.add_argument("-n", dest="noisy", action="store_true", help="noisy symbol loading")
    p.add_argument("--offline", action="store_true", help="never contact a symbol server")
    p.add_argument(
        "--triage",
        metavar="FILE",
        action="append",
        help="extra triage rules (triage.ini format: Module[!Function]=Owner) for !analyze; repeatable",
    )
    p.add_argument("--symbols-dir", metavar="DIR", help="folder of offline symbol tables (ISF)")
    p.add_argument(
        "--json", action="store_true", help="print each command's result as one JSON document per line"
    )
    p.add_argument(
        "--brief", action="store_true", help="no banner or prompt echo; `!analyze` instead of `-v`"
    )
    p.add_argument(
        "--interactive", action="store_true", help="open the interactive prompt (also: shell DUMP)"
    )
    p.add_argument("--version", action="version", version=_version())
    return p


def _version() -> str:
    import bugcheck

    return f"bugcheck {bugcheck.__version__}"


def preparse(argv: list[str]) -> tuple[list[str], bool]:
    """Translate kd's spellings into argparse's; returns (argv, interactive).

    ``-logo``/``-loga`` become long options. ``-i`` is kd's image path when a
    value and then the dump follow it; ``-i DUMP`` (the dump last) and the
    ``shell`` word ask for the interactive prompt.
    """
    out: list[str] = []
    interactive = False
    args = list(argv)
    if args and args[0] == "shell":
        interactive = True
        args = args[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in _KD_LONG:
            out.append(_KD_LONG[a])
        elif a == "-i":
            rest = args[i + 1 :]
            # an image path needs the dump after it (or -z DUMP); otherwise -i means "interactive"
            if rest and not rest[0].startswith("-") and _dump_follows(rest[1:]):
                out += ["-i", rest[0]]
                i += 2
                continue
            interactive = True
        else:
            out.append(a)
        i += 1
    return out, interactive


#: switches that take a value (so their value is not the dump)
_VALUED = {"-c", "-y", "-i", "-z", "--logo", "--loga", "-logo", "-loga", "--symbols-dir"}


def _dump_follows(rest: list[str]) -> bool:
    """True when ``rest`` still names a dump: a bare positional or ``-z``."""
    j = 0
    while j < len(rest):
        a = rest[j]
        if a == "-z":
            return True
        if a in _VALUED:
            j += 2
            continue
        if not a.startswith("-"):
            return True
        j += 1
    return False


def default_dump(windows: bool | None = None) -> tuple[Path | None, str]:
    """Where Windows keeps crash dumps; (path or None, explanation)."""
    if windows is None:
        windows = os.name == "nt"
    if not windows:
        return None, (
            "no dump file given. On Windows the default is %SystemRoot%\\MEMORY.DMP or the newest "
            "%SystemRoot%\\Minidump\\*.dmp; elsewhere pass one: bugcheck DUMP (or -z DUMP)"
        )
    root = Path(os.environ.get("SystemRoot", r"C:\Windows"))
    memory = root / "MEMORY.DMP"
    if memory.is_file():
        return memory, f"using {memory}"
    minis = sorted(glob.glob(str(root / "Minidump" / "*.dmp")), key=lambda p: os.path.getmtime(p))
    if minis:
        return Path(minis[-1]), f"using the newest minidump {minis[-1]}"
    return None, f"no dump file given and none found at {memory} or {root / 'Minidump'}\\*.dmp"


class Output:
    """Where results go: stdout (text or JSON lines) plus the session log."""

    def __init__(self, session, json_mode: bool, echo: bool, verbose: bool = False):
        self.session = session
        self.verbose = verbose
        self.json_mode = json_mode
        self.echo = echo

    def emit(self, result, command: str | None = None) -> None:
        if self.json_mode:
            doc = result.to_json()
            if command is not None:
                doc["command"] = command
            sys.stdout.write(json.dumps(doc, default=_json_default) + "\n")
        else:
            if command is not None and self.echo:
                sys.stdout.write(self.session.prompt + command + "\n")
            if result.text:
                sys.stdout.write(result.text + ("" if result.text.endswith("\n") else "\n"))
        sys.stdout.flush()

    def run(self, line: str) -> None:
        from bugcheck.commands.session import split_commands

        for cmd in split_commands(line):
            prompt = self.session.prompt
            t0 = time.perf_counter()
            result = self.session.run_one(cmd)
            if self.verbose:
                sys.stderr.write(f"bugcheck: '{cmd}' took {time.perf_counter() - t0:.3f} s\n")
            if self.json_mode:
                self.emit(result, cmd)
            else:
                if self.echo:
                    sys.stdout.write(prompt + cmd + "\n")
                self.emit(result)
            if self.session.quit_requested:
                return


def _json_default(o):
    if isinstance(o, bytes | bytearray | memoryview):
        return bytes(o).hex()
    if isinstance(o, set | frozenset | tuple):
        return list(o)
    if hasattr(o, "value") and hasattr(o, "name"):  # enums
        return o.value
    if hasattr(o, "__dict__"):
        return {k: v for k, v in vars(o).items() if not k.startswith("_")}
    return str(o)


def _fail(path, problem: str, json_mode: bool = False) -> int:
    line = f"bugcheck: {path}: {problem}"
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
    if json_mode:
        # a pipeline reading --json gets the failure as a document too (schema bugcheck.error/1)
        doc = {"schema": "bugcheck.error/1", "command": "open", "data": {"error": line}, "text": line}
        try:
            sys.stdout.write(json.dumps(doc) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            pass
    return EXIT_USAGE


def _open(path: Path):
    from bugcheck.dumpfile import open_dump

    if not path.exists():
        raise BadFileError(path, "no such file")
    if path.is_dir():
        raise BadFileError(path, "is a directory, not a dump file")
    try:
        return open_dump(path)
    except PermissionError as e:
        raise BadFileError(path, "permission denied") from e
    except IsADirectoryError as e:
        raise BadFileError(path, "is a directory, not a dump file") from e
    except OSError as e:
        raise BadFileError(path, e.strerror or str(e)) from e


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args_list, interactive = preparse(argv)
    parser = _build_parser()
    args = parser.parse_args(args_list)
    interactive = interactive or args.interactive
    path_text = args.dump_z or args.dump
    if args.dump_z and args.dump:
        parser.error("give the dump once (either DUMP or -z DUMP)")
    path = Path(path_text) if path_text else None
    try:
        if path is None:
            path, why = default_dump()
            if path is None:
                sys.stderr.write(f"bugcheck: {why}\n")
                return EXIT_USAGE
            sys.stderr.write(f"bugcheck: {why}\n")
        return _run(args, path, interactive)
    except BadFileError as e:
        return _fail(e.path, e.problem, args.json)
    except BugcheckError as e:
        return _fail(path, str(e), args.json)
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return EXIT_INTERRUPT
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK


def _quiet_stdout() -> None:
    # the reader went away (| head): stop writing and do not complain at exit
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _run(args, path: Path, interactive: bool) -> int:
    from bugcheck.commands import registry
    from bugcheck.commands.session import Session
    from bugcheck.commands.target import banner

    if args.triage:
        for f in args.triage:
            if not Path(f).is_file():
                return _fail(f, "triage rules file not found")
        extra = os.pathsep.join(args.triage)
        old = os.environ.get("BUGCHECK_TRIAGE")
        os.environ["BUGCHECK_TRIAGE"] = extra + (os.pathsep + old if old else "")
    dump = _open(path)
    session = Session(
        dump,
        sympath=args.sympath,
        image_path=args.image_path,
        offline=args.offline,
        symbols_dir=args.symbols_dir,
        noisy=args.noisy,
    )
    session.verbose = args.verbose
    try:
        if args.logo or args.loga:
            log = args.logo or args.loga
            try:
                session.log_file = open(log, "w" if args.logo else "a", encoding="utf-8")  # noqa: SIM115
                session.log_path = log
            except OSError as e:
                return _fail(log, f"cannot open log file: {e.strerror}")
        out = Output(session, args.json, echo=not args.brief, verbose=args.verbose)
        if args.verbose:
            from bugcheck.commands.session import _BROKEN_MODULES

            for name, why in sorted(_BROKEN_MODULES.items()):
                sys.stderr.write(f"bugcheck: command module {name} failed to load: {why}\n")
        single_json = args.json and args.commands is None and not interactive
        if not args.brief and not single_json:
            b = banner(session)
            out.emit(b, "banner" if args.json else None)
            session.log(b.text + "\n")
        if single_json and registry.lookup("!analyze") is not None:
            # one JSON object for the whole report: the analysis, with the banner's facts inside it
            cmd = "!analyze" if args.brief else "!analyze -v"
            result = session.run_one(cmd)
            doc = result.to_json()
            doc["command"] = cmd
            if not args.brief:
                doc["target"] = banner(session).data
            sys.stdout.write(json.dumps(doc, default=_json_default) + "\n")
        elif args.commands is not None:
            out.run(args.commands)
        elif not interactive:
            if registry.lookup("!analyze") is not None:
                out.run("!analyze" if args.brief else "!analyze -v")
            else:
                out.run(".bugcheck")
        if args.verbose:
            for slot, why in sorted(session.slot_errors.items()):
                sys.stderr.write(f"bugcheck: {slot} unavailable: {why}\n")
        if interactive and not session.quit_requested:
            from bugcheck.shell import run_shell

            run_shell(session, json_mode=args.json)
        return EXIT_OK
    finally:
        session.close()


if __name__ == "__main__":
    sys.exit(main())
