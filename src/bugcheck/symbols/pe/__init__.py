"""PE images: headers, sections, exports, debug directory, version resource and ``.pdata``.

``PeImage.from_file(path)`` or ``PeImage.from_memory(read_fn, base)``; see image.py.
"""

from .image import CodeView, DebugEntry, Export, PeImage, Section
from .resources import VersionInfo
from .unwind import GPR_NAMES, RuntimeFunction, UnwindCode, UnwindInfo

__all__ = [
    "PeImage", "Section", "Export", "DebugEntry", "CodeView", "VersionInfo",
    "RuntimeFunction", "UnwindInfo", "UnwindCode", "GPR_NAMES",
]  # fmt: skip
