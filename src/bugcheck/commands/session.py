"""Debugger state for one open dump, and the command line dispatcher.

A :class:`Session` holds what WinDbg keeps between commands: the register
context in effect (crash context, or what ``.trap``/``.cxr``/``.thread``/``~Ns``
selected), the current processor, where a bare ``db`` continues, the open log.
Layers above the dump reader fill the ``symbols``, ``kernel`` and ``modules``
slots lazily through :func:`register_provider`, so a command that never needs
symbols never pays for loading them.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
from collections.abc import Callable
from typing import Any

from bugcheck.commands import registry
from bugcheck.commands.expr import Evaluator, ExprEnv
from bugcheck.commands.registry import Result
from bugcheck.errors import BadFileError, BugcheckError, CommandError, MemoryNotPresent
from bugcheck.symbols.resolver import hex_addr

#: slot name -> factory(session) -> object; filled by other layers (see register_provider)
_PROVIDERS: dict[str, Callable[[Session], Any]] = {}

#: x64 sub-registers: name -> (full register, shift, bits)
_X64_SUBREGS: dict[str, tuple[str, int, int]] = {}
for _full, _d, _w, _b, _h in [
    ("rax", "eax", "ax", "al", "ah"),
    ("rbx", "ebx", "bx", "bl", "bh"),
    ("rcx", "ecx", "cx", "cl", "ch"),
    ("rdx", "edx", "dx", "dl", "dh"),
]:
    _X64_SUBREGS.update({_d: (_full, 0, 32), _w: (_full, 0, 16), _b: (_full, 0, 8), _h: (_full, 8, 8)})
for _full, _d, _w, _b in [
    ("rsi", "esi", "si", "sil"),
    ("rdi", "edi", "di", "dil"),
    ("rbp", "ebp", "bp", "bpl"),
    ("rsp", "esp", "sp", "spl"),
]:
    _X64_SUBREGS.update({_d: (_full, 0, 32), _w: (_full, 0, 16), _b: (_full, 0, 8)})
for _n in range(8, 16):
    _X64_SUBREGS.update(
        {f"r{_n}d": (f"r{_n}", 0, 32), f"r{_n}w": (f"r{_n}", 0, 16), f"r{_n}b": (f"r{_n}", 0, 8)}
    )
#: x86: the 16- and 8-bit parts of the 32-bit registers
_X86_SUBREGS: dict[str, tuple[str, int, int]] = {}
for _l in "abcd":
    _X86_SUBREGS.update(
        {f"{_l}x": (f"e{_l}x", 0, 16), f"{_l}l": (f"e{_l}x", 0, 8), f"{_l}h": (f"e{_l}x", 8, 8)}
    )
for _r in ("si", "di", "bp", "sp", "ip"):
    _X86_SUBREGS[_r] = (f"e{_r}", 0, 16)
_X64_SUBREGS["eip"] = ("rip", 0, 32)
_X64_SUBREGS["ip"] = ("rip", 0, 16)
_X64_SUBREGS["eflags"] = ("efl", 0, 32)


#: commands that take no glued arguments: ``qqq`` is an error in kd, not ``q`` + ``qq``
EXACT_ONLY = frozenset({"q", "qq", "qd", ".cls", "version", "vertarget"})


def register_provider(slot: str, factory: Callable[[Session], Any]) -> None:
    """Let a layer fill a session slot (``symbols``, ``kernel``, ``modules``...) on first use.

    ``factory(session)`` is called once per session, the first time the slot is read.
    """
    _PROVIDERS[slot] = factory


_loaded_commands = False


def load_commands() -> None:
    """Import every module of ``bugcheck.commands`` so their ``@command`` registrations run."""
    global _loaded_commands
    if _loaded_commands:
        return
    _loaded_commands = True
    import bugcheck.commands as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name in ("session", "registry"):
            continue
        try:
            importlib.import_module(f"bugcheck.commands.{info.name}")
        except Exception as e:  # a broken command module must not take the debugger down
            if os.environ.get("BUGCHECK_DEBUG"):
                raise
            _BROKEN_MODULES[info.name] = f"{type(e).__name__}: {e}"


#: command modules that failed to import, with the reason (shown by ``version``)
_BROKEN_MODULES: dict[str, str] = {}


class PlainSymbols:
    """Stand-in resolver: module-relative names from the dump's driver list, no symbol files."""

    def __init__(self, session: Session):
        self._resolver = None
        try:
            from bugcheck.symbols.modules import ModuleInfo, assign_module_names, file_name_of
            from bugcheck.symbols.resolver import Resolver

            mods = []
            triage = getattr(session.dump, "triage", None)
            for drv in (getattr(triage, "drivers", None) or [])[:4096]:
                name, base, size = drv[0], drv[1], drv[2]
                ts = drv[3] if len(drv) > 3 else 0
                mods.append(ModuleInfo(file_name_of(str(name)), base, size, path=str(name), timestamp=ts))
            self._resolver = Resolver(assign_module_names(mods), None, session.pointer_size)
        except Exception:
            self._resolver = None
        self.pointer_size = session.pointer_size

    @property
    def modules(self):
        return self._resolver.modules if self._resolver else []

    def format_address(self, address: int) -> str:
        if self._resolver is not None:
            return self._resolver.format_address(address)
        return "0x" + hex_addr(address, self.pointer_size)

    def symbol_for(self, address: int) -> str | None:
        return self._resolver.symbol_for(address) if self._resolver else None

    def resolve(self, name: str) -> int | None:
        return self._resolver.resolve(name) if self._resolver else None

    def complete(self, prefix: str, limit: int = 200) -> list[str]:
        return self._resolver.complete(prefix, limit) if self._resolver else []


