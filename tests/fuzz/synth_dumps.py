"""Writer-made kernel dumps with hostile contents: looping lists and path-like module names.

The synthetic kernel (``bugcheck.dumpfile.synth``) is laid out with a real
19041 kernel's types from the corpus ISF table, so the tool identifies the table
and walks PsLoadedModuleList / PsActiveProcessHead as it would on a real
MEMORY.DMP. The corruptions are applied to that memory before it is written.
"""

from __future__ import annotations

from pathlib import Path

#: the 19041 table the corpus's rizin-triage_x64.dmp matches; any table with the kernel types works
TABLE = "symbols/isf/windows/ntkrnlmp.pdb/5278AFF86C341677D7D7835C85B7B844-1.json.xz"

#: names a dump could carry to reach outside a symbol folder if used as paths
EVIL_NAMES = (
    "..\\..\\..\\evil1.sys",
    "../../../../tmp/evil2.sys",
    "C:\\Windows\\evil3.sys",
    "C:evil4.sys",
    "..",
    "evil5.sys:stream",
    "/etc/evil6",
)

_table_cache: dict[str, object] = {}


def load_table(corpus: Path):
    from bugcheck.symbols.isf import load_isf

    key = str(corpus / TABLE)
    if key not in _table_cache:
        _table_cache[key] = load_isf(corpus / TABLE, use_cache=False)
    return _table_cache[key]


def hostile_kernel(
    corpus: Path, *, cycles: bool = True, evil: bool = True, processes: int = 8, swizzle: int | None = None
):
    """A synthetic kernel with looping lists and (optionally) path-like module base names.

    ``swizzle`` (a seed) also rewrites a third of the kernel pointers in pool and
    stack pages to point at themselves, a neighbour, nowhere or off the canonical
    range (see :func:`fuzz.mutate.apply`'s ``swz``).
    """
    from bugcheck.dumpfile.synth import build_kernel

    table = load_table(corpus)
    mods = []
    if evil:
        # long placeholder paths: their BaseDllName buffers are big enough for every evil name
        mods = [
            (f"\\SystemRoot\\system32\\drivers\\{'p' * 40}{i}.sys", 0xFFFFF804_00000000 + i * 0x100000, 0x20000,
             0x5F000000 + i, 0x1000 + i)
            for i in range(len(EVIL_NAMES))
        ]  # fmt: skip
    k = build_kernel(table, processes=processes, threads_per_process=2, processors=2, modules=mods or None)
    mem = k.memory
    kldr = table.find_type("_KLDR_DATA_TABLE_ENTRY")
    if evil:
        for m, name in zip(k.modules[-len(EVIL_NAMES) :], EVIL_NAMES, strict=True):
            buf_va = _read_ptr(mem, m.entry + mem.offset(kldr, "BaseDllName.Buffer"))
            raw = name.encode("utf-16-le")
            mem.write(buf_va, raw + b"\0\0")
            mem.put(m.entry + mem.offset(kldr, "BaseDllName.Length"), len(raw), 2)
            full_va = _read_ptr(mem, m.entry + mem.offset(kldr, "FullDllName.Buffer"))
            mem.write(full_va, raw + b"\0\0")
            mem.put(m.entry + mem.offset(kldr, "FullDllName.Length"), len(raw), 2)
    if evil:
        for m, name in zip(k.modules[-len(EVIL_NAMES) :], EVIL_NAMES, strict=True):
            _add_codeview(mem, m.base, name.replace(".sys", "") + ".pdb")
    if cycles:
        # the process list loops back into itself; one thread list entry points at itself;
        # the module list's last entry loops to the second
        k.link_process_cycle(len(k.processes) - 1, 1)
        et = table.find_type("_ETHREAD")
        t = k.processes[2].threads[0]
        at = t.address + mem.offset(et, "ThreadListEntry")
        mem.put(at, at, 8)
        link = mem.offset(kldr, "InLoadOrderLinks")
        mem.put(k.modules[-1].entry + link, k.modules[1].entry + link, 8)
    if swizzle is not None:
        import random

        from fuzz.mutate import _swizzle

        rng = random.Random(swizzle)
        for va in sorted(mem.pages):
            if va < k.kernel_base and rng.random() < 0.5:  # pool and stacks, not the image or KDBG
                _swizzle(mem.pages[va], 0, len(mem.pages[va]), rng, va)
    return k


def _add_codeview(mem, base: int, pdb_name: str) -> None:
    """Give the in-memory PE header at ``base`` a debug directory whose CodeView record names ``pdb_name``."""
    import struct
    import uuid

    page = bytearray(mem.read(base, 0x1000))
    lfanew = struct.unpack_from("<I", page, 0x3C)[0]
    opt = lfanew + 24
    struct.pack_into("<II", page, opt + 0x70 + 6 * 8, 0x800, 28)  # IMAGE_DIRECTORY_ENTRY_DEBUG
    raw = b"RSDS" + uuid.UUID(int=base).bytes_le + struct.pack("<I", 1) + pdb_name.encode() + b"\0"
    struct.pack_into("<IIHHIIII", page, 0x800, 0, 0, 0, 0, 2, len(raw), 0x900, 0x900)  # CODEVIEW
    page[0x900 : 0x900 + len(raw)] = raw
    mem.write(base, bytes(page))


def _read_ptr(mem, va: int) -> int:
    return int.from_bytes(mem.read(va, 8), "little")


def write_hostile_dump(
    corpus: Path, path: Path, kind: str = "kernel_bitmap", *, ram_size: int = 16 << 20, **kw
) -> Path:
    """The hostile kernel written as ``kind``; 16 MB of RAM keeps full dumps small and quick."""
    from bugcheck.dumpfile.synth import write_kernel_dump

    write_kernel_dump(hostile_kernel(corpus, **kw), path, kind, ram_size=ram_size)
    return path


#: a 2 MB pool region turned into one endless-looking list: each 16-byte slot's Flink is the next slot
LADDER_VA = 0xFFFFC08C_00000000
LADDER_SIZE = 0x200000


def _ladder_bytes(va: int = LADDER_VA, size: int = LADDER_SIZE) -> bytes:
    import struct

    buf = bytearray(size)
    for off in range(0, size, 16):
        struct.pack_into("<QQ", buf, off, va + off + 16, va + off - 16)
    return bytes(buf)


def write_ladder_dump(corpus: Path, path: Path, *, processes: bool = False, threads: bool = False,
                      irps: bool = False) -> Path:  # fmt: skip
    """A kernel whose chosen lists never loop but never end: 65536+ distinct entries, all garbage.

    Cycle detection does not stop such a list; only a bound on the work does.
    ``processes``: PsActiveProcessHead enters the ladder; ``threads``: the crashing
    process's ThreadListHead does; ``irps``: the crashing thread's IrpList does.
    """
    from bugcheck.dumpfile.synth import write_kernel_dump

    k = hostile_kernel(corpus, cycles=False, evil=False)
    mem, table = k.memory, load_table(corpus)
    mem.write(LADDER_VA, _ladder_bytes())
    ep, et = table.find_type("_EPROCESS"), table.find_type("_ETHREAD")
    crash = k.processes[-1]
    if processes:
        mem.put(k.symbols["PsActiveProcessHead"], LADDER_VA + 0x1000, 8)
    if threads:
        mem.put(crash.address + mem.offset(ep, "ThreadListHead"), LADDER_VA + 0x2000, 8)
    if irps:
        mem.put(crash.threads[0].address + mem.offset(et, "IrpList"), LADDER_VA + 0x3000, 8)
    write_kernel_dump(k, path, "kernel_bitmap", ram_size=16 << 20)
    return path
