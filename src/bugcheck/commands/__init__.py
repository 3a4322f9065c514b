"""The WinDbg command language (see docs/ARCHITECTURE.md).

Every module in this package is imported by
:func:`bugcheck.commands.session.load_commands` (via pkgutil) when the first
:class:`~bugcheck.commands.session.Session` is made, so adding a command family
is adding a module that registers its handlers with
:func:`bugcheck.commands.registry.command`; nothing else needs editing.
"""
