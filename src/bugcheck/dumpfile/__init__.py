"""bugcheck.dumpfile layer (see docs/ARCHITECTURE.md)."""
