"""Walk a thread's stack from a register context into a list of frames.

x64, per frame, the first method that applies:

1. ``.pdata`` of the image holding pc (from dump memory, an image folder or the
   symbol store): :func:`~bugcheck.stack.unwind_x64.virtual_unwind`. A
   PUSH_MACHFRAME means the function built a trap frame; its address is
   recorded for ``(TrapFrame @ ...)`` and the walk continues from its registers.
2. No unwind data, but the function is a trap handler (``nt!KiPageFault``,
   ``nt!KiSystemServiceCopyEnd``...): its Child-SP is read as a ``_KTRAP_FRAME``.
3. No unwind data: the prolog is decoded from the function's first bytes.
4. No unwind data: a validated scan of the stack (:mod:`bugcheck.stack.scan`).

The walk stops at a user-mode pc (printed, not unwound), a zero return
address, a stack pointer that does not grow, or ``max_frames``.
"""

from __future__ import annotations

import re
import struct

from bugcheck.dumpfile.context import Context
from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.stack import trapframe
from bugcheck.stack.frames import Frame, StackWalk
from bugcheck.stack.scan import SCAN_LIMIT, CodeMap, prolog_frame, return_strength, scan_for_return
from bugcheck.stack.unwind_x64 import ImageLookup, UnwindError, virtual_unwind
from bugcheck.symbols.resolver import hex_addr

MASK64 = (1 << 64) - 1
USER_LIMIT = 0x0000_8000_0000_0000
MAX_FRAMES = 1024
NO_UNWIND_WARNING = "WARNING: Stack unwind information not available. Following frames may be wrong."

_TRAP_HANDLER = re.compile(
    r"^(Ki\w*(Fault|Trap|Interrupt|Abort|Exception)\w*|KiSystemService\w*|KiSystemCall\w*|"
    r"KiBreakpointTrap|KiDebugServiceTrap|KiApcInterrupt|KiDpcInterrupt|KiIpiInterrupt|"
    r"KiNmiInterrupt\w*|KiMcheckAbort\w*|KiRaiseAssertion)$"
)
#: not trap handlers although the names look alike: they run on a trap frame someone else built
_NOT_TRAP_HANDLER = {"KiExceptionDispatch", "KiDispatchException", "KiRaiseException", "KiBugCheckDispatch"}


def is_trap_handler(name: str | None) -> bool:
    """``nt!KiPageFault`` and friends: functions whose frame holds a _KTRAP_FRAME at Child-SP."""
    if not name:
        return False
    mod, _, fn = name.rpartition("!")
    fn = fn.split("+", 1)[0]
    if mod and mod != "nt":
        return False
    return fn not in _NOT_TRAP_HANDLER and bool(_TRAP_HANDLER.match(fn))


PAGE = 0x1000
#: bound on the stack pages one walk keeps (a walk touches a few; scans a dozen at most)
MAX_WALK_PAGES = 64
#: bound on the call-site names kept across walks
MAX_SYMBOLS = 1 << 15
#: "find it out": the caller does not know the module yet
_ASK = object()
#: the four Args to Child in one unpack, per pointer size
_ARGS = {4: struct.Struct("<4I"), 8: struct.Struct("<4Q")}


