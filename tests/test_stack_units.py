"""Walker pieces on synthetic data: prolog decoding, call detection, trap frames, trap-handler names."""

from __future__ import annotations

import struct

from bugcheck.stack import trapframe
from bugcheck.stack.scan import call_before, prolog_frame, prolog_size
from bugcheck.stack.walker import is_trap_handler


class _Code:
    """A CodeMap stand-in: one code buffer at ``base``; everything else absent."""

    zero_filled = False

    def __init__(self, base: int, code: bytes):
        self.base, self.code = base, code

    def code_bytes(self, va: int, n: int):
        off = va - self.base
        if off < 0 or off + n > len(self.code):
            return None
        return self.code[off : off + n]


BASE = 0xFFFFF80000001000


def test_prolog_pushes_and_alloc():
    # push rbp; push rsi; push rdi; push r12; sub rsp, 0x1e0; lea rbp, [rsp+40h]; nop...
    code = bytes.fromhex("40555657415448 81ece0010000 488d6c2440".replace(" ", "")) + b"\x90" * 64
    c = _Code(BASE, code)
    # the frame pointer set up right after the allocation makes the size a lower bound
    assert prolog_frame(c, BASE, BASE + 0x30) == (4 * 8 + 0x1E0, True)
    assert prolog_size(c, BASE, BASE + 0x30) is None
    # in the middle of the pushes only the executed ones count
    assert prolog_size(c, BASE, BASE + 2) == 8
    assert prolog_size(c, BASE, BASE) == 0
    plain = bytes.fromhex("5356 4881ec88000000 8bc1".replace(" ", "")) + b"\x90" * 16
    assert prolog_size(_Code(BASE, plain), BASE, BASE + 0x14) == 16 + 0x88


def test_prolog_home_saves_and_pushfq():
    # mov [rsp+8], rcx; mov [rsp+10h], rdx; pushfq; sub rsp, 30h; cli
    code = bytes.fromhex("48894c2408 4889542410 9c 4883ec30 fa".replace(" ", "")) + b"\x90" * 32
    assert prolog_size(_Code(BASE, code), BASE, BASE + 0x20) == 8 + 0x30


def test_prolog_frame_pointer_is_a_lower_bound():
    # push rbp; mov rbp, rsp; push rbx; mov eax, ebx ...
    code = bytes.fromhex("55 4889e5 53 89d8".replace(" ", "")) + b"\x90" * 32
    got = prolog_frame(_Code(BASE, code), BASE, BASE + 0x10)
    assert got == (16, True)
    assert prolog_size(_Code(BASE, code), BASE, BASE + 0x10) is None


def test_prolog_unknown_bytes():
    assert prolog_size(_Code(BASE, b""), BASE + 0x100, BASE + 0x140) is None


def test_call_before():
    # call rel32 ending at BASE+5; then "mov eax, 1" ending at BASE+10
    code = bytes.fromhex("e800000000 b801000000 ffd0".replace(" ", ""))
    c = _Code(BASE, code)
    assert call_before(c, BASE + 5) == (True, BASE + 5)
    assert call_before(c, BASE + 10)[0] is False
    assert call_before(c, BASE + 12) == (True, None)  # call rax
    assert call_before(c, BASE + 0x1000) == (None, None)


def test_zeros_before_a_return_address_are_only_doubtful_in_a_re_pack():
    """``mov eax,100h`` ends in zero bytes: in a real dump that is simply no call; only a dump
    re-packed from a partial capture (whose uncaptured bytes read as zeros) leaves it open."""
    code = bytes.fromhex("9090b800010000c3")
    real = _Code(BASE, code)
    assert call_before(real, BASE + 7)[0] is False
    repacked = _Code(BASE, code)
    repacked.zero_filled = True
    assert call_before(repacked, BASE + 7) == (None, None)


def _trap(rip: int, rsp: int, cs: int = 0x10) -> bytes:
    raw = bytearray(trapframe.X64_TRAP_FRAME_SIZE)
    struct.pack_into("<Q", raw, 0x30, 0x1234)  # Rax
    struct.pack_into("<Q", raw, 0x158, 0xBEEF)  # Rbp
    struct.pack_into("<Q", raw, 0x168, rip)
    struct.pack_into("<H", raw, 0x170, cs)
    struct.pack_into("<I", raw, 0x178, 0x10286)
    struct.pack_into("<Q", raw, 0x180, rsp)
    struct.pack_into("<H", raw, 0x188, 0x18)
    return bytes(raw)


def test_trap_frame_fixed_layout():
    addr = 0xFFFF850429891F90
    raw = _trap(0xFFFFF8048B58334C, addr + 0x190)
    regs = trapframe.read_trap_frame(lambda va, n: raw[va - addr : va - addr + n], addr)
    assert regs["rip"] == 0xFFFFF8048B58334C and regs["rsp"] == addr + 0x190
    assert regs["rax"] == 0x1234 and regs["rbp"] == 0xBEEF and regs["cs"] == 0x10 and regs["efl"] == 0x10286
    assert trapframe.plausible_trap_frame(regs, addr, lambda va: va >> 47 == 0x1FFFF)
    # a kernel code segment with a user-mode rip is not a trap frame
    bad = trapframe.read_trap_frame(lambda va, n: _trap(0x7FF8F16ECE54, addr + 0x190)[va - addr :][:n], addr)
    assert not trapframe.plausible_trap_frame(bad, addr, lambda va: va >> 47 == 0x1FFFF)
    user = trapframe.read_trap_frame(
        lambda va, n: _trap(0x7FF8F16ECE54, 0x7AE6BDE8D8, 0x33)[va - addr :][:n], addr
    )
    assert trapframe.plausible_trap_frame(user, addr, lambda va: False)


def test_switch_frame():
    ks = 0xFFFFD48F777BEAD0
    raw = bytes(0x30) + struct.pack("<QQ", 0x2, 0xFFFFF8006280C970)
    ctx = trapframe.switch_frame_context(lambda va, n: raw[va - ks : va - ks + n], ks)
    assert ctx.regs == {"rip": 0xFFFFF8006280C970, "rsp": 0xFFFFD48F777BEB10, "rbp": 2}


def test_trap_handler_names():
    for name in ("nt!KiPageFault+0x469", "nt!KiSystemServiceCopyEnd+0x25", "nt!KiBreakpointTrap+0x10",
                 "nt!KiSegmentNotPresentFault+0x335", "nt!KiDpcInterrupt+0x3c"):  # fmt: skip
        assert is_trap_handler(name), name
    for name in (
        "nt!KiExceptionDispatch+0x12c",
        "nt!KeBugCheckEx",
        "myfault+0x1981",
        "foo!KiPageFault",
        None,
    ):
        assert not is_trap_handler(name), name
