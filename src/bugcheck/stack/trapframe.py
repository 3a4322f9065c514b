"""Register sets saved by the kernel: _KTRAP_FRAME, CONTEXT records, switch frames.

Fields are read by name through the kernel's types when they are loaded, so a
build whose layout differs is still read correctly; without types the
documented x64 layouts (stable since Windows 8) are used.
"""

from __future__ import annotations

import struct

from bugcheck.dumpfile.context import Context
from bugcheck.errors import BugcheckError, MemoryNotPresent

MASK64 = (1 << 64) - 1

#: _KTRAP_FRAME field -> (WinDbg register, size), and the x64 offsets used without types
_TRAP_FIELDS = {
    "Rax": ("rax", 8, 0x30),
    "Rcx": ("rcx", 8, 0x38),
    "Rdx": ("rdx", 8, 0x40),
    "R8": ("r8", 8, 0x48),
    "R9": ("r9", 8, 0x50),
    "R10": ("r10", 8, 0x58),
    "R11": ("r11", 8, 0x60),
    "SegDs": ("ds", 2, 0x130),
    "SegEs": ("es", 2, 0x132),
    "SegFs": ("fs", 2, 0x134),
    "SegGs": ("gs", 2, 0x136),
    "Rbx": ("rbx", 8, 0x140),
    "Rdi": ("rdi", 8, 0x148),
    "Rsi": ("rsi", 8, 0x150),
    "Rbp": ("rbp", 8, 0x158),
    "Rip": ("rip", 8, 0x168),
    "SegCs": ("cs", 2, 0x170),
    "EFlags": ("efl", 4, 0x178),
    "Rsp": ("rsp", 8, 0x180),
    "SegSs": ("ss", 2, 0x188),
}
X64_TRAP_FRAME_SIZE = 0x190

#: x64 _KSWITCH_FRAME (not in every symbol set): Rbp at +0x30, Return at +0x38, size 0x40
SWITCH_FRAME_RBP = 0x30
SWITCH_FRAME_RETURN = 0x38
SWITCH_FRAME_SIZE = 0x40


def _offset(types, type_name: str, field_name: str, default: int) -> int:
    if types:
        t = types.get(type_name)
        if t is not None:
            try:
                return t.field_offset(field_name)
            except KeyError:
                pass
    return default


def trap_frame_size(types) -> int:
    t = types.get("_KTRAP_FRAME") if types else None
    return t.size if t is not None and t.size else X64_TRAP_FRAME_SIZE


def rip_offset(types) -> int:
    """Where the machine frame (Rip, SegCs, EFlags, Rsp, SegSs) starts inside _KTRAP_FRAME."""
    return _offset(types, "_KTRAP_FRAME", "Rip", 0x168)


#: id(types) -> (types, layout): the trap frame layout looked up once per type set
_LAYOUTS: dict[int, tuple] = {}
_CODES = {2: "H", 4: "I", 8: "Q"}


def _layout(types):
    """(size, [(register, offset, length)], one Struct reading them all or None, Rip's offset)."""
    got = _LAYOUTS.get(id(types))
    if got is not None and got[0] is types:
        return got[1]
    size = trap_frame_size(types)
    fields = [
        (reg, _offset(types, "_KTRAP_FRAME", fname, default), n)
        for fname, (reg, n, default) in _TRAP_FIELDS.items()
    ]
    # one unpack when the fields lie apart, in order, inside the frame (every known layout)
    whole = None
    fmt, pos = "<", 0
    for _reg, off, n in fields:
        if off < pos or off + n > size:
            break
        fmt += (f"{off - pos}x" if off > pos else "") + _CODES[n]
        pos = off + n
    else:
        whole = struct.Struct(fmt)
    layout = (size, fields, whole, rip_offset(types))
    if len(_LAYOUTS) >= 16:
        _LAYOUTS.clear()
    _LAYOUTS[id(types)] = (types, layout)  # holding ``types`` keeps its id from being reused
    return layout


def known_rip_offset(types) -> int:
    """:func:`rip_offset`, looked up once per type set (the walker asks for every trap frame)."""
    return _layout(types)[3]