class _StackMemory:
    """Dump pages read once per walk: the unwinder reads the same few stack pages many times.

    Each page is read whole (with its holes) on first use; reads inside it are served from
    that copy and raise MemoryNotPresent at the first absent byte, as the dump would.
    """

    __slots__ = ("dump", "pages")

    def __init__(self, dump):
        self.dump = dump
        self.pages: dict[int, tuple[bytes, list] | None] = {}

    def _page(self, key: int):
        try:
            return self.pages[key]
        except KeyError:
            pass
        try:
            # padded: an absent page is an expected sight (above the stack base, user stacks)
            got = self.dump.read_virtual_padded(key << 12, PAGE)
        except BugcheckError:
            got = None
        if len(self.pages) >= MAX_WALK_PAGES:
            self.pages.clear()
        self.pages[key] = got
        return got

    def read(self, va: int, n: int) -> bytes:
        va &= MASK64
        off = va & (PAGE - 1)
        if 0 < n <= PAGE - off:
            page = self._page(va >> 12)
            if page is not None:
                data, holes = page
                for start, length in holes:
                    if start < va + n and va < start + length:
                        raise MemoryNotPresent(max(start, va), "virtual")
                return data[off : off + n]
        return self.dump.read_virtual(va, n)

    def four_slots(self, va: int) -> list[int] | None:
        """The four 8-byte values at ``va`` when one present page holds them all, else None."""
        va &= MASK64
        off = va & (PAGE - 1)
        if off > PAGE - 32:
            return None
        page = self._page(va >> 12)
        if page is None or page[1]:
            return None
        return list(_ARGS[8].unpack_from(page[0], off))

    def read_padded(self, va: int, n: int):
        """(bytes, holes) as ``read_virtual_padded`` gives them."""
        va &= MASK64
        off = va & (PAGE - 1)
        if 0 < n <= PAGE - off:
            page = self._page(va >> 12)
            if page is not None:
                data, holes = page
                lo, hi = va, va + n
                clipped = [
                    (max(start, lo), min(start + length, hi) - max(start, lo))
                    for start, length in holes
                    if start < hi and lo < start + length
                ]
                return data[off : off + n], clipped
        return self.dump.read_virtual_padded(va, n)


def _symbols_cache(resolver, dump) -> dict | None:
    cache = getattr(resolver, "cache", None)
    if not isinstance(cache, dict) or not hasattr(resolver, "module_at") or not hasattr(resolver, "state"):
        return None
    return cache.setdefault(("stack-walker-symbols", id(dump)), {})


def _cached_entry(resolver, names: dict, pc: int) -> tuple:
    """(module, symbols state, symbol source, image, call-site text) for ``pc``, kept per address.

    ``names`` lives in ``resolver.cache``, which the resolver replaces whenever its module list
    changes, so the module found for an address stays right; an entry is used only while the
    resolver still holds the same symbols and image objects for that module.
    """
    hit = names.get(pc)
    if hit is not None:
        module = hit[0]
        if module is None:
            return hit
        ms = resolver.state(module)
        if hit[1] is ms and hit[2] is ms.symbols and hit[3] is ms.image:
            return hit
    try:
        module = resolver.module_at(pc)
    except BugcheckError:
        return (None, None, None, None, _symbol(resolver, pc), False)
    text = _symbol(resolver, pc)
    ms = resolver.state(module) if module is not None else None
    if len(names) >= MAX_SYMBOLS:
        names.clear()
    entry = (module, ms, getattr(ms, "symbols", None), getattr(ms, "image", None), text, True)
    names[pc] = entry
    return entry


