"""``!chkimg``: compare a module's code in the dump with its image file.

Code sections of the image file (from ``-i`` folders or the symbol store, matched
by TimeDateStamp and SizeOfImage) are relocated to the module's load address
with the file's base relocations, then compared byte for byte with every code
byte the dump holds. Differences are patches, hooks, breakpoints or memory
corruption; bytes the dump lacks are not counted (a minidump holds little code,
so the report says how many bytes could be checked). Code the kernel itself
rewrites at load (the image's dynamic value relocations: import call
optimization, retpoline) differs by design and is counted apart.
"""

from __future__ import annotations

from bisect import bisect_right

from bugcheck.commands.registry import Result, command
from bugcheck.errors import BugcheckError, CommandError
from bugcheck.symbols.pe.mapping import rewritten_code
from bugcheck.symbols.pe.relocs import relocated_bytes, relocations

IMAGE_SCN_MEM_EXECUTE = 0x20000000
IMAGE_SCN_MEM_DISCARDABLE = 0x02000000


def loader_rewrite(image, rva: int, got: bytes, want: bytes) -> str | None:
    """Name the loader rewrite a difference matches, or None for a real difference.

    Windows' loader rewrites import calls in drivers when import-call optimization or
    retpoline mitigations are on (the image's dynamic value relocations):
    ``call [IAT]`` (ff 15) becomes ``call rel32; nop`` (e8 .. 90), and the retpoline form
    ``call [IAT]; nop5`` (48 ff 15 .. 0f 1f 44 00 00) becomes ``mov r10,[IAT]; call rel32``.
    """
    if want[:2] == b"\xff\x15" and got[:1] == b"\xe8" and len(got) == 6 and got[5] == 0x90:
        return "import call optimization"
    if want == b"\x48\xff" and got == b"\x4c\x8b" and image.read_tolerant(rva + 2, 1) == b"\x15":
        return "retpoline import"
    if (
        want == b"\x0f\x1f\x44\x00\x00"
        and got[:1] == b"\xe8"
        and image.read_tolerant(rva - 7, 3) == b"\x48\xff\x15"
    ):
        return "retpoline import"
    return None


def check_module(dump, module, image) -> dict:
    delta = module.base - image.image_base
    fixups = relocations(image)
    fixups.sort()
    errors = []  # (start va, length, dump bytes, file bytes)
    checked = 0
    total = 0
    for sec in image.sections:
        if not sec.characteristics & IMAGE_SCN_MEM_EXECUTE or sec.characteristics & IMAGE_SCN_MEM_DISCARDABLE:
            continue
        size = min(sec.virtual_size or sec.raw_size, sec.raw_size or sec.virtual_size)
        total += size
        ref = relocated_bytes(image, sec.virtual_address, size, delta, fixups)
        mem, holes = dump.read_virtual_captured(module.base + sec.virtual_address, len(ref))
        absent = bytearray(len(ref))
        for hstart, hlen in holes:
            a = hstart - (module.base + sec.virtual_address)
            absent[max(a, 0) : max(a, 0) + hlen] = b"\x01" * hlen
        run_start = None
        for i in range(len(ref)):
            present = not absent[i]
            if present:
                checked += 1
            bad = present and mem[i] != ref[i]
            if bad and run_start is None:
                run_start = i
            elif not bad and run_start is not None:
                errors.append(
                    (module.base + sec.virtual_address + run_start, mem[run_start:i], bytes(ref[run_start:i]))
                )
                run_start = None
        if run_start is not None:
            errors.append(
                (module.base + sec.virtual_address + run_start, mem[run_start:], bytes(ref[run_start:]))
            )
    sites = rewritten_code(image)
    real, rewritten = [], []
    for va, got, want in errors:
        for part in _split_at_sites(va - module.base, got, want, sites or []):
            rva, g, w, at_site = part
            kind = at_site or loader_rewrite(image, rva, g, w)
            (rewritten if kind else real).append((module.base + rva, g, w))
    return {
        "errors": real,
        "rewritten": rewritten,
        "checked": checked,
        "code_bytes": total,
        "sites_known": sites is not None,
    }


