"""The version resource (VS_VERSIONINFO): fixed file info and the string tables."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

VS_FIXED_SIGNATURE = 0xFEEF04BD
MAX_BLOCKS = 4096


@dataclass(slots=True)
class VersionInfo:
    file_version: tuple[int, int, int, int] | None = None
    product_version: tuple[int, int, int, int] | None = None
    file_flags: int = 0
    file_os: int = 0
    file_type: int = 0
    strings: dict[str, str] = field(default_factory=dict)  # first string table wins per key
    translations: list[tuple[int, int]] = field(default_factory=list)

    @property
    def file_version_str(self) -> str | None:
        return ".".join(map(str, self.file_version)) if self.file_version else None

    @property
    def product_version_str(self) -> str | None:
        return ".".join(map(str, self.product_version)) if self.product_version else None


def _align4(x: int) -> int:
    return (x + 3) & ~3


def _key(data: bytes, off: int, end: int) -> tuple[str, int]:
    pos = off
    while pos + 1 < end and (data[pos] or data[pos + 1]):
        pos += 2
    return data[off:pos].decode("utf-16-le", "replace"), pos + 2


def _walk(data: bytes, off: int, end: int, depth: int, budget: list[int]):
    """Yield ``(key, value_bytes, wtype, children_range)`` for each block in [off, end)."""
    while off + 6 <= end and budget[0] > 0:
        budget[0] -= 1
        length, vlen, wtype = struct.unpack_from("<HHH", data, off)
        if length < 6:
            return
        bend = min(off + length, end)
        key, pos = _key(data, off + 6, bend)
        pos = _align4(pos)
        nbytes = vlen * 2 if wtype == 1 else vlen
        value = data[pos : min(pos + nbytes, bend)]
        child = _align4(pos + nbytes)
        yield key, value, wtype, (child, bend)
        off = _align4(bend)


def parse_version_info(data: bytes) -> VersionInfo:
    info = VersionInfo()
    budget = [MAX_BLOCKS]
    for key, value, _t, (cs, ce) in _walk(data, 0, len(data), 0, budget):
        if key != "VS_VERSION_INFO":
            break
        if len(value) >= 52 and struct.unpack_from("<I", value, 0)[0] == VS_FIXED_SIGNATURE:
            f = struct.unpack_from("<13I", value, 0)
            info.file_version = (f[2] >> 16, f[2] & 0xFFFF, f[3] >> 16, f[3] & 0xFFFF)
            info.product_version = (f[4] >> 16, f[4] & 0xFFFF, f[5] >> 16, f[5] & 0xFFFF)
            info.file_flags = f[7] & f[6]
            info.file_os, info.file_type = f[8], f[9]
        for k2, _v2, _t2, (c2s, c2e) in _walk(data, cs, ce, 1, budget):
            if k2 == "StringFileInfo":
                for _table, _v3, _t3, (c3s, c3e) in _walk(data, c2s, c2e, 2, budget):
                    for name, sval, _t4, _c in _walk(data, c3s, c3e, 3, budget):
                        text = sval.decode("utf-16-le", "replace").split("\0", 1)[0]
                        info.strings.setdefault(name, text)
            elif k2 == "VarFileInfo":
                for _k3, v3, _t3, _c in _walk(data, c2s, c2e, 2, budget):
                    for i in range(0, len(v3) - 3, 4):
                        info.translations.append(struct.unpack_from("<HH", v3, i))
        break
    return info