class _Unwinder:
    """Per-walk caches: ``.pdata`` lookups per module, code facts, kernel types."""

    def __init__(self, dump, resolver, kernel, store=None):
        self.dump = dump
        self.resolver = resolver
        self.kernel = kernel
        self.types = getattr(kernel, "types", None) if kernel is not None else None
        self.store = store
        # Both are the same for every walk over this dump: keep them with the resolver so listing
        # thousands of thread stacks decodes each module's unwind data once.
        cache = getattr(resolver, "cache", None)
        if cache is None:
            cache = {}
        key = ("stack-walker", id(dump))
        if key not in cache:
            cache[key] = (CodeMap(dump, resolver), {})
        self.code, self._lookups = cache[key]
        self.records = _exception_records(dump)
        self.stack = _StackMemory(dump)
        self.read = self.stack.read
        self.names = _symbols_cache(resolver, dump)

    def symbol(self, pc: int) -> str:
        if self.names is None:
            return _symbol(self.resolver, pc)
        return _cached_entry(self.resolver, self.names, pc)[4]

    def module_of(self, pc: int):
        """``resolver.module_at(pc)`` (None when it fails), from the per-address entries."""
        if self.names is not None:
            entry = _cached_entry(self.resolver, self.names, pc)
            if entry[5]:
                return entry[0]
        return self.code.module(pc)

    # -- memory ---------------------------------------------------------------------------------
    def u64(self, va: int) -> int:
        return int.from_bytes(self.stack.read(va, 8), "little")

    # -- .pdata ---------------------------------------------------------------------------------
    def _image_from_store(self, module):
        if self.store is None or not module.timestamp or not module.size:
            return None
        try:
            from bugcheck.symbols.pe import PeImage

            path = self.store.find_image(module.image_name, module.timestamp, module.size)
            if path is None:
                return None
            img = PeImage.from_file(path)
        except (BugcheckError, OSError, ValueError):
            return None
        return img if img.timestamp == module.timestamp else None

    def lookup_for(self, module):
        """An ImageLookup for ``module`` when its unwind data is complete, else None."""
        if module.base in self._lookups:
            return self._lookups[module.base]
        found = None
        im = self.code.image(module)
        candidates = [im] if im is not None else []
        if im is None or getattr(im, "in_memory", False):
            alt = self._image_from_store(module)
            if alt is not None:
                candidates.insert(0, alt)
        for img in candidates:
            try:
                if not _pdata_complete(img):
                    continue
                found = ImageLookup([(module.base, img)])
                break
            except (BugcheckError, MemoryNotPresent, ValueError):
                continue
        self._lookups[module.base] = found
        return found

    # -- one step -------------------------------------------------------------------------------
    def caller(self, frame: Frame, regs: dict[str, int], module=_ASK):
        """(caller regs, method) for ``frame``, or None when the walk must stop; sets frame.trap_frame.

        ``module``: the module holding rip when the caller already knows it (None: no module)."""
        pc, sp = regs["rip"], regs["rsp"]
        if module is _ASK:
            module = self.module_of(pc)
        if module is not None:
            lookup = self.lookup_for(module)
            if lookup is not None:
                got = self._pdata_step(frame, regs, lookup)
                if got is not None:
                    return got
        symbol = frame.symbol
        if is_trap_handler(symbol):
            got = self._trap_step(frame, sp)
            if got is not None:
                return got
        start = self.code.function_start(pc)
        floor = sp
        if start is not None:
            got = prolog_frame(self.code, start, pc)
            size = None
            if got is not None:
                size, uses_fp = got
                if uses_fp:
                    # alloca may have grown the frame: the return address is at least this far up
                    floor, size = sp + got[0], None
            if size is not None:
                try:
                    value = self.u64(sp + size)
                except (MemoryNotPresent, BugcheckError):
                    value = 0
                if value and return_strength(self.code, value, start):
                    new = dict(regs)
                    new["rip"], new["rsp"] = value, (sp + size + 8) & MASK64
                    return new, "prolog"
                # the body moved rsp (alloca): the fixed frame is still a lower bound
                floor = sp + size
            if floor > sp:
                pinned = self._pin_by_earlier_call(start, floor, floor - sp)
                if pinned is not None:
                    new = dict(regs)
                    new["rip"], new["rsp"] = pinned[1], (pinned[0] + 8) & MASK64
                    return new, "prolog"
        budget = getattr(self.kernel, "budget", None)
        hit = scan_for_return(
            self.u64, self.code, floor, callee_start=start, accept=self._consistent, budget=budget
        )
        if hit is None and budget is not None and budget.scan_exhausted:
            self.budget_note = True
        if hit is None:
            return None
        slot, value = hit
        new = dict(regs)
        new["rip"], new["rsp"] = value, (slot + 8) & MASK64
        return new, "scan"

    def _pin_by_earlier_call(self, start: int, floor: int, fixed: int):
        """(slot, return address) for a function whose body grew its stack (alloca).

        A call the function made before growing the stack left a return address into the
        function itself right below its fixed frame; the function's own return address is
        then ``fixed`` bytes above that call's stack pointer.
        """
        for slot in range(floor, floor + SCAN_LIMIT, 8):
            try:
                v = self.u64(slot)
            except (MemoryNotPresent, BugcheckError):
                return None
            if not v or self.code.function_start(v) != start:
                continue
            ret_slot = slot + 8 + fixed
            try:
                value = self.u64(ret_slot)
            except (MemoryNotPresent, BugcheckError):
                return None
            if value and return_strength(self.code, value, start):
                return ret_slot, value
        return None

    def _consistent(self, slot: int, value: int) -> bool:
        """Look ahead: when the candidate caller's prolog is known, its own return address must
        sit where that prolog puts it (a stale return address rarely passes this).

        Slots inside the exception and context records the bugcheck names are register
        copies, never return addresses."""
        if any(a <= slot < b for a, b in self.records):
            return False
        start = self.code.function_start(value)
        if start is None or is_trap_handler(self.symbol(value)):
            return True
        got = prolog_frame(self.code, start, value)
        if got is None or got[1]:
            return True
        try:
            nxt = self.u64(slot + 8 + got[0])
        except (MemoryNotPresent, BugcheckError):
            return True
        return nxt == 0 or bool(return_strength(self.code, nxt))

    def _pdata_step(self, frame: Frame, regs, lookup):
        try:
            res = virtual_unwind(
                regs, self.read, lookup, read_code=lookup.read_code, epilog_cache=lookup.epilog_cache
            )
        except (UnwindError, MemoryNotPresent, BugcheckError, IndexError, ValueError):
            return None
        new = res.context
        if res.method == "machframe":
            tf = self._find_trap_frame(regs["rsp"], new.get("rip"), new.get("rsp"))
            if tf is not None:
                frame.trap_frame = tf
                try:
                    full = trapframe.read_trap_frame(self.read, tf, self.types)
                    full.update({k: new[k] for k in ("rip", "rsp") if k in new})
                    new = full
                except (MemoryNotPresent, BugcheckError):
                    pass
        return new, res.method

    def _find_trap_frame(self, sp: int, rip: int | None, rsp: int | None) -> int | None:
        """The _KTRAP_FRAME whose machine frame holds (rip, rsp), searched just above ``sp``."""
        if rip is None or rsp is None:
            return None
        rip_off = trapframe.known_rip_offset(self.types)
        # The first t in [sp - rip_off, sp + 0x1000) (8-byte steps) with Rip at t + rip_off and
        # Rsp 0x18 above it both readable and equal: search the bytes for Rip, then check.
        lo = sp & MASK64
        hi = lo + 0x1000 + rip_off + 0x20
        if hi > MASK64 + 1:
            return self._find_trap_frame_slow(sp, rip, rsp, rip_off)
        want_rip, want_rsp = (rip & MASK64).to_bytes(8, "little"), (rsp & MASK64).to_bytes(8, "little")
        last = 0x1000 + rip_off  # rip slots lie in [lo, lo + last)
        # Pages are added one at a time (the frame is usually near sp); a candidate is checked
        # once the bytes of both its slots are in.
        buf = b""
        holes: list[tuple[int, int]] = []
        page = lo >> 12
        start = 0
        while True:
            a, b = max(lo, page << 12), min(hi, (page + 1) << 12)
            got = self.stack._page(page)
            if got is None:
                buf += bytes(b - a)
                holes.append((a, b - a))
            else:
                data, page_holes = got
                buf += data[a - (page << 12) : b - (page << 12)]
                holes.extend(page_holes)
            page += 1
            complete = b >= hi
            limit = last if complete else min(last, len(buf) - 0x1F)
            pos = buf.find(want_rip, start)
            while 0 <= pos < limit:
                if pos % 8 == 0 and buf[pos + 0x18 : pos + 0x20] == want_rsp:
                    at = lo + pos
                    if not any(
                        (h < at + 8 and at < h + n) or (h < at + 0x20 and at + 0x18 < h + n) for h, n in holes
                    ):
                        return sp - rip_off + pos
                pos = buf.find(want_rip, pos + 1)
            if complete:
                return None
            start = max(start, limit)

    def _find_trap_frame_slow(self, sp: int, rip: int, rsp: int, rip_off: int) -> int | None:
        """The same search, slot by slot (a stack at the very top of the address space)."""
        for t in range(sp - rip_off, sp + 0x1000, 8):
            try:
                if self.u64(t + rip_off) == rip and self.u64(t + rip_off + 0x18) == rsp:
                    return t
            except (MemoryNotPresent, BugcheckError):
                continue
        return None

    def _trap_step(self, frame: Frame, sp: int):
        for t in range(sp, sp + 0x200, 8):
            try:
                regs = trapframe.read_trap_frame(self.read, t, self.types)
            except (MemoryNotPresent, BugcheckError):
                return None
            if trapframe.plausible_trap_frame(regs, t, self.code.is_code):
                frame.trap_frame = t
                return regs, "trap_frame"
        return None


