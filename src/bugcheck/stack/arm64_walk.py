"""ARM64 stack walk: ``.pdata`` unwinding where the image is known, else the frame-record chain.

Windows ARM64 code keeps a frame record (``[fp]`` = caller's fp, ``[fp+8]`` = lr)
in every non-leaf function, so the chain of records gives the callers even
without unwind data; the caller's sp is then taken as just above the record
(``fp + 16``), as other tools that walk records do. Return addresses may carry
pointer-authentication bits, which are stripped.
"""

from __future__ import annotations

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.stack.frames import Frame, StackWalk

MASK64 = (1 << 64) - 1
KERNEL_PREFIX = 0xFFFF_0000_0000_0000


def strip_pac(va: int) -> int:
    """Kernel return addresses have all top bits set; PAC bits in them are restored to ones."""
    if va >> 55 & 1:
        return va | 0xFFFF_8000_0000_0000
    return va & 0x0000_FFFF_FFFF_FFFF


def _lookup(resolver):
    cache: dict[int, object] = {}

    def lookup(address: int):
        try:
            m = resolver.module_at(address)
        except BugcheckError:
            return None
        if m is None:
            return None
        if m.base not in cache:
            lk = None
            try:
                im = resolver.load(m).image
                if im is not None and not getattr(im, "in_memory", False) and im.arm64_functions:
                    from bugcheck.stack.unwind_arm64 import ImageLookup

                    lk = ImageLookup([(m.base, im)])
            except (BugcheckError, ValueError):
                lk = None
            cache[m.base] = lk
        lk = cache[m.base]
        return lk(address) if lk is not None else None

    return lookup


def walk_arm64(dump, resolver, regs: dict[str, int], max_frames: int) -> StackWalk:
    frames: list[Frame] = []
    sw = StackWalk(frames)
    if "pc" not in regs or "sp" not in regs:
        sw.warnings.append("the context has no pc/sp: no stack")
        return sw

    def u64(va: int) -> int:
        return int.from_bytes(dump.read_virtual(va & MASK64, 8), "little")

    lookup = _lookup(resolver)
    regs = dict(regs)
    method = "context"
    for n in range(max_frames):
        pc, sp = regs["pc"] & MASK64, regs["sp"] & MASK64
        f = Frame(n, pc, sp, context=dict(regs), method=method, fp=regs.get("fp"))
        frames.append(f)
        if pc == 0 or pc < KERNEL_PREFIX:
            break
        new = None
        if lookup(pc) is not None:
            try:
                from bugcheck.stack.unwind_arm64 import virtual_unwind

                res = virtual_unwind(regs, lambda va, k: dump.read_virtual(va & MASK64, k), lookup)
                new, method = res.context, "pdata"
            except (BugcheckError, MemoryNotPresent, ValueError, IndexError):
                new = None
        if new is None:
            fp = regs.get("fp", 0)
            if not fp or fp < sp:
                break
            try:
                caller_fp, lr = u64(fp), u64(fp + 8)
            except (MemoryNotPresent, BugcheckError):
                break
            new = dict(regs)
            new.update(pc=strip_pac(lr), sp=(fp + 16) & MASK64, fp=caller_fp, lr=0)
            method = "frame_pointer"
        if new.get("pc", 0) == 0 or (new.get("sp", 0) & MASK64) <= sp:
            break
        regs = new
    return sw
