"""The ARM64 virtual unwinder: one frame, from packed or full (``.xdata``) unwind data.

Both forms are turned into one list of unwind operations (each undoing one
prolog/epilog instruction, in unwind order), so partial prologs and epilogs
are handled the way Microsoft's ARM64 EH description prescribes: in a prolog,
skip the operations of instructions not yet executed; in an epilog, skip the
ones already executed; in the body, run them all.  The caller's PC is LR
unless a machine frame or context record supplied it.
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.symbols.pe.arm64 import Arm64Function, Packed, XData

MASK64 = (1 << 64) - 1
MAX_OPS = 1024

ReadFn = Callable[[int, int], bytes]
#: address -> (image_base, Arm64Function) or None
LookupFn = Callable[[int], "tuple[int, Arm64Function] | None"]

# Registers saved by pair/single saves, in the order save_next walks them.
INT_REGS = [f"x{i}" for i in range(19, 29)] + ["fp", "lr"]
FP_REGS = [f"d{i}" for i in range(8, 16)]
_VALID = frozenset(INT_REGS + FP_REGS)


class UnwindError(BugcheckError):
    """The frame cannot be unwound (unsupported code, a register that is not known, bad data)."""


@dataclass(frozen=True, slots=True)
class Op:
    """One unwind operation.

    kind: ``alloc`` (sp += value), ``save`` (regs loaded from sp+offset, then
    sp += pre), ``set_fp`` (sp = fp - value), ``nop``, ``save_next``,
    ``end``, ``end_c``, ``machine_frame``, ``context``, ``pac``.
    """

    kind: str
    value: int = 0
    regs: tuple[str, ...] = ()
    offset: int = 0
    pre: int = 0
    pos: int = 0  # byte index in the code array (full form)

    @property
    def is_instruction(self) -> bool:
        """Maps to one prolog/epilog instruction (machine frames and contexts describe the entry state)."""
        return self.kind not in ("end", "end_c", "machine_frame", "context")

    @property
    def is_marker(self) -> bool:
        return self.kind in ("end", "end_c")


@dataclass(slots=True)
class UnwindResult:
    context: dict[str, int]
    restored: frozenset[str]
    method: str  # "packed", "xdata", "epilog", "prolog", "machframe", "context", "leaf"
    image_base: int | None = None
    function: Arm64Function | None = None


# ---- decoding ---------------------------------------------------------------------------------


def _code_size(b: int) -> int:
    if b < 0xC0:
        return 1
    if b < 0xE0:
        return 2
    if b == 0xE0:
        return 4
    if b in (0xE2,):
        return 2
    if b == 0xE7:
        return 3
    if 0xF8 <= b <= 0xFB:
        return b - 0xF6
    return 1


def decode_codes(codes: bytes) -> list[Op]:
    """All operations of a full-form code array (each with its byte position)."""
    ops: list[Op] = []
    i = 0
    while i < len(codes) and len(ops) < MAX_OPS:
        b = codes[i]
        n = _code_size(b)
        if i + n > len(codes):
            raise UnwindError(f"ARM64 unwind code at byte {i} runs past the code array")
        w = int.from_bytes(codes[i : i + n], "big")
        ops.append(_decode_one(b, w, n, i))
        i += n
    return ops


def _decode_one(b: int, w: int, n: int, pos: int) -> Op:
    if b < 0x20:  # alloc_s
        return Op("alloc", (b & 0x1F) * 16, pos=pos)
    if b < 0x40:  # save_r19r20_x
        return Op("save", regs=("x19", "x20"), pre=(b & 0x1F) * 8, pos=pos)
    if b < 0x80:  # save_fplr
        return Op("save", regs=("fp", "lr"), offset=(b & 0x3F) * 8, pos=pos)
    if b < 0xC0:  # save_fplr_x
        return Op("save", regs=("fp", "lr"), pre=((b & 0x3F) + 1) * 8, pos=pos)
    if b < 0xC8:  # alloc_m
        return Op("alloc", (w & 0x7FF) * 16, pos=pos)
    x4, z6 = (w >> 6) & 0xF, w & 0x3F
    if b < 0xCC:  # save_regp
        return Op("save", regs=(f"x{19 + x4}", f"x{20 + x4}"), offset=z6 * 8, pos=pos)
    if b < 0xD0:  # save_regp_x
        return Op("save", regs=(f"x{19 + x4}", f"x{20 + x4}"), pre=(z6 + 1) * 8, pos=pos)
    if b < 0xD4:  # save_reg
        return Op("save", regs=(f"x{19 + x4}",), offset=z6 * 8, pos=pos)
    if b < 0xD6:  # save_reg_x
        return Op("save", regs=(f"x{19 + ((w >> 5) & 0xF)}",), pre=((w & 0x1F) + 1) * 8, pos=pos)
    x3 = (w >> 6) & 7
    if b < 0xD8:  # save_lrpair
        return Op("save", regs=(f"x{19 + 2 * x3}", "lr"), offset=z6 * 8, pos=pos)
    if b < 0xDA:  # save_fregp
        return Op("save", regs=(f"d{8 + x3}", f"d{9 + x3}"), offset=z6 * 8, pos=pos)
    if b < 0xDC:  # save_fregp_x
        return Op("save", regs=(f"d{8 + x3}", f"d{9 + x3}"), pre=(z6 + 1) * 8, pos=pos)
    if b < 0xDE:  # save_freg
        return Op("save", regs=(f"d{8 + x3}",), offset=z6 * 8, pos=pos)
    if b == 0xDE:  # save_freg_x
        return Op("save", regs=(f"d{8 + ((w >> 5) & 7)}",), pre=((w & 0x1F) + 1) * 8, pos=pos)
    if b == 0xE0:  # alloc_l
        return Op("alloc", (w & 0xFFFFFF) * 16, pos=pos)
    if b == 0xE1:
        return Op("set_fp", 0, pos=pos)
    if b == 0xE2:
        return Op("set_fp", (w & 0xFF) * 8, pos=pos)
    if b == 0xE3:
        return Op("nop", pos=pos)
    if b == 0xE4:
        return Op("end", pos=pos)
    if b == 0xE5:
        return Op("end_c", pos=pos)
    if b == 0xE6:
        return Op("save_next", pos=pos)
    if b == 0xE9:
        return Op("machine_frame", pos=pos)
    if b == 0xEA:
        return Op("context", pos=pos)
    if b == 0xEC:  # clear_unwound_to_call: no register effect
        return Op("nop", pos=pos)
    if b == 0xFC:
        return Op("pac", pos=pos)
    return Op("unsupported", b, pos=pos)


def packed_prolog(p: Packed) -> list[Op]:
    """The canonical prolog of packed unwind data, in unwind order (last prolog instruction first)."""
    intsz = p.reg_i * 8 + (8 if p.cr == 1 else 0)
    fpsz = (p.reg_f + 1) * 8 if p.reg_f else 0
    savsz = (intsz + fpsz + 8 * 8 * p.h + 0xF) & ~0xF
    locsz = p.frame_size - savsz
    steps: list[Op] = []  # prolog order
    if p.cr == 2:
        steps.append(Op("pac"))
    # Int registers (and lr when CR == 1), first store pre-decrementing the whole save area.
    ints = [f"x{19 + i}" for i in range(p.reg_i)] + (["lr"] if p.cr == 1 else [])
    first = True
    for i in range(0, len(ints), 2):
        pair = tuple(ints[i : i + 2])
        if first:
            steps.append(Op("save", regs=pair, pre=savsz))
            first = False
        else:
            steps.append(Op("save", regs=pair, offset=8 * i))
    fps = [f"d{8 + i}" for i in range(p.reg_f + 1)] if p.reg_f else []
    for i in range(0, len(fps), 2):
        pair = tuple(fps[i : i + 2])
        if first:
            steps.append(Op("save", regs=pair, pre=savsz))
            first = False
        else:
            steps.append(Op("save", regs=pair, offset=intsz + 8 * i))
    if p.h:
        if first and savsz:
            steps.append(Op("alloc", savsz))  # the home area is the whole save area
            steps.extend(Op("nop") for _ in range(3))
        else:
            steps.extend(Op("nop") for _ in range(4))
    if p.cr in (2, 3):
        if locsz <= 512:
            steps.append(Op("save", regs=("fp", "lr"), pre=locsz))
        else:
            _allocs(steps, locsz - 0)
            steps.append(Op("save", regs=("fp", "lr"), offset=0))
        steps.append(Op("set_fp", 0))
    elif locsz > 0:
        _allocs(steps, locsz)
    steps.reverse()
    return steps


def _allocs(steps: list[Op], size: int) -> None:
    if size > 4088:
        steps.append(Op("alloc", 4088))
        steps.append(Op("alloc", size - 4088))
    else:
        steps.append(Op("alloc", size))


def packed_epilog(p: Packed) -> list[Op]:
    """The epilog in execution order: the prolog reversed, without set_fp and home-area nops."""
    ops = [o for o in packed_prolog(p) if o.kind not in ("set_fp", "nop")]
    return ops


# ---- execution --------------------------------------------------------------------------------


def _u64(read: ReadFn, va: int) -> int:
    return struct.unpack("<Q", read(va & MASK64, 8))[0]


def _strip_pac(va: int) -> int:
    """Drop pointer-authentication bits: kernel addresses are sign-extended from bit 55 (48-bit VA)."""
    return va | 0xFFFF_0000_0000_0000 if va >> 55 & 1 else va & 0x0000_FFFF_FFFF_FFFF


def _execute(ops: Iterable[Op], regs: dict[str, int], read: ReadFn, restored: set[str]) -> str | None:
    """Undo ``ops`` in order until ``end``; returns "machframe"/"context" when one supplied the PC."""
    pending_next = 0
    for op in ops:
        k = op.kind
        if k == "end":
            break
        if k in ("end_c", "nop"):
            continue
        if k == "alloc":
            regs["sp"] = (regs["sp"] + op.value) & MASK64
        elif k == "set_fp":
            if "fp" not in regs:
                raise UnwindError("unwinding needs fp, which is not known in this frame")
            regs["sp"] = (regs["fp"] - op.value) & MASK64
        elif k == "save_next":
            pending_next += 1
        elif k == "save":
            sp = regs["sp"]
            names = list(op.regs)
            if pending_next and len(names) == 2:
                seq = INT_REGS[:10] + FP_REGS
                start = seq.index(names[0]) if names[0] in seq else None
                if start is not None:
                    names = seq[start : start + 2 * (pending_next + 1)]
            pending_next = 0
            if not _VALID.issuperset(names):
                raise UnwindError(f"ARM64 unwind code saves a register outside x19-x30/d8-d15: {names}")
            for j, name in enumerate(names):
                regs[name] = _u64(read, sp + op.offset + 8 * j)
                restored.add(name)
            regs["sp"] = (sp + op.pre) & MASK64
        elif k == "pac":
            if "lr" in regs:
                regs["lr"] = _strip_pac(regs["lr"])
        elif k == "machine_frame":
            sp = regs["sp"]
            regs["pc"] = _u64(read, sp + 8)
            regs["sp"] = _u64(read, sp)
            restored.update(("pc", "sp"))
            return "machframe"
        elif k == "context":
            base = regs["sp"]
            data = read(base, 0x110)
            for i in range(29):
                regs[f"x{i}"] = struct.unpack_from("<Q", data, 8 + 8 * i)[0]
            regs["fp"], regs["lr"], regs["sp"], regs["pc"] = struct.unpack_from("<4Q", data, 0xF0)
            regs["cpsr"] = struct.unpack_from("<I", data, 4)[0]
            restored.update(regs)
            return "context"
        else:
            raise UnwindError(f"ARM64 unwind code {op.value:#04x} is not supported")
    return None


def _xdata_plan(xd: XData, ops: list[Op], offset: int) -> tuple[list[Op], str]:
    by_pos = {o.pos: i for i, o in enumerate(ops)}
    # Prolog: the instruction ops before the first end / end_c.
    prolog = []
    for o in ops:
        if o.is_marker:
            break
        if o.is_instruction:
            prolog.append(o)
    # Epilogs.
    scopes: list[tuple[int, int]] = list(xd.epilog_scopes)
    if xd.e and xd.single_epilog_index is not None and xd.single_epilog_index in by_pos:
        idx = by_pos[xd.single_epilog_index]
        n = _instr_count(ops, idx)
        scopes = [(xd.function_length - 4 * (n + 1), xd.single_epilog_index)]
    for start, code_index in scopes:
        if code_index not in by_pos:
            continue
        idx = by_pos[code_index]
        n = _instr_count(ops, idx)
        if start <= offset < start + 4 * (n + 1):
            done = (offset - start) // 4
            return (_skip(ops[idx:], done) if done < n else []), "epilog"
    if offset < 4 * len(prolog):
        return _skip(ops, len(prolog) - offset // 4), "prolog"
    return ops, "xdata"


def _skip(ops: list[Op], count: int) -> list[Op]:
    """Drop the first ``count`` instruction ops (entry-state markers before them are kept)."""
    out: list[Op] = []
    for i, o in enumerate(ops):
        if count == 0:
            return out + ops[i:]
        if o.is_instruction:
            count -= 1
        elif not o.is_marker:
            out.append(o)
    return out


def _instr_count(ops: list[Op], idx: int) -> int:
    n = 0
    for o in ops[idx:]:
        if o.is_marker:
            break
        if o.is_instruction:
            n += 1
    return n


def _packed_plan(p: Packed, offset: int) -> tuple[list[Op], str]:
    prolog = packed_prolog(p)
    if p.flag == 2:  # a fragment: no prolog and no epilog of its own
        return prolog, "packed"
    epilog = packed_epilog(p)
    ep_start = p.function_length - 4 * (len(epilog) + 1)
    if offset >= ep_start and offset >= 4 * len(prolog):
        done = (offset - ep_start) // 4
        return epilog[done:], "epilog"
    if offset < 4 * len(prolog):
        return prolog[len(prolog) - offset // 4 :], "prolog"
    return prolog, "packed"


def virtual_unwind(regs: dict[str, int], read: ReadFn, lookup: LookupFn) -> UnwindResult:
    """Unwind one ARM64 frame; ``regs`` (pc, sp, lr, fp, x19..x28, d8..d15) is not modified."""
    if "pc" not in regs or "sp" not in regs:
        raise UnwindError("unwinding needs pc and sp")
    entry = lookup(regs["pc"])
    new = dict(regs)
    restored: set[str] = set()
    if entry is None:
        if "lr" not in regs:
            raise UnwindError("leaf frame without lr")
        new["pc"] = _strip_pac(regs["lr"])
        return UnwindResult(new, frozenset(("pc",)), "leaf")
    base, func = entry
    offset = regs["pc"] - base - func.begin
    if func.packed is not None:
        plan, method = _packed_plan(func.packed, offset)
    else:
        xd = func.xdata
        plan, method = _xdata_plan(xd, decode_codes(xd.codes), offset)
    special = _execute(plan, new, read, restored)
    if special is None:
        if "lr" not in new:
            raise UnwindError("unwinding needs lr, which is not known in this frame")
        new["pc"] = _strip_pac(new["lr"])
        restored.update(("pc", "sp"))
    else:
        method = special
    return UnwindResult(new, frozenset(restored), method, base, func)


class ImageLookup:
    """``.pdata`` lookup over loaded ARM64 images: ``ImageLookup([(base, PeImage), ...])``."""

    def __init__(self, images: Iterable[tuple[int, object]]):
        self._images = sorted(images, key=lambda t: t[0])
        self._bases = [b for b, _ in self._images]

    def __call__(self, address: int):
        i = bisect.bisect_right(self._bases, address) - 1
        if i < 0:
            return None
        base, im = self._images[i]
        if address - base >= im.size_of_image:
            return None
        func = im.lookup_function(address - base)
        return None if func is None else (base, func)


__all__ = ["virtual_unwind", "ImageLookup", "UnwindResult", "UnwindError", "MemoryNotPresent", "decode_codes"]