EXCEPTION_RECORD64_SIZE = 0x98
X64_CONTEXT_SIZE = 0x4D0

#: bugchecks whose parameters point at records on the stack: code -> [(parameter index, size)]
#: (0x7E: exception record, context record; 0x8E: trap frame; 0x3B: context record)
_RECORD_PARAMS = {
    0x7E: [(2, EXCEPTION_RECORD64_SIZE), (3, X64_CONTEXT_SIZE)],
    0x1000007E: [(2, EXCEPTION_RECORD64_SIZE), (3, X64_CONTEXT_SIZE)],
    0x8E: [(2, trapframe.X64_TRAP_FRAME_SIZE)],
    0x1000008E: [(2, trapframe.X64_TRAP_FRAME_SIZE)],
    0x3B: [(2, X64_CONTEXT_SIZE)],
}


def _exception_records(dump) -> list[tuple[int, int]]:
    """Address ranges of the records the bugcheck parameters name (register copies, not frames)."""
    params = getattr(dump, "bugcheck_parameters", None) or ()
    which = _RECORD_PARAMS.get(getattr(dump, "bugcheck_code", None), [])
    if getattr(dump, "pointer_size", 8) != 8:
        return []
    return [(params[i], params[i] + size) for i, size in which if i < len(params) and params[i]]


