"""The x64 virtual unwinder: one frame of RtlVirtualUnwind, on a register dict.

Given the context of a frame, it computes the caller's context from the
``.pdata``/``UNWIND_INFO`` of the function holding RIP.  Three cases, as in
Windows: RIP inside an epilog (emulate the rest of the epilog by decoding the
instructions), RIP in the prolog or body (undo the unwind codes whose prolog
offset has been reached, then pop the return address, unless a machine
frame supplied RIP/RSP), and no ``.pdata`` entry (a leaf: RIP = [RSP]).
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.symbols.pe.unwind import (
    GPR_NAMES,
    UWOP_ALLOC_LARGE,
    UWOP_ALLOC_SMALL,
    UWOP_EPILOG,
    UWOP_PUSH_MACHFRAME,
    UWOP_PUSH_NONVOL,
    UWOP_SAVE_NONVOL,
    UWOP_SAVE_NONVOL_FAR,
    UWOP_SAVE_XMM128,
    UWOP_SAVE_XMM128_FAR,
    UWOP_SET_FPREG,
    UWOP_SET_FPREG_LARGE,
    UWOP_SPARE_CODE,
    RuntimeFunction,
    UnwindInfo,
)

MASK64 = (1 << 64) - 1
MAX_CHAIN = 32
MAX_EPILOG_POPS = 16
#: bound on the per-image caches of lookups and epilog facts (addresses seen in stacks)
EPILOG_CACHE_LIMIT = 1 << 16

ReadFn = Callable[[int, int], bytes]
#: address -> (image_base, RUNTIME_FUNCTION, UNWIND_INFO with chained_info filled) or None
LookupFn = Callable[[int], "tuple[int, RuntimeFunction, UnwindInfo] | None"]


class UnwindError(BugcheckError):
    """The frame cannot be unwound (a register the codes need is unknown, or bad data)."""


@dataclass(slots=True)
class UnwindResult:
    """The caller's context and how it was found.

    ``method``: ``"pdata"`` (unwind codes), ``"epilog"`` (RIP inside an epilog),
    ``"machframe"`` (a PUSH_MACHFRAME supplied RIP/RSP: trap or interrupt
    frame), ``"leaf"`` (no ``.pdata`` entry).  ``establisher`` is the frame
    base the function's saves are relative to (RtlVirtualUnwind's
    EstablisherFrame).  ``restored`` names the registers read from the stack
    or recomputed.
    """

    context: dict[str, int]
    restored: frozenset[str]
    method: str
    establisher: int
    image_base: int | None = None
    function: RuntimeFunction | None = None
    unwind_info: UnwindInfo | None = None
    epilog_checked: bool = True


def _u64(read: ReadFn, va: int) -> int:
    return struct.unpack("<Q", read(va & MASK64, 8))[0]


def _reg(regs: dict[str, int], num: int) -> int:
    name = GPR_NAMES[num]
    if name not in regs:
        raise UnwindError(f"unwinding needs {name}, which is not known in this frame")
    return regs[name]


def _establisher(regs, ui: UnwindInfo, prolog_offset: int) -> int:
    rsp = regs["rsp"]
    if not ui.frame_register:
        return rsp
    if prolog_offset >= ui.size_of_prolog or ui.chained is not None:
        return (_reg(regs, ui.frame_register) - ui.frame_offset) & MASK64
    for c in ui.codes:
        if c.op in (UWOP_SET_FPREG, UWOP_SET_FPREG_LARGE) and c.offset <= prolog_offset:
            return (_reg(regs, ui.frame_register) - c.value) & MASK64
    return rsp


#: cached epilog facts: the code bytes could not be read (or were cut short)
_UNCHECKED = ("unchecked",)
#: cached epilog facts: rip is not inside an epilog
_NOT_EPILOG = ("no",)


def _parse_epilog(code: bytes, rip: int, base: int, func: RuntimeFunction, frame_register: int):
    """What the code at ``rip`` says about being in an epilog, from code bytes alone.

    Returns ``_NOT_EPILOG``, or ``("no-fp", reg)`` (not an epilog, but the frame register
    was needed to get that far), or ``("epilog", mode, disp, reg, pops)`` where ``mode``
    0 keeps rsp, 1 adds ``disp`` to rsp and 2 sets rsp to ``reg + disp``. Raises IndexError
    when the bytes run out. Code never changes, so the answer can be kept per address.
    """
    i = 0
    mode, disp, base_reg = 0, 0, 0
    # 1. An optional stack release: add rsp, imm / lea rsp, [rsp|fp + disp].
    rex = code[0] if code[0] & 0xF0 == 0x40 else 0
    p = 1 if rex else 0
    if rex == 0x48 and code[p] == 0x83 and code[p + 1] == 0xC4:  # (REX.B would make it r12)
        mode, disp = 1, int.from_bytes(code[p + 2 : p + 3], "little", signed=True)
        i = p + 3
    elif rex == 0x48 and code[p] == 0x81 and code[p + 1] == 0xC4:
        mode, disp = 1, int.from_bytes(code[p + 2 : p + 6], "little", signed=True)
        i = p + 6
    elif rex & 0xF8 == 0x48 and code[p] == 0x8D:
        modrm = code[p + 1]
        mod, reg, rm = modrm >> 6, (modrm >> 3) & 7, modrm & 7
        if reg != 4 or rex & 4 or mod == 3:
            return _NOT_EPILOG
        base_reg = rm | (8 if rex & 1 else 0)
        q = p + 2
        if rm == 4:  # SIB: only [rsp] or [r12] with no index
            sib = code[q]
            if (sib >> 3) & 7 != 4:
                return _NOT_EPILOG
            base_reg = (sib & 7) | (8 if rex & 1 else 0)
            q += 1
        if mod == 0 and rm == 5:
            return _NOT_EPILOG  # rip-relative
        if mod == 1:
            disp = int.from_bytes(code[q : q + 1], "little", signed=True)
            q += 1
        elif mod == 2:
            disp = int.from_bytes(code[q : q + 4], "little", signed=True)
            q += 4
        if base_reg == 4:
            mode = 1
        elif frame_register and base_reg == frame_register:
            mode = 2
        else:
            return _NOT_EPILOG
        i = q
    # 2. Pops of nonvolatile registers.
    pops: list[int] = []
    for _ in range(MAX_EPILOG_POPS):
        b = code[i]
        if 0x58 <= b <= 0x5F:
            pops.append(b - 0x58)
            i += 1
        elif b == 0x41 and 0x58 <= code[i + 1] <= 0x5F:
            pops.append(8 + code[i + 1] - 0x58)
            i += 2
        else:
            break
    # 3. The end: ret, or a jump leaving the function (a tail call).
    b = code[i]
    end_ok = False
    if b == 0xC3 or (b == 0xF3 and code[i + 1] == 0xC3) or b == 0xC2:
        end_ok = True
    elif b in (0xE9, 0xEB):
        size = 5 if b == 0xE9 else 2
        rel = int.from_bytes(code[i + 1 : i + size], "little", signed=True)
        target = (rip + i + size + rel) - base
        end_ok = not (func.begin <= target < func.end)
    elif b == 0xFF and code[i + 1] == 0x25:
        end_ok = True
    elif b & 0xF8 == 0x48 and code[i + 1] == 0xFF and code[i + 2] == 0x25:
        end_ok = True
    if not end_ok:
        return ("no-fp", base_reg) if mode == 2 else _NOT_EPILOG
    return ("epilog", mode, disp, base_reg, tuple(pops))


def _epilog_facts(read_code: ReadFn, rip: int, base: int, func: RuntimeFunction, ui: UnwindInfo):
    try:
        return _parse_epilog(read_code(rip, 64), rip, base, func, ui.frame_register)
    except (BugcheckError, IndexError):  # code bytes absent or unreadable
        return _UNCHECKED


def _apply_epilog(regs, facts):
    """(rsp after the stack release, registers still to pop), None (not an epilog) or
    ``_UNCHECKED`` (the frame register the check needs is not known)."""
    kind = facts[0]
    if kind == "epilog":
        _, mode, disp, base_reg, pops = facts
        if mode == 2:
            if GPR_NAMES[base_reg] not in regs:
                return _UNCHECKED
            rsp = regs[GPR_NAMES[base_reg]] + disp
        else:
            rsp = regs["rsp"] + disp
        return rsp & MASK64, list(pops)
    if kind == "no-fp":
        return _UNCHECKED if GPR_NAMES[facts[1]] not in regs else None
    if kind == "unchecked":
        return _UNCHECKED
    return None


def _finish_epilog(regs, read: ReadFn, rsp: int, pops: list[int]):
    """Run the rest of an epilog: the pops, then the return (stack reads may raise MemoryNotPresent)."""
    new = dict(regs)
    restored = {"rip", "rsp"}
    for r in pops:
        new[GPR_NAMES[r]] = _u64(read, rsp)
        restored.add(GPR_NAMES[r])
        rsp = (rsp + 8) & MASK64
    new["rip"] = _u64(read, rsp)
    new["rsp"] = (rsp + 8) & MASK64
    return new, restored


_PUSH, _ALLOC, _SET_FP, _SAVE, _SAVE_XMM, _MACHFRAME = range(6)
#: a plan for an unwind chain longer than MAX_CHAIN
_TOO_LONG = ("too long",)


def _plan(ui: UnwindInfo, prolog_offset: int):
    """The unwind codes that apply at ``prolog_offset``, in order, through the chain: each a
    ``(kind, ...)`` step. They depend only on the function and the offset, so a caller can keep
    them per address. ``_TOO_LONG`` when the chain does not end within MAX_CHAIN."""
    steps: list[tuple] = []
    cur: UnwindInfo | None = ui
    offset = prolog_offset
    for _ in range(MAX_CHAIN):
        if cur is None:
            break
        for c in cur.codes:
            if c.offset > offset or c.op == UWOP_EPILOG and cur.version == 2:
                continue
            op = c.op
            if op == UWOP_PUSH_NONVOL:
                steps.append((_PUSH, GPR_NAMES[c.reg]))
            elif op in (UWOP_ALLOC_LARGE, UWOP_ALLOC_SMALL):
                steps.append((_ALLOC, c.value))
            elif op in (UWOP_SET_FPREG, UWOP_SET_FPREG_LARGE):
                steps.append((_SET_FP, cur.frame_register, c.value))
            elif op in (UWOP_SAVE_NONVOL, UWOP_SAVE_NONVOL_FAR):
                steps.append((_SAVE, GPR_NAMES[c.reg], c.value))
            elif op in (UWOP_SAVE_XMM128, UWOP_SAVE_XMM128_FAR):
                steps.append((_SAVE_XMM, f"xmm{c.reg}", c.value))
            elif op in (UWOP_EPILOG, UWOP_SPARE_CODE):
                pass  # version 1 retired SAVE_XMM forms: nothing a debugger needs
            elif op == UWOP_PUSH_MACHFRAME:
                steps.append((_MACHFRAME, c.info))
        if cur.chained is None:
            break
        cur = cur.chained_info
        offset = 1 << 62  # the parent's prolog ran completely
    else:
        return _TOO_LONG
    return tuple(steps)


def virtual_unwind(
    regs: dict[str, int],
    read: ReadFn,
    lookup: LookupFn,
    read_code: ReadFn | None = None,
    epilog_cache: dict | None = None,
) -> UnwindResult:
    """Unwind one frame.  ``regs`` must hold at least rip and rsp; it is not modified.

    ``read(va, n)`` reads stack memory (MemoryNotPresent propagates: the caller
    decides how to show a frame it cannot unwind); ``read_code`` reads code
    bytes for epilog detection (default ``read``) — when code is absent the
    epilog check is skipped and ``epilog_checked`` is False. ``epilog_cache`` (a dict the
    caller keeps per ``read_code`` source) remembers what the code at each address said.
    """
    if "rip" not in regs or "rsp" not in regs:
        raise UnwindError("unwinding needs rip and rsp")
    rip = regs["rip"]
    entry = lookup(rip)
    if entry is None:
        new = dict(regs)
        new["rip"] = _u64(read, regs["rsp"])
        new["rsp"] = (regs["rsp"] + 8) & MASK64
        return UnwindResult(new, frozenset(("rip", "rsp")), "leaf", regs["rsp"])
    base, func, ui = entry
    prolog_offset = rip - base - func.begin
    establisher = _establisher(regs, ui, prolog_offset)

    epilog_checked = True
    if prolog_offset >= ui.size_of_prolog:
        if epilog_cache is not None:
            facts = epilog_cache.get(rip)
            if facts is None:
                if len(epilog_cache) >= EPILOG_CACHE_LIMIT:
                    epilog_cache.clear()
                facts = epilog_cache[rip] = _epilog_facts(read_code or read, rip, base, func, ui)
        else:
            facts = _epilog_facts(read_code or read, rip, base, func, ui)
        hit = _apply_epilog(regs, facts)
        if hit is _UNCHECKED:
            hit = None
            epilog_checked = False
        if hit is not None:
            new, restored = _finish_epilog(regs, read, *hit)
            return UnwindResult(new, frozenset(restored), "epilog", establisher, base, func, ui)

    plan = None
    if epilog_cache is not None:
        key = (rip, "plan")
        plan = epilog_cache.get(key)
        if plan is None:
            if len(epilog_cache) >= EPILOG_CACHE_LIMIT:
                epilog_cache.clear()
            plan = epilog_cache[key] = _plan(ui, prolog_offset)
    else:
        plan = _plan(ui, prolog_offset)
    if plan is _TOO_LONG:
        raise UnwindError("unwind chain too long")
    new = dict(regs)
    restored: set[str] = set()
    machine_frame = False
    for step in plan:
        kind = step[0]
        if kind == _PUSH:
            new[step[1]] = _u64(read, new["rsp"])
            restored.add(step[1])
            new["rsp"] = (new["rsp"] + 8) & MASK64
        elif kind == _ALLOC:
            new["rsp"] = (new["rsp"] + step[1]) & MASK64
        elif kind == _SET_FP:
            new["rsp"] = (_reg(new, step[1]) - step[2]) & MASK64
        elif kind == _SAVE:
            new[step[1]] = _u64(read, establisher + step[2])
            restored.add(step[1])
        elif kind == _SAVE_XMM:
            new[step[1]] = int.from_bytes(read((establisher + step[2]) & MASK64, 16), "little")
            restored.add(step[1])
        else:  # _MACHFRAME
            at = new["rsp"] + (8 if step[1] else 0)
            new["rip"] = _u64(read, at)
            new["cs"] = _u64(read, at + 8) & 0xFFFF
            new["efl"] = _u64(read, at + 16) & 0xFFFFFFFF
            new["rsp"] = _u64(read, at + 24)
            new["ss"] = _u64(read, at + 32) & 0xFFFF
            restored.update(("rip", "cs", "efl", "ss"))
            machine_frame = True
    if not machine_frame:
        new["rip"] = _u64(read, new["rsp"])
        new["rsp"] = (new["rsp"] + 8) & MASK64
    restored.update(("rip", "rsp"))
    method = "machframe" if machine_frame else "pdata"
    return UnwindResult(new, frozenset(restored), method, establisher, base, func, ui, epilog_checked)


class ImageLookup:
    """``.pdata`` lookup over loaded images: ``ImageLookup([(base, PeImage), ...])``.

    Also reads code bytes from the image files, so epilog detection works even
    when the dump holds no code (``read_code``).
    """

    def __init__(self, images: Iterable[tuple[int, object]]):
        self._images = sorted(((b, im) for b, im in images), key=lambda t: t[0])
        self._bases = [b for b, _ in self._images]
        self._cache: dict[tuple[int, int], UnwindInfo] = {}
        #: address -> lookup answer, and address -> epilog facts (images never change)
        self._by_address: dict[int, tuple | None] = {}
        self.epilog_cache: dict[int, tuple] = {}

    def image_at(self, address: int):
        i = bisect.bisect_right(self._bases, address) - 1
        if i < 0:
            return None
        base, im = self._images[i]
        if address - base >= im.size_of_image:
            return None
        return base, im

    def __call__(self, address: int):
        try:
            return self._by_address[address]
        except KeyError:
            pass
        got = self._lookup(address)
        if len(self._by_address) >= EPILOG_CACHE_LIMIT:
            self._by_address.clear()
        self._by_address[address] = got
        return got

    def _lookup(self, address: int):
        hit = self.image_at(address)
        if hit is None:
            return None
        base, im = hit
        func = im.lookup_function(address - base)
        if func is None:
            return None
        key = (base, func.unwind_rva)
        ui = self._cache.get(key)
        if ui is None:
            ui = self._cache[key] = im.unwind_info(func)
        return base, func, ui

    def read_code(self, address: int, n: int) -> bytes:
        hit = self.image_at(address)
        if hit is None:
            raise MemoryNotPresent(address)
        base, im = hit
        try:
            return im.read(address - base, n)
        except BugcheckError:
            raise MemoryNotPresent(address) from None
