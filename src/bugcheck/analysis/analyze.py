"""``!analyze -v``: find the crash context, walk its stack, blame a frame, name the bucket.

The engine gathers facts into :class:`Analysis` (plain data, JSON-able) and
renders WinDbg's text from them, so ``--json`` and the text never disagree.

How the crash context is chosen (WinDbg's STACK_COMMAND says which):
- exception bugchecks that pass a CONTEXT record (0x7E / 0x8E: Arg4, 0x3B:
  Arg3, and their ``_M`` forms) -> the stack is walked from that context
  (``.cxr ADDR ; kb``);
- otherwise the crashing processor's context; when its stack passes through a
  trap frame (KiPageFault and friends, as for 0xA / 0xD1 / 0x50) the trap frame
  is shown as TRAP_FRAME and the frames below it come from its registers
  (``.thread ; .cxr ; kb``).

The culprit is the first frame the triage rules do not ignore (see
``triage_rules``); a kernel frame without a symbol cannot be judged, so on a
minidump without kernel symbols the first driver frame is blamed, as WinDbg and
BlueScreenView do.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from bugcheck.analysis import bucket as bucketing
from bugcheck.analysis.catalog import lookup, render_bugcheck_box
from bugcheck.analysis.triage_rules import default_rules, pick_culprit
from bugcheck.errors import BugcheckError
from bugcheck.stack.trapframe import read_context_record
from bugcheck.symbols.resolver import hex_addr

SCHEMA = "bugcheck.analysis/1"
NO_UNWIND_WARNING = "WARNING: Stack unwind information not available. Following frames may be wrong."
#: what the kernel leaves in header fields it did not set ("PAGE")
PAGE_FILLER = 0x45474150
_M = 0x10000000
#: bugchecks whose arguments point at an exception record and a CONTEXT: code -> (exr arg, cxr arg)
CONTEXT_RECORD_ARGS = {0x7E: (2, 3), 0x8E: (2, 3), 0x3B: (None, 2)}
#: the DumpFileAttributes bits WinDbg names under DUMP_FILE_ATTRIBUTES (published outputs show
#: 0x8 on minidumps, also within 0x1808 and 0x21808, and 0x10 on live dumps; 0x21800 on a
#: MEMORY.DMP gets no name line, so the other bits are printed as the number only)
DUMP_ATTRIBUTE_NAMES = {0x8: "Kernel Generated Triage Dump", 0x10: "Live Generated Dump"}
NTSTATUS_NAMES = {
    0xC0000005: "Access violation",
    0xC000001D: "Illegal instruction",
    0xC0000094: "Integer divide-by-zero",
    0xC0000096: "Privileged instruction",
    0x80000003: "Break instruction exception",
    0x80000004: "Single step exception",
    0xC0000409: "Security check failure or stack buffer overrun",
    0xC00000FD: "Stack overflow",
    0xC0000420: "Assertion failure",
}

#: NTSTATUS message-table text as ERROR_CODE shows it (only texts seen in real !analyze output)
NTSTATUS_MESSAGES = {
    0xC0000005: "The instruction at 0x%p referenced memory at 0x%p. The memory could not be %s.",
    0xC0000409: "The system detected an overrun of a stack-based buffer in this application. "
    "This overrun could potentially allow a malicious user to gain control of this application.",
}


@dataclass
class Analysis:
    bugcheck_code: int
    args: list[int]
    name: str | None
    arg_meanings: list[str]
    box: str
    #: ordered (KEY, text lines) pairs of the Debugging Details section
    fields: list[tuple[str, list[str]]] = field(default_factory=list)
    frames: list[dict] = field(default_factory=list)
    culprit: dict | None = None
    failure_bucket_id: str = ""
    failure_id_hash: str = ""
    followup: str = "MachineOwner"
    stack_command: str = ""
    warnings: list[str] = field(default_factory=list)
    elapsed_ms: int = 0

    def field_value(self, key: str) -> str | None:
        for k, lines in self.fields:
            if k == key:
                return "\n".join(lines)
        return None

    def to_dict(self) -> dict:
        return {
            "bugcheck": {
                "code": self.bugcheck_code,
                "name": self.name,
                "args": self.args,
                "arg_meanings": self.arg_meanings,
            },
            "fields": {k: "\n".join(v) for k, v in self.fields},
            "stack": self.frames,
            "culprit": self.culprit,
            "failure_bucket_id": self.failure_bucket_id,
            "failure_id_hash": self.failure_id_hash,
            "followup": self.followup,
            "stack_command": self.stack_command,
            "warnings": self.warnings,
            "elapsed_ms": self.elapsed_ms,
        }

    def text(self, verbose: bool = True) -> str:
        if not verbose:
            return self._short_text()
        out = [self.box.rstrip("\n"), ""]
        out.extend(self.warnings)
        if self.warnings:
            out.append("")
        out += ["Debugging Details:", "------------------", "", ""]
        for key, lines in self.fields:
            sep = " " if key in _ONE_SPACE else "  "
            if key == "KEY_VALUES_STRING":
                out.append(f"{key}: {lines[0]}")
                out.extend(lines[1:])
                out.append("")  # WinDbg leaves two blank lines after the key/value block
            elif key in _BLOCK_FIELDS:
                out.append(f"{key}:{sep}{lines[0]}")
                out.extend(lines[1:])
            elif key == "STACK_TEXT":
                out.append("STACK_TEXT:  ")
                out.extend(lines)
                out.append("")  # and two after the stack
            else:
                out.append(f"{key}:{sep}{lines[0] if lines else ''}")
                out.extend(lines[1:])
            out.append("")
        out.append(f"Followup:     {self.followup}")
        out.append("---------")
        return "\n".join(out)

    def _short_text(self) -> str:
        """Plain ``!analyze``: the box, one BugCheck line and the ``Probably caused by`` guess."""
        box_rule_lines = self.box.split("\n")[:5]
        out = box_rule_lines + ["", "Use !analyze -v to get detailed debugging information.", ""]
        args = ", ".join(f"{v:x}" for v in self.args)
        out += [f"BugCheck {self.bugcheck_code:X}, {{{args}}}", ""]
        out.extend(self.warnings)
        if self.warnings:
            out.append("")
        if self.culprit:
            out += [
                f"Probably caused by : {self.culprit['image_name']} ( {self.culprit['symbol_name']} )",
                "",
            ]
        out.append(f"Followup:     {self.followup}")
        out.append("---------")
        return "\n".join(out)


_ONE_SPACE = {
    "BUGCHECK_P1",
    "BUGCHECK_P2",
    "BUGCHECK_P3",
    "BUGCHECK_P4",
    "MODULE_NAME",
    "DUMP_FILE_ATTRIBUTES",
    "ERROR_CODE",
}
_BLOCK_FIELDS = {"TRAP_FRAME", "CONTEXT", "EXCEPTION_RECORD"}


# -- helpers ---------------------------------------------------------------------------------
def _read_exception_record(dump, address: int) -> dict:
    from bugcheck.dumpfile.header import ExceptionRecord

    if dump.pointer_size == 8:
        rec = ExceptionRecord.parse64(dump.read_virtual(address, 0x98), 0)
    else:
        rec = ExceptionRecord.parse32(dump.read_virtual(address, 0x50), 0)
    return {
        "code": rec.code,
        "flags": rec.flags,
        "address": rec.address,
        "parameters": list(rec.parameters),
    }


def read_trap_frame(dump, kernel, address: int) -> dict[str, int] | None:
    """The registers a ``_KTRAP_FRAME`` holds, read by the stack layer's readers (None when absent)."""
    try:
        if dump.machine == "x86":
            from bugcheck.stack.x86 import trap_frame_offsets, trap_frame_registers

            def u32(va: int) -> int:
                return int.from_bytes(dump.read_virtual(va, 4), "little")

            return trap_frame_registers(u32, address, trap_frame_offsets(kernel))
        from bugcheck.stack.trapframe import read_trap_frame as read_x64

        return read_x64(dump.read_virtual, address, kernel.types if kernel is not None else None)
    except BugcheckError:
        return None


