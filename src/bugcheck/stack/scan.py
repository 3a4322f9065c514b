"""Finding return addresses without unwind data: prolog decoding and a validated stack scan.

When a module's ``.pdata`` is not available (a triage dump rarely holds the
kernel's), a caller can still be found two ways, tried in this order:

1. **prolog**: when the function's first bytes are readable (from the dump or
   the image file), decode its prolog (pushes, ``sub rsp``, ``__chkstk``) up to
   the current pc; the return address then sits at ``sp + size``.
2. **scan**: look up the stack for the first value that is a believable return
   address: it lies in an executable section of a loaded module (the module
   range when no header is known), is not a function's first byte, the
   instruction before it decodes as a call when those bytes are present, and,
   in a triage dump that captured code at return addresses, code was captured
   there (a block starting exactly at the value is the strongest sign; see
   the corpus FACTS #3), and the bytes there, when present, decode as code
   (data the dump kept, such as a kernel global's fields, does not).

A full or bitmap dump re-packed from a triage dump's captures (its comment
says so) cannot say which bytes were never captured: they read as zeros.
There, eight zero bytes where a function begins or a call returns to count as
absent code, the way missing bytes of a triage dump do, and code starts where
zeros end; the two forms of one crash then judge candidates alike. A real
kernel dump keeps whole pages as they were, and none of this applies.
"""

from __future__ import annotations

import bisect

from bugcheck.errors import BugcheckError, MemoryNotPresent

try:
    import iced_x86 as _iced
except ImportError:  # pragma: no cover - iced is a hard dependency
    _iced = None

MASK64 = (1 << 64) - 1
#: how far above sp a scan looks for the caller (big kernel frames reach ~0x800)
SCAN_LIMIT = 0x3000


#: how many prolog instructions are decoded at most
MAX_PROLOG_INSNS = 40
IMAGE_SCN_CNT_CODE = 0x20
IMAGE_SCN_MEM_EXECUTE = 0x20000000

STRONG, CAPTURED, WEAK = 3, 2, 1
#: this many zero bytes where code should begin mean the code is not there
ZERO_RUN = 8


