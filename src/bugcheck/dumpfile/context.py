"""Register contexts (x64, x86, ARM64 CONTEXT records) as plain dicts of WinDbg names.

Only the fields WinDbg's ``r`` shows are decoded; the raw record is kept so a
command that needs more (XMM, debug registers) can still reach it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

X64_CONTEXT_SIZE = 0x4D0
X86_CONTEXT_SIZE = 0x2CC
ARM64_CONTEXT_SIZE = 0x390

_PC = {"x64": "rip", "x86": "eip", "arm64": "pc"}
_SP = {"x64": "rsp", "x86": "esp", "arm64": "sp"}
_FP = {"x64": "rbp", "x86": "ebp", "arm64": "fp"}

# (name, offset, size) for the fields decoded from each CONTEXT layout.
_X64_FIELDS = [
    ("cs", 0x38, 2),
    ("ds", 0x3A, 2),
    ("es", 0x3C, 2),
    ("fs", 0x3E, 2),
    ("gs", 0x40, 2),
    ("ss", 0x42, 2),
    ("efl", 0x44, 4),
    ("dr0", 0x48, 8),
    ("dr1", 0x50, 8),
    ("dr2", 0x58, 8),
    ("dr3", 0x60, 8),
    ("dr6", 0x68, 8),
    ("dr7", 0x70, 8),
    ("rax", 0x78, 8),
    ("rcx", 0x80, 8),
    ("rdx", 0x88, 8),
    ("rbx", 0x90, 8),
    ("rsp", 0x98, 8),
    ("rbp", 0xA0, 8),
    ("rsi", 0xA8, 8),
    ("rdi", 0xB0, 8),
    ("r8", 0xB8, 8),
    ("r9", 0xC0, 8),
    ("r10", 0xC8, 8),
    ("r11", 0xD0, 8),
    ("r12", 0xD8, 8),
    ("r13", 0xE0, 8),
    ("r14", 0xE8, 8),
    ("r15", 0xF0, 8),
    ("rip", 0xF8, 8),
    ("mxcsr", 0x34, 4),
]

_X86_FIELDS = [
    ("dr0", 0x04, 4),
    ("dr1", 0x08, 4),
    ("dr2", 0x0C, 4),
    ("dr3", 0x10, 4),
    ("dr6", 0x14, 4),
    ("dr7", 0x18, 4),
    ("gs", 0x8C, 4),
    ("fs", 0x90, 4),
    ("es", 0x94, 4),
    ("ds", 0x98, 4),
    ("edi", 0x9C, 4),
    ("esi", 0xA0, 4),
    ("ebx", 0xA4, 4),
    ("edx", 0xA8, 4),
    ("ecx", 0xAC, 4),
    ("eax", 0xB0, 4),
    ("ebp", 0xB4, 4),
    ("eip", 0xB8, 4),
    ("cs", 0xBC, 4),
    ("efl", 0xC0, 4),
    ("esp", 0xC4, 4),
    ("ss", 0xC8, 4),
]

_ARM64_FIELDS = [("cpsr", 0x04, 4)] + [(f"x{i}", 0x08 + 8 * i, 8) for i in range(29)]
_ARM64_FIELDS += [("fp", 0xF0, 8), ("lr", 0xF8, 8), ("sp", 0x100, 8), ("pc", 0x108, 8)]
_ARM64_FIELDS += [("fpcr", 0x310, 4), ("fpsr", 0x314, 4)]

_LAYOUTS = {
    "x64": (_X64_FIELDS, X64_CONTEXT_SIZE, 0x30),
    "x86": (_X86_FIELDS, X86_CONTEXT_SIZE, 0x00),
    "arm64": (_ARM64_FIELDS, ARM64_CONTEXT_SIZE, 0x00),
}

_FMT = {1: "<B", 2: "<H", 4: "<I", 8: "<Q"}


@dataclass
class Context:
    """One processor's registers, named as WinDbg prints them (lower case)."""

    arch: str
    regs: dict[str, int] = field(default_factory=dict)
    flags: int = 0
    raw: bytes = b""

    @property
    def pc(self) -> int:
        return self.regs.get(_PC[self.arch], 0)

    @pc.setter
    def pc(self, value: int) -> None:
        self.regs[_PC[self.arch]] = value

    @property
    def sp(self) -> int:
        return self.regs.get(_SP[self.arch], 0)

    @sp.setter
    def sp(self, value: int) -> None:
        self.regs[_SP[self.arch]] = value

    @property
    def fp(self) -> int:
        return self.regs.get(_FP[self.arch], 0)

    @fp.setter
    def fp(self, value: int) -> None:
        self.regs[_FP[self.arch]] = value

    @property
    def pointer_size(self) -> int:
        return 4 if self.arch == "x86" else 8

    def copy(self) -> Context:
        return Context(self.arch, dict(self.regs), self.flags, self.raw)

    @classmethod
    def size_for(cls, arch: str) -> int:
        return _LAYOUTS[arch][1]

    @classmethod
    def parse(cls, arch: str, data: bytes) -> Context:
        """Decode a CONTEXT record; bytes beyond ``data`` read as zero (short records are tolerated)."""
        fields, size, flags_off = _LAYOUTS[arch]
        buf = bytes(data[:size])
        if len(buf) < size:
            buf = buf + bytes(size - len(buf))
        regs = {name: struct.unpack_from(_FMT[n], buf, off)[0] for name, off, n in fields}
        flags = struct.unpack_from("<I", buf, flags_off)[0]
        return cls(arch, regs, flags, buf)
