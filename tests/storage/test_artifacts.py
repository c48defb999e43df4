"""The artifact store on both back ends (a local folder and a real S3-compatible server, moto's
server mode), the bounded cache in front of a remote one, and checkpoints written through it."""

import os
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.settings import Settings
from app.storage import LocalStore, open_artifacts, open_store
from app.storage.base import ArtifactStore
from app.storage.cache import LocalCache


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ArtifactStore:
    if request.param == "local":
        return open_store(f"file://{tmp_path / 'store'}", tmp_path)
    return open_store(request.getfixturevalue("s3_storage_url"), tmp_path)


def test_files_and_small_objects_round_trip_and_a_missing_key_is_not_found(store, tmp_path):
    source = tmp_path / "x.npy"
    source.write_bytes(b"\x93NUMPY" + os.urandom(5000))
    store.put_file(source, "datasets/abc/x.npy")
    store.put_bytes(b'{"epoch": 3}', "checkpoints/j1/state.json")
    assert store.exists("datasets/abc/x.npy") and not store.exists("datasets/abc/y.npy")
    assert store.size("datasets/abc/x.npy") == 5006
    assert store.get_bytes("checkpoints/j1/state.json") == b'{"epoch": 3}'
    assert store.get_bytes("checkpoints/j1/missing.json") is None
    store.get_file("datasets/abc/x.npy", tmp_path / "back.npy")
    assert (tmp_path / "back.npy").read_bytes() == source.read_bytes()
    with store.open("datasets/abc/x.npy") as reader:
        assert reader.read() == source.read_bytes()
    with pytest.raises(FileNotFoundError):
        store.get_file("datasets/abc/nothing.npy", tmp_path / "nothing.npy")
    assert store.list("datasets/abc") == ["datasets/abc/x.npy"]
    store.delete_prefix("datasets/abc")
    assert store.list("datasets/abc") == [] and not store.exists("datasets/abc/x.npy")
    assert store.exists("checkpoints/j1/state.json")  # another prefix is untouched


def test_a_file_bigger_than_one_part_goes_up_in_parts_and_comes_back_whole(moto_s3, s3_storage_url, tmp_path):
    store = open_store(s3_storage_url, tmp_path)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(40 * 1024**2))  # over the 32 MiB multipart threshold
    store.put_file(big, "models/big.keras", move=True)
    assert not big.exists()  # moved: the store holds the only copy
    store.get_file("models/big.keras", tmp_path / "back.bin")
    assert (tmp_path / "back.bin").stat().st_size == 40 * 1024**2


def test_presigned_url_downloads_the_object_without_credentials(moto_s3, s3_storage_url, tmp_path):
    store = open_store(s3_storage_url, tmp_path)
    store.put_bytes(b"keras bytes", "models/j.keras")
    url = store.presign("models/j.keras", 60, "j.keras")
    assert url is not None and url.startswith(moto_s3.endpoint) and "Signature" in url
    response = httpx.get(str(url))
    assert response.status_code == 200 and response.content == b"keras bytes"
    assert 'filename="j.keras"' in response.headers["content-disposition"]
    assert LocalStore(tmp_path).presign("models/j.keras", 60, "j.keras") is None


def test_storage_url_forms(tmp_path):
    assert open_store("", tmp_path).local_path("datasets") == (tmp_path / "datasets").resolve()
    assert open_store(str(tmp_path / "elsewhere"), tmp_path).local_path("m") == (tmp_path / "elsewhere" / "m").resolve()
    with pytest.raises(ValueError, match="bucket"):
        open_store("s3://", tmp_path)
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        open_store("gs://bucket/x", tmp_path)


def _fill_with(size: int):
    def fill(target: Path) -> None:
        target.write_bytes(b"x" * size)

    return fill


def test_cache_evicts_least_recently_used_entries_beyond_its_bound_but_never_one_in_use(tmp_path):
    cache = LocalCache(tmp_path / "cache", max_bytes=2500)
    for name in ("models/a", "models/b"):
        with cache.use(name, _fill_with(1000)):
            pass
    with cache.use("models/a", _fill_with(1000)):  # a hit: a is now more recent than b
        pass
    with cache.use("models/c", _fill_with(1000)):
        pass
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == ["a", "c"]
    assert cache.bytes <= 2500

    with cache.use("models/big", _fill_with(3000)) as big:  # bigger than the bound: kept while in use
        assert big.read_bytes() == b"x" * 3000
        with cache.use("models/d", _fill_with(1000)) as d:
            assert big.exists() and d.exists()
    assert not big.exists()  # once released it goes first
    assert cache.bytes <= 2500


