"""Register-context commands: ``.trap``, ``.cxr``, ``.thread``, ``.process``, ``.frame``, ``~Ns``.

They change what ``r`` and ``k`` start from. ``.trap``/``.cxr`` install a
context read from memory (and ``k`` then says so); ``.thread`` takes a
thread's saved kernel context (its switch frame, or the processor's context
when it is running); ``~Ns`` switches processor.
"""

from __future__ import annotations

from bugcheck.commands.registers import context_text
from bugcheck.commands.registry import Result, command
from bugcheck.dumpfile.context import Context
from bugcheck.errors import BugcheckError, CommandError, MemoryNotPresent
from bugcheck.stack import trapframe


def _hex(session, v: int) -> str:
    return session.hex_addr(v)


def _types(session):
    k = session.kernel
    return getattr(k, "types", None) if k is not None else None


def _address(session, text: str, cmd: str) -> int:
    try:
        return session.evaluate(text)
    except BugcheckError as e:
        raise CommandError(f"Couldn't resolve error at '{text}' ({cmd})") from e


def _read(session):
    return lambda va, n: session.read_virtual(va, n)


# -- .trap ----------------------------------------------------------------------------------------
_X86_TRAP = {
    "Eax": "eax", "Ebx": "ebx", "Ecx": "ecx", "Edx": "edx", "Esi": "esi", "Edi": "edi",
    "Ebp": "ebp", "Eip": "eip", "EFlags": "efl", "SegCs": "cs", "SegDs": "ds", "SegEs": "es",
    "SegFs": "fs", "SegGs": "gs", "HardwareSegSs": "ss", "ErrCode": "errcode",
}  # fmt: skip


def read_trap_context(session, address: int) -> Context:
    """The registers of the trap frame at ``address``, for the session's architecture."""
    arch = session.machine
    types = _types(session)
    read = _read(session)
    if arch == "x64":
        return trapframe.trap_frame_context(read, address, types)
    t = types.get("_KTRAP_FRAME") if types else None
    if t is None:
        raise CommandError(f"the _KTRAP_FRAME layout is not known (no kernel symbols) for {arch}")
    raw = read(address, t.size)
    regs: dict[str, int] = {}
    for m in t.members:
        if arch == "x86":
            name = _X86_TRAP.get(m.name)
        else:
            low = m.name.lower()
            name = {"spsr": "cpsr"}.get(low, low)
            if not (name in ("fp", "lr", "sp", "pc", "cpsr") or (name[:1] == "x" and name[1:].isdigit())):
                name = None
        if name is None:
            continue
        size = min(getattr(m.resolved_type(), "size", 0) or 4, 8)
        if m.offset + size <= len(raw):
            regs[name] = int.from_bytes(raw[m.offset : m.offset + size], "little")
    if arch == "x86":
        cs = regs.get("cs", 0)
        if cs & 1 and "HardwareEsp" in {m.name for m in t.members}:
            off = t.field_offset("HardwareEsp")
            regs["esp"] = int.from_bytes(raw[off : off + 4], "little")
        elif "HardwareEsp" in {m.name for m in t.members}:
            regs["esp"] = address + t.field_offset("HardwareEsp")
    return Context(arch, regs)


@command(".trap", "Set the register context from a trap frame")
def trap_command(session, args: str) -> Result:
    text = args.strip()
    if not text:
        session.reset_context()
        return Result("", {"context": "default"}, "bugcheck.context/1")
    addr = _address(session, text, ".trap")
    try:
        ctx = read_trap_context(session, addr)
    except MemoryNotPresent as e:
        raise CommandError(f"Unable to read trap frame at {_hex(session, addr)}") from e
    session.set_context(ctx, "trap")
    lines = context_text(session, ctx, trap=True)
    return Result(
        "\n".join(lines),
        {"context": "trap", "address": addr, "registers": dict(ctx.regs)},
        "bugcheck.context/1",
    )