def read_trap_frame(read, address: int, types=None) -> dict[str, int]:
    """The registers a _KTRAP_FRAME at ``address`` holds (raises MemoryNotPresent when absent)."""
    size, fields, whole, _ = _layout(types)
    raw = read(address, size)
    have = len(raw)
    if whole is not None and have >= whole.size:
        regs = dict(zip([f[0] for f in fields], whole.unpack_from(raw)))
    else:
        regs = {}
        for reg, off, n in fields:
            if off + n <= have:
                regs[reg] = int.from_bytes(raw[off : off + n], "little")
    for r in ("r12", "r13", "r14", "r15"):
        regs.setdefault(r, 0)
    regs.setdefault("ss", 0x18)
    return regs


def trap_frame_context(read, address: int, types=None) -> Context:
    return Context("x64", read_trap_frame(read, address, types))


def plausible_trap_frame(regs: dict[str, int], address: int, is_code) -> bool:
    """Does this look like a real trap frame: a code segment matching the mode, a sane Rip/Rsp?

    ``is_code(va)`` says whether a kernel address lies in a loaded module's code.
    """
    cs = regs.get("cs", 0)
    rip = regs.get("rip", 0)
    rsp = regs.get("rsp", 0)
    if cs & 3 == 0:
        # kernel mode: Rip in a module, Rsp above the trap frame and not far away
        if cs not in (0x10, 0x08) or not is_code(rip):
            return False
        return address < rsp < address + 0x10000
    if cs & 3 == 3:
        return 0 < rip < 0x8000_0000_0000 and 0 < rsp < 0x8000_0000_0000
    return False


#: how far above the crash stack pointer a trap frame is looked for (KiPageFault's frame sits
#: below KeBugCheckEx's callers: a few KB at most)
TRAP_SEARCH_LIMIT = 0x4000


def find_trap_frame_for(read, sp: int, rip: int, types=None, is_code=None) -> int | None:
    """The address of the x64 _KTRAP_FRAME above ``sp`` whose saved Rip is ``rip`` (the faulting
    instruction a 0xA/0xD1/0x50 bugcheck names), or None.

    The stack is read once (``TRAP_SEARCH_LIMIT`` bytes, stopping at the first byte the dump
    lacks); each 8-byte slot equal to ``rip`` is tried as the trap frame's Rip and kept when the
    frame around it is plausible (:func:`plausible_trap_frame`)."""
    off = known_rip_offset(types)
    want = (rip & ((1 << 64) - 1)).to_bytes(8, "little")
    raw = b""
    n = TRAP_SEARCH_LIMIT
    while n >= 0x200 and not raw:
        try:
            raw = read(sp, n)  # as much of the stack as the dump holds from sp
        except BugcheckError:
            n //= 2
    at = raw.find(want)
    while at >= 0:
        if at % 8 == 0 and at >= off:
            t = sp + at - off
            try:
                regs = read_trap_frame(read, t, types)
            except BugcheckError:
                regs = None
            if regs is not None and plausible_trap_frame(regs, t, is_code or (lambda _va: True)):
                return t
        at = raw.find(want, at + 1)
    return None


def read_context_record(read, address: int, arch: str = "x64", types=None) -> Context:
    """A CONTEXT record at ``address`` (``.cxr``); the documented layout, size checked by the types."""
    size = Context.size_for(arch)
    t = types.get("_CONTEXT") if types else None
    if t is not None and arch != "x86" and t.size and 0x100 <= t.size <= 0x2000:
        size = max(size, t.size)
    try:
        raw = read(address, size)
    except MemoryNotPresent:
        # the register part is enough; the XSAVE tail is often not captured
        raw = read(address, 0x100 if arch == "x64" else min(size, 0x110))
    return Context.parse(arch, raw)


def switch_frame_context(read, kernel_stack: int) -> Context:
    """A waiting thread's context from _KTHREAD.KernelStack (an x64 _KSWITCH_FRAME)."""
    raw = read(kernel_stack, SWITCH_FRAME_SIZE)
    rbp = int.from_bytes(raw[SWITCH_FRAME_RBP : SWITCH_FRAME_RBP + 8], "little")
    rip = int.from_bytes(raw[SWITCH_FRAME_RETURN : SWITCH_FRAME_RETURN + 8], "little")
    return Context("x64", {"rip": rip, "rsp": (kernel_stack + SWITCH_FRAME_SIZE) & MASK64, "rbp": rbp})


__all__ = [
    "X64_TRAP_FRAME_SIZE",
    "plausible_trap_frame",
    "read_context_record",
    "known_rip_offset",
    "read_trap_frame",
    "rip_offset",
    "switch_frame_context",
    "trap_frame_context",
    "trap_frame_size",
]
