"""Fill the session's lazy slots with the real target: resolver, modules, kernel.

Imported with every command module (see ``session.load_commands``); the
:class:`~bugcheck.kernel.target.Target` is built the first time any command
needs names, modules or kernel structures, with the session's symbol settings.
"""

from __future__ import annotations

from bugcheck.commands.session import register_provider


def _target(session):
    from bugcheck.kernel.target import Target

    return Target(
        session.dump,
        sympath=session.sympath,
        image_path=session.image_path,
        offline=session.offline,
        symbols_dir=session.symbols_dir,
        noisy=session.noisy,
    )


register_provider("target", _target)
register_provider("symbols", lambda s: s.slot("target").resolver)
register_provider("modules", lambda s: s.slot("target").modules)
register_provider("kernel", lambda s: s.slot("target").kernel)
