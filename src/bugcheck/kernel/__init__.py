"""bugcheck.kernel layer (see docs/ARCHITECTURE.md)."""
