"""x86 stack walk: PDB frame data, then FPO records, then the EBP chain, then a scan.

32-bit Windows code mostly keeps frame pointers (``push ebp; mov ebp, esp``:
``[ebp]`` is the caller's ebp, ``[ebp+4]`` the return address, the caller's
esp is ``ebp + 8``), but optimized functions omit them, and then only the PDB
knows the frame's shape. Per frame, the first that applies:

1. ``frame_data``: the PDB's FRAMEDATA record for pc; its postfix program
   (:mod:`bugcheck.stack.fpo`) gives the caller's registers;
2. ``fpo``: a classic FPO_DATA record (locals, saved registers, parameters);
   a non-FPO or trap record means the function keeps an EBP frame;
3. ``frame_pointer``: the EBP chain;
4. ``scan``: the first dword above esp that is a believable return address
   (in a module's code, right after a call instruction).

Return-address searches (``.raSearch``) start where the record puts the return
address and, when code is known, accept only believable return addresses.
Frame 0 may stop anywhere: on a function's first byte only the return address
is pushed, and inside a prolog that a single record describes the return
address is searched between esp and where the finished frame would put it.
A trap handler (an FPO trap record, or ``nt!KiTrap0E`` and friends by name)
points ebp at the ``_KTRAP_FRAME`` it built; the walk continues from the
registers saved there (method ``trap_frame``). A malformed program ends the
walk with a warning.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from bugcheck.errors import BugcheckError, MemoryNotPresent
from bugcheck.stack import fpo
from bugcheck.stack.frames import Frame, StackWalk

MASK32 = 0xFFFFFFFF
NO_UNWIND_WARNING = "WARNING: Stack unwind information not available. Following frames may be wrong."
#: dwords a ``.raSearch`` looks through above its start for a believable return address
RA_SEARCH_WORDS = 64
#: dwords a scan (no record, no EBP frame) looks through
SCAN_WORDS = 0x800

try:
    import iced_x86 as _iced
except ImportError:  # pragma: no cover - iced is a hard dependency
    _iced = None


@dataclass
class Step:
    """One unwind step: the caller's registers (None: the walk ends here) and how."""

    regs: dict[str, int] | None
    method: str = ""
    #: bytes of parameters this frame's function takes (the caller's ``.cbCalleeParams``)
    params: int = 0
    warning: str | None = None
    trap_frame: int | None = None
    #: the FrameData / FpoData record of the unwound frame's function, when one was used
    record: object | None = None


RecordLookup = Callable[[int], object]


