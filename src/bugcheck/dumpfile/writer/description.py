"""What a synthetic crash dump should contain, independent of its container format.

The corpus has no real full, bitmap or 32-bit dump, so tests build them from a
description: header fields, register contexts and memory given the way a
kernel sees it (virtual mappings), plus optional raw physical pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAGE = 0x1000

#: Paging modes the writer can generate tables for.
PAGING_MODES = ("4level", "5level", "pae", "nonpae")

#: DumpType values of the container kinds the writer produces.
DUMP_TYPES = {"full": 1, "complete_bitmap": 5, "kernel_bitmap": 6}


@dataclass
class DumpDescription:
    """Everything a dump says about a crash.

    ``mappings`` maps page-aligned kernel virtual addresses to bytes of any
    length (the last page is zero-padded); the writer picks physical pages and
    builds real page tables for them. ``physical_pages`` maps page-aligned
    physical addresses to bytes placed there verbatim (any length, zero-padded)
    and kept out of the allocator. ``contexts`` holds one register dict per
    processor using WinDbg's lower-case names (``rip``, ``efl``, ``cs``...);
    the crash processor's context goes into the header, as Windows does.
    """

    machine: str = "x64"  # "x64" or "x86"
    build: int = 19041
    major_version: int = 0xF  # 0xF free build, 0xC checked build
    processor_count: int | None = None  # default: len(contexts) or 1
    bugcheck_code: int = 0
    bugcheck_parameters: tuple[int, int, int, int] = (0, 0, 0, 0)
    system_time: int = 0  # FILETIME, 100 ns since 1601
    system_up_time: int = 0  # 100 ns units
    product_type: int = 1  # VER_NT_WORKSTATION
    suite_mask: int = 0x110
    contexts: list[dict[str, int]] = field(default_factory=list)
    crash_processor: int = 0
    kd_debugger_data_block: int = 0
    ps_loaded_module_list: int = 0
    ps_active_process_head: int = 0
    pfn_database: int = 0
    kernel_base: int = 0
    #: Also write a KDDEBUGGER_DATA64 block at ``kd_debugger_data_block`` with KiProcessorBlock
    #: and one PRCB per processor holding its context, so every processor's registers are findable.
    synthesize_kd_data: bool = False
    comment: str = ""
    mappings: dict[int, bytes] = field(default_factory=dict)
    physical_pages: dict[int, bytes] = field(default_factory=dict)
    paging: str | None = None  # default: "4level" for x64, "pae" for x86
    large_pages: bool = False  # map fully covered, aligned large regions with large pages
    #: Installed RAM in bytes; the physical memory runs are carved from it.
    ram_size: int = 256 << 20
    #: RAM runs as (base_page, page_count); default mimics a PC (a low run below 640 KB, then the rest).
    ram_runs: list[tuple[int, int]] | None = None
    #: Where page allocation starts (a PFN), or "spread" seeds a random placement over all RAM.
    alloc_start: int = 0x1000
    spread_seed: int | None = None
    #: Byte offset of the PAE page-directory-pointer table inside its page (CR3 is 32-byte aligned).
    pae_pdpt_offset: int = 0

    def resolved_paging(self) -> str:
        paging = self.paging or ("4level" if self.machine == "x64" else "pae")
        if paging not in PAGING_MODES:
            raise ValueError(f"unknown paging mode {paging!r}")
        if self.machine == "x64" and paging not in ("4level", "5level"):
            raise ValueError("x64 dumps use 4level or 5level paging")
        if self.machine == "x86" and paging not in ("pae", "nonpae"):
            raise ValueError("x86 dumps use pae or nonpae paging")
        return paging

    def resolved_runs(self) -> list[tuple[int, int]]:
        if self.ram_runs is not None:
            runs = sorted((int(b), int(c)) for b, c in self.ram_runs if c > 0)
        else:
            total = self.ram_size // PAGE
            if total <= 0x200:
                runs = [(0, total)]
            else:
                runs = [(1, 0x9E), (0x100, total - 0x100)]
        for (b0, c0), (b1, _) in zip(runs, runs[1:], strict=False):
            if b0 + c0 > b1:
                raise ValueError("RAM runs overlap")
        return runs

    @property
    def pointer_size(self) -> int:
        return 8 if self.machine == "x64" else 4

    @property
    def processors(self) -> int:
        if self.processor_count is not None:
            return self.processor_count
        return max(1, len(self.contexts))