def _pdata_complete(img) -> bool:
    """Is the whole exception directory readable (memory images may have holes in it)?"""
    if not getattr(img, "in_memory", False):
        return bool(img.runtime_functions)
    if not getattr(img, "headers_complete", True):
        return False
    rva, size = img.directory(3)
    if not rva or not size:
        return False
    funcs = img.runtime_functions
    for h, n in getattr(img, "absent", []) or []:
        if h < rva + size and rva < h + n:
            return False
    return bool(funcs)


def _regs_of(context) -> tuple[str, dict[str, int]]:
    if isinstance(context, Context):
        return context.arch, dict(context.regs)
    if isinstance(context, dict):
        arch = "x64" if "rip" in context else ("x86" if "eip" in context else "arm64")
        return arch, dict(context)
    return getattr(context, "arch", "x64"), dict(getattr(context, "regs", {}) or {})


def walk(
    dump,
    resolver,
    kernel,
    context,
    max_frames: int = 256,
    *,
    store=None,
    first_method: str = "context",
) -> StackWalk:
    """Frames from ``context`` (a Context or regs dict) outward; see the module docstring."""
    arch, regs = _regs_of(context)
    max_frames = max(1, min(max_frames, MAX_FRAMES))
    if arch == "arm64":
        from bugcheck.stack.arm64_walk import walk_arm64

        sw = walk_arm64(dump, resolver, regs, max_frames)
    elif arch == "x86":
        from bugcheck.stack.x86 import walk_x86

        sw = walk_x86(dump, resolver, kernel, regs, max_frames)
    else:
        sw, memory = _walk_x64(dump, resolver, kernel, regs, max_frames, store, first_method)
        _finish(sw, dump, resolver, 8, memory)
        return sw
    _finish(sw, dump, resolver, 4 if arch == "x86" else 8)
    return sw


