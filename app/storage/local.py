"""The default store: a folder on this machine (DATA_DIR itself unless STORAGE_URL names another)."""

import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from app.storage.base import ArtifactStore


class LocalStore(ArtifactStore):
    remote = False

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / key

    def put_file(self, source: Path, key: str, *, move: bool = False) -> None:
        target = self._path(key)
        if source.resolve() == target:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        if move:
            shutil.move(source, target)  # a rename on one filesystem, so usually no copy at all
            return
        partial = target.with_name(f".{uuid.uuid4().hex}.partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)

    def put_bytes(self, data: bytes, key: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{uuid.uuid4().hex}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)

    def get_file(self, key: str, target: Path) -> None:
        shutil.copyfile(self._path(key), target)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in folder.rglob("*")
            if path.is_file() and not path.name.startswith(".")
        )

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix), ignore_errors=True)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def presign(self, key: str, expires_s: int, filename: str) -> str | None:
        return None

    def local_path(self, key: str) -> Path | None:
        return self._path(key)