class _SessionEnv(ExprEnv):
    def __init__(self, session: Session):
        self.s = session
        self.pointer_size = session.pointer_size

    def register(self, name: str) -> int | None:
        return self.s.register(name)

    def pseudo_register(self, name: str) -> int | None:
        return self.s.pseudo_register(name)

    def symbol(self, name: str) -> int | None:
        try:
            return self.s.symbols.resolve(name)
        except BugcheckError:
            return None

    def read_memory(self, address: int, size: int) -> bytes:
        return self.s.read_virtual(address, size)


def split_commands(line: str) -> list[str]:
    """Split a command line on ``;`` outside quotes, dropping ``$$`` and ``*`` comments."""
    out: list[str] = []
    cur: list[str] = []
    quote = ""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if quote:
            cur.append(c)
            if c == "\\" and i + 1 < n:
                cur.append(line[i + 1])
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c == '"':
            quote = c
            cur.append(c)
        elif c == ";":
            out.append("".join(cur))
            cur = []
        elif line.startswith("$$", i) and not "".join(cur).strip():
            # $$ comment runs to the next ';'
            j = line.find(";", i)
            if j < 0:
                i = n
                continue
            i = j
            continue
        elif c == "*" and not "".join(cur).strip():
            # '*' comment swallows the rest of the line, semicolons included
            break
        else:
            cur.append(c)
        i += 1
    out.append("".join(cur))
    return [c.strip() for c in out if c.strip()]


_TOKEN_RE = re.compile(r"\S+")


