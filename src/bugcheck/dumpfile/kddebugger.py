"""KDDEBUGGER_DATA64: the kernel's table of globals and structure offsets for debuggers.

Triage dumps carry a decoded copy; full and bitmap dumps hold it (possibly
encoded, Windows 8+) at the header's KdDebuggerDataBlock. Fields are read in
declaration order up to the block's own ``Size``, so older kernels simply
yield fewer fields.
"""

from __future__ import annotations

import struct

_Q = "Q"
_H = "H"
_I = "I"
_B = "B"

# (name, struct code) in declaration order, starting after the 0x18-byte
# DBGKD_DEBUG_DATA_HEADER64 (List, OwnerTag, Size).
_FIELDS: list[tuple[str, str]] = [
    ("KernBase", _Q),
    ("BreakpointWithStatus", _Q),
    ("SavedContext", _Q),
    ("ThCallbackStack", _H),
    ("NextCallback", _H),
    ("FramePointer", _H),
    ("PaeEnabled", _H),
    ("KiCallUserMode", _Q),
    ("KeUserCallbackDispatcher", _Q),
    ("PsLoadedModuleList", _Q),
    ("PsActiveProcessHead", _Q),
    ("PspCidTable", _Q),
    ("ExpSystemResourcesList", _Q),
    ("ExpPagedPoolDescriptor", _Q),
    ("ExpNumberOfPagedPools", _Q),
    ("KeTimeIncrement", _Q),
    ("KeBugCheckCallbackListHead", _Q),
    ("KiBugcheckData", _Q),
    ("IopErrorLogListHead", _Q),
    ("ObpRootDirectoryObject", _Q),
    ("ObpTypeObjectType", _Q),
    ("MmSystemCacheStart", _Q),
    ("MmSystemCacheEnd", _Q),
    ("MmSystemCacheWs", _Q),
    ("MmPfnDatabase", _Q),
    ("MmSystemPtesStart", _Q),
    ("MmSystemPtesEnd", _Q),
    ("MmSubsectionBase", _Q),
    ("MmNumberOfPagingFiles", _Q),
    ("MmLowestPhysicalPage", _Q),
    ("MmHighestPhysicalPage", _Q),
    ("MmNumberOfPhysicalPages", _Q),
    ("MmMaximumNonPagedPoolInBytes", _Q),
    ("MmNonPagedSystemStart", _Q),
    ("MmNonPagedPoolStart", _Q),
    ("MmNonPagedPoolEnd", _Q),
    ("MmPagedPoolStart", _Q),
    ("MmPagedPoolEnd", _Q),
    ("MmPagedPoolInformation", _Q),
    ("MmPageSize", _Q),
    ("MmSizeOfPagedPoolInBytes", _Q),
    ("MmTotalCommitLimit", _Q),
    ("MmTotalCommittedPages", _Q),
    ("MmSharedCommit", _Q),
    ("MmDriverCommit", _Q),
    ("MmProcessCommit", _Q),
    ("MmPagedPoolCommit", _Q),
    ("MmExtendedCommit", _Q),
    ("MmZeroedPageListHead", _Q),
    ("MmFreePageListHead", _Q),
    ("MmStandbyPageListHead", _Q),
    ("MmModifiedPageListHead", _Q),
    ("MmModifiedNoWritePageListHead", _Q),
    ("MmAvailablePages", _Q),
    ("MmResidentAvailablePages", _Q),
    ("PoolTrackTable", _Q),
    ("NonPagedPoolDescriptor", _Q),
    ("MmHighestUserAddress", _Q),
    ("MmSystemRangeStart", _Q),
    ("MmUserProbeAddress", _Q),
    ("KdPrintCircularBuffer", _Q),
    ("KdPrintCircularBufferEnd", _Q),
    ("KdPrintWritePointer", _Q),
    ("KdPrintRolloverCount", _Q),
    ("MmLoadedUserImageList", _Q),
    ("NtBuildLab", _Q),
    ("KiNormalSystemCall", _Q),
    ("KiProcessorBlock", _Q),
    ("MmUnloadedDrivers", _Q),
    ("MmLastUnloadedDriver", _Q),
    ("MmTriageActionTaken", _Q),
    ("MmSpecialPoolTag", _Q),
    ("KernelVerifier", _Q),
    ("MmVerifierData", _Q),
    ("MmAllocatedNonPagedPool", _Q),
    ("MmPeakCommitment", _Q),
    ("MmTotalCommitLimitMaximum", _Q),
    ("CmNtCSDVersion", _Q),
    ("MmPhysicalMemoryBlock", _Q),
    ("MmSessionBase", _Q),
    ("MmSessionSize", _Q),
    ("MmSystemParentTablePage", _Q),
    ("MmVirtualTranslationBase", _Q),
    # offsets / sizes block
    ("OffsetKThreadNextProcessor", _H),
    ("OffsetKThreadTeb", _H),
    ("OffsetKThreadKernelStack", _H),
    ("OffsetKThreadInitialStack", _H),
    ("OffsetKThreadApcProcess", _H),
    ("OffsetKThreadState", _H),
    ("OffsetKThreadBStore", _H),
    ("OffsetKThreadBStoreLimit", _H),
    ("SizeEProcess", _H),
    ("OffsetEprocessPeb", _H),
    ("OffsetEprocessParentCID", _H),
    ("OffsetEprocessDirectoryTableBase", _H),
    ("SizePrcb", _H),
    ("OffsetPrcbDpcRoutine", _H),
    ("OffsetPrcbCurrentThread", _H),
    ("OffsetPrcbMhz", _H),
    ("OffsetPrcbCpuType", _H),
    ("OffsetPrcbVendorString", _H),
    ("OffsetPrcbProcStateContext", _H),
    ("OffsetPrcbNumber", _H),
    ("SizeEThread", _H),
    ("L1tfHighPhysicalBitIndex", _B),
    ("L1tfSwizzleBitIndex", _B),
    ("Padding0", _I),
    ("KdPrintCircularBufferPtr", _Q),
    ("KdPrintBufferSize", _Q),
    ("KeLoaderBlock", _Q),
    ("SizePcr", _H),
    ("OffsetPcrSelfPcr", _H),
    ("OffsetPcrCurrentPrcb", _H),
    ("OffsetPcrContainedPrcb", _H),
    ("OffsetPcrInitialBStore", _H),
    ("OffsetPcrBStoreLimit", _H),
    ("OffsetPcrInitialStack", _H),
    ("OffsetPcrStackLimit", _H),
    ("OffsetPrcbPcrPage", _H),
    ("OffsetPrcbProcStateSpecialReg", _H),
    ("GdtR0Code", _H),
    ("GdtR0Data", _H),
    ("GdtR0Pcr", _H),
    ("GdtR3Code", _H),
    ("GdtR3Data", _H),
    ("GdtR3Teb", _H),
    ("GdtLdt", _H),
    ("GdtTss", _H),
    ("Gdt64R3CmCode", _H),
    ("Gdt64R3CmTeb", _H),
    ("IopNumTriageDumpDataBlocks", _Q),
    ("IopTriageDumpDataBlocks", _Q),
    ("VfCrashDataBlock", _Q),
    ("MmBadPagesDetected", _Q),
    ("MmZeroedPageSingleBitErrorsDetected", _Q),
    ("EtwpDebuggerData", _Q),
    ("OffsetPrcbContext", _H),
    ("OffsetPrcbMaxBreakpoints", _H),
    ("OffsetPrcbMaxWatchpoints", _H),
    ("OffsetKThreadStackLimit", _I),
    ("OffsetKThreadStackBase", _I),
    ("OffsetKThreadQueueListEntry", _I),
    ("OffsetEThreadIrpList", _I),
    ("OffsetPrcbIdleThread", _H),
    ("OffsetPrcbNormalDpcState", _H),
    ("OffsetPrcbDpcStack", _H),
    ("OffsetPrcbIsrStack", _H),
    ("SizeKDPC_STACK_FRAME", _H),
    ("OffsetKPriQueueThreadListHead", _H),
    ("OffsetKThreadWaitReason", _H),
    ("Padding", _H),
    ("PteBase", _Q),
    ("RetpolineStubFunctionTable", _Q),
    ("RetpolineStubFunctionTableSize", _I),
    ("RetpolineStubOffset", _I),
    ("RetpolineStubSize", _I),
    ("OffsetEProcessMmHotPatchContext", _H),
    ("OffsetKThreadShadowStackLimit", _I),
    ("OffsetKThreadShadowStack", _I),
    ("ShadowStackEnabled", _Q),
    ("PointerAuthMask", _Q),
    ("OffsetPrcbExceptionStack", _H),
]

