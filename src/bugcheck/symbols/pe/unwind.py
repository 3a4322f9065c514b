"""x64 ``.pdata`` / ``UNWIND_INFO`` decoding (the data RtlVirtualUnwind consumes).

Only decoding lives here; executing the codes against a register context is
``bugcheck.stack.unwind_x64``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# Register numbers used by unwind codes, in the order the CPU encodes them.
GPR_NAMES = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")  # fmt: skip

UWOP_PUSH_NONVOL = 0
UWOP_ALLOC_LARGE = 1
UWOP_ALLOC_SMALL = 2
UWOP_SET_FPREG = 3
UWOP_SAVE_NONVOL = 4
UWOP_SAVE_NONVOL_FAR = 5
UWOP_EPILOG = 6  # version 2; version 1 used 6 for the retired SAVE_XMM
UWOP_SPARE_CODE = 7  # retired SAVE_XMM_FAR
UWOP_SAVE_XMM128 = 8
UWOP_SAVE_XMM128_FAR = 9
UWOP_PUSH_MACHFRAME = 10
UWOP_SET_FPREG_LARGE = 11

OP_NAMES = {
    0: "PUSH_NONVOL", 1: "ALLOC_LARGE", 2: "ALLOC_SMALL", 3: "SET_FPREG", 4: "SAVE_NONVOL",
    5: "SAVE_NONVOL_FAR", 6: "EPILOG", 7: "SPARE_CODE", 8: "SAVE_XMM128", 9: "SAVE_XMM128_FAR",
    10: "PUSH_MACHFRAME", 11: "SET_FPREG_LARGE",
}  # fmt: skip

UNW_FLAG_EHANDLER = 1
UNW_FLAG_UHANDLER = 2
UNW_FLAG_CHAININFO = 4

MAX_CHAIN_DEPTH = 32


class UnwindFormatError(ValueError):
    """Malformed unwind data; PeImage turns it into BadFileError naming the image."""


@dataclass(frozen=True, slots=True)
class RuntimeFunction:
    begin: int
    end: int
    unwind_rva: int

    def contains(self, rva: int) -> bool:
        return self.begin <= rva < self.end


@dataclass(frozen=True, slots=True)
class UnwindCode:
    """One decoded operation: ``offset`` is the prolog offset just past the instruction.

    ``value`` is the operand in bytes: allocation size, save offset from the
    frame base, or for SET_FPREG the frame offset; ``reg`` the register number
    (GPR, or XMM for the xmm saves); ``info`` the raw op-info nibble.
    """

    offset: int
    op: int
    info: int
    reg: int | None = None
    value: int = 0
    slots: int = 1

    @property
    def name(self) -> str:
        return OP_NAMES.get(self.op, f"OP{self.op}")


@dataclass(slots=True)
class UnwindInfo:
    rva: int
    version: int
    flags: int
    size_of_prolog: int
    count_of_codes: int
    frame_register: int
    frame_offset: int  # already scaled (x16)
    codes: list[UnwindCode]
    handler_rva: int | None = None
    handler_data_rva: int | None = None
    chained: RuntimeFunction | None = None
    chained_info: UnwindInfo | None = field(default=None, repr=False)
    epilog_size: int | None = None  # version 2 epilog size
    epilog_offsets: list[int] = field(default_factory=list)  # v2: offsets back from function end

    @property
    def frame_register_name(self) -> str | None:
        return GPR_NAMES[self.frame_register] if self.frame_register else None


def code_slots(op: int, info: int) -> int:
    if op == UWOP_ALLOC_LARGE:
        return 2 if info == 0 else 3
    if op in (UWOP_SAVE_NONVOL, UWOP_SAVE_XMM128, UWOP_EPILOG):
        return 2
    if op in (UWOP_SAVE_NONVOL_FAR, UWOP_SAVE_XMM128_FAR, UWOP_SPARE_CODE, UWOP_SET_FPREG_LARGE):
        return 3
    return 1


def parse_runtime_functions(data: bytes) -> list[RuntimeFunction]:
    """The ``.pdata`` table (12-byte entries); zero padding ends it."""
    out = []
    for i in range(len(data) // 12):
        b, e, u = struct.unpack_from("<III", data, i * 12)
        if b == 0 and e == 0 and u == 0:
            break
        out.append(RuntimeFunction(b, e, u))
    return out


def decode_unwind_info(rva: int, read) -> UnwindInfo:
    """Decode the UNWIND_INFO at ``rva``; ``read(rva, n)`` supplies bytes. Chains are not followed."""
    head = read(rva, 4)
    ver_flags, prolog, count, frame = head[0], head[1], head[2], head[3]
    version = ver_flags & 7
    flags = ver_flags >> 3
    if version not in (1, 2):
        raise UnwindFormatError(f"unwind info at RVA {rva:#x} has unsupported version {version}")
    raw = read(rva + 4, count * 2) if count else b""
    codes: list[UnwindCode] = []
    epilog_size = None
    epilog_offsets: list[int] = []
    i = 0
    first_epilog = True
    while i < count:
        off, opinfo = raw[2 * i], raw[2 * i + 1]
        op, info = opinfo & 0xF, opinfo >> 4
        slots = code_slots(op, info)
        if op == UWOP_EPILOG and version == 1:
            slots = 2  # retired SAVE_XMM: register + scaled offset
        if op > UWOP_SET_FPREG_LARGE:
            raise UnwindFormatError(f"unwind info at RVA {rva:#x} has unknown unwind op {op}")
        if i + slots > count:
            raise UnwindFormatError(f"unwind info at RVA {rva:#x}: unwind code {i} overruns the code array")

        def slot(k: int, base: int = i) -> int:
            return raw[2 * (base + k)] | (raw[2 * (base + k) + 1] << 8)

        reg = None
        value = 0
        if op == UWOP_PUSH_NONVOL:
            reg = info
        elif op == UWOP_ALLOC_LARGE:
            value = slot(1) * 8 if info == 0 else slot(1) | (slot(2) << 16)
        elif op == UWOP_ALLOC_SMALL:
            value = info * 8 + 8
        elif op == UWOP_SET_FPREG:
            reg = frame & 0xF
            value = (frame >> 4) * 16
        elif op == UWOP_SAVE_NONVOL:
            reg, value = info, slot(1) * 8
        elif op == UWOP_SAVE_NONVOL_FAR:
            reg, value = info, slot(1) | (slot(2) << 16)
        elif op == UWOP_SAVE_XMM128:
            reg, value = info, slot(1) * 16
        elif op == UWOP_SAVE_XMM128_FAR:
            reg, value = info, slot(1) | (slot(2) << 16)
        elif op == UWOP_EPILOG:
            if version == 1:
                reg, value = info, slot(1) * 8
            else:
                # First entry: epilog size (+ "at end" flag in info); the rest: offsets from the end.
                if first_epilog:
                    epilog_size = off
                    if info & 1:
                        epilog_offsets.append(off)
                    first_epilog = False
                else:
                    back = off | (info << 8)
                    if back:
                        epilog_offsets.append(back)
                value = off
        elif op == UWOP_SPARE_CODE:
            reg, value = info, slot(1) | (slot(2) << 16)
        elif op == UWOP_PUSH_MACHFRAME:
            value = info
        elif op == UWOP_SET_FPREG_LARGE:
            reg = frame & 0xF
            value = (slot(1) | (slot(2) << 16)) * 16
        codes.append(UnwindCode(off, op, info, reg, value, slots))
        i += slots
    ui = UnwindInfo(
        rva, version, flags, prolog, count, frame & 0xF, (frame >> 4) * 16, codes,
        epilog_size=epilog_size, epilog_offsets=epilog_offsets,
    )  # fmt: skip
    tail = rva + 4 + ((count + 1) & ~1) * 2
    if flags & UNW_FLAG_CHAININFO:
        b, e, u = struct.unpack("<III", read(tail, 12))
        ui.chained = RuntimeFunction(b, e, u)
    elif flags & (UNW_FLAG_EHANDLER | UNW_FLAG_UHANDLER):
        (ui.handler_rva,) = struct.unpack("<I", read(tail, 4))
        ui.handler_data_rva = tail + 4
    return ui
