"""The hole fallback survives sources that fail to load, and a tiny image maps without crashing."""

from __future__ import annotations

from bugcheck.memory.fallback import RangeFallback
from bugcheck.symbols.pe.mapping import _set_image_base


class _Piece:
    def pieces(self, va, n):
        return [(va, b"\x90" * n)]


def test_a_source_that_raises_is_no_source_and_is_not_asked_again():
    calls = []

    def load(key):
        calls.append(key)
        if key == "bad":
            raise ValueError("malformed image")
        return _Piece()

    fb = RangeFallback([(0x1000, 0x1000, "bad"), (0x3000, 0x1000, "good")], load)
    assert fb(0x1800, 4) == []
    assert fb(0x1800, 4) == []
    assert fb(0x3000, 2) == [(0x3000, b"\x90\x90")]
    assert calls == ["bad", "good"]
    assert fb.loaded() == {"bad": False, "good": True}


def test_image_base_update_skips_a_buffer_without_a_dos_header():
    buf = bytearray(0x20)
    _set_image_base(buf, object(), 0xFFFFF800_00000000)  # no header to patch: no error
    assert buf == bytearray(0x20)
