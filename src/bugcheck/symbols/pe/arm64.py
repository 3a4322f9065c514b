"""ARM64 ``.pdata`` entries: packed (in-line) and full (``.xdata``) unwind data."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from bugcheck.errors import BadFileError, MemoryNotPresent

MAX_CODE_BYTES = 31 * 4 * 8  # extended header allows 255 words; cap generously
MAX_EPILOG_SCOPES = 1024


@dataclass(frozen=True, slots=True)
class Packed:
    """Packed unwind data (flag 1 or 2), fields named as in Microsoft's ARM64 EH documentation."""

    flag: int
    function_length: int  # bytes
    reg_f: int
    reg_i: int
    h: int
    cr: int
    frame_size: int  # bytes


@dataclass(slots=True)
class XData:
    rva: int
    function_length: int  # bytes
    version: int
    x: bool
    e: bool
    epilog_scopes: list[tuple[int, int]] = field(default_factory=list)  # (start offset bytes, code index)
    single_epilog_index: int | None = None
    codes: bytes = b""
    handler_rva: int | None = None


@dataclass(slots=True)
class Arm64Function:
    begin: int
    raw: int
    index: int = 0
    packed: Packed | None = None
    xdata_rva: int | None = None
    _image: object = field(default=None, repr=False)
    _xdata: XData | None = field(default=None, repr=False)

    @property
    def end(self) -> int:
        if self.packed is not None:
            return self.begin + self.packed.function_length
        xd = self.xdata
        return self.begin + (xd.function_length if xd else 4)

    def contains(self, rva: int) -> bool:
        return self.begin <= rva < self.end

    @property
    def xdata(self) -> XData | None:
        if self.xdata_rva is None:
            return None
        if self._xdata is None:
            self._xdata = decode_xdata(self.xdata_rva, self._image.read, getattr(self._image, "path", None))
        return self._xdata


def decode_packed(raw: int) -> Packed:
    return Packed(
        flag=raw & 3,
        function_length=((raw >> 2) & 0x7FF) * 4,
        reg_f=(raw >> 13) & 7,
        reg_i=(raw >> 16) & 0xF,
        h=(raw >> 20) & 1,
        cr=(raw >> 21) & 3,
        frame_size=((raw >> 23) & 0x1FF) * 16,
    )


def decode_xdata(rva: int, read, path: str | None = None) -> XData:
    try:
        (w0,) = struct.unpack("<I", read(rva, 4))
        pos = rva + 4
        flen = (w0 & 0x3FFFF) * 4
        vers = (w0 >> 18) & 3
        x = bool((w0 >> 20) & 1)
        e = bool((w0 >> 21) & 1)
        ecount = (w0 >> 22) & 0x1F
        cwords = (w0 >> 27) & 0x1F
        if ecount == 0 and cwords == 0:
            (w1,) = struct.unpack("<I", read(pos, 4))
            pos += 4
            ecount, cwords = w1 & 0xFFFF, (w1 >> 16) & 0xFF
        xd = XData(rva, flen, vers, x, e)
        if e:
            xd.single_epilog_index = ecount
        else:
            n = min(ecount, MAX_EPILOG_SCOPES)
            data = read(pos, 4 * n) if n else b""
            for i in range(n):
                (w,) = struct.unpack_from("<I", data, 4 * i)
                xd.epilog_scopes.append(((w & 0x3FFFF) * 4, w >> 22))
            pos += 4 * ecount
        xd.codes = read(pos, min(cwords * 4, MAX_CODE_BYTES)) if cwords else b""
        pos += cwords * 4
        if x:
            (xd.handler_rva,) = struct.unpack("<I", read(pos, 4))
        return xd
    except struct.error:
        raise BadFileError(path, f"truncated ARM64 unwind data at RVA {rva:#x}") from None


def parse_pdata(data: bytes, image) -> list[Arm64Function]:
    out = []
    for i in range(len(data) // 8):
        begin, raw = struct.unpack_from("<II", data, 8 * i)
        if not begin and not raw:
            continue
        if raw & 3 in (1, 2):
            out.append(Arm64Function(begin, raw, i, packed=decode_packed(raw), _image=image))
        elif raw & 3 == 0:
            out.append(Arm64Function(begin, raw, i, xdata_rva=raw, _image=image))
    return out


__all__ = ["Arm64Function", "Packed", "XData", "decode_xdata", "decode_packed", "MemoryNotPresent"]
