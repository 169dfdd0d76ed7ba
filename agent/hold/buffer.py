"""A bounded buffer of items waiting to be stored (metric rows, output lines): producers add, one
writer takes, and puts back what it could not write (Redis away); the oldest go first when full
(in count, and in bytes when told each item's size).
``Latest`` is its counterpart for values of which only the newest matters (summary values)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

CAP = 100_000  # rows or lines kept while Redis is away


class Buffer:
    """Items in order, at most ``cap`` of them and, given ``size``, at most ``max_bytes`` of them."""

    def __init__(self, cap: int = CAP, max_bytes: int | None = None, size: Callable[[Any], int] | None = None) -> None:
        self._items: list[Any] = []
        self._sizes: list[int] = []
        self._bytes = 0
        self._lock = threading.Lock()
        self.cap = cap
        self.max_bytes, self._size = max_bytes, size
        self.dropped = 0  # items lost to the cap, oldest first

    def add(self, items: list[Any]) -> None:
        sizes = self._sizes_of(items)
        with self._lock:
            self._items.extend(items)
            self._sizes.extend(sizes)
            self._bytes += sum(sizes)
            self._trim()

    def take(self) -> list[Any]:
        with self._lock:
            items, self._items, self._sizes, self._bytes = self._items, [], [], 0
        return items

    def put_back(self, items: list[Any]) -> None:
        if items:
            sizes = self._sizes_of(items)
            with self._lock:
                self._items[:0] = items
                self._sizes[:0] = sizes
                self._bytes += sum(sizes)
                self._trim()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _sizes_of(self, items: list[Any]) -> list[int]:
        return [self._size(item) for item in items] if self._size is not None else [0] * len(items)

    def _trim(self) -> None:
        over = len(self._items) - self.cap
        if self.max_bytes is not None and self._bytes > self.max_bytes:
            dropped, total = 0, self._bytes
            while total > self.max_bytes and dropped < len(self._sizes):
                total -= self._sizes[dropped]
                dropped += 1
            over = max(over, dropped)
        if over > 0:
            self._bytes -= sum(self._sizes[:over])
            del self._items[:over], self._sizes[:over]
            self.dropped += over


class Latest:
    """Named values waiting to be stored, the newest of each name kept (bounded by their names)."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def add(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._values.update(values)

    def take(self) -> dict[str, Any]:
        with self._lock:
            values, self._values = self._values, {}
        return values

    def put_back(self, values: dict[str, Any]) -> None:
        """Values that could not be written, under any newer ones added since."""
        if values:
            with self._lock:
                self._values = {**values, **self._values}
