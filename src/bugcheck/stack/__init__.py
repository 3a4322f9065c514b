"""bugcheck.stack layer (see docs/ARCHITECTURE.md)."""