class CodeMap:
    """What is known about code addresses: modules, executable sections, captured bytes, symbols."""

    def __init__(self, dump, resolver):
        self.dump = dump
        self.resolver = resolver
        self.memory = dump.virtual
        starts = []
        triage = getattr(dump, "triage", None)
        blocks = getattr(self.memory, "blocks", None)
        self.sparse = triage is not None and blocks is not None
        if self.sparse:
            starts = sorted({b.address for b in blocks})
            self._blocks = sorted((b.address, b.address + b.size) for b in blocks)
        else:
            self._blocks = []
        self._block_starts = set(starts)
        self._block_addrs = [a for a, _ in self._blocks]
        self._code_captured: bool | None = None
        #: a page-based dump re-packed from captures (its comment says so): bytes never captured
        #: read as zeros, not as absent. A real full or bitmap dump holds whole pages as they were.
        self.zero_filled = not self.sparse and bool(getattr(dump, "zero_filled", False))
        self._sections: dict[int, list | None] = {}

    # -- modules and sections -------------------------------------------------------------------
    def module(self, va: int):
        try:
            return self.resolver.module_at(va)
        except BugcheckError:
            return None

    def image(self, module):
        try:
            return self.resolver.load(module).image
        except BugcheckError:
            return None

    def _exec_sections(self, module):
        if module.base not in self._sections:
            spans = None
            im = self.image(module)
            if im is not None:
                try:
                    spans = [
                        (s.virtual_address, s.virtual_address + max(s.virtual_size, s.raw_size))
                        for s in im.sections
                        if s.characteristics & (IMAGE_SCN_CNT_CODE | IMAGE_SCN_MEM_EXECUTE)
                    ]
                except (BugcheckError, AttributeError):
                    spans = None
            self._sections[module.base] = spans
        return self._sections[module.base]

    def is_code(self, va: int) -> bool:
        m = self.module(va)
        if m is None:
            return False
        rva = va - m.base
        spans = self._exec_sections(m)
        if spans is None:
            return rva >= 0x1000
        return any(a <= rva < b for a, b in spans)

    # -- captured memory ------------------------------------------------------------------------
    def captured(self, va: int) -> int:
        """2: a dump block starts at ``va``; 1: a block holds it; 0: not captured.

        In a dump of whole pages, code counts as captured where its page is present and
        does not read as zeros."""
        if self.zero_filled:
            try:
                data = self.dump.read_virtual(va & MASK64, ZERO_RUN)
            except (MemoryNotPresent, BugcheckError):
                return 0
            return 1 if any(data) else 0
        if va in self._block_starts:
            return 2
        i = bisect.bisect_right(self._block_addrs, va) - 1
        return 1 if i >= 0 and self._blocks[i][1] > va else 0

    def byte_before_is_zero(self, va: int) -> bool:
        try:
            return self.dump.read_virtual((va - 1) & MASK64, 1) == b"\0"
        except (MemoryNotPresent, BugcheckError):
            return True

    @property
    def code_captured(self) -> bool:
        """Did this (triage) dump capture code bytes at return addresses at all?"""
        if self._code_captured is None:
            # the newer triage writer copies code at the code pointers it finds on the crash
            # stack; the classic one does not: count the stack's code pointers with a block there
            # (in a page-based dump: with code bytes there)
            seen: set[int] = set()  # distinct values: one pointer repeated (a PRCB) proves nothing
            ctx = getattr(self.dump, "crash_context", None)
            sp = getattr(ctx, "sp", 0) or 0
            if sp and (self.sparse or self.zero_filled):
                ps = getattr(self.dump, "pointer_size", 8) or 8
                for slot in range(sp, sp + 0x1000, ps):
                    try:
                        v = int.from_bytes(self.dump.read_virtual(slot, ps), "little")
                    except (MemoryNotPresent, BugcheckError):
                        break
                    if (
                        v not in seen
                        and self.captured(v) == (1 if self.zero_filled else 2)
                        and self.is_code(v)
                    ):
                        seen.add(v)
                        if len(seen) >= 3:
                            break
            self._code_captured = len(seen) >= 3
        return self._code_captured

    def code_bytes(self, va: int, n: int) -> bytes | None:
        """``n`` code bytes at ``va``: from the dump, else from the module's image file.

        In a page-based dump, bytes starting with a run of zeros are not code (see the
        module docstring) and are looked for in the image file instead."""
        try:
            data = self.dump.read_virtual(va & MASK64, n)
            if not (self.zero_filled and not any(data[:ZERO_RUN])):
                return data
        except (MemoryNotPresent, BugcheckError):
            pass
        m = self.module(va)
        if m is None:
            return None
        im = self.image(m)
        if im is None or getattr(im, "in_memory", True):
            return None
        try:
            data = im.read(va - m.base, n)
        except (MemoryNotPresent, BugcheckError):
            return None
        return data if len(data) == n else None

    # -- symbols --------------------------------------------------------------------------------
    def function_start(self, va: int) -> int | None:
        """The start of the public symbol holding ``va`` when it plausibly is a function."""
        try:
            s = self.resolver.symbolize(va)
        except BugcheckError:
            return None
        if s.module is None or s.symbol is None:
            return None
        start = va - s.displacement
        if s.displacement > 0x10000 or not self.is_code(start):
            return None
        return start

    def at_symbol_start(self, va: int) -> bool:
        try:
            s = self.resolver.symbolize(va)
        except BugcheckError:
            return False
        return s.symbol is not None and s.displacement == 0


def call_before(code: CodeMap, va: int):
    """(True, direct target or None) when a call instruction ends exactly at ``va``;
    (False, None) when the bytes are there and hold no such call; (None, None) when absent."""
    if _iced is None:
        return None, None
    tail = code.code_bytes(va - 7, 7)
    if tail is not None and not any(tail):
        # No call ends in seven zero bytes: these were never captured (a triage dump keeps the
        # code from each return address onward; re-packed into whole pages, the rest reads 0)
        return None, None
    # in a page-based dump, zeros right before ``va`` may be bytes that were never captured
    # (a capture that ended just short of the return address): no call decoded there is unknown
    unsure = code.zero_filled and tail is not None and tail[-1] == 0
    seen = False
    for length in (5, 6, 2, 3, 7, 4):
        data = code.code_bytes(va - length, length)
        if data is None:
            continue
        seen = True
        insn = _iced.Decoder(64, data, ip=(va - length) & MASK64).decode()
        if insn.len != length:
            continue
        if insn.flow_control == _iced.FlowControl.CALL:
            return True, insn.near_branch_target
        if insn.flow_control == _iced.FlowControl.INDIRECT_CALL:
            return True, None
    return (False, None) if seen and not unsure else (None, None)


