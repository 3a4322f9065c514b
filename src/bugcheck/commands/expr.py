"""WinDbg's MASM expression language.

Numbers are hexadecimal unless prefixed (``0n`` decimal, ``0x`` hex, ``0y``
binary, ``0t`` octal); a backtick may split a 64-bit number
(``fffff800`62600000``). Names are registers (``rip`` or ``@rip``),
pseudo-registers (``$ip``, ``@$thread``), or symbols (``nt!KiPageFault``,
``myfault``). Arithmetic wraps at 64 bits, as the debugger's does.

The evaluator does not know about dumps: it asks an :class:`ExprEnv` for
registers, pseudo-registers, symbols and memory, so the session (or a test)
supplies those.
"""

from __future__ import annotations

import datetime as _dt
import struct
from dataclasses import dataclass

from bugcheck.errors import CommandError, MemoryNotPresent

MASK64 = (1 << 64) - 1


def to_signed(value: int, bits: int = 64) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class ExprEnv:
    """What an expression can see; the session subclasses this. Each lookup returns None when unknown."""

    pointer_size = 8

    def register(self, name: str) -> int | None:
        return None

    def pseudo_register(self, name: str) -> int | None:
        return None

    def symbol(self, name: str) -> int | None:
        return None

    def read_memory(self, address: int, size: int) -> bytes:
        raise MemoryNotPresent(address)


# Token kinds
_NUM, _NAME, _OP, _END = "num", "name", "op", "end"

_WORD_OPS = {"mod": "%", "and": "&", "xor": "^", "or": "|"}
_UNARY_FUNCS = {"poi", "by", "wo", "dwo", "qwo", "hi", "low"}
_OPS = [
    "<<",
    ">>>",
    ">>",
    "==",
    "!=",
    "<=",
    ">=",
    "(",
    ")",
    "+",
    "-",
    "*",
    "/",
    "%",
    "&",
    "^",
    "|",
    "~",
    "!",
    "<",
    ">",
    "=",
]
_OPS.sort(key=len, reverse=True)


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int
    value: int = 0


def _parse_number(text: str) -> int | None:
    """MASM number literal (backticks already removed), or None when ``text`` is not one."""
    t = text.lower()
    radix = 16
    if t.startswith("0n"):
        radix, t = 10, t[2:]
    elif t.startswith("0x"):
        t = t[2:]
    elif t.startswith("0y"):
        radix, t = 2, t[2:]
    elif t.startswith("0t"):
        radix, t = 8, t[2:]
    elif t.endswith("h") and len(t) > 1:
        t = t[:-1]  # MASM's hex suffix: 57724231h
    if not t:
        return None
    try:
        return int(t, radix)
    except ValueError:
        return None


class _Lexer:
    def __init__(self, text: str):
        self.text = text
        self.toks: list[_Tok] = []
        self._lex()

    def _lex(self) -> None:
        s, i, n = self.text, 0, len(self.text)
        while i < n:
            c = s[i]
            if c.isspace():
                i += 1
                continue
            start = i
            # '!' starts a name only when glued to a word before it (mod!sym); alone it is "not"
            if c.isalnum() or c in "_$@`":
                while i < n and (s[i].isalnum() or s[i] in "_$@`!:."):
                    if s[i] == "!" and s.startswith("!=", i):
                        break
                    # "::" is part of C++ names; a lone ':' ends the token
                    if s[i] == ":" and not s.startswith("::", i) and not s.startswith("::", i - 1):
                        break
                    # a trailing '.' is not part of a name
                    if s[i] == "." and not (i + 1 < n and (s[i + 1].isalnum() or s[i + 1] == "_")):
                        break
                    i += 1
                word = s[start:i]
                low = word.lower()
                if low in _WORD_OPS:
                    self.toks.append(_Tok(_OP, _WORD_OPS[low], start))
                elif c.isdigit():
                    val = _parse_number(word.replace("`", ""))
                    if val is None:
                        self.toks.append(_Tok(_NAME, word, start))
                    else:
                        self.toks.append(_Tok(_NUM, word, start, val))
                else:
                    self.toks.append(_Tok(_NAME, word, start))
                continue
            for op in _OPS:
                if s.startswith(op, i):
                    self.toks.append(_Tok(_OP, op, i))
                    i += len(op)
                    break
            else:
                # not part of any expression: the expression (if any) ends here
                self.toks.append(_Tok(_END, "", i))
                return
        self.toks.append(_Tok(_END, "", n))


