"""STORAGE_URL=s3://bucket/prefix through boto3, configured by the standard AWS_* variables alone
(AWS_ENDPOINT_URL points it at MinIO or another S3-compatible server). Files go up and down in
multipart parts on several threads, never whole in memory."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from app.storage.base import ArtifactStore, StoreUnavailable

MiB = 1024**2
# Uploads in parts of 32 MiB on 8 threads: a 1 GB file goes up in 32 parts, 8 at a time; memory stays
# at 8 parts.
UPLOAD = TransferConfig(multipart_threshold=32 * MiB, multipart_chunksize=32 * MiB, max_concurrency=8, use_threads=True)
# Downloads in one GET, streamed to disk by s3transfer's writer thread. Ranged GETs in parallel were 5x
# slower against moto's server (104 vs 574 MB/s for 512 MB: it reads the whole object for each range),
# and one stream already runs at a LAN's pace from MinIO.
DOWNLOAD = TransferConfig(multipart_threshold=2**62, use_threads=True)
NOT_FOUND = {"404", "NoSuchKey", "NotFound"}


class S3Store(ArtifactStore):
    remote = True

    def __init__(self, bucket: str, prefix: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # botocore reads AWS_DEFAULT_REGION itself; AWS_REGION is the name most other AWS tools use.
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None
        # An S3-compatible server on a bare host:port (MinIO, moto) has no per-bucket host names.
        addressing = "path" if os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_S3") else "auto"
        config = Config(
            region_name=region,
            s3={"addressing_style": addressing},
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=5,
            read_timeout=30,
            max_pool_connections=16,
        )
        self._client: Any = boto3.session.Session().client("s3", config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, source: Path, key: str, *, move: bool = False) -> None:
        with _reaching(key):
            self._client.upload_file(str(source), self.bucket, self._key(key), Config=UPLOAD)
        if move:
            source.unlink()

    def put_bytes(self, data: bytes, key: str) -> None:
        with _reaching(key):
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get_file(self, key: str, target: Path) -> None:
        with _reaching(key):
            self._client.download_file(self.bucket, self._key(key), str(target), Config=DOWNLOAD)

    def get_bytes(self, key: str) -> bytes | None:
        try:
            with _reaching(key):
                return cast(bytes, self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read())
        except FileNotFoundError:
            return None

    def exists(self, key: str) -> bool:
        try:
            with _reaching(key):
                self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except FileNotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        strip = len(self._key(""))
        keys: list[str] = []
        with _reaching(prefix):
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self._key(prefix) + "/")
            for page in pages:
                keys.extend(item["Key"][strip:] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        with _reaching(key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> None:
        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1,000 keys
            batch = [{"Key": self._key(key)} for key in keys[start : start + 1000]]
            with _reaching(prefix):
                self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def open(self, key: str) -> BinaryIO:
        with _reaching(key):
            return cast(BinaryIO, self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"])

    def size(self, key: str) -> int:
        with _reaching(key):
            return int(self._client.head_object(Bucket=self.bucket, Key=self._key(key))["ContentLength"])

    def presign(self, key: str, expires_s: int, filename: str) -> str | None:
        params = {
            "Bucket": self.bucket,
            "Key": self._key(key),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        }
        return cast(str, self._client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))

    def local_path(self, key: str) -> Path | None:
        return None


@contextmanager
def _reaching(key: str) -> Iterator[None]:
    """boto3's errors in the store's terms: FileNotFoundError for an object that is not there,
    StoreUnavailable (a 503 in the API; retried by a worker) for everything else."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code"))
        if code in NOT_FOUND:
            raise FileNotFoundError(f"no object {key!r} in the store") from None
        raise StoreUnavailable(f"object storage answered {code} for {key!r}") from exc
    except (BotoCoreError, Boto3Error) as exc:
        raise StoreUnavailable(f"object storage is unreachable ({exc})") from exc
