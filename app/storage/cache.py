"""A byte-bounded local copy of what a process read from object storage: `<kind>/<name>` files or
folders under DATA_DIR/cache. Entries are named by content hash or job id, so one never changes once
there; the least recently used go when the total passes WORKER_CACHE_BYTES, never one in use here.

Another process on the same DATA_DIR may evict an entry this one has open: its memory maps stay
valid (an unlinked file lives until its last map closes), and the next use downloads it again."""

import os
import shutil
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


class LocalCache:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._in_use: Counter[str] = Counter()

    @contextmanager
    def use(self, name: str, fill: Callable[[Path], None]) -> Iterator[Path]:
        """The entry `name`, made by `fill(path)` on a miss, kept from eviction while the block runs.
        `fill` writes under a temporary name; the entry appears whole or not at all."""
        path = self.root / name
        with self._lock:
            self._in_use[name] += 1
        try:
            if path.exists():
                # Recency is the access time: the modification time is part of a model's identity
                # in the inference process (app.inference.signature.model_stamp).
                os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns))
            else:
                self._fill(path, fill)
                self.trim()
            yield path
        finally:
            with self._lock:
                self._in_use[name] -= 1
                if not self._in_use[name]:
                    del self._in_use[name]
            self.trim()

    def _fill(self, path: Path, fill: Callable[[Path], None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".fill-{uuid.uuid4().hex}-{path.name}")
        try:
            fill(partial)
            try:
                os.rename(partial, path)
            except OSError:
                if not path.exists():  # otherwise a concurrent fill of the same immutable entry won
                    raise
        finally:
            _remove(partial)

    def trim(self) -> None:
        """Evict least recently used entries not in use until the total fits."""
        entries = sorted(self._entries(), key=lambda entry: entry[0])
        total = sum(size for _, size, _ in entries)
        for _, size, name in entries:
            if total <= self.max_bytes:
                return
            with self._lock:
                if name in self._in_use:
                    continue
                _remove(self.root / name)
            total -= size

    def discard(self, name: str) -> None:
        _remove(self.root / name)

    @property
    def bytes(self) -> int:
        return sum(size for _, size, _ in self._entries())

    def _entries(self) -> list[tuple[float, int, str]]:
        """(last use, bytes, name) of every whole entry; names starting with a dot are being filled."""
        found: list[tuple[float, int, str]] = []
        if not self.root.is_dir():
            return found
        for kind in self.root.iterdir():
            if not kind.is_dir():
                continue
            for entry in kind.iterdir():
                if entry.name.startswith("."):
                    continue
                try:
                    found.append((entry.stat().st_atime, _size(entry), f"{kind.name}/{entry.name}"))
                except FileNotFoundError:  # evicted by another process meanwhile
                    continue
        return found


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