# Binary operator precedence, loosest first (MASM order).
_LEVELS = [
    {"|"},
    {"^"},
    {"&"},
    {"==", "=", "!=", "<", ">", "<=", ">="},
    {"<<", ">>", ">>>"},
    {"+", "-"},
    {"*", "/", "%"},
]


class Evaluator:
    """Parse-and-evaluate in one pass (recursive descent)."""

    def __init__(self, env: ExprEnv):
        self.env = env

    # public ------------------------------------------------------------------------------------
    def evaluate(self, text: str) -> int:
        value, end = self.evaluate_prefix(text)
        if text[end:].strip():
            raise CommandError(f"Syntax error at '{text[end:].strip()}'")
        return value

    def evaluate_prefix(self, text: str) -> tuple[int, int]:
        """Evaluate the longest expression at the start of ``text``; return (value, end offset).

        Commands use this to split ``dd rsp+8 L4`` or ``db a b`` into expressions: a
        new operand after a complete operand (separated by space) ends the expression.
        """
        if not text.strip():
            raise CommandError(f"Numeric expression missing from '{text}'")
        self.text = text
        self.toks = _Lexer(text).toks
        self.i = 0
        value = self._binary(0)
        tok = self.toks[self.i]
        return value & MASK64, tok.pos

    # grammar -----------------------------------------------------------------------------------
    def _peek(self) -> _Tok:
        return self.toks[self.i]

    def _take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def _rest(self, tok: _Tok) -> str:
        return self.text[tok.pos :]

    def _binary(self, level: int) -> int:
        if level == len(_LEVELS):
            return self._unary()
        left = self._binary(level + 1)
        while True:
            tok = self._peek()
            if tok.kind != _OP or tok.text not in _LEVELS[level]:
                return left
            self._take()
            right = self._binary(level + 1)
            left = self._apply(tok, left, right) & MASK64

    def _apply(self, tok: _Tok, a: int, b: int) -> int:
        op = tok.text
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op in ("/", "%"):
            if b & MASK64 == 0:
                raise CommandError(f"Divide by zero error at '{self._rest(tok)[1:].strip()}'")
            sa, sb = to_signed(a), to_signed(b)
            q = abs(sa) // abs(sb)
            if (sa < 0) != (sb < 0):
                q = -q
            return q if op == "/" else sa - q * sb
        if op == "<<":
            return a << (b & 63) if b < 64 else 0
        if op == ">>":
            return (a & MASK64) >> b if b < 64 else 0
        if op == ">>>":
            return to_signed(a) >> min(b, 63)
        if op == "&":
            return a & b
        if op == "^":
            return a ^ b
        if op == "|":
            return a | b
        sa, sb = to_signed(a), to_signed(b)
        return int(
            {
                "==": sa == sb,
                "=": sa == sb,
                "!=": sa != sb,
                "<": sa < sb,
                ">": sa > sb,
                "<=": sa <= sb,
                ">=": sa >= sb,
            }[op]
        )

    def _unary(self) -> int:
        tok = self._peek()
        if tok.kind == _OP and tok.text in ("-", "+", "~", "!"):
            self._take()
            v = self._unary()
            if tok.text == "-":
                return (-v) & MASK64
            if tok.text == "~":
                return ~v & MASK64
            if tok.text == "!":
                return int(v == 0)
            return v
        if tok.kind == _NAME and tok.text.lower() in _UNARY_FUNCS:
            nxt = self.toks[self.i + 1]
            if nxt.kind == _OP and nxt.text == "(":
                self._take()
                v = self._unary()
                return self._function(tok, v)
        return self._primary()

    def _function(self, tok: _Tok, v: int) -> int:
        name = tok.text.lower()
        if name == "hi":
            return (v >> 16) & 0xFFFF
        if name == "low":
            return v & 0xFFFF
        size = {"by": 1, "wo": 2, "dwo": 4, "qwo": 8, "poi": self.env.pointer_size}[name]
        try:
            data = self.env.read_memory(v, size)
        except MemoryNotPresent as e:
            raise CommandError(f"Memory access error at '{self._rest(tok)}'") from e
        if len(data) < size:
            raise CommandError(f"Memory access error at '{self._rest(tok)}'")
        return int.from_bytes(data[:size], "little")

    def _primary(self) -> int:
        tok = self._take()
        if tok.kind == _NUM:
            return tok.value & MASK64
        if tok.kind == _OP and tok.text == "(":
            v = self._binary(0)
            close = self._take()
            if close.kind != _OP or close.text != ")":
                raise CommandError(f"Syntax error at '{self._rest(close) or self.text}'")
            return v
        if tok.kind == _NAME:
            return self._name(tok)
        if tok.kind == _END:
            raise CommandError(f"Numeric expression missing from '{self.text[tok.pos :] or self.text}'")
        raise CommandError(f"Syntax error at '{self._rest(tok)}'")

    def _name(self, tok: _Tok) -> int:
        word = tok.text
        rest = self._rest(tok)
        if word.startswith("@"):
            name = word[1:]
            if name.startswith("$"):
                v = self.env.pseudo_register(name.lower())
            else:
                v = self.env.register(name.lower())
            if v is None:
                raise CommandError(f"Bad register error at '{rest}'")
            return v & MASK64
        if word.startswith("$"):
            v = self.env.pseudo_register(word.lower())
            if v is None:
                raise CommandError(f"Bad register error at '{rest}'")
            return v & MASK64
        plain = word.replace("`", "")
        num = _parse_number(plain)
        if num is not None and "!" not in word:
            return num & MASK64
        v = self.env.register(word.lower())
        if v is not None:
            return v & MASK64
        v = self.env.symbol(word)
        if v is not None:
            return v & MASK64
        raise CommandError(f"Couldn't resolve error at '{rest}'")


