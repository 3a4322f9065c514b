"""Bytes for holes, from sources that each cover one address range and are loaded on first need.

A debugger answers reads a dump cannot from the loaded module's image file.
The memory layer knows nothing of images: it is given the ranges (a module's
base and size) and a ``load(key)`` callable that returns an object with
``pieces(address, size) -> [(address, bytes)]``, or None when no source exists.
Each source is loaded once, the first time a hole falls into its range, and a
None is remembered, so an address outside every range costs one bisect and a
module without a source is looked for once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterable
from contextlib import contextmanager


class RangeFallback:
    """A :data:`~bugcheck.memory.base.Fallback` over disjoint ``(start, size, key)`` ranges.

    ``limit`` caps the total size of the ranges whose sources are loaded; past
    it, further ranges stay holes (a bound on memory for corrupt module lists).
    """

    def __init__(
        self,
        ranges: Iterable[tuple[int, int, Hashable]],
        load: Callable[[Hashable], object | None],
        *,
        limit: int = 2 << 30,
    ):
        spans = []
        for start, size, key in sorted(ranges, key=lambda r: r[0]):
            if size <= 0 or (spans and start < spans[-1][1]):
                continue  # empty, or overlapping the previous range: the first one keeps it
            spans.append((start, start + size, key))
        self._starts = [s for s, _, _ in spans]
        self._spans = spans
        self._load = load
        self._sources: dict[int, object | None] = {}
        self._limit = limit
        self._loaded_bytes = 0
        self._off = 0

    @contextmanager
    def disabled(self):
        """Within this block holes stay holes (to look at what the dump itself holds)."""
        self._off += 1
        try:
            yield self
        finally:
            self._off -= 1

    def source(self, index: int):
        """The source of range ``index``, loading it on first use (None: there is none)."""
        if index in self._sources:
            return self._sources[index]
        start, end, key = self._spans[index]
        got = None
        if self._loaded_bytes + (end - start) <= self._limit:
            try:
                got = self._load(key)
            except Exception:  # noqa: BLE001 - a source that fails to load is no source, once
                got = None
            if got is not None:
                self._loaded_bytes += end - start
        self._sources[index] = got
        return got

    def loaded(self) -> dict[Hashable, bool]:
        """Which ranges were looked up so far, by key, and whether a source was found."""
        return {self._spans[i][2]: src is not None for i, src in self._sources.items()}

    def __call__(self, address: int, size: int) -> list[tuple[int, bytes]]:
        if self._off:
            return []
        end = address + size
        i = bisect_right(self._starts, address) - 1
        if i < 0 or self._spans[i][1] <= address:
            i += 1
        out: list[tuple[int, bytes]] = []
        spans = self._spans
        while i < len(spans) and spans[i][0] < end:
            s_start, s_end, _ = spans[i]
            src = self.source(i)
            if src is not None:
                lo, hi = max(address, s_start), min(end, s_end)
                out.extend(src.pieces(lo, hi - lo))
            i += 1
        return out