KDBG_TAG = b"KDBG"
# The block is a few hundred bytes; anything far larger is not this structure.
MAX_KDBG_SIZE = 0x1000


def _layout() -> list[tuple[str, str, int]]:
    """Natural-alignment offsets, as the C compiler lays the struct out."""
    out = []
    off = 0x18
    for name, code in _FIELDS:
        size = struct.calcsize(code)
        off = (off + size - 1) // size * size
        out.append((name, code, off))
        off += size
    return out


LAYOUT = _layout()
OFFSETS = {name: off for name, _, off in LAYOUT}


def parse_kddebugger_data(data: bytes) -> dict[str, int] | None:
    """Parse a decoded KDDEBUGGER_DATA64; None when the 'KDBG' tag is absent (e.g. still encoded).

    The dict has every field that lies within the block's ``Size`` plus
    ``OwnerTag`` (str) and ``Size``.
    """
    if len(data) < 0x20 or bytes(data[0x10:0x14]) != KDBG_TAG:
        return None
    size = struct.unpack_from("<I", data, 0x14)[0]
    limit = min(size, len(data), MAX_KDBG_SIZE)
    out: dict[str, int] = {"OwnerTag": "KDBG", "Size": size}
    for name, code, off in LAYOUT:
        n = struct.calcsize(code)
        if off + n > limit:
            break
        out[name] = struct.unpack_from("<" + code, data, off)[0]
    return out


