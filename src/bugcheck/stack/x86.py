"""x86 stack walk over the EBP chain.

32-bit Windows kernel code is built with frame pointers (``push ebp; mov ebp,
esp``), so ``[ebp]`` is the caller's ebp and ``[ebp+4]`` the return address;
the caller's esp is ``ebp + 8``. FPO functions (no frame pointer) break the
chain; their PDB FPO records are not read yet, so such a frame ends the walk
early rather than inventing callers.
"""

from __future__ import annotations

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.stack.frames import Frame, StackWalk

MASK32 = 0xFFFFFFFF


def walk_x86(dump, resolver, kernel, regs: dict[str, int], max_frames: int) -> StackWalk:
    frames: list[Frame] = []
    sw = StackWalk(frames)
    if "eip" not in regs or "esp" not in regs:
        sw.warnings.append("the context has no eip/esp: no stack")
        return sw

    def u32(va: int) -> int:
        return int.from_bytes(dump.read_virtual(va & MASK32, 4), "little")

    regs = dict(regs)
    method = "context"
    for n in range(max_frames):
        pc, sp = regs["eip"] & MASK32, regs["esp"] & MASK32
        f = Frame(n, pc, sp, context=dict(regs), method=method, fp=regs.get("ebp"))
        frames.append(f)
        if pc == 0:
            break
        ebp = regs.get("ebp", 0) & MASK32
        if not ebp or ebp < sp:
            break
        try:
            caller_ebp, ret = u32(ebp), u32(ebp + 4)
        except (MemoryNotPresent, BugcheckError):
            break
        if ret == 0:
            break
        new = dict(regs)
        new.update(eip=ret, esp=(ebp + 8) & MASK32, ebp=caller_ebp)
        method = "frame_pointer"
        regs = new
    return sw
