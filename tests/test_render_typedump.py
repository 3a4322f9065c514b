"""``dt`` layout over hand-built types (and one real PDB), in kd's format."""

from __future__ import annotations

from tests.corpus import corpus_file

from bugcheck.render.typedump import dump_type, list_types, type_text
from bugcheck.symbols.types import Kind, Member, Type

U1 = Type(Kind.BASE, "UChar", 1)
C1 = Type(Kind.BASE, "Char", 1, signed=True)
U2 = Type(Kind.BASE, "Uint2B", 2)
I4 = Type(Kind.BASE, "Int4B", 4, signed=True)
U4 = Type(Kind.BASE, "Uint4B", 4)
U8 = Type(Kind.BASE, "Uint8B", 8)
VOID = Type(Kind.VOID, "Void", 0)


def ptr(t: Type) -> Type:
    return Type(Kind.POINTER, "", 8, target=t)


def arr(t: Type, n: int) -> Type:
    return Type(Kind.ARRAY, "", t.size * n, target=t, count=n)


LIST = Type(Kind.STRUCT, "_LIST_ENTRY", 16)
LIST.members = [Member("Flink", 0, ptr(LIST)), Member("Blink", 8, ptr(LIST))]
POOL = Type(
    Kind.ENUM,
    "_POOL_TYPE",
    4,
    target=I4,
    enumerators={0: "NonPagedPool", 1: "PagedPool", 512: "NonPagedPoolNx"},
)
UNION = Type(
    Kind.UNION,
    "<unnamed-tag>",
    4,
    members=[Member("Value", 0, U4), Member("Busy", 0, U4, 0, 1), Member("Count", 0, U4, 1, 31)],
)
FUNC = Type(Kind.FUNCTION, "", 0, target=I4)
THREAD = Type(Kind.STRUCT, "_KTHREAD", 0x430)
FOO = Type(
    Kind.STRUCT,
    "_FOO",
    0x50,
    members=[
        Member("P1Home", 0x0, U8),
        Member("Type", 0x8, Type(Kind.BASE, "Int2B", 2, signed=True)),
        Member("Size", 0xA, U2),
        Member("Flags", 0xC, UNION),
        Member("Links", 0x10, LIST),
        Member("Thread", 0x20, ptr(THREAD)),
        Member("Context", 0x28, ptr(VOID)),
        Member("ImageFileName", 0x30, arr(U1, 15)),
        Member("PreviousMode", 0x3F, C1),
        Member("PoolType", 0x40, POOL),
        Member("Status", 0x44, I4),
        Member("DriverInit", 0x48, ptr(FUNC)),
    ],
)

ADDR = 0xFFFFD8024AAA8000


def _image() -> bytes:
    b = bytearray(0x50)
    b[0:8] = (0xFFFFF80060DA1981).to_bytes(8, "little")
    b[8:10] = (3).to_bytes(2, "little")
    b[0xA:0xC] = (0x1F8).to_bytes(2, "little")
    b[0xC:0x10] = ((5 << 1) | 1).to_bytes(4, "little")
    b[0x10:0x18] = (ADDR + 0x10).to_bytes(8, "little")
    b[0x18:0x20] = (0xFFFFF8006322A230).to_bytes(8, "little")
    b[0x20:0x28] = (0xFFFF91895309D080).to_bytes(8, "little")
    b[0x28:0x30] = (4).to_bytes(8, "little")
    b[0x30:0x36] = b"System"
    b[0x3F] = 1
    b[0x40:0x44] = (512).to_bytes(4, "little")
    b[0x44:0x48] = (-1073741819).to_bytes(4, "little", signed=True)
    b[0x48:0x50] = (0xFFFFF80060DA5000).to_bytes(8, "little")
    return bytes(b)


def reader(data: bytes, at: int = ADDR):
    def read(address, size):
        off = address - at
        return data[off : off + size] if 0 <= off < len(data) else b""

    return read


def test_layout_without_address():
    assert dump_type(FOO, module="nt") == [
        "nt!_FOO",
        "   +0x000 P1Home           : Uint8B",
        "   +0x008 Type             : Int2B",
        "   +0x00a Size             : Uint2B",
        "   +0x00c Flags            : <unnamed-tag>",
        "   +0x010 Links            : _LIST_ENTRY",
        "   +0x020 Thread           : Ptr64 _KTHREAD",
        "   +0x028 Context          : Ptr64 Void",
        "   +0x030 ImageFileName    : [15] UChar",
        "   +0x03f PreviousMode     : Char",
        "   +0x040 PoolType         : _POOL_TYPE",
        "   +0x044 Status           : Int4B",
        "   +0x048 DriverInit       : Ptr64     long",
    ]


def test_bitfields_long_names_and_recursion():
    lines = dump_type(FOO, module="nt", recurse=1, fields=["Flags"])
    assert lines == [
        "nt!_FOO",
        "   +0x00c Flags : <unnamed-tag>",
        "      +0x000 Value            : Uint4B",
        "      +0x000 Busy             : Pos 0, 1 Bit",
        "      +0x000 Count            : Pos 1, 31 Bits",
    ]
    long = Type(Kind.STRUCT, "_X", 4, members=[Member("AlignmentRequirement", 0, U4)])
    assert dump_type(long)[1] == "   +0x000 AlignmentRequirement : Uint4B"


