"""What Epochly asks of the place its artifacts live: files under slash-separated keys
(`datasets/<content hash>/x.npy`, `models/<job id>.keras`, `checkpoints/<job id>/state.json`)."""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

from app.errors import ServiceUnavailable


class StoreUnavailable(ServiceUnavailable):
    """The object store did not answer, or refused: a 503 to an API caller, retried by a worker."""

    title = "Object storage unavailable"


class ArtifactStore(ABC):
    # False for a folder on this machine: readers use its files in place, nothing is copied.
    remote: bool

    @abstractmethod
    def put_file(self, source: Path, key: str, *, move: bool = False) -> None:
        """Store `source` under `key`, whole or not at all; `move` lets the store take the file itself."""

    @abstractmethod
    def put_bytes(self, data: bytes, key: str) -> None:
        """Store a small object; readers see the old one or the new one, never a mix."""

    @abstractmethod
    def get_file(self, key: str, target: Path) -> None:
        """Write the object to `target`; FileNotFoundError when there is none."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes | None:
        """A small object, or None when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """The keys under the folder-like `prefix` (without a trailing slash)."""

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Every object under the folder-like `prefix`."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """A streaming reader; FileNotFoundError when there is none."""

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def presign(self, key: str, expires_s: int, filename: str) -> str | None:
        """A short-lived URL that downloads the object as `filename`, or None where the store has none."""

    @abstractmethod
    def local_path(self, key: str) -> Path | None:
        """The object's own file when the store is a local folder, else None."""
