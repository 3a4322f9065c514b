"""MASM expressions against hand-computed values."""

from __future__ import annotations

import pytest

from bugcheck.commands.expr import (
    MASK64,
    Evaluator,
    ExprEnv,
    evaluate,
    evaluate_line,
    formats_table,
)
from bugcheck.errors import CommandError, MemoryNotPresent


class Env(ExprEnv):
    regs = {"rip": 0xFFFFF80060DA1981, "rsp": 0xFFFFD48F77AF9970, "rax": 0x00000000C85C00F0, "rbx": 0}
    pseudo = {"$ip": 0xFFFFF80060DA1981, "$bug_code": 0xD1}
    syms = {"nt!KiPageFault": 0xFFFFF80062A05000, "myfault": 0xFFFFF80060DA0000, "abc": 1, "beef!abc": 0x1234}
    memory = {0x1000: bytes(range(0x10, 0x30))}

    def register(self, name):
        return self.regs.get(name)

    def pseudo_register(self, name):
        return self.pseudo.get(name)

    def symbol(self, name):
        return self.syms.get(name)

    def read_memory(self, address, size):
        for base, data in self.memory.items():
            if base <= address and address + size <= base + len(data):
                return data[address - base : address - base + size]
        raise MemoryNotPresent(address)


def ev(text):
    return Evaluator(Env()).evaluate(text)


@pytest.mark.parametrize(
    "text,value",
    [
        ("10", 0x10),
        ("0x10", 0x10),
        ("0n10", 10),
        ("0y1011", 11),
        ("0t17", 15),
        ("fffff800`62600000", 0xFFFFF80062600000),
        ("DEADbeef", 0xDEADBEEF),
        ("-1", MASK64),
        ("+5", 5),
        ("~0", MASK64),
        ("~0n5", MASK64 - 5),
        ("!0", 1),
        ("!7", 0),
        ("3*5", 0xF),
        ("0n100/0n7", 14),
        ("-0n7/2", (-3) & MASK64),
        ("0n100%0n7", 2),
        ("0n100 mod 0n7", 2),
        ("1+2*3", 7),
        ("(1+2)*3", 9),
        ("10-20", (-0x10) & MASK64),
        ("1<<0n63", 1 << 63),
        ("1<<0n64", 0),
        ("80000000`00000000>>4", 0x0800000000000000),
        ("80000000`00000000>>>4", 0xF800000000000000),
        ("0f0 & 3c", 0x30),
        ("0f0 and 3c", 0x30),
        ("0f0 ^ 3c", 0xCC),
        ("0f0 xor 3c", 0xCC),
        ("0f0 | 3c", 0xFC),
        ("0f0 or 3c", 0xFC),
        ("5 == 5", 1),
        ("5 = 6", 0),
        ("5 != 6", 1),
        ("-1 < 1", 1),
        ("2 > 1", 1),
        ("2 <= 2", 1),
        ("1 >= 2", 0),
        ("hi(12345678)", 0x1234),
        ("low(12345678)", 0x5678),
        ("ffffffff`ffffffff+2", 1),
        ("2*8000000000000000", 0),
        ("1|2&3", 3),  # & binds tighter than |
        ("1+1==2", 1),  # comparison looser than +
        ("1<<2+1", 8),  # + tighter than <<
    ],
)
def test_operators(text, value):
    assert ev(text) == value


def test_registers_pseudo_and_symbols():
    assert ev("rip") == 0xFFFFF80060DA1981
    assert ev("@rsp+8") == 0xFFFFD48F77AF9978
    assert ev("@rax") == 0xC85C00F0
    assert ev("$ip") == ev("@$ip") == 0xFFFFF80060DA1981
    assert ev("@$bug_code") == 0xD1
    assert ev("nt!KiPageFault+0x469") == 0xFFFFF80062A05469
    assert ev("myfault+1981") == 0xFFFFF80060DA1981
    # a word that is valid hex is a number even when a symbol has that name
    assert ev("abc") == 0xABC
    assert ev("beef!abc") == 0x1234


def test_memory_functions():
    assert ev("by(1000)") == 0x10
    assert ev("wo(1000)") == 0x1110
    assert ev("dwo(1000)") == 0x13121110
    assert ev("qwo(1000)") == 0x1716151413121110
    assert ev("poi(1008)") == 0x1F1E1D1C1B1A1918
    assert ev("poi(1000+8)+1") == 0x1F1E1D1C1B1A1919
    with pytest.raises(CommandError, match="Memory access error"):
        ev("poi(2000)")


@pytest.mark.parametrize(
    "text,msg",
    [
        ("nosuchsym", "Couldn't resolve error at 'nosuchsym'"),
        ("1+nosuchsym", "Couldn't resolve error at 'nosuchsym'"),
        ("@foo", "Bad register error at '@foo'"),
        ("$nope", "Bad register error at '$nope'"),
        ("1/0", "Divide by zero error"),
        ("1 mod 0", "Divide by zero error"),
        ("(1+2", "Syntax error"),
        ("", "Numeric expression missing"),
        ("1 2", "Syntax error at '2'"),
    ],
)
def test_errors(text, msg):
    with pytest.raises(CommandError) as e:
        ev(text)
    assert msg in str(e.value)


def test_prefix_splits_command_arguments():
    e = Evaluator(Env())
    assert e.evaluate_prefix("rsp L4") == (0xFFFFD48F77AF9970, 4)
    assert e.evaluate_prefix("rsp+8 L?10") == (0xFFFFD48F77AF9978, 6)
    v, end = e.evaluate_prefix("1000 1010")
    assert (v, "1000 1010"[end:]) == (0x1000, "1010")


def test_no_env_resolves_nothing():
    assert evaluate("1+1") == 2
    with pytest.raises(CommandError):
        evaluate("rip")


def test_question_mark_line():
    assert evaluate_line(1234) == "Evaluate expression: 1234 = 00000000`000004d2"
    assert evaluate_line(MASK64) == "Evaluate expression: -1 = ffffffff`ffffffff"
    assert evaluate_line(0xFFFFFFFF, pointer_size=4) == "Evaluate expression: -1 = ffffffff"
    assert evaluate_line(MASK64, pointer_size=4) == "Evaluate expression: -1 = ffffffff"
    assert evaluate_line(0x80000000, pointer_size=4) == "Evaluate expression: -2147483648 = 80000000"
    assert (
        evaluate_line(0x1_0000_0000, pointer_size=4) == "Evaluate expression: 4294967296 = 00000001`00000000"
    )


def test_formats_table():
    lines = formats_table(0x1234).splitlines()
    assert lines[0] == "Evaluate expression:"
    assert lines[1] == "  Hex:     00000000`00001234"
    assert lines[2] == "  Decimal: 4660"
    assert lines[3] == "  Decimal (unsigned) : 4660"
    assert lines[4] == "  Octal:   0000000000000000011064"
    assert lines[5] == "  Binary:  " + " ".join(["00000000"] * 6 + ["00010010", "00110100"])
    assert lines[6] == "  Chars:   .......4"
    assert lines[7] == "  Time:    Thu Jan  1 01:17:40 1970"
    assert lines[8].startswith("  Float:   low 6.53") and lines[8].endswith("high 0")
    assert lines[9] == "  Double:  2.30235e-320"
    neg = formats_table(MASK64).splitlines()
    assert neg[2] == "  Decimal: -1" and neg[3] == f"  Decimal (unsigned) : {MASK64}"
