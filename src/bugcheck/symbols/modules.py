"""Loaded-module descriptions shared by the symbol resolver and the kernel model.

The kernel layer finds modules (PsLoadedModuleList walk, or a triage dump's
driver list) and describes each with a :class:`ModuleInfo`; the resolver turns
addresses into names with them. Naming follows WinDbg: the kernel is ``nt``,
the HAL is ``hal``, everything else is its file name without the extension, and
a name already taken gets ``_<base>`` appended, as WinDbg does for duplicates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: kernel image file names WinDbg calls ``nt``
KERNEL_IMAGES = frozenset(
    {"ntoskrnl.exe", "ntkrnlmp.exe", "ntkrnlpa.exe", "ntkrpamp.exe", "ntkrla57.exe", "ntkrnlla57.exe"}
)


@dataclass
class ModuleInfo:
    #: file name as the dump records it (``amdppm.sys``), never a path to open
    image_name: str
    base: int
    size: int
    #: full path as recorded by the kernel (``\SystemRoot\system32\drivers\amdppm.sys``), may be empty
    path: str = ""
    timestamp: int = 0
    checksum: int = 0
    #: WinDbg's module name (``nt``, ``hal``, ``amdppm``); filled by :func:`assign_module_names`
    name: str = ""
    #: index in the loaded-module list (0 = kernel)
    index: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def end(self) -> int:
        return self.base + self.size

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size


def file_name_of(path: str) -> str:
    """Last component of a Windows or POSIX path (``\\SystemRoot\\x\\y.sys`` -> ``y.sys``)."""
    return re.split(r"[\\/]", path)[-1] if path else ""


def module_name_for(image_name: str, index: int) -> str:
    """WinDbg's module name for an image file name (before duplicate handling)."""
    low = image_name.lower()
    if index == 0 or low in KERNEL_IMAGES:
        return "nt"
    if low == "hal.dll" or (low.startswith("hal") and low.endswith(".dll") and index <= 2):
        return "hal"
    stem = image_name.rsplit(".", 1)[0] if "." in image_name else image_name
    # WinDbg keeps only characters valid in a symbol name
    stem = re.sub(r"[^A-Za-z0-9_]", "_", stem) or "module"
    return stem


def assign_module_names(modules: list[ModuleInfo]) -> list[ModuleInfo]:
    """Fill ``name`` on each module, in list order, making duplicates unique as WinDbg does."""
    taken: set[str] = set()
    for i, m in enumerate(modules):
        m.index = i
        name = module_name_for(m.image_name, i)
        if name.lower() in taken:
            name = f"{name}_{m.base:x}"
        taken.add(name.lower())
        m.name = name
    return modules