class X86Unwinder:
    """Unwinds one frame at a time.

    ``read_u32(va)`` reads stack memory (raises on absent memory); ``records(pc)``
    gives the PDB's FrameData or FpoData for pc, or None; ``is_return(va)`` says
    whether a value can be a return address, None when it cannot tell.
    """

    def __init__(
        self,
        read_u32: Callable[[int], int],
        records: RecordLookup | None = None,
        is_return: Callable[[int], bool | None] | None = None,
    ):
        self.read_u32 = read_u32
        self.records = records or (lambda pc: None)
        self.is_return = is_return

    def _u32(self, va: int) -> int | None:
        try:
            return self.read_u32(va & MASK32) & MASK32
        except (MemoryNotPresent, BugcheckError, ValueError, OverflowError):
            return None

    def _believable(self, value: int | None) -> bool | None:
        if not value:
            return False
        if self.is_return is None:
            return None
        return self.is_return(value)

    # -- return address search ------------------------------------------------------------------
    def ra_search(self, start: int, callee_params: int) -> int:
        """Slot of the return address near ``start``.

        The exact start wins when it holds a believable return address; else the start
        without the callee's parameters (compilers that reserve outgoing arguments in
        the frame make them part of the locals); else the first believable one above.
        Without a way to judge code, the start is taken as the record says.
        """
        if self.is_return is None:
            return start
        lower = (start - callee_params) & MASK32 if callee_params else start
        for slot in (start, lower):
            if self._believable(self._u32(slot)):
                return slot
        for k in range(1, RA_SEARCH_WORDS):
            slot = (lower + 4 * k) & MASK32
            v = self._u32(slot)
            if v is None:
                break
            if self._believable(v):
                return slot
        return start

    # -- methods --------------------------------------------------------------------------------
    def _run(self, record, program: str, regs: dict[str, int], callee_params: int, method: str) -> Step:
        esp = regs["esp"] & MASK32
        start = fpo.ra_search_start(record, esp, callee_params)
        if "@" in program and regs.get("ebp"):
            start = (regs["ebp"] + 4) & MASK32  # a realigned frame: the return address is above ebp
        found = self.ra_search(start, callee_params) if ".raSearch" in program else start
        consts = fpo.constants_for(record, callee_params, found, start)
        got = fpo.evaluate(program, regs, self.read_u32, consts)
        out = fpo.registers_of(got)
        if "eip" not in out or "esp" not in out:
            raise fpo.ProgramError("the program does not set $eip and $esp")
        new = dict(regs)
        new.update(out)
        return Step(new, method, fpo.sizes_of(record).params)

    def _ebp_chain(self, regs: dict[str, int], params: int = 0, trap_frame: int | None = None) -> Step | None:
        sp = regs["esp"] & MASK32
        ebp = regs.get("ebp", 0) & MASK32
        if not ebp or ebp < sp:
            return None
        caller_ebp, ret = self._u32(ebp), self._u32(ebp + 4)
        if caller_ebp is None or not ret:
            return None
        new = dict(regs)
        new.update(eip=ret, esp=(ebp + 8) & MASK32, ebp=caller_ebp)
        return Step(new, "frame_pointer", params, trap_frame=trap_frame)

    def _in_prolog(self, pc: int, record) -> bool:
        """Is pc inside the prolog a whole-function record describes (its frame half built)?

        MSVC and clang split prologs into records of their own (each says what is pushed
        so far); a single record with a prolog size describes the finished frame only."""
        rva_of = getattr(self.records, "rva_of", None)
        if rva_of is None or not getattr(record, "prolog_size", 0):
            return False
        rva = rva_of(pc)
        return rva is not None and record.rva < rva < record.rva + record.prolog_size

    def _prolog_step(self, regs: dict[str, int], record, params: int) -> Step | None:
        """Inside a prolog: the return address is the first believable one at or above esp
        and at most where the finished frame would put it."""
        if self.is_return is None:
            return None
        sp = regs["esp"] & MASK32
        last = fpo.ra_search_start(record, sp, 0)
        for slot in range(sp, min(last, sp + 4 * RA_SEARCH_WORDS) + 4, 4):
            if self._believable(self._u32(slot)):
                new = dict(regs)
                new.update(eip=self._u32(slot), esp=(slot + 4) & MASK32)
                prog = getattr(record, "program", "") or ""
                if slot > sp and (
                    prog.split()[:3] == ["$T0", "$ebp", "="] or getattr(record, "frame_type", 0) == 3
                ):
                    saved = self._u32(slot - 4)  # ``push ebp`` came first
                    if saved is not None:
                        new["ebp"] = saved
                return Step(new, "frame_data" if hasattr(record, "program") else "fpo", params)
        return None

    def _scan(self, regs: dict[str, int]) -> Step | None:
        if self.is_return is None:
            return None
        sp = regs["esp"] & MASK32
        for k in range(SCAN_WORDS):
            slot = (sp + 4 * k) & MASK32
            v = self._u32(slot)
            if v is None:
                return None
            if self._believable(v):
                new = dict(regs)
                new.update(eip=v, esp=(slot + 4) & MASK32)
                return Step(new, "scan")
        return None

    def _lookup(self, pc: int):
        try:
            return self.records(pc & MASK32)
        except (BugcheckError, MemoryNotPresent, ValueError):
            return None

    def step(self, regs: dict[str, int], callee_params: int = 0, call_site: bool | None = None) -> Step:
        """The caller of the frame executing at ``regs``; see the module docstring for the order.

        ``call_site``: pc is a return address (every frame but the first); default: when
        ``callee_params`` says a callee was unwound.
        """
        self._used = None
        st = self._step(regs, callee_params, call_site)
        if st.regs is not None and st.method in ("frame_data", "fpo"):
            st.record = self._used
        return st

    def _step(self, regs: dict[str, int], callee_params: int, call_site: bool | None) -> Step:
        pc, sp = regs["eip"] & MASK32, regs["esp"] & MASK32
        if call_site is None:
            call_site = bool(callee_params)
        record = self._lookup(pc)
        starts_here = record is not None and _function_start(record) and self._lookup(pc - 1) is not record
        if starts_here and call_site:
            # a return address right after a call that ends its function (a noreturn
            # call) lies in the next function: the call belongs to the one before
            record = self._lookup(pc - 1)
        self._used = record
        params = fpo.sizes_of(record).params if record is not None else 0
        if starts_here and not call_site:
            # stopped on a function's first instruction: nothing is pushed yet
            ret = self._u32(sp)
            if ret:
                new = dict(regs)
                new.update(eip=ret, esp=(sp + 4) & MASK32)
                return Step(new, "frame_data" if hasattr(record, "program") else "fpo", params)
        if record is not None and not call_site and self._in_prolog(pc, record):
            if _ebp_frame(record):
                # once ``mov ebp, esp`` ran the frame holds: trust it when it lands on code
                try:
                    if hasattr(record, "program"):
                        st = self._run(record, record.program, regs, callee_params, "frame_data")
                    else:
                        st = self._ebp_chain(regs, params) or Step(None)
                        st.method = "fpo"
                    if _grows(st, sp) and self._believable(st.regs["eip"]):
                        return st
                except fpo.ProgramError:
                    pass
            st = self._prolog_step(regs, record, params)
            if st is not None:
                return st
        if record is not None and hasattr(record, "program"):
            try:
                st = self._run(record, record.program or "", regs, callee_params, "frame_data")
            except fpo.ProgramError as e:
                return Step(None, warning=f"WARNING: frame data for {pc:08x} cannot be used: {e}")
            if _grows(st, sp):
                return st
        elif record is not None:
            kind = record.frame_type
            if kind == fpo.FRAME_FPO:
                try:
                    st = self._run(record, fpo.fpo_program(record), regs, callee_params, "fpo")
                except fpo.ProgramError as e:
                    return Step(None, warning=f"WARNING: FPO data for {pc:08x} cannot be used: {e}")
                if _grows(st, sp):
                    return st
            else:
                # a trap or task-gate handler points ebp at the frame it built; others keep EBP frames
                tf = regs.get("ebp") if kind in (fpo.FRAME_TRAP, fpo.FRAME_TSS) else None
                st = self._ebp_chain(regs, params, tf)
                if st is not None and _grows(st, sp):
                    st.method = "fpo"
                    return st
        st = self._ebp_chain(regs, params)
        if st is not None and _grows(st, sp):
            return st
        st = self._scan(regs)
        if st is not None and _grows(st, sp):
            return st
        return Step(None)