# -- .cxr -----------------------------------------------------------------------------------------
@command(".cxr", "Set the register context from a CONTEXT record (.cxr alone resets it)")
def cxr_command(session, args: str) -> Result:
    text = args.strip()
    parts = text.split()
    while parts and parts[0].startswith("/"):
        parts.pop(0)  # /r, /w: display options
    text = " ".join(parts)
    if not text:
        session.reset_context()
        return Result("", {"context": "default"}, "bugcheck.context/1")
    addr = _address(session, text, ".cxr")
    try:
        ctx = trapframe.read_context_record(_read(session), addr, session.machine, _types(session))
    except MemoryNotPresent as e:
        raise CommandError(f"Unable to read context at {_hex(session, addr)}") from e
    session.set_context(ctx, "cxr")
    lines = context_text(session, ctx, trap=False)
    return Result(
        "\n".join(lines),
        {"context": "cxr", "address": addr, "registers": dict(ctx.regs)},
        "bugcheck.context/1",
    )


# -- processors and threads -----------------------------------------------------------------------
def processor_context(session, index: int) -> Context | None:
    """Processor ``index``'s context (see :meth:`Session.processor_context`), None when the dump
    holds no registers for it."""
    ctx = session.processor_context(index)
    if ctx is None or ctx is getattr(session.dump, "crash_context", None):
        return ctx
    return ctx if ctx.pc and ctx.sp else None


def _running_on(session, thread_addr: int) -> int | None:
    kernel = session.kernel
    if kernel is None:
        return None
    try:
        for p in kernel.processors():
            if p.current_thread == thread_addr:
                return p.index
    except BugcheckError:
        return None
    if thread_addr == getattr(getattr(session.dump, "triage", None), "thread_address", None):
        return kernel.crash_processor
    return None


def thread_context(session, thread_addr: int) -> Context:
    """The context ``.thread`` installs: the processor's when running, else the switch frame."""
    cpu = _running_on(session, thread_addr)
    if cpu is not None:
        ctx = processor_context(session, cpu)
        if ctx is not None:
            return ctx
    kernel = session.kernel
    types = _types(session)
    if kernel is None or not types:
        raise CommandError("thread contexts need kernel symbols (_KTHREAD)")
    try:
        ks_off = types.offset("_KTHREAD", "KernelStack")
        ks = int.from_bytes(session.read_virtual(thread_addr + ks_off, 8), "little")
    except (KeyError, BugcheckError) as e:
        raise CommandError(f"Unable to read thread {_hex(session, thread_addr)}") from e
    try:
        return trapframe.switch_frame_context(_read(session), ks)
    except MemoryNotPresent as e:
        raise CommandError(
            f"The saved kernel stack of thread {_hex(session, thread_addr)} ({_hex(session, ks)}) "
            "is not in this dump"
        ) from e


def _default_thread(session) -> int | None:
    kernel = session.kernel
    if kernel is not None:
        try:
            t = kernel.current_thread(session.processor)
        except BugcheckError:
            t = None
        if t is not None:
            return t.address
    return getattr(getattr(session.dump, "triage", None), "thread_address", None)


@command(".thread", "Set the register context to a thread's (.thread alone resets it)")
def thread_command(session, args: str) -> Result:
    parts = args.split()
    while parts and parts[0].startswith("/"):
        parts.pop(0)  # /p /r /w: process and symbol options
    if not parts:
        session.reset_context()
        addr = _default_thread(session)
        session.implicit_thread = addr
        text = f"Implicit thread is now {_hex(session, addr)}" if addr else ""
        return Result(text, {"thread": addr, "context": "default"}, "bugcheck.context/1")
    addr = _address(session, " ".join(parts), ".thread")
    ctx = thread_context(session, addr)
    session.set_context(ctx, "thread")
    session.implicit_thread = addr
    return Result(
        f"Implicit thread is now {_hex(session, addr)}",
        {"thread": addr, "context": "thread", "registers": dict(ctx.regs)},
        "bugcheck.context/1",
    )


