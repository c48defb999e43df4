"""Where datasets, checkpoints and trained models live (STORAGE_URL): a local folder, DATA_DIR itself
by default, or an S3-compatible bucket; and the local cache a process reads remote ones through."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse

from app.settings import Settings
from app.storage.base import ArtifactStore
from app.storage.cache import LocalCache
from app.storage.local import LocalStore
from app.storage.retry import with_retry

__all__ = ["ArtifactStore", "Artifacts", "LocalStore", "open_artifacts", "open_store", "with_retry"]

PRESIGN_EXPIRES_S = 300


def open_store(url: str, data_dir: Path) -> ArtifactStore:
    """`""` is DATA_DIR itself; a path or file:// URL another folder; s3://bucket/prefix a bucket."""
    if url.startswith("s3://"):
        from app.storage.s3 import S3Store  # boto3 costs a few hundred ms to import: only when used

        parsed = urlparse(url)
        if not parsed.netloc:
            raise ValueError(f"STORAGE_URL {url!r} names no bucket: use s3://bucket/prefix")
        return S3Store(parsed.netloc, parsed.path)
    if url.startswith("file://"):
        return LocalStore(Path(urlparse(url).path))
    if "://" in url:
        raise ValueError(f"STORAGE_URL {url!r}: use a folder, file:///folder or s3://bucket/prefix")
    return LocalStore(Path(url) if url else data_dir)


class Artifacts:
    """Datasets, models and checkpoints by what they are, in the store; what a process reads from a
    remote store goes through its bounded cache, and a local store's files are read in place."""

    def __init__(self, store: ArtifactStore, cache: LocalCache, work_dir: Path) -> None:
        self.store = store
        self.cache = cache
        self.work_dir = work_dir

    # Datasets: datasets/<storage key>/<array>.npy, named by content hash, so never rewritten.

    def dataset_landing_dir(self) -> Path:
        """Where uploads are parsed into their final folder: the store's own for a local one, the
        cache for a remote one (the uploading process keeps a warm copy)."""
        local = self.store.local_path("datasets")
        return local if local is not None else self.cache.root / "datasets"

    def publish_dataset(self, storage_key: str) -> None:
        """Upload a dataset just parsed into the landing folder; content already stored (the same
        upload again) is not sent twice. Its row is written after this, so no reader sees half of it."""
        if not self.store.remote:
            return
        folder = self.dataset_landing_dir() / storage_key
        for path in sorted(folder.glob("*.npy")):
            key = f"datasets/{storage_key}/{path.name}"
            if not self.store.exists(key):
                self.store.put_file(path, key)
        self.cache.trim()

    @contextmanager
    def dataset_folder(self, storage_key: str, *, patient: bool = False) -> Iterator[Path]:
        """The dataset's local folder, kept while the block runs. `patient` (a worker): wait out a
        store that is unreachable instead of failing."""
        prefix = f"datasets/{storage_key}"
        local = self.store.local_path(prefix)
        if local is not None:
            yield local
            return

        def fill(target: Path) -> None:
            target.mkdir(exist_ok=True)  # a retried fill starts again in the same folder
            keys = self.store.list(prefix)
            if not keys:
                raise FileNotFoundError(f"dataset {storage_key!r} is not in the store")
            for key in keys:
                self.store.get_file(key, target / key.rsplit("/", 1)[1])

        with self._cached(prefix, fill, patient) as path:
            yield path

    def remove_dataset(self, storage_key: str) -> None:
        self.store.delete_prefix(f"datasets/{storage_key}")
        if self.store.remote:
            self.cache.discard(f"datasets/{storage_key}")

    # Models: models/<job id>.keras. The job row names a local store's file by its path (as before
    # object storage existed) and a remote store's by its key.

    def model_work_path(self, job_id: str) -> Path:
        local = self.store.local_path(self._model_key(job_id))
        return local if local is not None else self.work_dir / f"{job_id}.keras"

    def publish_model(self, job_id: str, path: Path) -> str:
        """Put the trained model in the store; returns what the job row keeps to find it."""
        key = self._model_key(job_id)
        self.store.put_file(path, key, move=True)
        local = self.store.local_path(key)
        return str(local) if local is not None else key

    def model_available(self, reference: str) -> bool:
        path = self.local_model_path(reference)
        return path.is_file() if path is not None else self.store.exists(reference)

    @contextmanager
    def model_file(self, reference: str) -> Iterator[Path]:
        """The model's local file, kept while the block runs; FileNotFoundError when it is gone."""
        path = self.local_model_path(reference)
        if path is not None:
            if not path.is_file():
                raise FileNotFoundError(f"model file {path} is gone")
            yield path
            return
        with self._cached(reference, lambda target: self.store.get_file(reference, target), patient=False) as cached:
            yield cached

    def model_url(self, reference: str, filename: str) -> str | None:
        """A short-lived download URL (STORAGE_PRESIGN=1), or None for a store that has none."""
        return self.store.presign(reference, PRESIGN_EXPIRES_S, filename)

    def open_model(self, reference: str) -> tuple[Iterator[bytes], int]:
        """The model's bytes as they stream from a remote store, and their count."""
        size = self.store.size(reference)
        reader = self.store.open(reference)

        def chunks() -> Iterator[bytes]:
            with reader:
                while chunk := reader.read(1024**2):
                    yield chunk

        return chunks(), size

    # Checkpoints: checkpoints/<job id>/, written by app.training.checkpoint.

    def checkpoint_prefix(self, job_id: str) -> str:
        return f"checkpoints/{job_id}"

    def checkpoint_scratch(self, job_id: str) -> Path:
        return self.work_dir / "checkpoints" / job_id

    @staticmethod
    def _model_key(job_id: str) -> str:
        return f"models/{job_id}.keras"

    def local_model_path(self, reference: str) -> Path | None:
        """The model's own file when it is in a local store, else None."""
        if Path(reference).is_absolute():  # a path the worker wrote into a local store
            return Path(reference)
        return self.store.local_path(reference)

    def _cached(self, name: str, fill: Callable[[Path], None], patient: bool) -> AbstractContextManager[Path]:
        if not patient:
            return self.cache.use(name, fill)
        return self.cache.use(name, lambda target: with_retry(f"fetching {name} from the store", lambda: fill(target)))


@lru_cache(maxsize=8)
def _artifacts(url: str, data_dir: Path, cache_bytes: int) -> Artifacts:
    return Artifacts(open_store(url, data_dir), LocalCache(data_dir / "cache", cache_bytes), data_dir / "work")


def open_artifacts(settings: Settings) -> Artifacts:
    """One per configuration in a process, so its cache knows every entry this process holds."""
    return _artifacts(settings.storage_url, settings.data_dir.resolve(), settings.worker_cache_bytes)
