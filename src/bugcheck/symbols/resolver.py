"""Addresses to names and back, across all loaded modules.

The resolver knows the module list and asks a *loader* for each module's
symbols the first time an address or name in it is needed (WinDbg's deferred
loading). It formats addresses the way WinDbg does:

- ``nt!KiPageFault+0x469`` with symbols, ``nt!KeBugCheckEx`` at a symbol's start;
- ``myfault+0x1981`` when the module has no symbols;
- ``0x00007ff8`f16ece54`` (in stacks) when no module contains the address.
"""

from __future__ import annotations

import bisect
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from bugcheck.symbols.modules import ModuleInfo
from bugcheck.symbols.types import Symbol, SymbolSource, Type, TypeSource


def hex_addr(value: int | None, pointer_size: int = 8) -> str:
    """WinDbg's address spelling: ``fffff800`62600000`` (64-bit) or ``8054f000`` (32-bit);
    question marks for a value that could not be read. The one formatter every layer uses."""
    if value is None:
        return "????????" if pointer_size == 4 else "????????`????????"
    if pointer_size == 4:
        return f"{value & 0xFFFFFFFF:08x}"
    v = value & 0xFFFFFFFFFFFFFFFF
    return f"{v >> 32:08x}`{v & 0xFFFFFFFF:08x}"


@dataclass
class ModuleSymbols:
    """What was loaded for one module, and how (``lm``'s second column)."""

    info: ModuleInfo
    #: ``deferred`` (not tried yet), ``pdb symbols``, ``private pdb symbols``, ``export symbols``,
    #: ``symbol table`` (ISF), ``no symbols``
    state: str = "deferred"
    symbols: SymbolSource | None = None
    types: TypeSource | None = None
    #: where the symbols came from (a PDB or ISF path), for ``lm`` and ``.reload`` messages
    symbol_file: str = ""
    #: a PE image object for this module, when one was found (used for unwinding and ``!chkimg``)
    image: object | None = None
    image_file: str = ""
    messages: list[str] = field(default_factory=list)


@dataclass
class Symbolized:
    module: ModuleInfo | None
    symbol: Symbol | None
    #: address minus the symbol's address (or the module base when there is no symbol)
    displacement: int


Loader = Callable[[ModuleInfo], ModuleSymbols]


#: compiler-generated constants (string literals, float/vector constants): never a code location
_CONSTANT_PREFIXES = ("??_C@", "__real@", "__xmm@", "__ymm@")


def _same_section(image, rva_a: int, rva_b: int) -> bool:
    """Whether two RVAs fall in one section of ``image`` (True when the image is unknown)."""
    if image is None:
        return True
    try:
        a = image.section_for(rva_a)
        b = image.section_for(rva_b)
    except Exception:  # noqa: BLE001 - a damaged header must not break symbolization
        return True
    if a is None or b is None:
        return True
    return a is b or (a.virtual_address == b.virtual_address)


