"""Resolver: WinDbg module naming and address formatting, with a symbol source built in the test."""

import fnmatch

from bugcheck.symbols.modules import ModuleInfo, assign_module_names
from bugcheck.symbols.resolver import ModuleSymbols, Resolver, hex_addr
from bugcheck.symbols.types import Symbol


class _Syms:
    def __init__(self, syms):
        self._s = sorted(syms, key=lambda s: s.rva)

    def symbol_by_name(self, name):
        return next((s for s in self._s if s.name == name), None)

    def symbol_at(self, rva):
        best = None
        for s in self._s:
            if s.rva <= rva:
                best = s
        return best

    def symbols_matching(self, pattern):
        return [s for s in self._s if fnmatch.fnmatch(s.name.lower(), pattern.lower())]


def _modules():
    return assign_module_names(
        [
            ModuleInfo("ntoskrnl.exe", 0xFFFFF80062600000, 0xAB6000),
            ModuleInfo("hal.dll", 0xFFFFF800620B0000, 0x6000),
            ModuleInfo("myfault.sys", 0xFFFFF80060DA0000, 0x8000),
            ModuleInfo("my-fault.sys", 0xFFFFF80060DB0000, 0x8000),
            ModuleInfo("myfault.sys", 0xFFFFF80060DC0000, 0x8000),
        ]
    )


def _loader(module):
    if module.name == "nt":
        return ModuleSymbols(
            module,
            "pdb symbols",
            symbols=_Syms([Symbol("KiPageFault", 0x405000), Symbol("KeBugCheckEx", 0x3F0000)]),
        )
    return ModuleSymbols(module, "no symbols")


def test_module_names_follow_windbg():
    names = [m.name for m in _modules()]
    assert names == ["nt", "hal", "myfault", "my_fault", "myfault_fffff80060dc0000"]


def test_format_and_resolve():
    r = Resolver(_modules(), _loader)
    assert r.format_address(0xFFFFF80062A05469) == "nt!KiPageFault+0x469"
    assert r.format_address(0xFFFFF800629F0000) == "nt!KeBugCheckEx"
    assert r.format_address(0xFFFFF80060DA1981) == "myfault+0x1981"
    assert r.format_address(0x00007FF8F16ECE54) == "0x00007ff8`f16ece54"
    assert r.symbol_for(0x1234) is None
    assert r.resolve("nt!KeBugCheckEx") == 0xFFFFF800629F0000
    assert r.resolve("KiPageFault") == 0xFFFFF80062A05000
    assert r.resolve("myfault") == 0xFFFFF80060DA0000
    assert r.resolve("nt!NoSuchThing") is None
    assert [s.name for _, s in r.matching("nt!Ke*")] == ["KeBugCheckEx"]
    assert r.complete("nt!Ki") == ["nt!KiPageFault"]
    assert r.load(r.module_by_name("myfault")).state == "no symbols"


def test_hex_addr():
    assert hex_addr(0xFFFFF80062600000) == "fffff800`62600000"
    assert hex_addr(0x8054F000, 4) == "8054f000"