def test_values_at_an_address():
    lines = dump_type(FOO, module="nt", address=ADDR, read=reader(_image()))
    assert lines == [
        "nt!_FOO",
        "   +0x000 P1Home           : 0xfffff800`60da1981",
        "   +0x008 Type             : 0n3",
        "   +0x00a Size             : 0x1f8",
        "   +0x00c Flags            : <unnamed-tag>",
        "   +0x010 Links            : _LIST_ENTRY [ 0xffffd802`4aaa8010 - 0xfffff800`6322a230 ]",
        "   +0x020 Thread           : 0xffff9189`5309d080 _KTHREAD",
        "   +0x028 Context          : 0x00000000`00000004 Void",
        '   +0x030 ImageFileName    : [15]  "System"',
        "   +0x03f PreviousMode     : 0n1 ''",
        "   +0x040 PoolType         : NonPagedPoolNx (0n512)",
        "   +0x044 Status           : 0n-1073741819",
        "   +0x048 DriverInit       : 0xfffff800`60da5000     long",
    ]


def test_function_pointer_target_is_named():
    names = {0xFFFFF80060DA5000: "myfault+0x5000"}
    lines = dump_type(FOO, address=ADDR, read=reader(_image()), fields=["DriverInit"], symbolize=names.get)
    assert lines[1] == "   +0x048 DriverInit : 0xfffff800`60da5000     long  myfault+0x5000"


def test_recursive_values_show_bitfields_in_binary():
    lines = dump_type(FOO, address=ADDR, read=reader(_image()), recurse=1, fields=["Flags"])
    assert lines[1:] == [
        "   +0x00c Flags : <unnamed-tag>",
        "      +0x000 Value            : 0xb",
        "      +0x000 Busy             : 0y1",
        "      +0x000 Count            : 0y0000000000000000000000000000101 (0x5)",
    ]


def test_field_filter_with_sub_member_and_wildcard():
    lines = dump_type(FOO, module="nt", address=ADDR, read=reader(_image()), fields=["Links.Blink", "Pool*"])
    assert lines == [
        "nt!_FOO",
        "   +0x010 Links    :",
        "      +0x008 Blink : 0xfffff800`6322a230 _LIST_ENTRY",
        "   +0x040 PoolType : NonPagedPoolNx (0n512)",
    ]
    assert dump_type(FOO, fields=["Nope"])[-1] == "Cannot find specified field members."


def test_absent_memory():
    """Real kd on an absent page (DebugPrivilege/InsightEngineering, ``dt nt!_LIST_ENTRY ffffc48068d7d000``):
    ``   +0x000 Flink            : ???? `` (a blank after the marks) and
    ``Memory read error ffffc48068d7d008`` - no backtick, the last member it could not read."""
    data = _image()[:0x20]  # the rest of the struct is not in the dump
    lines = dump_type(FOO, module="nt", address=ADDR, read=reader(data))
    assert (
        lines[5] == "   +0x010 Links            : _LIST_ENTRY [ 0xffffd802`4aaa8010 - 0xfffff800`6322a230 ]"
    )
    assert lines[6] == "   +0x020 Thread           : ???? "
    assert lines[9] == "   +0x03f PreviousMode     : ??"
    assert lines[-2] == "   +0x048 DriverInit       : ???? "
    assert lines[-1] == "Memory read error ffffd8024aaa8048"
    nothing = dump_type(FOO, address=ADDR, read=lambda a, n: b"")
    assert nothing[1] == "   +0x000 P1Home           : ??"
    assert nothing[-1] == "Memory read error ffffd8024aaa8048"


def test_absent_list_entry_as_kd_prints_it():
    lines = dump_type(LIST, module="nt", address=0xFFFFC48068D7D000, read=lambda a, n: b"", header=False)
    assert lines == [
        "   +0x000 Flink            : ???? ",
        "   +0x008 Blink            : ???? ",
        "Memory read error ffffc48068d7d008",
    ]


def test_header_only_when_the_module_was_not_named():
    assert dump_type(LIST, module="nt", header=False) == [
        "   +0x000 Flink            : Ptr64 _LIST_ENTRY",
        "   +0x008 Blink            : Ptr64 _LIST_ENTRY",
    ]


def test_enum_listing_and_type_names():
    assert dump_type(POOL, module="nt") == [
        "nt!_POOL_TYPE",
        "   NonPagedPool = 0n0",
        "   PagedPool = 0n1",
        "   NonPagedPoolNx = 0n512",
    ]
    assert list_types(["_KTHREAD", "_KTRAP_FRAME", "_KTRAP_STATE", "_EPROCESS"], "_ktrap*", "nt") == [
        "          nt!_KTRAP_FRAME",
        "          nt!_KTRAP_STATE",
    ]
    assert type_text(arr(ptr(LIST), 2)) == "[2] Ptr64 _LIST_ENTRY"
    assert type_text(ptr(LIST), 4) == "Ptr32 _LIST_ENTRY"