def fpo_annotation(record, trap_frame: int | None = None, saved_ebp: int | None = None) -> str:
    """What ``kv`` prints after a frame's name about its record, as WinDbg words it:
    ``FPO: [2,0,0]`` (parameter, local and saved-register dwords), ``FPO: [EBP 0x8055a220]
    [0,0,4]`` when the function uses EBP as a general register (the value it saved),
    ``FPO: [SEH]`` for a frame-pointer-less function with an exception handler,
    ``FPO: [Non-Fpo]`` for functions that keep an EBP frame, ``FPO: [0,0] TrapFrame @ 8013eee8``
    for trap handlers and ``FPO: TaskGate`` for task gates (kd adds the TSS selector, which the
    walk does not track)."""
    sz = fpo.sizes_of(record)
    p, lo, r = sz.params // 4, sz.locals // 4, sz.saved_regs // 4
    if hasattr(record, "program"):
        prog = record.program or ""
        if prog.split()[:3] == ["$T0", "$ebp", "="] or " @ " in prog:
            return "FPO: [Non-Fpo]"
        return "FPO: [SEH]" if record.has_seh else f"FPO: [{p},{lo},{r}]"
    if record.frame_type == fpo.FRAME_NONFPO:
        return "FPO: [Non-Fpo]"
    if record.frame_type == fpo.FRAME_TRAP:
        return (
            f"FPO: [{p},{lo}] TrapFrame @ {trap_frame:08x}" if trap_frame is not None else f"FPO: [{p},{lo}]"
        )
    if record.frame_type == fpo.FRAME_TSS:
        return "FPO: TaskGate"
    if record.has_seh:
        return "FPO: [SEH]"
    ebp = f"[EBP 0x{saved_ebp:08x}] " if record.uses_bp and saved_ebp is not None else ""
    return f"FPO: {ebp}[{p},{lo},{r}]"


def _ebp_frame(record) -> bool:
    """Does the record describe a function that builds an EBP frame (``push ebp; mov ebp, esp``)?"""
    if hasattr(record, "program"):
        return (record.program or "").split()[:3] == ["$T0", "$ebp", "="]
    return record.frame_type == fpo.FRAME_NONFPO


def _function_start(record) -> bool:
    """FPO_DATA records cover whole functions; FRAMEDATA flags the record that starts one."""
    return getattr(record, "is_function_start", True)


def _grows(st: Step, sp: int) -> bool:
    """A caller lives higher on the stack and somewhere in code: anything else would loop."""
    return st.regs is not None and (st.regs.get("esp", 0) & MASK32) > sp and bool(st.regs.get("eip"))


# -- trap frames ---------------------------------------------------------------------------------

