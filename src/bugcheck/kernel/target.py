"""One open dump with everything needed to name and interpret it.

:class:`Target` joins the layers below: it finds the kernel, loads the
kernel's symbols first (so the module list can be walked with real types),
builds the module list and a :class:`~bugcheck.symbols.resolver.Resolver`
whose per-module loader looks for symbols the way WinDbg does, and exposes the
:class:`~bugcheck.kernel.model.Kernel` view.

Per-module loading order (first hit wins):
1. the module's image: from dump memory when its header page is present, else
   an ``-i`` image folder, else the symbol store by image key
   (TimeDateStamp + SizeOfImage);
2. its PDB from the symbol store, keyed by the image's CodeView GUID and age;
3. for the kernel without a PDB: an offline symbol table (ISF) from
   ``--symbols-dir``, by GUID/age when the kernel image is readable, else by
   matching the header's PsLoadedModuleList / PsActiveProcessHead /
   KdDebuggerDataBlock RVAs (minidumps carry no kernel GUID);
4. the image's export table (WinDbg's "export symbols");
5. nothing: addresses print as ``module+0x1234``.
"""

from __future__ import annotations

import bisect
import fnmatch
import os
import sys
from pathlib import Path

from bugcheck.errors import BugcheckError
from bugcheck.kernel.model import Kernel
from bugcheck.kernel.modules import ModuleList, discover, kernel_base_of
from bugcheck.kernel.typed import Types
from bugcheck.symbols.modules import ModuleInfo, assign_module_names
from bugcheck.symbols.pe import image_property
from bugcheck.symbols.resolver import ModuleSymbols, Resolver
from bugcheck.symbols.types import Symbol

#: the symbol path when neither -y nor _NT_SYMBOL_PATH gives one: Microsoft's server + the user cache
DEFAULT_SYMBOL_PATH = "srv*"


class ExportSymbols:
    """A SymbolSource over a PE export table (WinDbg's "export symbols")."""

    def __init__(self, exports):
        named = [(e.rva, e.name) for e in exports if e.name and e.rva]
        named.sort()
        self._rvas = [r for r, _ in named]
        self._syms = [Symbol(n, r, 0, True) for r, n in named]
        self._by_name = {s.name: s for s in self._syms}

    def __len__(self) -> int:
        return len(self._syms)

    def symbol_by_name(self, name: str) -> Symbol | None:
        return self._by_name.get(name)

    def symbol_at(self, rva: int) -> Symbol | None:
        i = bisect.bisect_right(self._rvas, rva) - 1
        return self._syms[i] if i >= 0 else None

    def symbols_matching(self, pattern: str) -> list[Symbol]:
        p = pattern.lower()
        return [s for s in self._syms if fnmatch.fnmatchcase(s.name.lower(), p)]


def _safe_file_name(name: str) -> str | None:
    """A module file name usable under a local folder, or None (names come from the dump)."""
    if not name or name in (".", "..") or any(c in name for c in "/\\:\0"):
        return None
    if len(name.encode("utf-8", "surrogatepass")) > 255:
        return None  # longer than a file name may be: no file has it
    return name