def _trap_err_code(kernel, address: int) -> int | None:
    """``_KTRAP_FRAME.ErrCode`` (x86), None when the type or the memory is missing."""
    t = kernel.types.get("_KTRAP_FRAME") if kernel is not None else None
    if t is None:
        return None
    from bugcheck.kernel.typed import StructView

    try:
        return StructView(kernel.memory, address, t, kernel.types).field_or("ErrCode")
    except BugcheckError:
        return None


def _os_fields(session, dump) -> list[tuple[str, list[str]]]:
    from bugcheck.dumpfile.buildlab import build_lab

    lab = build_lab(dump)
    build = dump.header.minor_version
    revision = "0"
    branch = None
    if lab:
        parts = lab.split(".")
        if len(parts) >= 4 and parts[1].isdigit():
            revision = parts[1]
            branch = parts[3]
    nt = (
        "10.0"
        if build >= 10240
        else {9600: "6.3", 9200: "6.2", 7601: "6.1", 7600: "6.1", 6002: "6.0"}.get(build, "6.x")
    )
    fields = [("OS_VERSION", [f"{nt}.{build}.{revision}"])]
    if branch:
        fields.append(("BUILDLAB_STR", [branch]))
    fields.append(
        ("OSPLATFORM_TYPE", [{"x64": "x64", "x86": "x86", "arm64": "arm64"}.get(dump.machine, dump.machine)])
    )
    fields.append(("OSNAME", [_os_name(build)]))
    return fields


