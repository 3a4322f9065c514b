"""Compressed symbol-store files (``name.pd_``, ``name.sy_``...): one-member CAB archives.

Symbol stores made by symstore.exe ``/compress`` hold LZX-compressed cabinets;
libmspack (through pylibmspack) decodes LZX, MSZIP and Quantum in-process, so
no external ``cabextract`` is needed. A cabinet comes from a server or a share
we do not control: any failure is a :class:`BadFileError`, and the output size
is capped before anything is written.
"""

from __future__ import annotations

from pathlib import Path

from bugcheck.errors import BadFileError

#: The largest member we accept (PDBs of big binaries reach a few hundred MB).
MAX_MEMBER_SIZE = 1 << 31
_CAB_MAGIC = b"MSCF"


def is_cab(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == _CAB_MAGIC
    except OSError:
        return False


def _open(path: Path):
    try:
        from pylibmspack import CabArchive
    except ImportError as e:  # pragma: no cover - dependency is declared
        raise BadFileError(path, f"cannot decompress CAB: pylibmspack unavailable ({e})") from None
    if not is_cab(path):
        raise BadFileError(path, "not a CAB archive (no MSCF signature)")
    try:
        return CabArchive(str(path))
    except Exception as e:  # pylibmspack raises its own error tree; all mean "bad file"
        raise BadFileError(path, f"corrupt CAB archive: {e}") from None


def members(path: str | Path) -> list[tuple[str, int, str]]:
    """``(name, size, compression)`` for each member."""
    p = Path(path)
    cab = _open(p)
    try:
        return [(f["name"], int(f["size"]), str(f.get("compression", "?"))) for f in cab.files()]
    except Exception as e:
        raise BadFileError(p, f"corrupt CAB archive: {e}") from None


def _pick_member(p: Path, names: list[tuple[str, int, str]], want: str | None) -> tuple[str, int]:
    if not names:
        raise BadFileError(p, "CAB archive has no members")
    if want:
        for n, size, _ in names:
            # Member names may carry a folder; compare the last component only.
            if n.replace("\\", "/").rsplit("/", 1)[-1].lower() == want.lower():
                return n, size
    if len(names) == 1:
        return names[0][0], names[0][1]
    raise BadFileError(p, f"CAB archive has {len(names)} members and none is named {want!r}")


def extract_member(path: str | Path, want: str | None = None, *, max_size: int = MAX_MEMBER_SIZE) -> bytes:
    """The bytes of the member named ``want`` (or the only member)."""
    p = Path(path)
    cab = _open(p)
    name, size = _pick_member(p, members(p), want)
    if size > max_size:
        raise BadFileError(p, f"CAB member {name!r} is {size} bytes, over the {max_size}-byte cap")
    try:
        data = cab.read(name, max_size=max_size)
    except Exception as e:
        raise BadFileError(p, f"corrupt CAB archive: cannot decompress {name!r}: {e}") from None
    if len(data) != size:
        raise BadFileError(p, f"CAB member {name!r} decompressed to {len(data)} bytes, header says {size}")
    return bytes(data)


def decompress_to(path: str | Path, dest: str | Path, want: str | None = None) -> Path:
    """Decompress the member into ``dest`` (written by the caller's atomic-rename discipline)."""
    data = extract_member(path, want)
    d = Path(dest)
    with open(d, "wb") as f:
        f.write(data)
    return d
