"""One stack frame as the walkers produce it and the ``k`` commands print it.

A frame keeps how it was found (``method``) because a frame recovered by a
stack scan deserves less trust than one unwound from ``.pdata``; commands and
``!analyze`` show or weigh that difference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: how a frame's caller context was obtained
METHODS = (
    "context",  # the starting register context (frame 0)
    "pdata",  # unwind codes from the image's .pdata/.xdata
    "epilog",  # pc was inside an epilog; the rest of it was emulated
    "machframe",  # a PUSH_MACHFRAME in the unwind codes gave rip/rsp
    "leaf",  # a function with no unwind data: the return address is at sp
    "prolog",  # no unwind data: the function's prolog was decoded from its code
    "frame_pointer",  # x86/ARM64 frame-pointer chain
    "scan",  # a validated scan of the stack for a return address
    "trap_frame",  # registers restored from a _KTRAP_FRAME
    "context_record",  # registers from a CONTEXT record (.cxr)
)


@dataclass
class Frame:
    number: int
    pc: int
    #: the stack pointer while executing at ``pc`` (WinDbg's Child-SP)
    sp: int
    #: the caller's pc (the next frame's pc), 0 for the last frame
    return_address: int = 0
    #: WinDbg's "Args to Child": the four home-space slots above the return address
    args: list[int | None] = field(default_factory=list)
    #: the registers known in this frame
    context: dict[str, int] = field(default_factory=dict)
    #: how this frame was reached (see METHODS)
    method: str = "context"
    #: address of a _KTRAP_FRAME this frame's function built, for ``(TrapFrame @ ...)``
    trap_frame: int | None = None
    #: ``nt!KiPageFault+0x469``, ``myfault+0x1981`` or ``0x00007ff8`f16ece54``
    symbol: str = ""
    module: str | None = None
    #: frame pointer (x86 ebp / ARM64 fp) when the walker tracked one
    fp: int | None = None
    #: x86: what ``kv`` prints about the frame's FPO/frame-data record (``FPO: [2,0,0]``)
    fpo: str | None = None

    @property
    def from_scan(self) -> bool:
        return self.method == "scan"

    def to_dict(self) -> dict:
        return {
            "number": self.number,
            "pc": self.pc,
            "sp": self.sp,
            "return_address": self.return_address,
            "args": list(self.args),
            "method": self.method,
            "trap_frame": self.trap_frame,
            "symbol": self.symbol,
            "module": self.module,
            "fp": self.fp,
            "fpo": self.fpo,
        }


@dataclass
class StackWalk:
    frames: list[Frame]
    warnings: list[str] = field(default_factory=list)
    #: index of the first frame found by a stack scan (WinDbg prints its warning before it), or None
    first_scan: int | None = None

    def to_dict(self) -> dict:
        return {
            "frames": [f.to_dict() for f in self.frames],
            "warnings": list(self.warnings),
            "first_scan": self.first_scan,
        }