def evaluate(text: str, env: ExprEnv | None = None) -> int:
    return Evaluator(env or ExprEnv()).evaluate(text)


# -- output helpers -------------------------------------------------------------------------------


def hex64(value: int) -> str:
    value &= MASK64
    return f"{value >> 32:08x}`{value & 0xFFFFFFFF:08x}"


def evaluate_line(value: int, pointer_size: int = 8) -> str:
    """``?``'s answer: signed decimal, then the hex in the target's pointer width."""
    if pointer_size == 4 and (value <= 0xFFFFFFFF or value >> 31 == (1 << 33) - 1):
        # 32-bit targets: values that fit (or are sign-extended from) 32 bits print as 32 bits
        low = value & 0xFFFFFFFF
        return f"Evaluate expression: {to_signed(low, 32)} = {low:08x}"
    return f"Evaluate expression: {to_signed(value)} = {hex64(value)}"


def _ctime(t: _dt.datetime) -> str:
    return f"{t:%a %b} {t.day:2d} {t:%H:%M:%S} {t.year}"


def _format_time(value: int) -> str:
    epoch = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
    try:
        if value <= 0xFFFFFFFF:
            return _ctime(epoch + _dt.timedelta(seconds=value))
        t = _dt.datetime(1601, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(microseconds=value // 10)
        return f"{t:%a %b} {t.day:2d} {t:%H:%M:%S}.{t.microsecond // 1000:03d} {t.year} (UTC + 0:00)"
    except (OverflowError, ValueError):
        return "***** Invalid"


def _g(x: float) -> str:
    if x != x:
        return "-nan(ind)" if struct.pack("<d", x)[7] & 0x80 else "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return f"{x:g}"


def formats_table(value: int) -> str:
    """``.formats``: one value in every representation WinDbg lists."""
    value &= MASK64
    raw = value.to_bytes(8, "big")
    chars = "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in raw)
    binary = " ".join(f"{b:08b}" for b in raw)
    lo = struct.unpack("<f", struct.pack("<I", value & 0xFFFFFFFF))[0]
    hi = struct.unpack("<f", struct.pack("<I", value >> 32))[0]
    dbl = struct.unpack("<d", struct.pack("<Q", value))[0]
    return "\n".join(
        [
            "Evaluate expression:",
            f"  Hex:     {hex64(value)}",
            f"  Decimal: {to_signed(value)}",
            f"  Decimal (unsigned) : {value}",
            f"  Octal:   {value:022o}",
            f"  Binary:  {binary}",
            f"  Chars:   {chars}",
            f"  Time:    {_format_time(value)}",
            f"  Float:   low {_g(lo)} high {_g(hi)}",
            f"  Double:  {_g(dbl)}",
        ]
    )