def code_follows(code: CodeMap, va: int) -> bool | None:
    """Do the bytes at ``va`` read as the code a call returns to? False when they hold an
    address next to ``va`` itself (a list head pointing at itself), or an instruction starting
    in the first eight bytes does not decode or is ``add byte ptr [rax],al`` (two zero bytes:
    cleared memory, never compiled code); None when the bytes are absent."""
    if _iced is None:
        return None
    for n in (32, 16, 8):
        data = code.code_bytes(va, n)
        if data is not None:
            break
    else:
        return None
    if abs(int.from_bytes(data[:8], "little") - (va & MASK64)) < 0x1000:
        return False  # a pointer to itself or close by: a list head (an empty LIST_ENTRY), not code
    dec = _iced.Decoder(64, data, ip=va & MASK64)
    while dec.can_decode and dec.position < 8:
        at = dec.position
        insn = dec.decode()
        if insn.code == _iced.Code.INVALID:
            # an instruction cut off by the end of the bytes read is not a wrong one
            return None if at + 15 > len(data) and len(data) < 32 else False
        if data[at : at + 2] == b"\0\0":
            return False
    return True


def _follow_jump(code: CodeMap, target: int) -> int:
    """A call to a stub that jumps on (import thunk, incremental-link thunk) lands where it jumps."""
    data = code.code_bytes(target, 5)
    if data and data[0] == 0xE9:
        return (target + 5 + int.from_bytes(data[1:5], "little", signed=True)) & MASK64
    return target


def calls_into(code: CodeMap, target: int, callee_start: int) -> bool | None:
    """Is a direct call to ``target`` consistent with the callee starting at ``callee_start``?

    None when it cannot be told (the target's function is not known).
    """
    if target == callee_start or _follow_jump(code, target) == callee_start:
        return True
    try:
        s = code.resolver.symbolize(target)
    except BugcheckError:
        return None
    if s.module is None or s.symbol is None:
        return None
    name = s.symbol.name.lower()
    if "guard_dispatch" in name or "retpoline" in name or "guard_check" in name or "thunk" in name:
        return None  # an indirect call in disguise
    start = target - s.displacement
    return start == callee_start


def return_strength(code: CodeMap, va: int, callee_start: int | None = None) -> int:
    """0 when ``va`` cannot be a return address, else how strongly the dump supports it.

    ``callee_start``: where the function that would return to ``va`` begins, when known; a
    direct call before ``va`` to some other function disqualifies ``va``.
    """
    if not code.is_code(va) or code.at_symbol_start(va):
        return 0
    if code_follows(code, va) is False:
        return 0
    call, target = call_before(code, va)
    if call is False:
        return 0
    if call and target is not None and callee_start is not None:
        if calls_into(code, target, callee_start) is False:
            return 0
    if code.code_captured:
        cap = code.captured(va)
        if cap == 0:
            return 0
        if call:
            return STRONG
        if code.zero_filled:
            # a capture that began at ``va`` left zeros right before it
            cap = 2 if code.byte_before_is_zero(va) else 1
        # Captured code starts at each return address; a value inside captured bytes with no
        # call before it points into data the dump kept (a global's fields), not after a call.
        return CAPTURED if cap == 2 else 0
    return STRONG if call else WEAK


def scan_for_return(
    read_u64, code: CodeMap, sp: int, limit: int = SCAN_LIMIT, callee_start=None, accept=None, budget=None
):
    """(slot, return address) of the first believable return address at or above ``sp``, or None.

    ``accept(slot, value)``, when given, can still refuse a candidate (a look-ahead check);
    ``budget`` (the command's :class:`~bugcheck.kernel.budget.WorkBudget`) caps the slots all
    scans of one command may read.
    """
    if budget is not None:
        if budget.scan_slots <= 0:
            budget.scan_exhausted = True
            return None
        limit = min(limit, budget.scan_slots * 8)
    scanned = 0
    try:
        for slot in range(sp, sp + limit, 8):
            scanned += 1
            try:
                value = read_u64(slot)
            except (MemoryNotPresent, BugcheckError):
                return None
            if value and return_strength(code, value, callee_start):
                if accept is None or accept(slot, value):
                    return slot, value
        return None
    finally:
        if budget is not None:
            budget.scan_slots -= scanned