def test_cache_fill_that_fails_leaves_nothing_behind(tmp_path):
    cache = LocalCache(tmp_path / "cache", max_bytes=10_000)

    def broken(target: Path) -> None:
        target.write_bytes(b"half")
        raise ConnectionError("store went away")

    with pytest.raises(ConnectionError), cache.use("datasets/k", broken):
        pass
    assert list((tmp_path / "cache" / "datasets").iterdir()) == []


def _settings(data_dir: Path, storage_url: str, cache_bytes: int = 10**9) -> Settings:
    return Settings(data_dir=data_dir, storage_url=storage_url, worker_cache_bytes=cache_bytes)


def _landed_dataset(artifacts, key: str) -> None:
    folder = artifacts.dataset_landing_dir() / key
    folder.mkdir(parents=True)
    np.save(folder / "x.npy", np.arange(12, dtype=np.float32).reshape(6, 2))
    np.save(folder / "y.npy", np.arange(6, dtype=np.int32))


def test_dataset_is_uploaded_once_read_elsewhere_through_the_cache_and_deleted_with_its_objects(s3_storage_url, tmp_path):
    api = open_artifacts(_settings(tmp_path / "api", s3_storage_url))
    _landed_dataset(api, "hash1")
    api.publish_dataset("hash1")
    api.publish_dataset("hash1")  # the same content again: nothing new is stored
    assert api.store.list("datasets/hash1") == ["datasets/hash1/x.npy", "datasets/hash1/y.npy"]

    worker = open_artifacts(_settings(tmp_path / "worker", s3_storage_url))
    with worker.dataset_folder("hash1", patient=True) as folder:
        assert folder.is_relative_to(tmp_path / "worker" / "cache")
        assert np.load(folder / "x.npy").tolist() == np.arange(12).reshape(6, 2).tolist()

    api.remove_dataset("hash1")
    assert api.store.list("datasets/hash1") == []
    assert not (api.dataset_landing_dir() / "hash1").exists()
    with pytest.raises(FileNotFoundError), open_artifacts(_settings(tmp_path / "third", s3_storage_url)).dataset_folder("hash1"):
        pass


def test_local_store_reads_in_place_with_no_copies(tmp_path):
    artifacts = open_artifacts(_settings(tmp_path / "var", ""))
    assert artifacts.dataset_landing_dir() == (tmp_path / "var" / "datasets").resolve()
    _landed_dataset(artifacts, "hash2")
    artifacts.publish_dataset("hash2")
    with artifacts.dataset_folder("hash2") as folder:
        assert folder == artifacts.dataset_landing_dir() / "hash2"
    assert not (tmp_path / "var" / "cache").exists()
    model = artifacts.model_work_path("job1")
    model.parent.mkdir(parents=True)
    model.write_bytes(b"model")
    reference = artifacts.publish_model("job1", model)
    assert reference == str(model) and model.read_bytes() == b"model"


def test_checkpoint_in_object_storage_keeps_only_the_newest_and_resumes_from_it(s3_storage_url, tmp_path):
    import keras

    from app.training.checkpoint import Checkpoint

    store = open_store(s3_storage_url, tmp_path)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    writer = Checkpoint(store, "checkpoints/j9", tmp_path / "scratch")
    writer.save(model, {"epoch": 1, "seed": 5}, {"best": np.ones(3)})
    model.layers[0].kernel.assign(np.full((2, 1), 7.0))
    writer.save(model, {"epoch": 2, "seed": 5}, {"best": np.zeros(3)})
    writer.flush()
    assert store.list("checkpoints/j9") == [
        "checkpoints/j9/model-2.arrays.npz",
        "checkpoints/j9/model-2.keras",
        "checkpoints/j9/state.json",
    ]
    writer.close()

    restored = Checkpoint(store, "checkpoints/j9", tmp_path / "other-machine").load()
    assert restored is not None
    loaded, state = restored
    assert state["epoch"] == 2 and state["arrays"]["best"].tolist() == [0, 0, 0]
    assert np.asarray(loaded.layers[0].kernel).tolist() == [[7.0], [7.0]]
    Checkpoint(store, "checkpoints/j9", tmp_path / "scratch").discard()
    assert store.list("checkpoints/j9") == []


def test_unreachable_store_is_a_503_error_and_a_missing_object_is_not(moto_s3, monkeypatch, tmp_path):
    from app.errors import ServiceUnavailable
    from tests.integration.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    store = open_store("s3://epochly/x", tmp_path)
    with pytest.raises(ServiceUnavailable, match="unreachable"):
        store.put_bytes(b"{}", "checkpoints/j/state.json")
    with pytest.raises(ServiceUnavailable):
        store.exists("models/j.keras")