class Resolver:
    """Module list + lazily loaded symbols for each module."""

    def __init__(self, modules: list[ModuleInfo], loader: Loader | None = None, pointer_size: int = 8):
        self.pointer_size = pointer_size
        self._loader = loader
        #: per-target caches that upper layers keep here (e.g. the stack walker's unwind lookups),
        #: dropped whenever the module list changes
        self.cache: dict = {}
        self.set_modules(modules)

    # -- modules -------------------------------------------------------------------------------
    def set_modules(self, modules: list[ModuleInfo]) -> None:
        self.modules = list(modules)
        ordered = sorted(self.modules, key=lambda m: m.base)
        self._starts = [m.base for m in ordered]
        self._ordered = ordered
        self._loaded: dict[int, ModuleSymbols] = {}
        self.cache = {}

    def module_at(self, address: int) -> ModuleInfo | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i >= 0 and self._ordered[i].contains(address):
            return self._ordered[i]
        return None

    def module_by_name(self, name: str) -> ModuleInfo | None:
        low = name.lower()
        for m in self.modules:
            if m.name.lower() == low:
                return m
        for m in self.modules:
            stem = m.image_name.lower().rsplit(".", 1)[0]
            if m.image_name.lower() == low or stem == low:
                return m
        return None

    @property
    def kernel(self) -> ModuleInfo | None:
        return self.modules[0] if self.modules else None

    # -- loading -------------------------------------------------------------------------------
    def state(self, module: ModuleInfo) -> ModuleSymbols:
        """Symbols for ``module`` if already loaded, else the deferred placeholder (no loading)."""
        return self._loaded.get(module.base) or ModuleSymbols(module)

    def load(self, module: ModuleInfo, force: bool = False) -> ModuleSymbols:
        got = self._loaded.get(module.base)
        if got is not None and not force:
            return got
        if self._loader is None:
            got = ModuleSymbols(module, state="no symbols")
        else:
            got = self._loader(module)
        self._loaded[module.base] = got
        return got

    def unload_all(self) -> None:
        self._loaded.clear()
        self.cache.clear()

    # -- address -> name -----------------------------------------------------------------------
    def symbolize(self, address: int) -> Symbolized:
        module = self.module_at(address)
        if module is None:
            return Symbolized(None, None, 0)
        ms = self.load(module)
        sym = None
        if ms.symbols is not None:
            sym = ms.symbols.symbol_at(address - module.base)
        if sym is not None and (
            sym.name.startswith(_CONSTANT_PREFIXES)
            or not _same_section(ms.image, sym.rva, address - module.base)
        ):
            # The nearest name is a constant, or lies in another section: it does not describe
            # this address (code without a public name), so print module+offset instead.
            sym = None
        if sym is None:
            return Symbolized(module, None, address - module.base)
        return Symbolized(module, sym, address - module.base - sym.rva)

    def symbol_for(self, address: int) -> str | None:
        """``mod!name+0x12`` / ``mod+0x1234``, or None when no module holds the address."""
        s = self.symbolize(address)
        if s.module is None:
            return None
        if s.symbol is None:
            return f"{s.module.name}+{s.displacement:#x}"
        if s.displacement == 0:
            return f"{s.module.name}!{s.symbol.name}"
        return f"{s.module.name}!{s.symbol.name}+{s.displacement:#x}"

    def format_address(self, address: int) -> str:
        """As ``k`` prints a call site: the symbol form, else ``0x`` and the backticked address."""
        return self.symbol_for(address) or "0x" + hex_addr(address, self.pointer_size)

    # -- name -> address -----------------------------------------------------------------------
    def resolve(self, name: str) -> int | None:
        """``nt!KeBugCheckEx``, ``KeBugCheckEx`` (nt first, then every module), or a module name."""
        if "!" in name:
            mod_name, sym_name = name.split("!", 1)
            module = self.module_by_name(mod_name)
            if module is None:
                return None
            return self._resolve_in(module, sym_name)
        module = self.module_by_name(name)
        if module is not None:
            return module.base
        for module in self.modules:
            ms = self._loaded.get(module.base)
            if module.index != 0 and (ms is None or ms.symbols is None):
                continue
            addr = self._resolve_in(module, name)
            if addr is not None:
                return addr
        return None

    def _resolve_in(self, module: ModuleInfo, sym_name: str) -> int | None:
        ms = self.load(module)
        if ms.symbols is None:
            return None
        sym = ms.symbols.symbol_by_name(sym_name)
        return None if sym is None else module.base + sym.rva

    def matching(self, pattern: str) -> list[tuple[ModuleInfo, Symbol]]:
        """``x mod!pat*``: symbols matching a wildcard pattern in modules matching the module part."""
        mod_pat, _, sym_pat = pattern.rpartition("!")
        mod_pat = mod_pat or "*"
        out = []
        for module in self.modules:
            if not fnmatch.fnmatch(module.name.lower(), mod_pat.lower()):
                continue
            ms = self.load(module)
            if ms.symbols is None:
                continue
            out.extend((module, s) for s in ms.symbols.symbols_matching(sym_pat or "*"))
        return out

    def find_type(self, name: str) -> tuple[ModuleInfo, Type] | None:
        """``nt!_EPROCESS`` or ``_EPROCESS`` (nt first): the module and the type."""
        if "!" in name:
            mod_name, type_name = name.split("!", 1)
            module = self.module_by_name(mod_name)
            candidates = [module] if module else []
        else:
            type_name = name
            candidates = list(self.modules)
        for module in candidates:
            if module.index != 0 and "!" not in name and module.base not in self._loaded:
                continue
            ms = self.load(module)
            if ms.types is None:
                continue
            t = ms.types.find_type(type_name)
            if t is not None:
                return module, t
        return None

    def kernel_types(self) -> TypeSource | None:
        k = self.kernel
        return None if k is None else self.load(k).types

    def complete(self, prefix: str, limit: int = 200) -> list[str]:
        """Tab completion for ``mod!prefix`` (symbols of loaded modules) or module names."""
        if "!" not in prefix:
            low = prefix.lower()
            return [m.name + "!" for m in self.modules if m.name.lower().startswith(low)][:limit]
        mod_name, sym_prefix = prefix.split("!", 1)
        module = self.module_by_name(mod_name)
        if module is None:
            return []
        ms = self.load(module)
        if ms.symbols is None:
            return []
        names = [s.name for s in ms.symbols.symbols_matching(sym_prefix + "*")]
        return [f"{module.name}!{n}" for n in sorted(set(names))[:limit]]

    def complete_types(self, prefix: str, limit: int = 200) -> list[str]:
        """Tab completion of type names for ``dt``: ``nt!_EPRO`` -> ``nt!_EPROCESS`` (kernel by default)."""
        mod_name, _, type_prefix = prefix.rpartition("!")
        module = self.module_by_name(mod_name) if mod_name else self.kernel
        if module is None:
            return []
        ms = self.load(module)
        if ms.types is None:
            return []
        low = type_prefix.lower()
        names = sorted(n for n in ms.types.type_names() if n.lower().startswith(low))
        shown = f"{module.name}!" if mod_name else ""
        return [shown + n for n in names[:limit]]

    def complete_fields(self, type_name: str, prefix: str, limit: int = 200) -> list[str]:
        """Member names of a type starting with ``prefix`` (``dt nt!_EPROCESS Image<TAB>``)."""
        found = self.find_type(type_name)
        if found is None:
            return []
        low = prefix.lower()
        names = [m.name for m in found[1].members if m.name.lower().startswith(low)]
        return list(dict.fromkeys(names))[:limit]