def _os_name(build: int) -> str:
    # kd says "Windows 10" for Windows 11 builds too (OSNAME on 22621 and 26100 dumps)
    if build >= 10240:
        return "Windows 10"
    return {9600: "Windows 8.1", 9200: "Windows 8", 7601: "Windows 7", 7600: "Windows 7"}.get(
        build, "Windows"
    )


def _image_name(target, module) -> str:
    """WinDbg's IMAGE_NAME (the kernel by its PDB's image name, ntkrnlmp.exe)."""
    return target.display_image_name(module)


def _image_version(target, module) -> str | None:
    ms = target.resolver.load(module)
    if ms.image is None:
        return None
    try:
        vi = ms.image.version_info
    except BugcheckError:
        return None
    if vi is None or not vi.file_version_str:
        return None
    return vi.file_version_str.split(" ")[0]


# -- the engine ------------------------------------------------------------------------------
def analyze(session, *, rules=None) -> Analysis:
    t0 = time.perf_counter()
    dump = session.dump
    target = session.slot("target")
    resolver = target.resolver
    kernel = target.kernel
    ps = dump.pointer_size
    code = dump.bugcheck_code
    args = [int(a) for a in dump.bugcheck_parameters]
    base_code = code & ~_M if code & _M and lookup(code & ~_M) is not None else code
    info = lookup(code)
    meanings = info.arg_meanings(args) if info else ["", "", "", ""]
    a = Analysis(code, args, info.name if info else None, meanings, render_bugcheck_box(code, args, ps))

    nt = resolver.kernel
    if nt is not None:
        nt_state = resolver.load(nt).state
        if nt_state in ("no symbols", "export symbols"):
            a.warnings.append(
                "*** WARNING: Kernel symbols are not loaded: kernel frames show as nt+offset and the "
                "analysis relies on the drivers on the stack."
            )

    crash_ctx = session.crash_context
    fields: list[tuple[str, list[str]]] = []
    kv = [("Analysis.Elapsed.mSec", None), ("Bugcheck.Code.LegacyAPI", f"{code:#x}")]
    fields.append(("KEY_VALUES_STRING", ["1", ""]))  # filled at the end
    fields.append(("BUGCHECK_CODE", [f"{code:x}"]))
    for i, v in enumerate(args, 1):
        fields.append((f"BUGCHECK_P{i}", [f"{v:x}"]))
    attrs = dump.header.attributes
    if attrs and attrs != PAGE_FILLER:
        names = [n for bit, n in DUMP_ATTRIBUTE_NAMES.items() if attrs & bit]
        fields.append(("DUMP_FILE_ATTRIBUTES", [f"{attrs:#x}"] + [f"  {n}" for n in names]))

    # -- the context the stack is taken from
    walk_ctx = crash_ctx
    stack_command = ".thread ; .cxr ; kb"
    exr_args = CONTEXT_RECORD_ARGS.get(base_code & 0xFFFF if base_code < 0x10000 else base_code)
    exception = None
    cxr_text: list[str] | None = None
    if exr_args is not None:
        exr_i, cxr_i = exr_args
        if exr_i is not None and args[exr_i]:
            try:
                exception = _read_exception_record(dump, args[exr_i])
                fields.append(("EXCEPTION_RECORD", _exr_lines(session, resolver, args[exr_i], exception, ps)))
            except BugcheckError as e:
                a.warnings.append(f"Unable to read the exception record at {args[exr_i]:#x}: {e}")
        if args[cxr_i]:
            try:
                ctx = read_context_record(
                    dump.read_virtual, args[cxr_i], dump.machine, kernel.types if kernel is not None else None
                )
                walk_ctx = ctx
                stack_command = f".cxr {args[cxr_i]:#x} ; kb"
                cxr_text = [f"{args[cxr_i]:x} -- (.cxr {args[cxr_i]:#x})"]
                cxr_text += _register_lines(session, dump, resolver, ctx.regs, trap=False)
                cxr_text.append("Resetting default scope")
            except BugcheckError as e:
                a.warnings.append(f"Unable to read the context record at {args[cxr_i]:#x}: {e}")
    if cxr_text:
        fields.append(("CONTEXT", cxr_text))

    # -- addresses the bugcheck names: an argument's (0xA/0xD1/0x50) come before
    # PROCESS_NAME, an exception record's after it, as WinDbg orders them
    address_fields = _address_fields(base_code, args, exception, ps)
    if exception is None:
        fields.extend(address_fields)

    proc = _safe(lambda: kernel.current_process())
    if proc is not None and proc.image_name:
        fields.append(("PROCESS_NAME", [proc.image_name]))

    irql = _safe(lambda: kernel.processor(kernel.crash_processor).saved_irql)
    if irql is not None:
        fields.append(("CURRENT_IRQL", [f"{irql:x}"]))

    if exception is not None:
        fields.extend(address_fields)

    if exception is not None:
        st = exception["code"]
        message = NTSTATUS_MESSAGES.get(st)
        if message:
            fields.append(("ERROR_CODE", [f"(NTSTATUS) {st:#x} - {message}"]))
        fields.append(("EXCEPTION_CODE_STR", [f"{st:x}"]))
        for i, p in enumerate(exception["parameters"][:2], 1):
            fields.append((f"EXCEPTION_PARAMETER{i}", [f"{p:0{ps * 2}x}"]))
        fields.append(("EXCEPTION_STR", [f"{st:#x}"]))

    # -- the stack
    walk = _walk(dump, resolver, kernel, walk_ctx)
    frames = walk.frames if walk is not None else []
    first_scan = getattr(walk, "first_scan", None) if walk is not None else None
    if walk is not None:
        for w in walk.warnings:
            # the unwind warning is printed inside STACK_TEXT, where the scanning starts
            if w == NO_UNWIND_WARNING and first_scan is not None:
                continue
            if w not in a.warnings:
                a.warnings.append(w)
    trap_addr = None
    if cxr_text is None:
        for f in frames:
            if f.trap_frame:
                trap_addr = f.trap_frame
                break
    searched = False
    if trap_addr is None and cxr_text is None and dump.machine == "x64":
        trap_addr = _trap_frame_of_fault(dump, resolver, kernel, base_code, args, walk_ctx)
        searched = trap_addr is not None
    if trap_addr is not None:
        regs = read_trap_frame(dump, kernel, trap_addr)
        if regs is not None and searched:
            frames, first_scan = _through_trap_frame(
                dump, resolver, kernel, frames, first_scan, trap_addr, regs
            )
        if regs is not None:
            err = _trap_err_code(kernel, trap_addr) if ps == 4 else None
            fields.append(("TRAP_FRAME", trap_frame_lines(session, dump, resolver, trap_addr, regs, err)))
    fields.append(
        (
            "STACK_TEXT",
            stack_text(resolver, frames, ps, first_scan) or ["(no stack frames could be recovered)"],
        )
    )
    a.frames = [f.to_dict() for f in frames]

    # -- the culprit
    rules = rules or default_rules()
    triples = []
    symbolized = []
    for f in frames:
        s = resolver.symbolize(f.pc)
        symbolized.append(s)
        if s.module is None:
            triples.append((None, None, 0))
        else:
            triples.append((s.module.name, s.symbol.name if s.symbol else None, s.displacement))
    start = 0
    if base_code in (0x0A, 0xD1, 0x50):
        # a page fault: the frames up to KiPageFault's trap frame are the fault handling; the
        # culprit is looked for from the faulting instruction on, as kd does after ".trap"
        at_trap = [i for i, f in enumerate(frames) if f.trap_frame]
        if at_trap and at_trap[0] + 1 < len(frames):
            start = at_trap[0] + 1
    idx = pick_culprit(triples[start:], rules) if triples[start:] else None
    if idx is not None:
        idx += start
    culprit = None
    fault = _faulting_address(base_code, args, exception)
    if (
        idx is not None
        and first_scan is not None
        and idx >= first_scan
        and fault is not None
        and all(f.pc != fault for f in frames)
    ):
        # The walk never reached the faulting instruction (no trap frame or context record led
        # there) and only a stack scan found the frame it would blame: a guess. The faulting
        # address the bugcheck itself names is a fact, and wins where it has an owner.
        culprit = _culprit_from_address(resolver, base_code, args, exception)
    if culprit is not None:
        pass
    elif idx is None:
        culprit = _culprit_from_address(resolver, base_code, args, exception)
    else:
        s = symbolized[idx]
        culprit = (s.module, s.symbol.name if s.symbol else None, s.displacement, idx)
    if culprit is not None:
        module, function, offset, frame_index = culprit
        c = bucketing.Culprit(module.name, function, offset)
        sym = bucketing.symbol_name(c)
        fields.append(("SYMBOL_NAME", [sym]))
        fields.append(("MODULE_NAME", [module.name]))
        image = _image_name(target, module)
        fields.append(("IMAGE_NAME", [image]))
        ver = _image_version(target, module)
        if ver:
            fields.append(("IMAGE_VERSION", [ver]))
        fields.append(("STACK_COMMAND", [stack_command]))
        fields.append(("BUCKET_ID_FUNC_OFFSET", [bucketing.bucket_id_func_offset(c)]))
        a.failure_bucket_id = bucketing.failure_bucket_id(code, args, c)
        owner = rules.owner(module.name, function) or "MachineOwner"
        a.followup = owner if owner.lower() != "ignore" else "MachineOwner"
        a.culprit = {
            "frame": frame_index,
            "module": module.name,
            "image_name": image,
            "function": function,
            "offset": offset,
            "symbol_name": sym,
            "image_version": ver,
        }
    else:
        fields.append(("STACK_COMMAND", [stack_command]))
        a.failure_bucket_id = bucketing.failure_bucket_id(code, args, None)
    a.stack_command = stack_command
    fields.append(("FAILURE_BUCKET_ID", [a.failure_bucket_id]))
    fields.extend(_os_fields(session, dump))
    a.failure_id_hash = bucketing.failure_id_hash(a.failure_bucket_id)
    fields.append(("FAILURE_ID_HASH", [a.failure_id_hash]))

    a.elapsed_ms = int((time.perf_counter() - t0) * 1000)
    kv[0] = ("Analysis.Elapsed.mSec", str(a.elapsed_ms))
    kv.append(("Failure.Bucket", a.failure_bucket_id))
    kv.append(("Failure.Hash", a.failure_id_hash))
    kv_lines = ["1", ""]
    for k, v in kv:
        kv_lines += [f"    Key  : {k}", f"    Value: {v}", ""]
    fields[0] = ("KEY_VALUES_STRING", kv_lines[:-1])
    a.fields = fields
    return a


