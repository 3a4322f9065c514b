"""DUMP_HEADER64 / DUMP_HEADER32: the first page(s) of every kernel dump.

Field names follow Microsoft's DUMP_HEADER in snake_case. Fields the kernel
leaves unset are filled with the 'PAGE' pattern; they are decoded as-is and
left to callers to judge (the physical memory runs are only trusted in
run-based dumps).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

HEADER64_SIZE = 0x2000
HEADER32_SIZE = 0x1000

MACHINE_NAMES = {0x8664: "x64", 0x14C: "x86", 0xAA64: "arm64"}

# Runs that fit in the 700-byte PhysicalMemoryBlockBuffer of each header.
MAX_RUNS64 = (700 - 16) // 16
MAX_RUNS32 = (700 - 8) // 8

_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def filetime_to_datetime(ft: int) -> datetime | None:
    """FILETIME (100 ns since 1601) to an aware UTC datetime; None when out of range or zero."""
    if not ft or ft >= 0x7FFF_FFFF_FFFF_FFFF:
        return None
    try:
        return _FILETIME_EPOCH + timedelta(microseconds=ft // 10)
    except OverflowError:
        return None


@dataclass
class ExceptionRecord:
    code: int = 0
    flags: int = 0
    record: int = 0
    address: int = 0
    parameters: tuple[int, ...] = ()

    @classmethod
    def parse64(cls, buf: bytes, off: int) -> ExceptionRecord:
        code, flags, rec, addr, n = struct.unpack_from("<IIQQI", buf, off)
        info = struct.unpack_from("<15Q", buf, off + 0x20)
        return cls(code, flags, rec, addr, tuple(info[: min(n, 15)]))

    @classmethod
    def parse32(cls, buf: bytes, off: int) -> ExceptionRecord:
        code, flags, rec, addr, n = struct.unpack_from("<5I", buf, off)
        info = struct.unpack_from("<15I", buf, off + 0x14)
        return cls(code, flags, rec, addr, tuple(info[: min(n, 15)]))


@dataclass
class DumpHeader:
    """Raw DUMP_HEADER fields (see module docstring)."""

    signature: bytes = b""
    valid_dump: bytes = b""
    major_version: int = 0
    minor_version: int = 0
    directory_table_base: int = 0
    pfn_database: int = 0
    ps_loaded_module_list: int = 0
    ps_active_process_head: int = 0
    machine_image_type: int = 0
    number_processors: int = 0
    bugcheck_code: int = 0
    bugcheck_parameters: tuple[int, int, int, int] = (0, 0, 0, 0)
    version_user: bytes = b""
    pae_enabled: int = 0
    kd_secondary_version: int = 0
    kd_debugger_data_block: int = 0
    number_of_runs: int = 0
    number_of_pages: int = 0
    physical_memory_runs: list[tuple[int, int]] = field(default_factory=list)
    context_offset: int = 0
    context_size: int = 0
    exception: ExceptionRecord = field(default_factory=ExceptionRecord)
    dump_type: int = 0
    required_dump_space: int = 0
    system_time: int = 0
    comment: str = ""
    system_up_time: int = 0
    mini_dump_fields: int = 0
    secondary_data_state: int = 0
    product_type: int = 0
    suite_mask: int = 0
    writer_status: int = 0
    attributes: int = 0
    boot_id: int = 0
    header_size: int = HEADER64_SIZE
    is_64bit: bool = True

    @property
    def machine(self) -> str:
        return MACHINE_NAMES.get(self.machine_image_type, f"unknown({self.machine_image_type:#x})")

    @property
    def build(self) -> int:
        return self.minor_version

    @property
    def crash_time(self) -> datetime | None:
        """SystemTime as an aware UTC datetime (None when unset)."""
        return filetime_to_datetime(self.system_time)

    @property
    def up_time(self) -> timedelta:
        return timedelta(microseconds=self.system_up_time // 10)

    @property
    def runs_valid(self) -> bool:
        """Whether NumberOfRuns is a real count (not the 'PAGE' filler, within the buffer)."""
        cap = MAX_RUNS64 if self.is_64bit else MAX_RUNS32
        return 0 < self.number_of_runs <= cap


def _comment(raw: bytes) -> str:
    raw = raw.split(b"\0", 1)[0]
    if raw.startswith(b"PAGEPAGE") or raw == b"PAGE":
        return ""
    return raw.decode("latin-1")


def parse_header64(buf: bytes) -> DumpHeader:
    """Decode DUMP_HEADER64 from the first 0x2000 bytes (caller checks the length)."""
    h = DumpHeader(is_64bit=True, header_size=HEADER64_SIZE)
    h.signature, h.valid_dump = buf[0:4], buf[4:8]
    (h.major_version, h.minor_version) = struct.unpack_from("<II", buf, 0x08)
    (h.directory_table_base, h.pfn_database, h.ps_loaded_module_list, h.ps_active_process_head) = (
        struct.unpack_from("<4Q", buf, 0x10)
    )
    h.machine_image_type, h.number_processors, h.bugcheck_code = struct.unpack_from("<3I", buf, 0x30)
    h.bugcheck_parameters = struct.unpack_from("<4Q", buf, 0x40)
    h.version_user = bytes(buf[0x60:0x80])
    h.kd_debugger_data_block = struct.unpack_from("<Q", buf, 0x80)[0]
    h.number_of_runs, h.number_of_pages = struct.unpack_from("<I4xQ", buf, 0x88)
    if 0 < h.number_of_runs <= MAX_RUNS64:
        h.physical_memory_runs = [
            struct.unpack_from("<QQ", buf, 0x98 + 16 * i) for i in range(h.number_of_runs)
        ]
    h.context_offset, h.context_size = 0x348, 3000
    h.exception = ExceptionRecord.parse64(buf, 0xF00)
    h.dump_type, h.required_dump_space, h.system_time = struct.unpack_from("<I4xQQ", buf, 0xF98)
    h.comment = _comment(bytes(buf[0xFB0:0x1030]))
    h.system_up_time = struct.unpack_from("<Q", buf, 0x1030)[0]
    (h.mini_dump_fields, h.secondary_data_state, h.product_type, h.suite_mask, h.writer_status) = (
        struct.unpack_from("<5I", buf, 0x1038)
    )
    h.kd_secondary_version = buf[0x104D]
    h.attributes, h.boot_id = struct.unpack_from("<II", buf, 0x1050)
    return h


def parse_header32(buf: bytes) -> DumpHeader:
    """Decode DUMP_HEADER32 from the first 0x1000 bytes."""
    h = DumpHeader(is_64bit=False, header_size=HEADER32_SIZE)
    h.signature, h.valid_dump = buf[0:4], buf[4:8]
    (
        h.major_version,
        h.minor_version,
        h.directory_table_base,
        h.pfn_database,
        h.ps_loaded_module_list,
        h.ps_active_process_head,
        h.machine_image_type,
        h.number_processors,
        h.bugcheck_code,
    ) = struct.unpack_from("<9I", buf, 0x08)
    h.bugcheck_parameters = struct.unpack_from("<4I", buf, 0x2C)
    h.version_user = bytes(buf[0x3C:0x5C])
    h.pae_enabled, h.kd_secondary_version = buf[0x5C], buf[0x5D]
    h.kd_debugger_data_block = struct.unpack_from("<I", buf, 0x60)[0]
    h.number_of_runs, h.number_of_pages = struct.unpack_from("<II", buf, 0x64)
    if 0 < h.number_of_runs <= MAX_RUNS32:
        h.physical_memory_runs = [
            struct.unpack_from("<II", buf, 0x6C + 8 * i) for i in range(h.number_of_runs)
        ]
    h.context_offset, h.context_size = 0x320, 1200
    h.exception = ExceptionRecord.parse32(buf, 0x7D0)
    h.comment = _comment(bytes(buf[0x820:0x8A0]))
    (
        h.dump_type,
        h.mini_dump_fields,
        h.secondary_data_state,
        h.product_type,
        h.suite_mask,
        h.writer_status,
    ) = struct.unpack_from("<6I", buf, 0xF88)
    h.required_dump_space = struct.unpack_from("<Q", buf, 0xFA0)[0]
    h.system_up_time, h.system_time = struct.unpack_from("<QQ", buf, 0xFB8)
    return h