def _walk_x64(dump, resolver, kernel, regs, max_frames, store, first_method):
    """(the walk, the unwinder whose page copies and names ``_finish`` reuses)."""
    u = _Unwinder(dump, resolver, kernel, store)
    frames: list[Frame] = []
    sw = StackWalk(frames)
    if "rip" not in regs or "rsp" not in regs:
        sw.warnings.append("the context has no rip/rsp: no stack")
        return sw, u
    method = first_method
    for n in range(max_frames):
        pc, sp = regs["rip"] & MASK64, regs["rsp"] & MASK64
        f = Frame(n, pc, sp, context=dict(regs), method=method)
        module = _ASK
        if u.names is not None:
            entry = _cached_entry(resolver, u.names, pc)
            f.symbol, module = entry[4], entry[0]
            f.module = module.name if module is not None else None
        else:
            f.symbol = _symbol(resolver, pc)
        frames.append(f)
        if method in ("scan", "prolog") and sw.first_scan is None:
            sw.first_scan = n
            sw.warnings.append(NO_UNWIND_WARNING)
        if pc == 0 or pc < USER_LIMIT:
            break  # user mode (or nothing): shown, not unwound
        got = u.caller(f, regs, module if regs["rip"] == pc else _ASK)
        if got is None:
            if getattr(u, "budget_note", False):
                sw.warnings.append("stack scan stopped: this command's scan budget is used up")
            break
        new, method = got
        nsp = new.get("rsp", 0) & MASK64
        npc = new.get("rip", 0) & MASK64
        to_user = npc < USER_LIMIT and f.trap_frame is not None
        if npc == 0 or (nsp <= sp and not to_user):
            break
        regs = new
    return sw, u


def _symbol(resolver, pc: int) -> str:
    try:
        return resolver.format_address(pc)
    except BugcheckError:
        return "0x" + hex_addr(pc)


def _finish(sw: StackWalk, dump, resolver, ps: int, unwinder: _Unwinder | None = None) -> None:
    """Fill return addresses, Args to Child and module names once the frames are known."""
    frames = sw.frames
    read_padded = unwinder.stack.read_padded if unwinder is not None else dump.read_virtual_padded
    for i, f in enumerate(frames):
        nxt = frames[i + 1] if i + 1 < len(frames) else None
        f.return_address = nxt.pc if nxt is not None else 0
        base = nxt.sp if nxt is not None else f.sp + ps
        if unwinder is not None and ps == 8:
            got = unwinder.stack.four_slots(base)
            if got is not None:
                f.args = got
                _frame_module(f, resolver, unwinder)
                continue
        try:
            raw, holes = read_padded(base & MASK64, 4 * ps)
        except BugcheckError:
            raw, holes = b"\0" * (4 * ps), [((base & MASK64), 4 * ps)]
        if not holes and len(raw) == 4 * ps:
            f.args = list(_ARGS[ps].unpack(raw))
        else:
            args: list[int | None] = []
            for k in range(4):
                lo = (base + k * ps) & MASK64
                absent = any(h < lo + ps and lo < h + n for h, n in holes)
                args.append(None if absent else int.from_bytes(raw[k * ps : (k + 1) * ps], "little"))
            f.args = args
        _frame_module(f, resolver, unwinder)


def _frame_module(f: Frame, resolver, unwinder: _Unwinder | None) -> None:
    if not f.symbol:
        f.symbol = unwinder.symbol(f.pc) if unwinder is not None else _symbol(resolver, f.pc)
    if unwinder is not None and unwinder.names is not None:
        return  # the walk set it with the call-site name
    if unwinder is not None:
        m = unwinder.module_of(f.pc)
    else:
        try:
            m = resolver.module_at(f.pc)
        except BugcheckError:
            m = None
    f.module = m.name if m is not None else None