class Target:
    def __init__(
        self,
        dump,
        *,
        sympath: str | None = None,
        image_path: str | None = None,
        offline: bool = False,
        symbols_dir: str | None = None,
        noisy: bool = False,
        store=None,
    ):
        self.dump = dump
        self.sympath_text = sympath
        self.image_path = image_path
        self.offline = offline
        self.symbols_dir = symbols_dir or os.environ.get("BUGCHECK_SYMBOLS_DIR") or None
        self.noisy = noisy
        self.messages: list[str] = []
        self._store = store
        self._kernel_table_reason: str | None = None
        self.resolver = Resolver([], self._load_module, dump.pointer_size)
        self.module_list = self._find_modules()
        self._install_image_memory()
        self.kernel = Kernel(dump, Types(self._kernel_type_source(), dump.pointer_size), self._kernel_symbol)

    def _captured_read(self, va: int, n: int) -> bytes:
        """Like ``dump.read_virtual`` without the image fallback: which image a module gets
        (the dump's memory or its file) depends on what the dump itself holds."""
        fallback = getattr(self, "image_memory", None)
        if fallback is None:
            return self.dump.read_virtual(va, n)
        with fallback.disabled():
            return self.dump.read_virtual(va, n)

    def _install_image_memory(self) -> None:
        """Holes in a loaded module's range read from its image file, as WinDbg maps images on a
        minidump: only the bytes the loader leaves as in the file (``constant_ranges``), each
        image looked up (``-i`` folders, then the store) when a hole in its range is first read."""
        from bugcheck.memory.fallback import RangeFallback

        mods = {m.base: m for m in self.modules if m.base and m.size and m.timestamp}

        def load(base: int):
            from bugcheck.symbols.pe import find_module_image

            try:
                store = self.store
            except BugcheckError:
                store = None
            return find_module_image(mods[base], store, self.image_path)

        self.image_memory = RangeFallback(((b, m.size, b) for b, m in mods.items()), load)
        install = getattr(self.dump, "set_memory_fallback", None)
        if install is not None:
            install(self.image_memory)

    def _kernel_type_source(self):
        """nt's PDB or symbol table; without either, the offsets the dump's debugger data block gives."""
        source = self.resolver.kernel_types()
        if source is None:
            from bugcheck.kernel.kdtypes import types_from_dump

            source = types_from_dump(self.dump)
        return source

    # -- symbol store --------------------------------------------------------------------------
    @property
    def store(self):
        if self._store is None:
            from bugcheck.symbols.store import SymbolStore
            from bugcheck.symbols.sympath import environment_sympath, resolve_sympath

            text = self.sympath_text
            if text is None and not environment_sympath():
                text = DEFAULT_SYMBOL_PATH  # what the banner reports, as WinDbg Preview does
            path = resolve_sympath(text, offline=self.offline)
            on_log = (lambda line: sys.stderr.write(line + "\n")) if self.noisy else None
            self._store = SymbolStore(path, offline=self.offline, quiet=not self.noisy, on_log=on_log)
        return self._store

    def set_sympath(self, text: str | None) -> None:
        self.sympath_text = text
        self._store = None

    # -- modules -------------------------------------------------------------------------------
    def _find_modules(self) -> ModuleList:
        # Load the kernel's symbols first, so the module list can be walked with real types.
        base = kernel_base_of(self.dump)
        if base is not None:
            first = self._triage_kernel_entry(base)
            if first is not None:
                nt = assign_module_names([first])
            else:
                nt = assign_module_names([ModuleInfo("ntoskrnl.exe", base, self._kernel_size(base))])
            self.resolver.set_modules(nt)
            types = Types(self.resolver.kernel_types(), self.dump.pointer_size)
        else:
            types = Types(None, self.dump.pointer_size)
        found = discover(self.dump, types, symbol=self._kernel_symbol)
        loaded_nt = self.resolver.state(self.resolver.modules[0]) if self.resolver.modules else None
        self.resolver.set_modules(found.modules)
        if loaded_nt is not None and found.modules and found.modules[0].base == loaded_nt.info.base:
            loaded_nt.info = found.modules[0]
            self.resolver._loaded[found.modules[0].base] = loaded_nt
        self.messages.extend(found.warnings)
        return found

    def _triage_kernel_entry(self, base: int) -> ModuleInfo | None:
        """The kernel as a triage dump's driver list records it (with its TimeDateStamp and size,
        so its image and symbols can be found by key before the full module list is built)."""
        from bugcheck.kernel.modules import from_triage

        found = from_triage(self.dump)
        if found is None or not found.modules or found.modules[0].base != base:
            return None
        return found.modules[0]

    def _kernel_size(self, base: int) -> int:
        from bugcheck.kernel.modules import _image_size

        size = _image_size(self.dump, base)
        if size:
            return size
        triage = getattr(self.dump, "triage", None)
        drivers = getattr(triage, "drivers", None) if triage is not None else None
        if drivers:
            return getattr(drivers[0], "size", 0) or 0x1000
        return 0x1000

    @property
    def modules(self) -> list[ModuleInfo]:
        return self.resolver.modules

    @property
    def unloaded_modules(self):
        return self.module_list.unloaded

    def _kernel_symbol(self, name: str) -> int | None:
        k = self.resolver.kernel
        if k is None:
            return None
        ms = self.resolver.load(k)
        if ms.symbols is None:
            return None
        s = ms.symbols.symbol_by_name(name)
        return None if s is None else k.base + s.rva

    # -- per-module loading --------------------------------------------------------------------
    def _load_module(self, module: ModuleInfo) -> ModuleSymbols:
        ms = ModuleSymbols(module, state="no symbols")
        image = self._find_image(module, ms)
        if image is not None:
            ms.image = image
        cv = None
        if image is not None:
            try:
                cv = image.codeview
            except BugcheckError as e:
                ms.messages.append(f"{module.name}: debug directory unreadable: {e}")
        if cv is not None and cv.guid is not None:
            self._try_pdb(module, ms, cv)
        if ms.symbols is None and module.index == 0:
            self._try_kernel_table(module, ms, cv)
        if ms.symbols is None:
            exports = image_property(image, "exports")
            if exports:
                ms.symbols = ExportSymbols(exports)
                ms.state = "export symbols"
        self.messages.extend(ms.messages)
        if self.noisy:
            # -n: say what symbol loading did, as it happens (stderr keeps stdout scriptable)
            how = ms.symbol_file or ms.image_file or "nothing found"
            sys.stderr.write(f"DBGHELP: {module.name} - {ms.state} ({how})\n")
            for msg in ms.messages:
                sys.stderr.write(f"DBGHELP: {msg}\n")
        return ms

    def _find_image(self, module: ModuleInfo, ms: ModuleSymbols):
        from bugcheck.symbols.pe import PeImage

        # 1. the dump's own memory: used as is only when its headers and debug record are there
        # (captured by the dump: headers the image file supplies for a hole make it the file's turn)
        mem_img = None
        read = self._captured_read
        try:
            head = read(module.base, 2)
        except BugcheckError:
            head = b""
        if head == b"MZ":
            try:
                mem_img = PeImage.from_memory(read, module.base, module.image_name)
            except BugcheckError as e:
                ms.messages.append(f"{module.name}: image header in the dump is unreadable: {e}")
        complete = (
            mem_img is not None
            and getattr(mem_img, "headers_complete", True)
            and image_property(mem_img, "codeview")
        )
        # A driver's resources are often discardable and freed after load: with no version
        # resource left in memory, the image file (same build) is the fuller source, as kd maps it
        if complete and image_property(mem_img, "version_info") is not None:
            ms.image_file = "(dump memory)"
            return mem_img
        file_img = self._find_image_file(module, ms)
        if file_img is None and complete:
            ms.image_file = "(dump memory)"
            return mem_img
        if file_img is not None:
            return file_img
        if mem_img is not None:
            ms.image_file = "(dump memory, partial)"
        return mem_img

    def _find_image_file(self, module: ModuleInfo, ms: ModuleSymbols):
        name = _safe_file_name(module.image_name)
        if name is None:
            return None
        # 2. -i image folders
        for folder in (self.image_path or "").split(";"):
            folder = folder.strip()
            if not folder:
                continue
            cand = Path(folder) / name
            if cand.is_file():
                img = self._open_image_file(cand, module, ms)
                if img is not None:
                    return img
        # 3. the symbol store by image key
        if module.timestamp and module.size:
            try:
                found = self.store.find_image(name, module.timestamp, module.size)
            except BugcheckError as e:
                ms.messages.append(f"{module.name}: {e}")
                found = None
            if found is not None:
                return self._open_image_file(found, module, ms)
        return None

    def _open_image_file(self, path: Path, module: ModuleInfo, ms: ModuleSymbols):
        from bugcheck.symbols.pe import PeImage

        try:
            img = PeImage.from_file(path)
        except BugcheckError as e:
            ms.messages.append(f"{module.name}: {e}")
            return None
        if module.timestamp and img.timestamp != module.timestamp:
            ms.messages.append(
                f"WARNING: {module.image_name} image at {path} does not match the loaded module "
                f"(TimeDateStamp {img.timestamp:08x}, expected {module.timestamp:08x}); ignored"
            )
            return None
        ms.image_file = str(path)
        return img

    def _try_pdb(self, module: ModuleInfo, ms: ModuleSymbols, cv) -> None:
        from bugcheck.symbols.pdb import open_pdb

        try:
            path = self.store.find_pdb(cv.pdb_name, cv.guid, cv.age)
        except BugcheckError as e:
            ms.messages.append(f"{module.name}: {e}")
            return
        if path is None:
            ms.messages.append(
                f"*** ERROR: Module load completed but symbols could not be loaded for {module.image_name}"
            )
            return
        try:
            pdb = open_pdb(path)
        except BugcheckError as e:
            ms.messages.append(str(e))
            return
        if pdb.guid != cv.guid or pdb.age != cv.age:
            ms.messages.append(
                f"WARNING: {path} does not match {module.image_name} (GUID/age differ); ignored"
            )
            return
        ms.symbols = pdb.symbols
        ms.types = pdb.types
        ms.symbol_file = str(path)
        ms.state = "pdb symbols"

    def _try_kernel_table(self, module: ModuleInfo, ms: ModuleSymbols, cv) -> None:
        if not self.symbols_dir:
            return
        from bugcheck.symbols.isf import load_isf
        from bugcheck.symbols.kernel_tables import KernelTableIndex

        try:
            index = KernelTableIndex(self.symbols_dir)
        except (BugcheckError, OSError) as e:
            ms.messages.append(f"symbol tables in {self.symbols_dir}: {e}")
            return
        path = None
        reason = ""
        if cv is not None and cv.guid is not None:
            entry = index.by_guid(cv.guid_hex, cv.age)
            if entry is not None:
                path = entry.path
                reason = (
                    f"kernel symbol table {entry.path.name} chosen by the kernel image's PDB GUID and age"
                )
        if path is None:
            h = self.dump.header
            matches = index.matches(
                h.ps_loaded_module_list, h.ps_active_process_head, h.kd_debugger_data_block, module.base
            )
            if len(matches) >= 1:
                m = matches[0]
                path, reason = m.path, m.reason
                if len(matches) > 1:
                    reason += f" ({len(matches)} tables fit; the first was used)"
        if path is None:
            ms.messages.append(f"no kernel symbol table in {self.symbols_dir} matches this kernel")
            return
        try:
            table = load_isf(path)
        except BugcheckError as e:
            ms.messages.append(str(e))
            return
        ms.symbols = table
        ms.types = table
        ms.symbol_file = str(path)
        ms.state = "symbol table"
        self._kernel_table_reason = reason
        ms.messages.append(reason)

    def display_image_name(self, module: ModuleInfo) -> str:
        """The image name WinDbg shows: the kernel by its PDB's image (ntkrnlmp.exe), else the file name."""
        if module.index != 0:
            return module.image_name
        ms = self.resolver.state(module)
        name = None
        info = getattr(ms.symbols, "pdb_info", None)
        if callable(info):
            info = info()
        if isinstance(info, tuple) and info and isinstance(info[0], str):
            name = info[0]
        elif ms.symbol_file:
            name = ms.symbol_file.replace("\\", "/").rsplit("/", 1)[-1].split(".json")[0]
        if name and name.lower().endswith(".pdb"):
            return name[:-4] + ".exe"
        if self.dump.header.number_processors > 1 and module.image_name.lower() == "ntoskrnl.exe":
            return "ntkrnlmp.exe"
        return module.image_name

    @property
    def kernel_table_reason(self) -> str | None:
        return self._kernel_table_reason