def _safe(fn):
    try:
        return fn()
    except (BugcheckError, AttributeError, TypeError):
        return None


def _walk(dump, resolver, kernel, ctx):
    try:
        from bugcheck.stack.walker import walk
    except ImportError:
        return None
    try:
        return walk(dump, resolver, kernel, ctx)
    except BugcheckError:
        return None


def trap_frame_lines(
    session, dump, resolver, trap_addr: int, regs: dict, err_code: int | None = None
) -> list[str]:
    """The TRAP_FRAME block: the ``.trap`` line, kd's NOTE (once), registers, instruction.

    On x86 kd shows the address sign-extended in the ``.trap`` command and opens with the
    frame's error code instead of the NOTE (``TRAP_FRAME:  a6c4a890 -- (.trap 0xffffffffa6c4a890)``,
    ``ErrCode = 00000000`` in every published 32-bit TRAP_FRAME).
    """
    if getattr(dump, "pointer_size", 8) == 4:
        wide = trap_addr | 0xFFFFFFFF00000000 if trap_addr & 0x80000000 else trap_addr
        lines = [f"{trap_addr:08x} -- (.trap {wide:#x})", f"ErrCode = {(err_code or 0) & 0xFFFFFFFF:08x}"]
    else:
        lines = [f"{trap_addr:x} -- (.trap {trap_addr:#x})"]
    lines += _register_lines(session, dump, resolver, regs, trap=True)  # the NOTE comes with these
    lines.append("Resetting default scope")
    return lines