def prolog_size(code: CodeMap, start: int, pc: int) -> int | None:
    """Bytes between sp at ``pc`` and the return address, from the prolog of the function at ``start``.

    None when the prolog cannot be followed (unknown bytes or an unusual stack adjustment).
    """
    got = prolog_frame(code, start, pc)
    return None if got is None or got[1] else got[0]


def prolog_frame(code: CodeMap, start: int, pc: int) -> tuple[int, bool] | None:
    """(fixed frame size, uses a frame pointer) from the prolog; with a frame pointer the body
    may grow the stack (alloca), so the size is only a lower bound."""
    if _iced is None or not start <= pc < start + 0x10000:
        return None
    if pc == start:
        return 0, False
    fp = [False]
    size = _prolog(code, start, pc, fp)
    return None if size is None else (size, fp[0])


def _prolog(code: CodeMap, start: int, pc: int, fp: list) -> int | None:
    data = None
    for n in (0x100, 0x80, 0x40, 0x20, 0x10):
        data = code.code_bytes(start, min(n, pc - start + 15))
        if data is not None:
            break
    if data is None:
        return None
    dec = _iced.Decoder(64, data, ip=start)
    R = _iced.Register
    M = _iced.Mnemonic
    K = _iced.OpKind
    total = 0
    eax_imm: int | None = None
    for _ in range(MAX_PROLOG_INSNS):
        if not dec.can_decode:
            return None
        insn = dec.decode()
        if insn.ip >= pc:
            return total
        if insn.code == _iced.Code.INVALID:
            return None
        mn = insn.mnemonic
        if mn == M.PUSH and insn.op0_kind == K.REGISTER:
            total += 8
            continue
        if mn == M.PUSHFQ:
            total += 8
            continue
        if mn == M.SUB and insn.op0_kind == K.REGISTER and insn.op0_register == R.RSP:
            if insn.op1_kind in (K.IMMEDIATE8TO64, K.IMMEDIATE32TO64, K.IMMEDIATE8, K.IMMEDIATE32):
                total += insn.immediate(1) & 0xFFFFFFFF
            elif insn.op1_kind == K.REGISTER and insn.op1_register == R.RAX and eax_imm is not None:
                total += eax_imm
            else:
                return None
            # the allocation ends an x64 prolog, but a frame pointer may still be set up
            # right after it (``lea rbp, [rsp+N]``)
            for _ in range(3):
                if not dec.can_decode:
                    break
                nxt = dec.decode()
                if (
                    nxt.mnemonic in (M.MOV, M.LEA)
                    and nxt.op0_kind == K.REGISTER
                    and nxt.op0_register == R.RBP
                ):
                    fp[0] = True
                    break
            return total
        if mn == M.MOV and insn.op0_kind == K.REGISTER and insn.op0_register in (R.EAX, R.RAX):
            if insn.op1_kind in (K.IMMEDIATE32, K.IMMEDIATE32TO64, K.IMMEDIATE64):
                eax_imm = insn.immediate(1)
                continue
            if insn.op1_kind == K.REGISTER and insn.op1_register == R.RSP:
                continue
            return total
        if mn == M.CALL and eax_imm is not None:
            continue  # __chkstk probes the allocation in rax; it does not move rsp
        writes_rsp = insn.op0_kind == K.REGISTER and insn.op0_register in (R.RSP, R.ESP, R.SP)
        if writes_rsp or mn in (M.POP, M.POPFQ, M.CALL, M.RET, M.ENTER, M.LEAVE):
            return None if writes_rsp else total
        if mn in (M.MOV, M.LEA) and insn.op0_kind == K.REGISTER and insn.op0_register == R.RBP:
            fp[0] = True
        if mn in (M.MOV, M.MOVAPS, M.MOVDQA, M.MOVUPS, M.LEA) and insn.op0_kind in (K.MEMORY, K.REGISTER):
            if insn.op0_kind == K.MEMORY and insn.memory_base not in (R.RSP, R.RAX, R.R11, R.RBP):
                return total
            continue
        if insn.flow_control != _iced.FlowControl.NEXT:
            return total
        # any other instruction: the body has begun
        return total
    return total
