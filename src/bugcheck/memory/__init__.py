"""Memory layer: physical memory, paging (virtual -> physical) and sparse virtual memory."""

from bugcheck.memory.base import PAGE_SIZE, AddressSpace

__all__ = ["AddressSpace", "PAGE_SIZE"]