def _register_lines(session, dump, resolver, regs: dict, trap: bool) -> list[str]:
    from bugcheck.render.registers import register_block

    lines = list(register_block(regs, dump.machine, trap=trap))
    pc = regs.get("rip", regs.get("eip", regs.get("pc")))
    if pc is None:
        return lines
    try:
        from bugcheck.disasm import current_instruction_lines

        def read(addr, n):
            data, holes = dump.read_virtual_padded(addr, n)
            if holes:
                cut = holes[0][0] - addr
                return data[: max(cut, 0)]
            return data

        lines += current_instruction_lines(read, regs, dump.machine, resolver.symbol_for)
    except Exception:  # noqa: BLE001 - disassembly is decoration; the registers stand alone
        pass
    return lines


def _exr_lines(session, resolver, address: int, exc: dict, ps: int) -> list[str]:
    where = resolver.symbol_for(exc["address"])
    where_text = ""
    if where:
        mod_sym, _, off = where.partition("+")
        off_v = int(off, 16) if off else 0
        where_text = f" ({mod_sym}+0x{off_v:0{ps * 2}x})"
    name = NTSTATUS_NAMES.get(exc["code"], "")
    lines = [f"{address:x} -- (.exr {address:#x})"]
    lines.append(f"ExceptionAddress: {exc['address']:0{ps * 2}x}{where_text}")
    lines.append(f"   ExceptionCode: {exc['code']:08x}" + (f" ({name})" if name else ""))
    lines.append(f"  ExceptionFlags: {exc['flags']:08x}")
    lines.append(f"NumberParameters: {len(exc['parameters'])}")
    for i, p in enumerate(exc["parameters"]):
        lines.append(f"   Parameter[{i}]: {p:0{ps * 2}x}")
    if exc["code"] == 0xC0000005 and len(exc["parameters"]) >= 2:
        kind = {0: "read from", 1: "write to", 8: "execute"}.get(exc["parameters"][0], "access")
        lines.append(f"Attempt to {kind} address {exc['parameters'][1]:0{ps * 2}x}")
    return lines


