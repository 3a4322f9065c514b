"""FAILURE_BUCKET_ID, SYMBOL_NAME, BUCKET_ID_FUNC_OFFSET and FAILURE_ID_HASH.

A bucket names a failure so that crashes with the same cause group together:
a family prefix derived from the bugcheck, then the culprit frame.

* Access violations (0xA, 0xD1 and exception bugchecks 0x1E / 0x7E / 0x8E /
  0x3B and their ``_M`` variants with exception code 0xC0000005) are ``AV_``:
  ``AV_myfault!unknown_function``.
* 0x50 adds the access kind: ``AV_R_INVALID_...`` / ``AV_W_INVALID_...``.
* Other exception bugchecks carry the exception code:
  ``0x7E_c0000094_module!function``.
* Bugchecks whose first argument selects a case carry it:
  ``0x1A_402_nt!MiFoo``, ``0x9F_3_...``; 0x133 is ``0x133_DPC_...`` (or
  ``0x133_ISR_...`` when the caller knows an interrupt was running).
* Everything else is ``0x<code>_module!function``.

The culprit part is ``module!function``, or ``module!unknown_function`` when
the module has no symbols (SYMBOL_NAME is then ``module+offset`` and
BUCKET_ID_FUNC_OFFSET the offset in hex, as in the walkthrough:
``myfault+1981`` / ``1981``). With no culprit at all the family stands alone
with ``_UNKNOWN``.

FAILURE_ID_HASH is a GUID made from the bucket: take ``"km:" +
bucket.lower()`` (``"um:"`` for user mode), encode it as UTF-16LE, hash it with
MD5, and read the 16 digest bytes as a GUID in Windows byte order (the first
three fields little-endian), printed in braces:
``AV_myfault!unknown_function`` -> ``{9745090a-9bce-ccba-c096-ca6e9ca04c64}``.
The exact family spellings WinDbg uses vary between its versions; the hash
always follows the bucket string given.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from bugcheck.analysis.catalog import lookup

STATUS_ACCESS_VIOLATION = 0xC0000005
UNKNOWN_FUNCTION = "unknown_function"
_M_FLAG = 0x10000000
#: bugchecks whose first argument is the exception code
EXCEPTION_BUGCHECKS = frozenset({0x1E, 0x7E, 0x8E, 0x3B})
#: bugchecks that are access violations by definition
AV_BUGCHECKS = frozenset({0x0A, 0xD1})


@dataclass(frozen=True)
class Culprit:
    """The blamed frame: its module (``myfault``), function (None without symbols), and offset.

    ``offset`` is from the function start when ``function`` is known, else from the module base.
    """

    module: str
    function: str | None
    offset: int

    @property
    def function_or_unknown(self) -> str:
        return self.function or UNKNOWN_FUNCTION


def _module_name(module: str) -> str:
    m = module
    for ext in (".sys", ".exe", ".dll"):
        if m.lower().endswith(ext):
            return m[: -len(ext)]
    return m


def symbol_name(culprit: Culprit) -> str:
    """SYMBOL_NAME: ``module!function+off`` with symbols, ``module+off`` without (hex, no 0x)."""
    mod = _module_name(culprit.module)
    if culprit.function:
        return f"{mod}!{culprit.function}+{culprit.offset:x}"
    return f"{mod}+{culprit.offset:x}"


def bucket_id_func_offset(culprit: Culprit) -> str:
    """BUCKET_ID_FUNC_OFFSET: the offset into the function (or module when unknown), hex."""
    return f"{culprit.offset:x}"


def bugcheck_family(code: int, args: tuple[int, ...] | list[int] = (), *, in_interrupt: bool = False) -> str:
    """The part of the bucket before the culprit (``AV``, ``0x1A_402``, ``0x7E_c0000094`` ...)."""
    code &= 0xFFFFFFFF
    args = [a & 0xFFFFFFFFFFFFFFFF for a in args] + [0] * (4 - len(args))
    base = code & ~_M_FLAG if code & _M_FLAG and lookup(code & ~_M_FLAG) is not None else code
    if base in AV_BUGCHECKS:
        return "AV"
    if base in EXCEPTION_BUGCHECKS:
        exc = args[0] & 0xFFFFFFFF
        if exc == STATUS_ACCESS_VIOLATION:
            return "AV"
        return f"0x{base:X}_{exc:x}"
    if base == 0x50:
        p2 = args[1]
        write = p2 == 1 or bool(p2 & 0x2)
        return f"AV_{'W' if write else 'R'}_INVALID"
    if base == 0x133:
        if args[0] == 0 and in_interrupt:
            return "0x133_ISR"
        return "0x133_DPC"
    info = lookup(base)
    if info is not None and info.subtype_arg:
        return f"0x{base:X}_{args[info.subtype_arg - 1]:x}"
    return f"0x{base:X}"


def failure_bucket_id(
    code: int,
    args: tuple[int, ...] | list[int] = (),
    culprit: Culprit | None = None,
    *,
    in_interrupt: bool = False,
) -> str:
    """FAILURE_BUCKET_ID for a bugcheck and its culprit frame."""
    family = bugcheck_family(code, args, in_interrupt=in_interrupt)
    if culprit is None:
        return f"{family}_UNKNOWN"
    return f"{family}_{_module_name(culprit.module)}!{culprit.function_or_unknown}"


def failure_id_hash(bucket_id: str, mode: str = "km") -> str:
    """FAILURE_ID_HASH: ``{guid}`` from MD5 of UTF-16LE ``mode + ":" + bucket.lower()``."""
    digest = hashlib.md5(f"{mode}:{bucket_id.lower()}".encode("utf-16-le")).digest()
    return "{" + str(uuid.UUID(bytes_le=digest)) + "}"
