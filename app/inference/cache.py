"""A least-recently-used cache bounded by the bytes its entries hold, not by their number: one big
model may cost as much as a hundred small ones."""

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class ByteLRU(Generic[V]):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def get(self, key: Hashable) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: Hashable, value: V, size: int) -> None:
        """Keep `value`, evicting the least recently used entries until the total fits. An entry larger
        than the whole budget is not kept: it would evict everything and then itself."""
        self.discard(key)
        if size > self.max_bytes:
            return
        self._entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted

    def discard(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.bytes -= entry[1]

    def get_or_load(self, key: Hashable, load: Callable[[], tuple[V, int]]) -> tuple[V, bool]:
        """The cached value and True, or the freshly loaded one (now cached) and False."""
        value = self.get(key)
        if value is not None:
            return value, True
        value, size = load()
        self.put(key, value, size)
        return value, False