#: x86 ``_KTRAP_FRAME`` offsets (unchanged from NT 4 to Windows 10); the kernel's type wins when loaded
TRAP_FRAME_X86 = {
    "DbgEbp": 0x00, "DbgEip": 0x04, "Edx": 0x3C, "Ecx": 0x40, "Eax": 0x44, "Edi": 0x54, "Esi": 0x58,
    "Ebx": 0x5C, "Ebp": 0x60, "Eip": 0x68, "SegCs": 0x6C, "EFlags": 0x70, "HardwareEsp": 0x74,
}  # fmt: skip
_TRAP_REGS = {
    "Eax": "eax",
    "Ecx": "ecx",
    "Edx": "edx",
    "Ebx": "ebx",
    "Esi": "esi",
    "Edi": "edi",
    "Ebp": "ebp",
}
#: x86 kernel entry points that build a _KTRAP_FRAME and point ebp at it
_X86_TRAP_HANDLER = re.compile(
    r"^(KiTrap[0-9A-Fa-f]{2}\w*|KiSystemService|KiFastCallEntry\w*|KiDebugService|KiGetTickCount|"
    r"KiCallbackReturn|KiRaiseAssertion|KiInterruptTemplate\w*|KiUnexpectedInterrupt\d*|KiChainedDispatch)$"
)


def is_x86_trap_handler(symbol: str | None) -> bool:
    if not symbol:
        return False
    mod, _, fn = symbol.rpartition("!")
    return mod in ("", "nt") and bool(_X86_TRAP_HANDLER.match(fn.split("+", 1)[0]))


def trap_frame_offsets(kernel) -> dict[str, int]:
    """Field offsets of the x86 _KTRAP_FRAME: from the kernel's types when they have it."""
    out = dict(TRAP_FRAME_X86)
    types = getattr(kernel, "types", None) if kernel is not None else None
    try:
        t = types.get("_KTRAP_FRAME") if types is not None else None
        if t is not None:
            for name in out:
                off = t.field_offset(name)
                if off is not None and 0 <= off < 0x400:
                    out[name] = off
    except (BugcheckError, AttributeError, KeyError, ValueError):
        return dict(TRAP_FRAME_X86)
    return out


def trap_frame_registers(read_u32, address: int, offsets: dict[str, int]) -> dict[str, int] | None:
    """The interrupted registers a _KTRAP_FRAME at ``address`` holds, or None when it does not look
    like one. A kernel-mode trap pushes no esp: the interrupted esp is where HardwareEsp would be."""
    try:
        v = {k: read_u32((address + off) & MASK32) & MASK32 for k, off in offsets.items()}
    except (MemoryNotPresent, BugcheckError, ValueError, KeyError):
        return None
    cs, efl = v["SegCs"] & 0xFFFF, v["EFlags"]
    if not v["Eip"] or cs & 0xFFF8 == 0 or cs > 0xFF or not efl & 2:
        return None  # EFLAGS bit 1 always reads as 1
    user = cs & 3 == 3 or efl & 0x20000  # ring 3 or virtual-8086
    regs = {reg: v[field] for field, reg in _TRAP_REGS.items()}
    regs.update(
        eip=v["Eip"],
        esp=v["HardwareEsp"] if user else (address + offsets["HardwareEsp"]) & MASK32,
        efl=efl,
        cs=cs,
    )
    return regs


# -- records and code facts from the loaded modules ----------------------------------------------


class ModuleRecords:
    """``pc -> FrameData | FpoData | None`` from the PDBs the resolver loaded, cached per module."""

    def __init__(self, resolver):
        self.resolver = resolver
        self._pdbs: dict[int, object] = {}

    def pdb_for(self, module):
        if module.base not in self._pdbs:
            pdb = None
            try:
                ms = self.resolver.load(module)
                pdb = getattr(ms, "pdb", None) or getattr(ms.symbols, "_pdb", None)
                if pdb is not None and getattr(pdb, "machine", "x86") not in ("x86", "unknown"):
                    pdb = None
            except (BugcheckError, AttributeError):
                pdb = None
            self._pdbs[module.base] = pdb
        return self._pdbs[module.base]

    def rva_of(self, pc: int) -> int | None:
        try:
            module = self.resolver.module_at(pc)
        except BugcheckError:
            return None
        return None if module is None else pc - module.base

    def __call__(self, pc: int):
        try:
            module = self.resolver.module_at(pc)
        except BugcheckError:
            return None
        if module is None:
            return None
        pdb = self.pdb_for(module)
        if pdb is None:
            return None
        rva = pc - module.base
        try:
            rec = pdb.frame_data_at(rva)
            if rec is not None:
                return rec
            return fpo_at(pdb.fpo, rva)
        except (BugcheckError, ValueError, IndexError, KeyError, struct.error, UnicodeDecodeError):
            self._pdbs[module.base] = None  # damaged frame data: do not retry for every frame
            return None


