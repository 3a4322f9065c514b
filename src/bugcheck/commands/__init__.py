"""bugcheck.commands layer (see docs/ARCHITECTURE.md)."""