class Session:
    """One debugging session over one dump (what ``kd -z DUMP`` keeps between prompts)."""

    def __init__(
        self,
        dump,
        *,
        sympath: str | None = None,
        image_path: str | None = None,
        offline: bool = False,
        symbols_dir: str | None = None,
        noisy: bool = False,
    ):
        self.dump = dump
        self.sympath = sympath
        self.image_path = image_path
        self.offline = offline
        self.symbols_dir = symbols_dir
        self.noisy = noisy
        self._slots: dict[str, Any] = {}
        self._cpu_contexts: dict[int, Any] = {}
        #: slot name -> why its provider failed (the session then uses the fallback)
        self.slot_errors: dict[str, str] = {}
        self._context = None
        self.context_reason = ""
        cp = getattr(dump, "crash_processor", None)
        self.processor: int = cp if isinstance(cp, int) else 0
        #: where a bare ``db``/``dd``... continues
        self.next_display_address: int | None = None
        self.last_display_command = "db"
        #: user pseudo-registers $t0..$t19
        self.temps: dict[str, int] = {}
        #: extra pseudo-registers other layers add: name ("$ra") -> callable(session) -> int | None
        self.pseudo_hooks: dict[str, Callable[[Session], int | None]] = {}
        self.quit_requested = False
        self.log_file = None
        self.log_path: str | None = None
        #: re-raise unexpected exceptions from commands (tests, BUGCHECK_DEBUG=1)
        self.raise_errors = bool(os.environ.get("BUGCHECK_DEBUG"))
        load_commands()

    @classmethod
    def open(cls, path, **options) -> Session:
        """Open a dump file and start a session on it (options as for the constructor)."""
        from bugcheck.dumpfile import open_dump

        return cls(open_dump(path), **options)

    # -- lazily filled slots ---------------------------------------------------------------------
    def _slot(self, name: str, default: Callable[[], Any] | None = None):
        if name not in self._slots:
            factory = _PROVIDERS.get(name)
            value = None
            if factory is not None:
                try:
                    value = factory(self)
                except (KeyboardInterrupt, BrokenPipeError):
                    raise
                except Exception as e:
                    # a layer that cannot build its part leaves the fallback in place; say why once
                    if self.raise_errors and not isinstance(e, BugcheckError):
                        raise
                    self.slot_errors[name] = f"{type(e).__name__}: {e}"
                    value = None
            if value is None and default is not None:
                value = default()
            self._slots[name] = value
        return self._slots[name]

    @property
    def symbols(self):
        return self._slot("symbols", lambda: PlainSymbols(self))

    @symbols.setter
    def symbols(self, value) -> None:
        self._slots["symbols"] = value

    @property
    def kernel(self):
        return self._slot("kernel")

    @kernel.setter
    def kernel(self, value) -> None:
        self._slots["kernel"] = value

    @property
    def modules(self):
        return self._slot("modules", lambda: list(getattr(self.symbols, "modules", []) or []))

    @modules.setter
    def modules(self, value) -> None:
        self._slots["modules"] = value

    def slot(self, name: str):
        """Any other provider-filled slot (``unwinder``, ``analysis``...), or None."""
        return self._slot(name)

    # -- target facts ----------------------------------------------------------------------------
    @property
    def pointer_size(self) -> int:
        return getattr(self.dump, "pointer_size", 8) or 8

    @property
    def machine(self) -> str:
        return getattr(self.dump, "machine", "x64")

    @property
    def prompt(self) -> str:
        return f"{self.processor}: kd> "

    def format_address(self, address: int) -> str:
        return self.symbols.format_address(address)

    def hex_addr(self, address: int) -> str:
        """WinDbg's address column: ``fffff800`62600000`` (or 8 digits on 32-bit targets)."""
        return hex_addr(address, self.pointer_size)

    # -- register context ------------------------------------------------------------------------
    @property
    def crash_context(self):
        """The current processor's context as the dump holds it (the crash context on the crashing CPU)."""
        return self.processor_context(self.processor)

    def processor_context(self, index: int):
        """Processor ``index``'s registers: the dump's per-processor contexts, the crash context
        for the crashing processor, else what its PRCB saved (an empty Context when nothing)."""
        contexts = getattr(self.dump, "contexts", None) or []
        if len(contexts) > 1 and 0 <= index < len(contexts) and contexts[index] is not None:
            return contexts[index]
        crash_cpu = getattr(self.dump, "crash_processor", None)
        if crash_cpu is None and self.kernel is not None:
            crash_cpu = getattr(self.kernel, "crash_processor", None)
        if index == (crash_cpu or 0):
            return getattr(self.dump, "crash_context", None)
        if index not in self._cpu_contexts:
            ctx = self._prcb_context(index)
            if ctx is None:
                from bugcheck.dumpfile.context import Context

                ctx = Context(self.machine)  # nothing captured: no register has a value
            self._cpu_contexts[index] = ctx
        return self._cpu_contexts[index]

    def _prcb_context(self, index: int):
        """The registers processor ``index``'s PRCB saved, or None: where the debugger data block
        places them (ProcessorState, or the buffer Prcb->Context points to, where newer kernels
        save a frozen processor's registers), else ProcessorState.ContextFrame by type."""
        kernel = self.kernel
        proc = kernel.processor(index) if kernel is not None and hasattr(kernel, "processor") else None
        prcb = getattr(proc, "prcb", 0)
        if not prcb:
            return None
        reader = getattr(self.dump, "_prcb_context", None)
        kd = getattr(self.dump, "kd_debugger_data", None)
        candidates = []
        if callable(reader) and kd:
            candidates.append(lambda: reader(prcb, kd))
        types = getattr(kernel, "types", None)
        if types:
            from bugcheck.stack.trapframe import read_context_record

            def by_type():
                off = types.offset("_KPRCB", "ProcessorState.ContextFrame")
                return read_context_record(self.dump.read_virtual, prcb + off, self.machine, types)

            candidates.append(by_type)
        for get in candidates:
            try:
                ctx = get()
            except (KeyError, BugcheckError):
                continue
            # a PRCB copy whose context was never filled in holds zeros: that is no context
            if ctx is not None and ctx.pc and ctx.sp:
                return ctx
        return None

    @property
    def context(self):
        """The register context in effect."""
        return self._context if self._context is not None else self.crash_context

    def set_context(self, ctx, reason: str = "") -> None:
        """Install a context from ``.trap``/``.cxr``/``.thread`` (``reason`` names which)."""
        self._context = ctx
        self.context_reason = reason

    def reset_context(self) -> None:
        self._context = None
        self.context_reason = ""

    def set_processor(self, index: int) -> None:
        """``~Ns``: switch to processor ``index`` and its context."""
        n = self.processor_count
        if not 0 <= index < max(n, 1):
            raise CommandError(f"{index:d} is not a valid processor number")
        self.processor = index
        self.reset_context()

    @property
    def processor_count(self) -> int:
        header = getattr(self.dump, "header", None)
        n = getattr(header, "number_processors", 0) or 0
        return n or len(getattr(self.dump, "contexts", None) or []) or 1

    def register(self, name: str) -> int | None:
        ctx = self.context
        if ctx is None:
            return None
        regs = getattr(ctx, "regs", {}) or {}
        name = name.lower()
        if name in regs:
            return regs[name]
        arch = getattr(ctx, "arch", "x64")
        sub = None
        if arch == "x64":
            sub = _X64_SUBREGS.get(name)
        elif arch == "x86":
            sub = _X86_SUBREGS.get(name)
        elif arch == "arm64" and re.fullmatch(r"w([0-9]|[12][0-9]|30)", name):
            n = int(name[1:])
            sub = ({29: "fp", 30: "lr"}.get(n, f"x{n}"), 0, 32)
        if sub is not None and sub[0] in regs:
            full, shift, bits = sub
            return (regs[full] >> shift) & ((1 << bits) - 1)
        return None

    def pseudo_register(self, name: str) -> int | None:
        """``$ip``, ``$csp``, ``$bug_code``... (name with its ``$``, lower case), or None when unknown."""
        name = name.lower()
        hook = self.pseudo_hooks.get(name)
        if hook is not None:
            return hook(self)
        ctx = self.context
        if name == "$ip":
            return getattr(ctx, "pc", None) if ctx is not None else None
        if name == "$csp":
            return getattr(ctx, "sp", None) if ctx is not None else None
        if name == "$retreg":
            return self.register({"x86": "eax", "arm64": "x0"}.get(self.machine, "rax"))
        if name == "$ptrsize":
            return self.pointer_size
        if name == "$pagesize":
            return 0x1000
        if name == "$bug_code":
            return getattr(self.dump, "bugcheck_code", None)
        if name.startswith("$bug_param") and name[10:] in ("1", "2", "3", "4"):
            params = getattr(self.dump, "bugcheck_parameters", None) or ()
            i = int(name[10:]) - 1
            return params[i] if i < len(params) else None
        if name == "$dumptype":
            return getattr(getattr(self.dump, "header", None), "dump_type", None)
        if re.fullmatch(r"\$t(1?[0-9])", name):
            return self.temps.get(name, 0)
        if name == "$ra" and ctx is not None:
            # without an unwinder: the return address at the stack pointer (true at a call's entry)
            try:
                return int.from_bytes(self.read_virtual(ctx.sp, self.pointer_size), "little")
            except BugcheckError:
                return None
        if name in ("$thread", "$proc", "$prcb", "$teb", "$peb"):
            return self._kernel_pseudo(name)
        kernel = self.kernel
        fn = getattr(kernel, "pseudo_register", None) if kernel is not None else None
        if callable(fn):
            return fn(name, self)
        return None

    def _kernel_pseudo(self, name: str) -> int | None:
        """$thread/$proc/$prcb/$teb/$peb of the current processor: kernel model first, triage header next."""
        kernel = None
        try:
            kernel = self.kernel
        except BugcheckError:
            kernel = None
        thread = process = prcb = None
        if kernel is not None:
            try:
                if name == "$prcb" and hasattr(kernel, "processor"):
                    p = kernel.processor(self.processor)
                    prcb = getattr(p, "prcb", None) or None
                elif name in ("$thread", "$teb") and hasattr(kernel, "current_thread"):
                    thread = kernel.current_thread(self.processor)
                elif hasattr(kernel, "current_process"):
                    process = kernel.current_process(self.processor)
            except BugcheckError:
                pass
        if name == "$teb":
            return getattr(thread, "teb", None)
        if name == "$peb":
            return getattr(process, "peb", None)
        if name == "$thread" and thread is not None:
            return thread.address
        if name == "$proc" and process is not None:
            return process.address
        if name == "$prcb" and prcb:
            return prcb
        triage = getattr(self.dump, "triage", None)
        if triage is None or self.processor != getattr(self.dump, "crash_processor", self.processor):
            return None
        field = {"$thread": "thread_address", "$proc": "process_address", "$prcb": "prcb_address"}[name]
        v = getattr(triage, field, None)
        return v if isinstance(v, int) and v else None

    # -- memory ----------------------------------------------------------------------------------
    def read_virtual(self, address: int, size: int) -> bytes:
        space = self._user_space(address)
        if space is not None:
            return space.read(address, size)
        return self.dump.read_virtual(address & ((1 << 64) - 1), size)

    def read_virtual_padded(self, address: int, size: int):
        space = self._user_space(address)
        if space is not None:
            return space.read_padded(address, size)
        fn = getattr(self.dump, "read_virtual_padded", None)
        if fn is not None:
            return fn(address, size)
        return self.dump.virtual.read_padded(address, size)

    def set_process_space(self, dirbase: int | None) -> None:
        """Read user-mode addresses through ``dirbase`` (``.process``); None goes back to the
        crash's own page tables. Kernel addresses are the same in every process."""
        self._process_space = None
        paging = getattr(self.dump, "paging", None)
        if dirbase is None or paging is None:
            return
        from bugcheck.memory.paging import VirtualMemory

        space = VirtualMemory(type(paging)(paging.physical, dirbase))
        # module images fill holes there too (user-mode DLLs have none yet; kernel reads never
        # come here)
        fallback = getattr(self.dump.virtual, "fallback", None)
        if fallback is not None and hasattr(space, "set_fallback"):
            space.set_fallback(fallback)
        self._process_space = space

    def _user_space(self, address: int):
        space = getattr(self, "_process_space", None)
        if space is None:
            return None
        limit = 0x8000_0000_0000 if self.pointer_size == 8 else 0x8000_0000
        return space if (address & ((1 << 64) - 1)) < limit else None

    # -- expressions -----------------------------------------------------------------------------
    def evaluator(self) -> Evaluator:
        return Evaluator(_SessionEnv(self))

    def evaluate(self, expr: str) -> int:
        return self.evaluator().evaluate(expr)

    def evaluate_prefix(self, text: str) -> tuple[int, int]:
        """Evaluate the expression at the start of ``text``: (value, offset where it ended)."""
        return self.evaluator().evaluate_prefix(text)

    # -- commands --------------------------------------------------------------------------------
    def find_command(self, text: str) -> tuple[registry.CommandSpec | None, str, str]:
        """(spec, name, args) for one command; WinDbg lets arguments touch the name (``kv``, ``db@rsp``)."""
        m = _TOKEN_RE.match(text)
        if not m:
            return None, "", ""
        word = m.group(0)
        spec = registry.lookup(word)
        if spec is not None:
            return spec, word, text[m.end() :].strip()
        for cut in range(len(word) - 1, 0, -1):
            spec = registry.lookup(word[:cut])
            if spec is not None and word[:cut].lower() not in EXACT_ONLY:
                return spec, word[:cut], text[cut:].strip()
        return None, word, text[m.end() :].strip()

    def _reset_work_budget(self) -> None:
        """Each command gets fresh work limits, shared by all the walks it runs."""
        target = self._slots.get("target")
        kernel = getattr(target, "kernel", None)
        if kernel is not None:
            from bugcheck.kernel.budget import WorkBudget

            kernel.budget = WorkBudget()

    def run(self, line: str) -> list[Result]:
        """Run one command line (``cmd; cmd``) and return one Result per command."""
        results = []
        for cmd in split_commands(line):
            results.append(self.run_one(cmd))
            if self.quit_requested:
                break
        return results

    def run_one(self, cmd: str) -> Result:
        self._reset_work_budget()
        spec, name, args = self.find_command(cmd)
        if spec is None:
            if name.startswith("!"):
                msg = f"No export {name[1:]} found"
            else:
                msg = f"       ^ Syntax error in '{cmd}'"
            return Result(msg, {"error": msg.strip(), "command": cmd}, "bugcheck.error/1")
        try:
            result = spec.handler(self, args)
        except BadFileError as e:
            if str(getattr(self.dump, "path", "")) == e.path:
                raise
            return _error_result(cmd, f"bugcheck: {e.path}: {e.problem}")
        except MemoryNotPresent as e:
            return _error_result(cmd, f"Memory access error at {hex_addr(e.address, self.pointer_size)}")
        except BugcheckError as e:
            return _error_result(cmd, str(e))
        except (KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as e:
            if self.raise_errors:
                raise
            return _error_result(cmd, f"bugcheck: internal error in '{name}': {type(e).__name__}: {e}")
        if result is None:
            result = Result("")
        if self.log_file is not None and result.text:
            self.log(self.prompt + cmd + "\n" + result.text + "\n")
        return result

    # -- log -------------------------------------------------------------------------------------
    def log(self, text: str) -> None:
        if self.log_file is not None:
            try:
                self.log_file.write(text)
                self.log_file.flush()
            except OSError:
                self.log_file = None

    def close(self) -> None:
        if self.log_file is not None:
            try:
                self.log_file.close()
            except OSError:
                pass
            self.log_file = None


def _error_result(cmd: str, msg: str) -> Result:
    return Result(msg, {"error": msg, "command": cmd}, "bugcheck.error/1")
