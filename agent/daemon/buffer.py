"""A bounded buffer of items waiting to be stored (metric rows, output lines): producers add, one
writer takes, and puts back what it could not write (Redis away); the oldest go first when full.
``Latest`` is its counterpart for values of which only the newest matters (summary values)."""

from __future__ import annotations

import threading
from typing import Any

CAP = 100_000  # rows or lines kept while Redis is away


class Buffer:
    def __init__(self, cap: int = CAP) -> None:
        self._items: list[Any] = []
        self._lock = threading.Lock()
        self.cap = cap
        self.dropped = 0  # items lost to the cap, oldest first

    def add(self, items: list[Any]) -> None:
        with self._lock:
            self._items.extend(items)
            self._trim()

    def take(self) -> list[Any]:
        with self._lock:
            items, self._items = self._items, []
        return items

    def put_back(self, items: list[Any]) -> None:
        if items:
            with self._lock:
                self._items[:0] = items
                self._trim()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _trim(self) -> None:
        over = len(self._items) - self.cap
        if over > 0:
            del self._items[:over]
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