def _split_at_sites(rva: int, got: bytes, want: bytes, sites: list[tuple[int, int]]):
    """The difference at ``rva`` cut into pieces inside and outside the loader's rewrite sites:
    (rva, dump bytes, file bytes, inside a site). ``sites`` are sorted, disjoint ranges (as :func:`rewritten_code` gives them)."""
    out = []
    end = rva + len(got)
    pos = rva
    i = max(bisect_right(sites, (rva, 1 << 64)) - 1, 0)
    while pos < end:
        while i < len(sites) and sites[i][1] <= pos:
            i += 1
        if i < len(sites) and sites[i][0] <= pos:
            stop, inside = min(end, sites[i][1]), True
        else:
            stop, inside = min(end, sites[i][0]) if i < len(sites) else end, False
        a, b = pos - rva, stop - rva
        out.append((pos, got[a:b], want[a:b], inside))
        pos = stop
    return out


@command("!chkimg", "Compare a module's code in the dump with its image file: !chkimg [-d] MODULE")
def chkimg(session, args: str) -> Result:
    words = args.split()
    show = any(w.lower() in ("-d", "-v") for w in words)
    names = [w for w in words if not w.startswith("-")]
    # WinDbg accepts "-lo 50": skip numeric option values
    names = [n for n in names if not n.isdigit()]
    name = (names[-1] if names else "nt").lstrip("!")
    target = session.slot("target")
    module = target.resolver.module_by_name(name)
    if module is None:
        raise CommandError(f"Unable to determine module base for {name}")
    ms = target.resolver.load(module)
    image = ms.image if ms.image_file and not ms.image_file.startswith("(dump memory") else None
    if image is None:
        image = target._find_image_file(module, ms)
    if image is None:
        text = (
            f"Unable to find the image file for {module.image_name}: no copy on the image path (-i) or "
            f"the symbol path matches TimeDateStamp {module.timestamp:08X} and SizeOfImage {module.size:X}"
        )
        return Result(text, {"module": module.name, "image_found": False}, schema="bugcheck.chkimg/1")
    try:
        res = check_module(session.dump, module, image)
    except BugcheckError as e:
        raise CommandError(f"!chkimg: {e}") from e
    lines = []
    count = sum(len(d) for _, d, _ in res["errors"])
    if show:
        for va, got, want in res["errors"]:
            sym = target.resolver.symbol_for(va) or ""
            lines.append(
                f"    {va:x}-{va + len(got) - 1:x}  {len(got)} byte{'s' if len(got) != 1 else ''} - {sym}"
            )
            lines.append(f"\t[ {' '.join(f'{b:02x}' for b in want)}:{' '.join(f'{b:02x}' for b in got)} ]")
    if res["errors"]:
        lo = res["errors"][0][0]
        last = res["errors"][-1]
        hi = last[0] + len(last[1]) - 1
        lines.append(f"{count} errors : !{module.name} ({lo:x}-{hi:x})")
        if not res["sites_known"]:
            lines.append(
                "(the image's dynamic value relocation table could not be read: some of these may be "
                "loader rewrites such as retpoline jump thunks rather than corruption)"
            )
    else:
        lines.append(f"0 errors : !{module.name}")
    if res["rewritten"]:
        n = sum(len(g) for _, g, _ in res["rewritten"])
        lines.append(
            f"({n} more bytes differ where the loader rewrote import calls: import call optimization / "
            "retpoline, not corruption)"
        )
    lines.append(
        f"({res['checked']} of {res['code_bytes']} code bytes are in the dump and were compared with {ms.image_file or 'the image file'})"
    )
    data = {
        "module": module.name,
        "image_found": True,
        "errors": count,
        "ranges": [{"address": va, "dump": got.hex(), "file": want.hex()} for va, got, want in res["errors"]],
        "loader_rewritten_bytes": sum(len(g) for _, g, _ in res["rewritten"]),
        "checked_bytes": res["checked"],
        "code_bytes": res["code_bytes"],
    }
    return Result("\n".join(lines), data, schema="bugcheck.chkimg/1")
