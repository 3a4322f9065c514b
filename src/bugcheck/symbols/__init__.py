"""bugcheck.symbols layer (see docs/ARCHITECTURE.md)."""