@command(".process", "Set the implicit process")
def process_command(session, args: str) -> Result:
    parts = args.split()
    flags = []
    while parts and parts[0].startswith("/"):
        flags.append(parts.pop(0).lower())
    if not parts:
        kernel = session.kernel
        addr = getattr(session, "implicit_process", None)
        if addr is None and kernel is not None:
            p = kernel.safe(lambda: kernel.current_process(session.processor))
            addr = p.address if p is not None else None
        if addr is None:
            addr = getattr(getattr(session.dump, "triage", None), "process_address", None)
        if addr is None:
            raise CommandError("The implicit process is not known")
        return Result(
            f"Implicit process is now {_hex(session, addr)}", {"process": addr}, "bugcheck.context/1"
        )
    addr = _address(session, " ".join(parts), ".process")
    session.implicit_process = addr
    lines = []
    # user-mode addresses are now read through this process's page tables (kd's implicit process)
    kernel = session.kernel
    proc = kernel.safe(lambda: kernel.process(addr)) if kernel is not None else None
    dirbase = proc.dirbase if proc is not None else None
    if getattr(session.dump, "paging", None) is None:
        lines.append("(this dump has no page tables: user-mode memory cannot be read in any process)")
    elif not dirbase:
        lines.append(f"Unable to read the page directory base of process {_hex(session, addr)}")
    session.set_process_space(dirbase or None)
    if "/i" in flags:
        lines.append("You need to continue execution (press 'g' <enter>) for the context")
        lines.append("to be switched. When the debugger breaks in again, you will be in")
        lines.append("the new process context.")
    else:
        lines.append(f"Implicit process is now {_hex(session, addr)}")
    if "/r" in flags:
        lines.append("Loading User Symbols")
    return Result("\n".join(lines), {"process": addr, "flags": flags}, "bugcheck.context/1")


@command(".frame", "Set the local context to a stack frame (.frame /r N shows its registers)")
def frame_command(session, args: str) -> Result:
    from bugcheck.commands.stack import render, session_walk

    parts = args.split()
    show_regs = False
    while parts and parts[0].startswith("/"):
        show_regs = show_regs or "r" in parts.pop(0).lower()
    if parts:
        n = _address(session, " ".join(parts), ".frame")
    else:
        n = getattr(session, "frame_scope", 0) or 0
    sw = session_walk(session, n + 2)
    if not 0 <= n < len(sw.frames):
        raise CommandError(f"Frame {n:x} not found")
    session.frame_scope = n
    f = sw.frames[n]
    one = type(sw)([f])
    lines = render(one, session.pointer_size, args=False, verbose=False)[1:]
    if show_regs:
        ctx = Context(
            session.context.arch if session.context is not None else session.machine, dict(f.context)
        )
        lines += context_text(session, ctx, trap=False)
    return Result("\n".join(lines), {"frame": f.to_dict()}, "bugcheck.context/1")


# -- ~Ns ------------------------------------------------------------------------------------------
def _switch(session, index: int) -> Result:
    session.set_processor(index)
    ctx = processor_context(session, index)
    note = ""
    if ctx is None:
        ctx = Context(session.machine, {})
        note = f"Processor {index}'s register context is not in this dump"
    if ctx is not session.crash_context:
        session.set_context(ctx, "")
    session.implicit_thread = None
    session.frame_scope = 0
    return Result(note, {"processor": index, "context_available": not note}, "bugcheck.context/1")


@command("~", "Switch processor (~Ns)")
def tilde_command(session, args: str) -> Result:
    text = args.strip()
    if not text:
        n = session.processor_count
        lines = [f"{'.' if i == session.processor else ' '}  {i}" for i in range(n)]
        return Result("\n".join(lines), {"processor": session.processor, "count": n}, "bugcheck.context/1")
    if not text.lower().endswith("s"):
        raise CommandError(f"       ^ Syntax error in '~{text}'")
    num = text[:-1].strip()
    if not num:
        index = session.processor
    elif num.isdigit():
        index = int(num, 10)  # kd reads processor numbers in decimal
    else:
        index = _address(session, num, "~s")
    return _switch(session, index)
