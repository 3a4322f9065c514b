"""``u``, ``ub``, ``uf``: thin adapters from the session to :mod:`bugcheck.disasm`."""

from __future__ import annotations

from bugcheck import disasm
from bugcheck.commands.registry import Result, command
from bugcheck.errors import BugcheckError, CommandError

_DEFAULT_COUNT = 8
_MAX_COUNT = 0x10000


def reader(session):
    """``read(address, size) -> bytes`` giving the present prefix, over the session's virtual memory."""

    def read(address: int, size: int) -> bytes:
        address &= (1 << 64) - 1
        try:
            data, holes = session.read_virtual_padded(address, size)
        except BugcheckError:
            return b""
        except Exception:  # a dump without virtual memory reads as absent
            return b""
        if holes:
            return bytes(data[: max(0, holes[0][0] - address)])
        return bytes(data)

    return read


def symbolizer(session):
    symbols = session.symbols
    fn = getattr(symbols, "symbol_for", None)

    def symbolize(address: int) -> str | None:
        if fn is None:
            return None
        try:
            return fn(address)
        except BugcheckError:
            return None

    return symbolize


def function_range(session):
    """``(start, end)`` of the function holding an address: symbol size first, then ``.pdata``."""
    symbols = session.symbols
    resolver = getattr(symbols, "_resolver", None) or symbols

    def rng(address: int):
        try:
            s = resolver.symbolize(address)
        except Exception:
            return None
        if s is None or s.module is None:
            return None
        base = s.module.base
        if s.symbol is not None and s.symbol.size:
            start = base + s.symbol.rva
            return start, start + s.symbol.size
        try:
            image = resolver.load(s.module).image
            f = image.lookup_function(address - base) if image is not None else None
        except Exception:
            f = None
        if f is not None and getattr(f, "begin", None) is not None:
            return base + f.begin, base + f.end
        return None

    return rng


def _arch(session) -> str:
    ctx = session.context
    return getattr(ctx, "arch", None) or session.machine


def _regs(session) -> dict[str, int]:
    ctx = session.context
    return dict(getattr(ctx, "regs", {}) or {}) if ctx is not None else {}


def _pc(session) -> int:
    ctx = session.context
    return getattr(ctx, "pc", 0) if ctx is not None else 0


def _parse(session, args: str, default_start: int) -> tuple[int, int | None, int | None]:
    """(start, count or None, end or None) from ``[addr] [L count | end]``."""
    text = args.strip()
    if not text:
        return default_start, None, None
    if text[0] in "lL" and not text[1:2].isalpha():
        n = session.evaluate(text[1:].lstrip("?").strip())
        return default_start, n, None
    start, used = session.evaluate_prefix(text)
    rest = text[used:].strip()
    if not rest:
        return start, None, None
    if rest[0] in "lL":
        n = session.evaluate(rest[1:].lstrip("?").strip())
        return start, n, None
    return start, None, session.evaluate(rest)


def _result(session, insns, labels=None, arch="x64") -> Result:
    ps = 4 if arch == "x86" else 8
    symbolize = symbolizer(session)
    lines = disasm.render(insns, symbolize, ps, labels)
    data = [
        {
            "address": i.address,
            "bytes": i.raw.hex() if i.present else None,
            "mnemonic": i.mnemonic,
            "operands": i.operands,
            "effective": i.effective or None,
        }
        for i in insns
    ]
    return Result("\n".join(lines), {"instructions": data}, "bugcheck.disassembly/1")


def _check_arch(arch: str) -> None:
    if arch not in ("x64", "x86", "arm64"):
        raise CommandError(f"Disassembly is not available for {arch} targets in this version")


@command("u", "Unassemble: disassemble instructions at an address")
def u_command(session, args: str) -> Result:
    arch = _arch(session)
    _check_arch(arch)
    default = getattr(session, "next_unassemble_address", None)
    start, count, end = _parse(session, args, _pc(session) if default is None else default)
    if count is None and end is None:
        count = _DEFAULT_COUNT
    if count is not None and not 0 < count <= _MAX_COUNT:
        raise CommandError(f"Range error in '{args.strip()}'")
    if end is not None and not 0 <= end - start <= _MAX_COUNT * 4:
        raise CommandError(f"Range error in '{args.strip()}'")
    regs = _regs(session)
    insns = disasm.disassemble(
        reader(session), start, count or _MAX_COUNT, arch, symbolizer(session), regs, end
    )
    if insns:
        last = insns[-1]
        session.next_unassemble_address = last.address + last.size
    return _result(session, insns, arch=arch)


@command("ub", "Unassemble backwards: the instructions before an address")
def ub_command(session, args: str) -> Result:
    arch = _arch(session)
    _check_arch(arch)
    start, count, end = _parse(session, args, _pc(session))
    count = count or _DEFAULT_COUNT
    if not 0 < count <= 0x1000:
        raise CommandError(f"Range error in '{args.strip()}'")
    rng = function_range(session)(start)
    fstart = rng[0] if rng else None
    insns = disasm.disassemble_back(reader(session), start, count, arch, symbolizer(session), fstart)
    if not insns:
        raise CommandError(
            f"No code found, aborting (no instruction boundary ends at {session.hex_addr(start)})"
        )
    return _result(session, insns, arch=arch)


@command("uf", "Unassemble a whole function")
def uf_command(session, args: str) -> Result:
    arch = _arch(session)
    _check_arch(arch)
    words = [w for w in args.split() if not w.startswith("/")]
    if not words:
        raise CommandError("Syntax error: uf needs an address")
    address = session.evaluate(" ".join(words))
    rng_fn = function_range(session)
    rng = rng_fn(address)
    insns, labels = disasm.disassemble_function(
        reader(session),
        rng[0] if rng else address,
        arch,
        symbolizer(session),
        (lambda _a: rng) if rng else None,
    )
    return _result(session, insns, labels, arch)
