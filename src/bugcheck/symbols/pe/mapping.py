"""An image file as the loader maps it at a base: the bytes a kernel dump would hold for a module.

A triage dump keeps only scraps of each driver; with the driver's file from a
symbol store, the rest of its mapped image can be rebuilt (headers, then each
section at its VirtualAddress, zero-filled to its virtual size, relocated to
the load address). The dump writer takes these plain bytes when it re-packs a
triage dump as a kernel dump, so that layer never needs the PE reader.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from bugcheck.errors import BadFileError, BugcheckError

from .image import PeImage
from .relocs import apply_relocations, relocations

#: no driver comes close; bounds the allocation a corrupt SizeOfImage could ask for
MAX_MAPPED_IMAGE = 512 << 20


def mapped_image(image: PeImage, base: int) -> bytes:
    """``image`` (read from a file) laid out as loaded at ``base``: SizeOfImage bytes.

    Raw data past a section's virtual size is not copied (the loader zero-fills
    the rest of the page), and the optional header's ImageBase holds ``base`` as
    the loader leaves it after relocating.
    """
    where = image.path or "<image>"
    size = image.size_of_image
    if not 0 < size <= MAX_MAPPED_IMAGE:
        raise BadFileError(where, f"SizeOfImage {size:#x} is not a plausible mapped size")
    if image.in_memory:
        raise BadFileError(where, "mapping needs the image file, not an image already in memory")
    reader = image.reader
    buf = bytearray(size)
    head = min(image.size_of_headers or 0x400, size, reader.size)
    buf[:head] = reader.raw(0, head)
    for s in image.sections:
        vsize = s.virtual_size or s.raw_size
        if s.virtual_address + vsize > size:
            raise BadFileError(
                where,
                f"section {s.name!r} ({s.virtual_address:#x}+{vsize:#x}) is outside SizeOfImage {size:#x}",
            )
        n = min(s.raw_size, vsize)
        if n and s.raw_pointer:
            if s.raw_pointer + n > reader.size:
                raise BadFileError(where, f"section {s.name!r} raw data runs past the end of the file")
            buf[s.virtual_address : s.virtual_address + n] = reader.raw(s.raw_pointer, n)
    delta = base - image.image_base
    if delta:
        apply_relocations(buf, delta, relocations(image))
        _set_image_base(buf, image, base)
    return bytes(buf)


def _set_image_base(buf: bytearray, image: PeImage, base: int) -> None:
    (lfanew,) = struct.unpack_from("<I", buf, 0x3C)
    at = lfanew + 24 + (24 if image.is_pe32_plus else 28)
    width = 8 if image.is_pe32_plus else 4
    if at + width <= min(len(buf), image.size_of_headers or len(buf)):
        buf[at : at + width] = (base & ((1 << (8 * width)) - 1)).to_bytes(width, "little")


def module_images(modules: Iterable, store, *, limit: int = 1 << 30) -> dict[int, bytes]:
    """``{base: mapped bytes}`` for every module whose image file ``store`` has.

    A module is matched by (file name, TimeDateStamp, SizeOfImage) and the file's
    own header must agree; modules without a matching file, or whose file is
    malformed, are left out (compare the keys with the bases to see which were
    placed). ``limit`` caps the total bytes returned.
    """
    out: dict[int, bytes] = {}
    total = 0
    for m in modules:
        name = getattr(m, "image_name", "") or getattr(m, "name", "")
        base, size, ts = getattr(m, "base", 0), getattr(m, "size", 0), getattr(m, "timestamp", 0)
        if not (name and base and size and ts) or base in out or total + size > limit:
            continue
        try:
            path = store.find_image(name, ts, size)
            if path is None:
                continue
            image = PeImage.from_file(path)
        except (BugcheckError, OSError, ValueError):
            continue
        try:
            if image.timestamp != ts or image.size_of_image != size:
                continue
            out[base] = mapped_image(image, base)
            total += size
        except BugcheckError:
            continue
        finally:
            image.close()
    return out
