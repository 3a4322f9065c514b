"""The interactive ``N: kd>`` prompt.

On a terminal it uses prompt_toolkit (history kept across runs, tab completion
of command names and symbols); otherwise it reads plain lines from stdin, so
``echo kv | bugcheck shell DUMP`` works. Ctrl-C interrupts the running command
and returns to the prompt, as in kd; ``q`` or end of input leaves.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from bugcheck.commands import registry
from bugcheck.commands.session import Session, split_commands


def history_path() -> Path | None:
    """Per-user history file (platformdirs' state dir), or None when it cannot be created."""
    try:
        import platformdirs

        d = Path(platformdirs.user_state_dir("bugcheck", appauthor=False))
        d.mkdir(parents=True, exist_ok=True)
        return d / "history"
    except (OSError, ImportError):
        return None


def _completer(session: Session):
    from prompt_toolkit.completion import Completer, Completion

    class KdCompleter(Completer):
        """First word: command names; later words: symbols (``mod!prefix``) from the resolver."""

        def get_completions(self, document, complete_event):
            text = document.text_before_cursor
            word = document.get_word_before_cursor(WORD=True)
            if not text.strip() or text.strip() == word and " " not in text.lstrip():
                names = sorted({n for s in registry.all_commands() for n in (s.name, *s.aliases)})
                for n in names:
                    if n.startswith(word.lower()):
                        yield Completion(n, start_position=-len(word))
                return
            first = text.lstrip().split(None, 1)[0].lower() if text.strip() else ""
            if first == "dt":
                yield from _dt_completions(session.symbols, text, word)
                return
            if not word:
                return
            complete = getattr(session.symbols, "complete", None)
            if not callable(complete):
                return
            try:
                found = complete(word)
            except Exception:  # a symbol loader failing must not break typing
                return
            for name in found[:200]:
                yield Completion(name, start_position=-len(word))

    return KdCompleter()


def _dt_completions(symbols, text: str, word: str):
    """``dt TYPE<TAB>`` completes type names; ``dt TYPE [ADDR] FIELD<TAB>`` completes its members."""
    from prompt_toolkit.completion import Completion

    words = [w for w in text.split()[1:] if not w.startswith("-")]
    if text.endswith(" "):
        words.append("")
    try:
        if len(words) <= 1:
            found = symbols.complete_types(word)
        else:
            found = symbols.complete_fields(words[0], word)
    except Exception:  # noqa: BLE001 - completion never breaks typing
        return
    for name in found:
        yield Completion(name, start_position=-len(word))


def page(text: str, use_pager: bool) -> None:
    """Print ``text``; on a terminal, stop every screenful for Enter (``q`` skips the rest)."""
    if not use_pager:
        sys.stdout.write(text + ("\n" if text and not text.endswith("\n") else ""))
        sys.stdout.flush()
        return
    rows = max(5, shutil.get_terminal_size((80, 24)).lines - 1)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        chunk = lines[i : i + rows]
        sys.stdout.write("\n".join(chunk) + "\n")
        sys.stdout.flush()
        i += rows
        if i < len(lines):
            try:
                answer = input("-- More -- (Enter: next page, q: stop) ")
            except (EOFError, KeyboardInterrupt):
                sys.stdout.write("\n")
                return
            if answer.strip().lower().startswith("q"):
                return


def _run_line(session: Session, line: str, json_mode: bool, use_pager: bool) -> None:
    for cmd in split_commands(line):
        try:
            result = session.run_one(cmd)
        except KeyboardInterrupt:
            sys.stdout.write("\n^C Command interrupted\n")
            sys.stdout.flush()
            return
        if json_mode:
            doc = result.to_json()
            doc["command"] = cmd
            sys.stdout.write(json.dumps(doc, default=str) + "\n")
        elif result.text:
            page(result.text, use_pager)
        if session.quit_requested:
            return


def run_shell(session: Session, *, json_mode: bool = False) -> None:
    """Read-eval-print until ``q`` or end of input."""
    tty = sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("BUGCHECK_PLAIN_SHELL")
    if tty:
        _run_prompt_toolkit(session, json_mode)
    else:
        _run_plain(session, json_mode)


def _run_plain(session: Session, json_mode: bool) -> None:
    while not session.quit_requested:
        try:
            sys.stdout.write(session.prompt)
            sys.stdout.flush()
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            continue
        if not line:
            sys.stdout.write("\n")
            return
        line = line.rstrip("\n")
        if not sys.stdin.isatty():
            sys.stdout.write(line + "\n")  # echo, so a transcript reads like kd's
        _run_line(session, line, json_mode, False)


def _run_prompt_toolkit(session: Session, json_mode: bool) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    hp = history_path()
    try:
        history = FileHistory(str(hp)) if hp is not None else InMemoryHistory()
    except OSError:
        history = InMemoryHistory()
    ps = PromptSession(history=history, completer=_completer(session), complete_while_typing=False)
    last = ""
    while not session.quit_requested:
        try:
            line = ps.prompt(session.prompt)
        except KeyboardInterrupt:
            continue  # Ctrl-C at the prompt clears the line, as kd ignores it
        except EOFError:
            return
        # kd repeats the previous command on an empty line
        if not line.strip():
            if not last:
                continue
            line = last
        last = line
        _run_line(session, line, json_mode, True)