_M64 = (1 << 64) - 1


def _rol(v: int, n: int) -> int:
    n &= 63
    return ((v << n) | (v >> (64 - n))) & _M64 if n else v


def _ror(v: int, n: int) -> int:
    return _rol(v, 64 - (n & 63))


def decode_kddebugger_data(raw: bytes, wait_never: int, wait_always: int, encoded_flag_address: int) -> bytes:
    """Undo the kernel's KdDebuggerDataBlock obfuscation (Windows 8+ x64, full/bitmap dumps).

    Each 64-bit word was stored as ``bswap(rol(w ^ KiWaitNever, KiWaitNever & 0xFF)
    ^ &KdpDataBlockEncoded) ^ KiWaitAlways``, so the values of KiWaitNever and
    KiWaitAlways and the *address* of KdpDataBlockEncoded (all from kernel
    symbols) are needed. Trailing bytes that do not fill a word are kept as-is.
    """
    out = bytearray(raw)
    for off in range(0, len(raw) - 7, 8):
        w = int.from_bytes(raw[off : off + 8], "little")
        w ^= wait_always
        w = int.from_bytes(w.to_bytes(8, "little"), "big")  # byte swap
        w ^= encoded_flag_address & _M64
        w = _ror(w, wait_never & 0xFF)
        w ^= wait_never
        out[off : off + 8] = w.to_bytes(8, "little")
    return bytes(out)


def encode_kddebugger_data(raw: bytes, wait_never: int, wait_always: int, encoded_flag_address: int) -> bytes:
    """The kernel's encoding (inverse of :func:`decode_kddebugger_data`); used by tests and the dump writer."""
    out = bytearray(raw)
    for off in range(0, len(raw) - 7, 8):
        w = int.from_bytes(raw[off : off + 8], "little")
        w = _rol(w ^ wait_never, wait_never & 0xFF)
        w ^= encoded_flag_address & _M64
        w = int.from_bytes(w.to_bytes(8, "little"), "big")
        w ^= wait_always
        out[off : off + 8] = w.to_bytes(8, "little")
    return bytes(out)