def _address_fields(
    base_code: int, args: list[int], exception: dict | None, ps: int = 8
) -> list[tuple[str, list[str]]]:
    """READ_ADDRESS / WRITE_ADDRESS / EXECUTE_ADDRESS where the bugcheck tells which.

    WinDbg pads the address to the pointer width and leaves a space after it (where
    it would name the pool the address lies in).
    """
    out: list[tuple[str, list[str]]] = []
    if base_code in (0x0A, 0xD1):
        kind = {0: "READ_ADDRESS", 1: "WRITE_ADDRESS", 8: "EXECUTE_ADDRESS"}.get(
            args[2] & 0xF, "READ_ADDRESS"
        )
        out.append((kind, [f"{args[0]:0{ps * 2}x} "]))
    elif base_code == 0x50:
        kind = {0: "READ_ADDRESS", 1: "WRITE_ADDRESS", 2: "EXECUTE_ADDRESS", 10: "EXECUTE_ADDRESS"}.get(
            args[1], "READ_ADDRESS"
        )
        out.append((kind, [f"{args[0]:0{ps * 2}x} "]))
    elif exception is not None and exception["code"] == 0xC0000005 and len(exception["parameters"]) >= 2:
        kind = {0: "READ_ADDRESS", 1: "WRITE_ADDRESS", 8: "EXECUTE_ADDRESS"}.get(
            exception["parameters"][0], "READ_ADDRESS"
        )
        out.append((kind, [f"{exception['parameters'][1]:0{ps * 2}x} "]))
    return out


