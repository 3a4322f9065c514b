"""bugcheck.dumpfile layer (see docs/ARCHITECTURE.md): kernel crash dump containers."""

from bugcheck.dumpfile.context import Context
from bugcheck.dumpfile.dump import TRUNCATED_WARNING, DumpFile, open_dump
from bugcheck.dumpfile.header import DumpHeader, ExceptionRecord
from bugcheck.dumpfile.kinds import DumpKind
from bugcheck.dumpfile.triage import DataBlock, Driver, TriageInfo, UnloadedDriver

__all__ = [
    "TRUNCATED_WARNING",
    "Context",
    "DataBlock",
    "Driver",
    "DumpFile",
    "DumpHeader",
    "DumpKind",
    "ExceptionRecord",
    "TriageInfo",
    "UnloadedDriver",
    "open_dump",
]
