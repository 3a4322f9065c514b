"""KDDEBUGGER_DATA64 bytes from a dict of field values.

The block's layout is the debugger interface's (fixed per field, the same on
every build; newer builds only append), so it comes from the reader's own
field table rather than the kernel's types, which do not describe it.
"""

from __future__ import annotations

import struct

from bugcheck.dumpfile.kddebugger import LAYOUT

#: what 19041 kernels report as the block's Size
DEFAULT_SIZE = 0x380


def kdbg_bytes(values: dict[str, int], size: int = DEFAULT_SIZE, address: int = 0) -> bytes:
    """A decoded (plain) KDDEBUGGER_DATA64 of ``size`` bytes with ``values`` filled in.

    ``address`` is where the block lives; its ``List`` entry then points at itself,
    an empty list, as the kernel leaves it for a single registered block.
    """
    buf = bytearray(size)
    struct.pack_into("<QQ4sI", buf, 0, address, address, b"KDBG", size)
    known = set()
    for name, code, off in LAYOUT:
        known.add(name)
        if name in values and off + struct.calcsize(code) <= size:
            bits = 8 * struct.calcsize(code)
            struct.pack_into("<" + code, buf, off, int(values[name]) & ((1 << bits) - 1))
    unknown = {k for k in values if k not in known and k not in ("OwnerTag", "Size")}
    if unknown:
        raise ValueError(f"not KDDEBUGGER_DATA64 fields: {', '.join(sorted(unknown))}")
    return bytes(buf)