def _through_trap_frame(dump, resolver, kernel, frames, first_scan, trap_addr: int, regs: dict):
    """The walk as far as the trap frame, then on from the registers it saved: the frame whose
    stack pointer is the trap frame (KiPageFault's) gets ``(TrapFrame @ ...)`` and returns to the
    faulting instruction, as kd's walk crosses it."""
    from bugcheck.dumpfile.context import Context

    below = [f for f in frames if f.sp <= trap_addr]
    after = _walk(dump, resolver, kernel, Context("x64", dict(regs)))
    if not below or below[-1].sp != trap_addr or after is None or not after.frames:
        return frames, first_scan
    below[-1].trap_frame = trap_addr
    below[-1].return_address = after.frames[0].pc
    joined = below + list(after.frames)
    for i, f in enumerate(joined):
        f.number = i
    if first_scan is not None and first_scan < len(below):
        scan = first_scan
    elif after.first_scan is not None:
        scan = len(below) + after.first_scan
    else:
        scan = None
    return joined, scan


def _trap_frame_of_fault(dump, resolver, kernel, base_code: int, args: list[int], ctx) -> int | None:
    """For a page fault bugcheck (0xA, 0xD1, 0x50) whose walk crossed no trap frame (no unwind
    data for KiPageFault): the trap frame on the crash stack that saved the faulting
    instruction the bugcheck names."""
    fault = {0x0A: 3, 0xD1: 3, 0x50: 2}.get(base_code)
    sp = getattr(ctx, "sp", None) if ctx is not None else None
    if fault is None or not sp or not args[fault]:
        return None
    from bugcheck.stack.trapframe import find_trap_frame_for

    def is_code(va: int) -> bool:
        try:
            return resolver.module_at(va) is not None
        except BugcheckError:
            return False

    types = kernel.types if kernel is not None else None
    return find_trap_frame_for(dump.read_virtual, sp, args[fault], types, is_code)


def _fault_candidates(base_code: int, args: list[int], exception: dict | None) -> list[int]:
    """The faulting instruction's address as the bugcheck names it (exception record, or the
    argument that holds it), best first."""
    candidates = []
    if exception is not None:
        candidates.append(exception["address"])
    if base_code in (0x0A, 0xD1):
        candidates.append(args[3])
    elif base_code == 0x50:
        candidates.append(args[2])
    elif base_code in (0x1E, 0x7E, 0x8E, 0x3B):
        candidates.append(args[1])
    return [a for a in candidates if a]


def _faulting_address(base_code: int, args: list[int], exception: dict | None) -> int | None:
    found = _fault_candidates(base_code, args, exception)
    return found[0] if found else None


def _culprit_from_address(resolver, base_code: int, args: list[int], exception: dict | None):
    """With no usable frame, blame the module holding the faulting address the bugcheck names."""
    for addr in _fault_candidates(base_code, args, exception):
        s = resolver.symbolize(addr)
        if s.module is not None:
            return (s.module, s.symbol.name if s.symbol else None, s.displacement, None)
    return None


def stack_text(resolver, frames, pointer_size: int = 8, first_scan: int | None = None) -> list[str]:
    """STACK_TEXT lines as ``kb`` without numbers.

    x64: ``Child-SP RetAddr     : Args to Child : Call Site``; x86 has no colons:
    ``ChildEBP RetAddr Arg1 Arg2 Arg3 Call Site``. The unwind warning sits before
    the first frame found by scanning, as in ``k``.
    """
    lines = []
    for i, f in enumerate(frames):
        if first_scan is not None and i == first_scan:
            lines.append(NO_UNWIND_WARNING)
        call_site = f.symbol or resolver.format_address(f.pc)
        if pointer_size == 4:
            ebp = f.fp if getattr(f, "fp", None) is not None else f.sp
            args = (list(f.args) + [None] * 3)[:3]
            arg_text = " ".join(hex_addr(v, 4) for v in args)
            lines.append(f"{hex_addr(ebp, 4)} {hex_addr(f.return_address, 4)} {arg_text} {call_site}")
            continue
        args = (list(f.args) + [None] * 4)[:4]
        arg_text = " ".join(hex_addr(v, pointer_size) for v in args)
        lines.append(
            f"{hex_addr(f.sp, pointer_size)} {hex_addr(f.return_address, pointer_size)}     : {arg_text} : {call_site}"
        )
    return lines