def test_verbose_names_sizes():
    lines = dump_type(LIST, module="nt", verbose=True)
    assert lines == [
        "struct _LIST_ENTRY, 2 elements, 0x10 bytes",
        "   +0x000 Flink            : Ptr64 to struct _LIST_ENTRY, 2 elements, 0x10 bytes",
        "   +0x008 Blink            : Ptr64 to struct _LIST_ENTRY, 2 elements, 0x10 bytes",
    ]


def test_real_pdb_layouts():
    from bugcheck.symbols.pdb import open_pdb

    pdb = open_pdb(corpus_file("symbols", "pdb", "win10-19041-ntdll-x64-a.pdb"))
    trap = pdb.types.find_type("_KTRAP_FRAME")
    lines = dump_type(trap, module="nt")
    assert lines[:3] == [
        "nt!_KTRAP_FRAME",
        "   +0x000 P1Home           : Uint8B",
        "   +0x008 P2Home           : Uint8B",
    ]
    assert "   +0x028 PreviousMode     : Char" in lines
    eproc = pdb.types.find_type("_EPROCESS")
    lines = dump_type(eproc, module="nt")
    assert "   +0x440 UniqueProcessId  : Ptr64 Void" in lines
    assert "   +0x448 ActiveProcessLinks : _LIST_ENTRY" in lines
    assert "   +0x460 DefaultPagePriority : Pos 12, 3 Bits" in lines
    assert "   +0x5a8 ImageFileName    : [15] UChar" in lines
    drv = dump_type(pdb.types.find_type("_DRIVER_OBJECT"), module="nt")
    assert "   +0x070 MajorFunction    : [28] Ptr64     long" in drv


def test_null_pointer_reads_null():
    """kd spells a NULL pointer member ``(null)`` (DebugPrivilege ``dt nt!_LIST_ENTRY ffffe2809abee000``:
    ``   +0x008 Blink            : (null)``; also MS docs' ``dt nt!_ERESOURCE -b``)."""
    b = (0x74536D4D03880000).to_bytes(8, "little") + bytes(8)
    lines = dump_type(
        LIST, module="nt", address=0xFFFFE2809ABEE000, read=reader_at(0xFFFFE2809ABEE000, b), header=False
    )
    assert lines == [
        " [ 0x74536d4d`03880000 - 0x00000000`00000000 ]",
        "   +0x000 Flink            : 0x74536d4d`03880000 _LIST_ENTRY",
        "   +0x008 Blink            : (null)",
    ]


def test_list_entry_pointer_followed_one_step():
    """``lkd> dt nt!_LIST_ENTRY fffff807`25e37f90`` (a published PsActiveProcessHead walk):
    each link shows the entry it points at, ``_LIST_ENTRY [ 0xF - 0xB ]``."""
    head, nxt = 0xFFFFF80725E37F90, 0xFFFFC509C5488488
    mem = {
        head: nxt.to_bytes(8, "little") + head.to_bytes(8, "little"),
        nxt: (0xFFFFC509C54F64C8).to_bytes(8, "little") + head.to_bytes(8, "little"),
    }

    def read(a, n):
        for base, data in mem.items():
            if base <= a < base + len(data):
                return data[a - base : a - base + n]
        return b""

    lines = dump_type(LIST, module="nt", address=head, read=read, header=False)
    assert lines == [
        " [ 0xffffc509`c5488488 - 0xfffff807`25e37f90 ]",
        "   +0x000 Flink            : 0xffffc509`c5488488 _LIST_ENTRY [ 0xffffc509`c54f64c8 - 0xfffff807`25e37f90 ]",
        "   +0x008 Blink            : 0xfffff807`25e37f90 _LIST_ENTRY [ 0xffffc509`c5488488 - 0xfffff807`25e37f90 ]",
    ]


def reader_at(base: int, data: bytes):
    def read(a, n):
        if base <= a < base + len(data):
            return data[a - base : a - base + n]
        return b""

    return read


def test_named_fields_pad_to_the_longest_name():
    """Real kd pads field names to the longest one it was asked for, not to 16
    (nohuto/windbg-notes: ``lkd> dt nt!_KTHREAD ffffc184ff755040 Process CycleTime UserTime KernelTime
    Priority`` -> ``   +0x048 CycleTime  : ...`` / ``   +0x28c KernelTime : ...``; DebugPrivilege:
    ``kd> dt nt!_EPROCESS ffff9003e19ae080 -y ThreadListHead`` -> ``   +0x5e0 ThreadListHead : ...``)."""
    lines = dump_type(
        FOO, address=ADDR, read=reader(_image()), fields=["Status", "PoolType", "Type"], header=False
    )
    assert lines == [
        "   +0x008 Type     : 0n3",
        "   +0x040 PoolType : NonPagedPoolNx (0n512)",
        "   +0x044 Status   : 0n-1073741819",
    ]
