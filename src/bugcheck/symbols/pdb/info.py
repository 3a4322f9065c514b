"""The PDB info stream (stream 1): identity (GUID, info age) and named streams."""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field

from .msf import Msf

MAX_NAMED_STREAMS = 4096


@dataclass
class PdbInfo:
    version: int
    signature: int
    age: int
    guid: uuid.UUID
    named_streams: dict[str, int] = field(default_factory=dict)


def parse_info(msf: Msf) -> PdbInfo:
    data = msf.stream(1)
    if len(data) < 28:
        raise msf.bad("PDB info stream is missing or truncated")
    version, signature, age = struct.unpack_from("<3I", data, 0)
    guid = uuid.UUID(bytes_le=bytes(data[12:28]))
    info = PdbInfo(version, signature, age, guid)
    try:
        info.named_streams = _named_stream_map(data, 28)
    except (struct.error, IndexError):
        raise msf.bad("PDB info stream has a corrupt named stream map") from None
    return info


def _bitvector(data: bytes, pos: int) -> tuple[list[int], int]:
    (nwords,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if nwords > 1 << 16:
        raise IndexError("bit vector too long")
    words = struct.unpack_from(f"<{nwords}I", data, pos)
    return list(words), pos + 4 * nwords


def _named_stream_map(data: bytes, pos: int) -> dict[str, int]:
    """Decode the serialized hash table that maps names (``/names``...) to stream numbers."""
    if pos + 4 > len(data):
        return {}
    (strbytes,) = struct.unpack_from("<I", data, pos)
    pos += 4
    if pos + strbytes > len(data):
        raise IndexError("string buffer overruns the stream")
    strings = data[pos : pos + strbytes]
    pos += strbytes
    size, capacity = struct.unpack_from("<II", data, pos)
    pos += 8
    if size > MAX_NAMED_STREAMS or capacity > 1 << 20:
        raise IndexError("implausible named stream map")
    present, pos = _bitvector(data, pos)
    _deleted, pos = _bitvector(data, pos)
    out: dict[str, int] = {}
    for i in range(min(capacity, 32 * len(present))):
        if not (present[i >> 5] >> (i & 31)) & 1:
            continue
        key, value = struct.unpack_from("<II", data, pos)
        pos += 8
        end = strings.find(b"\0", key)
        if key >= len(strings) or end < 0:
            continue
        out[strings[key:end].decode("utf-8", "replace")] = value
        if len(out) > MAX_NAMED_STREAMS:
            break
    return out


def parse_string_table(data: bytes) -> bytes | None:
    """The string buffer of the ``/names`` stream, or None when absent or not understood."""
    if len(data) < 12:
        return None
    sig, _ver, nbytes = struct.unpack_from("<3I", data, 0)
    if sig != 0xEFFEEFFE:
        return None
    return bytes(data[12 : 12 + nbytes])


def string_at(table: bytes | None, offset: int) -> str:
    if table is None or not 0 <= offset < len(table):
        return ""
    end = table.find(b"\0", offset)
    if end < 0:
        end = len(table)
    return table[offset:end].decode("utf-8", "replace")
