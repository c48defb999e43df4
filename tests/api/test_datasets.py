import hashlib
import io

import numpy as np
import pytest

from tests.conftest import authed_client


def upload(client, content: bytes, filename: str = "data.csv", **form):
    return client.post("/v1/datasets", files={"file": (filename, content)}, data=form)


def stored_entries(settings) -> list:
    root = settings.datasets_dir
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_csv_upload_uses_last_column_as_label_by_default(client):
    response = upload(client, b"age,weight,label\n20,60,0\n70,80,1\n30,55,0\n", name="trial")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "trial"
    assert body["format"] == "csv"
    assert (body["n_samples"], body["x_shape"], body["y_shape"]) == (3, [2], [])
    assert len(body["sha256"]) == 64
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    assert client.get(f"/v1/datasets/{body['id']}").json() == body


def test_csv_target_picks_the_label_column(client, settings):
    response = upload(client, b"label,age\n0,20\n1,70\n", target="label")
    assert response.status_code == 201
    from app.ingest import load_arrays

    x, y = load_arrays(settings.datasets_dir, stored_entries(settings)[0])
    assert x.tolist() == [[20.0], [70.0]]
    assert y.tolist() == [0, 1]


def test_npz_with_image_shaped_features(client):
    x = np.random.default_rng(0).random((5, 4, 4, 3), dtype=np.float32)
    response = upload(client, npz_bytes(x=x, y=np.arange(5)), filename="images.npz")
    assert response.status_code == 201, response.text
    assert response.json()["x_shape"] == [4, 4, 3]
    assert response.json()["format"] == "npz"


@pytest.mark.parametrize(
    ("content", "filename", "form", "expected"),
    [
        (b"", "a.csv", {}, "empty"),
        (b"a,b\n1,2\n3\n", "a.csv", {}, "row 2 has 1 columns but the header has 2"),
        (b"a,b\n1,2\n3,x\n", "a.csv", {}, "row 2, column 'b': 'x' is not a number"),
        (b"a,b\n", "a.csv", {}, "no data rows"),
        (b"a,b\n1,2\n", "a.csv", {"target": "c"}, "target column 'c' is not in the header"),
        (b"\x00\x01binary", "a.bin", {}, "unknown format"),
        (npz_bytes(x=np.zeros((3, 2))), "a.npz", {}, "no array 'y'"),
        (npz_bytes(x=np.zeros((3, 2)), y=np.zeros(4)), "a.npz", {}, "x has 3 samples but y has 4"),
        (npz_bytes(x=np.array(["a", "b"]), y=np.zeros(2)), "a.npz", {}, "only numeric arrays"),
        (b"PK\x03\x04 not really a zip", "a.npz", {}, "cannot be read as .npz"),
    ],
)
def test_bad_files_get_422_and_nothing_is_stored(client, settings, content, filename, form, expected):
    response = upload(client, content, filename, **form)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert expected in response.json()["detail"]
    assert stored_entries(settings) == []
    assert client.get("/v1/datasets").json()["items"] == []
    assert list(settings.uploads_dir.iterdir()) == []


def test_upload_over_the_size_limit_is_413(settings):
    small = settings.model_copy(update={"max_upload_bytes": 10})
    with authed_client(small) as client:
        response = upload(client, b"a,b\n1,2\n3,4\n5,6\n")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


def test_side_effects_example_matches_the_tutorial(client, settings):
    body = client.post("/v1/datasets/examples/side-effects").json()
    assert (body["n_samples"], body["x_shape"], body["name"]) == (2100, [1], "side-effects")
    from app.ingest import load_arrays

    x, y = load_arrays(settings.datasets_dir, stored_entries(settings)[0])
    assert x.min() >= 13 and x.max() <= 100
    old = x[:, 0] >= 65
    # All but the tutorial's 100 outliers follow the rule "older patients have side effects".
    assert int(np.sum((y == 1) == old)) == 2000
    assert int(np.sum(y)) == 1050


def test_list_datasets_pages_newest_first(client):
    ids = [upload(client, f"a,b\n{i},1\n".encode()).json()["id"] for i in range(5)]
    first = client.get("/v1/datasets", params={"limit": 2}).json()
    assert [d["id"] for d in first["items"]] == ids[::-1][:2]
    second = client.get("/v1/datasets", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = client.get("/v1/datasets", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [d["id"] for d in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None


def test_a_bad_cursor_is_422(client):
    response = client.get("/v1/datasets", params={"cursor": "not-a-cursor"})
    assert response.status_code == 422
    assert "cursor" in response.json()["detail"]


def test_delete_dataset_removes_it_and_its_files(client, settings):
    dataset = upload(client, b"a,b\n1,0\n").json()
    assert client.delete(f"/v1/datasets/{dataset['id']}").status_code == 204
    assert client.get(f"/v1/datasets/{dataset['id']}").status_code == 404
    assert stored_entries(settings) == []


def test_same_content_twice_keeps_files_until_the_last_is_deleted(client, settings):
    first = upload(client, b"a,b\n1,0\n").json()
    second = upload(client, b"a,b\n1,0\n").json()
    assert first["id"] != second["id"]
    client.delete(f"/v1/datasets/{first['id']}")
    assert len(stored_entries(settings)) == 1
    client.delete(f"/v1/datasets/{second['id']}")
    assert stored_entries(settings) == []


def test_unknown_dataset_is_404_problem(client):
    response = client.get("/v1/datasets/ds_missing")
    assert response.status_code == 404
    assert response.json()["title"] == "Dataset not found"


def test_datasets_are_found_by_the_sha256_of_the_uploaded_file(client, settings):
    content = b"a,b\n1,0\n2,1\n"
    digest = hashlib.sha256(content).hexdigest()  # what a client computes before deciding to upload
    first = upload(client, content, filename="one.csv").json()
    upload(client, b"a,b\n9,0\n")
    second = upload(client, content, filename="two.csv").json()
    with authed_client(settings, owner="someone-else") as other:
        assert upload(other, content).status_code == 201
    assert first["sha256"] == second["sha256"] == digest

    found = client.get("/v1/datasets", params={"sha256": digest}).json()
    assert [d["id"] for d in found["items"]] == [second["id"], first["id"]]
    assert found["next_cursor"] is None
    # Paginated like the plain list; an upper-case hash names the same content.
    page = client.get("/v1/datasets", params={"sha256": digest.upper(), "limit": 1}).json()
    assert [d["id"] for d in page["items"]] == [second["id"]]
    rest = client.get("/v1/datasets", params={"sha256": digest, "limit": 1, "cursor": page["next_cursor"]}).json()
    assert [d["id"] for d in rest["items"]] == [first["id"]]
    assert rest["next_cursor"] is None
    assert client.get("/v1/datasets", params={"sha256": "0" * 64}).json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("bad", ["abc", "g" * 64, "0" * 63, "0" * 65, ""])
def test_a_malformed_sha256_is_422(client, bad):
    response = client.get("/v1/datasets", params={"sha256": bad})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "sha256" in response.text
