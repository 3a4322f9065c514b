"""PE images: headers, sections, exports, debug directory, version resource and ``.pdata``.

Read with mmap + struct (no third-party PE library), from a file or from dump
memory, where absent pages shorten tables instead of failing::

    img = PeImage.from_file(path)                    # BadFileError on malformed input
    img = PeImage.from_memory(dump.read_virtual, base)  # MemoryNotPresent only if headers absent
    img.machine_name, img.timestamp, img.size_of_image, img.checksum, img.subsystem
    img.sections, img.exports, img.codeview, img.pdb_key(), img.symbol_key()
    img.version_info.strings["FileVersion"], img.is_reproducible
    img.lookup_function(rva) -> RuntimeFunction | arm64.Arm64Function | None
    img.unwind_info(func) -> UnwindInfo (x64; chained entries in .chained_info)
    relocations(img) -> [(rva, width)]; mapped_image(img, base) -> bytes as loaded at base
    constant_ranges(img) -> [(rva, size)] the loader leaves as the file has them (no writable,
        discardable or IAT bytes); image_bytes(img, base) -> ImageBytes (.ranges, .pieces(va, n))
    find_module_image(module, store, image_path) -> ImageBytes | None (name + timestamp + size)
    module_images(modules, store) -> {base: ImageBytes} for modules whose file the store has

Executing unwind data is ``bugcheck.stack.unwind_x64`` / ``unwind_arm64``.
"""

from .image import CodeView, DebugEntry, Export, PeImage, Section, image_property
from .mapping import (
    ImageBytes,
    constant_ranges,
    find_module_image,
    image_bytes,
    mapped_image,
    module_images,
)
from .relocs import relocated_bytes, relocations
from .resources import VersionInfo
from .unwind import GPR_NAMES, RuntimeFunction, UnwindCode, UnwindInfo

__all__ = [
    "image_property",
    "PeImage", "Section", "Export", "DebugEntry", "CodeView", "VersionInfo",
    "RuntimeFunction", "UnwindInfo", "UnwindCode", "GPR_NAMES",
    "relocations", "relocated_bytes", "mapped_image", "module_images",
    "constant_ranges", "ImageBytes", "image_bytes", "find_module_image",
]  # fmt: skip