def fpo_at(records, rva: int):
    """The FPO_DATA record whose code range holds ``rva`` (records are sorted by start)."""
    lo, hi = 0, len(records)
    while lo < hi:
        mid = (lo + hi) // 2
        if records[mid].rva <= rva:
            lo = mid + 1
        else:
            hi = mid
    i = lo - 1
    if i >= 0 and records[i].rva <= rva < records[i].rva + records[i].code_size:
        return records[i]
    return None


def call_before(code, va: int) -> bool | None:
    """True when a call instruction ends exactly at ``va`` (32-bit code), False when the
    bytes are there and hold none, None when they are absent."""
    if _iced is None:
        return None
    seen = False
    for length in (5, 6, 2, 3, 7, 4):
        data = code.code_bytes((va - length) & MASK32, length)
        if data is None:
            continue
        seen = True
        insn = _iced.Decoder(32, data, ip=(va - length) & MASK32).decode()
        if insn.len == length and insn.flow_control in (
            _iced.FlowControl.CALL,
            _iced.FlowControl.INDIRECT_CALL,
        ):
            return True
    return False if seen else None


def return_checker(code) -> Callable[[int], bool]:
    """Is a value a believable x86 return address, by what a CodeMap knows?"""
    cache: dict[int, bool] = {}

    def ok(va: int) -> bool:
        if va in cache:
            return cache[va]
        good = bool(code.is_code(va)) and not code.at_symbol_start(va) and call_before(code, va) is not False
        if good and code.code_captured and not code.captured(va):
            good = False
        if len(cache) < 65536:
            cache[va] = good
        return good

    return ok


def walk_x86(dump, resolver, kernel, regs: dict[str, int], max_frames: int, *, records=None) -> StackWalk:
    from bugcheck.stack.scan import CodeMap

    frames: list[Frame] = []
    sw = StackWalk(frames)
    if "eip" not in regs or "esp" not in regs:
        sw.warnings.append("the context has no eip/esp: no stack")
        return sw

    def u32(va: int) -> int:
        return int.from_bytes(dump.read_virtual(va & MASK32, 4), "little")

    code = CodeMap(dump, resolver)
    unwinder = X86Unwinder(
        u32, records if records is not None else ModuleRecords(resolver), return_checker(code)
    )
    regs = {k: v & MASK32 for k, v in regs.items()}
    method = "context"
    callee_params = 0
    call_site = False  # frame 0 runs at any instruction; callers sit right after a call
    trap_offsets = None
    for n in range(max_frames):
        pc, sp = regs["eip"], regs["esp"]
        f = Frame(n, pc, sp, context=dict(regs), method=method, fp=regs.get("ebp"))
        f.symbol = _symbol(resolver, pc)
        frames.append(f)
        if method == "scan" and sw.first_scan is None:
            sw.first_scan = n
            sw.warnings.append(NO_UNWIND_WARNING)
        if pc == 0:
            break
        st = unwinder.step(regs, callee_params, call_site)
        if st.warning:
            sw.warnings.append(st.warning)
        if st.regs is None:
            break
        if st.trap_frame is None and st.method == "frame_pointer" and is_x86_trap_handler(f.symbol):
            st.trap_frame = regs.get("ebp")
        if st.trap_frame is not None:
            if trap_offsets is None:
                trap_offsets = trap_frame_offsets(kernel)
            full = trap_frame_registers(u32, st.trap_frame, trap_offsets)
            if full is not None and full["esp"] > sp:
                f.trap_frame = st.trap_frame
                st.regs = dict(st.regs, **full)
                st.method = "trap_frame"
            else:
                st.trap_frame = None
        if st.trap_frame is None:
            # WinDbg's ChildEBP: the slot below the return address (ebp itself in an EBP frame,
            # where ebp would be in a frame without one)
            f.fp = (st.regs["esp"] - 8) & MASK32
        if st.record is not None:
            f.fpo = fpo_annotation(st.record, f.trap_frame, (st.regs or {}).get("ebp"))
        regs = {k: v & MASK32 for k, v in st.regs.items()}
        method, callee_params = st.method, st.params
        call_site = st.trap_frame is None  # a trap frame resumes where the trap hit
    return sw


def _symbol(resolver, pc: int) -> str:
    try:
        return resolver.format_address(pc)
    except BugcheckError:
        return f"0x{pc:08x}"
