"""HTTP client for the Epochly API."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from httpx_sse import connect_sse

from epochly_client.models import Dataset, Epoch, Event, Importance, Job, Sweep

DEFAULT_URL = "http://127.0.0.1:8000"
RECONNECT_DELAY_S = 1.0


class EpochlyError(Exception):
    """An error answer from the service, carrying its problem details."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        self.errors: list[dict[str, str]] = list(problem.get("errors") or [])
        super().__init__(f"{status}: {self.detail}")


class Client:
    def __init__(self, base_url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            self._raise(response)
        return response

    @staticmethod
    def _raise(response: httpx.Response) -> None:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text or response.reason_phrase}
        raise EpochlyError(response.status_code, problem if isinstance(problem, dict) else {"detail": str(problem)})

    # Datasets
    def upload_dataset(self, path: str | Path, *, target: str | None = None, name: str | None = None) -> Dataset:
        path = Path(path)
        with path.open("rb") as f:
            return self.upload_dataset_content(f, filename=path.name, target=target, name=name)

    def upload_dataset_content(
        self, content: bytes | BinaryIO, *, filename: str, target: str | None = None, name: str | None = None
    ) -> Dataset:
        """A dataset from bytes in memory (or an open file); `filename`'s suffix (.npz, .csv) names the format."""
        form = _params(target=target, name=name)
        response = self._request("POST", "/v1/datasets", files={"file": (filename, content)}, data=form)
        return Dataset.from_json(response.json())

    def example_dataset(self) -> Dataset:
        return Dataset.from_json(self._request("POST", "/v1/datasets/examples/side-effects").json())

    def datasets(
        self, *, sha256: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> tuple[list[Dataset], str | None]:
        """Your datasets, newest first; with `sha256`, only those whose uploaded file had that hash."""
        page = self._request("GET", "/v1/datasets", params=_params(sha256=sha256, limit=limit, cursor=cursor)).json()
        return [Dataset.from_json(d) for d in page["items"]], page["next_cursor"]

    def dataset(self, dataset_id: str) -> Dataset:
        return Dataset.from_json(self._request("GET", f"/v1/datasets/{dataset_id}").json())

    def delete_dataset(self, dataset_id: str) -> None:
        """409 while a queued or running job (or an unfinished sweep) uses it."""
        self._request("DELETE", f"/v1/datasets/{dataset_id}")

    # Jobs
    def submit(self, spec: dict[str, Any], *, dataset_id: str | None = None, queue: str | None = None) -> Job:
        """`queue` (like `dataset_id`) overrides the spec's own."""
        body = {**spec, **({"dataset_id": dataset_id} if dataset_id else {}), **({"queue": queue} if queue else {})}
        return Job.from_json(self._request("POST", "/v1/jobs", json=body).json())

    def get(self, job_id: str) -> Job:
        return Job.from_json(self._request("GET", f"/v1/jobs/{job_id}").json())

    def jobs(
        self,
        *,
        status: str | None = None,
        sweep_id: str | None = None,
        queue: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        params = _params(status=status, sweep_id=sweep_id, queue=queue, limit=limit, cursor=cursor)
        page = self._request("GET", "/v1/jobs", params=params).json()
        return [Job.from_json(j) for j in page["items"]], page["next_cursor"]

    def metrics(self, job_id: str, after: int = 0) -> list[Epoch]:
        data = self._request("GET", f"/v1/jobs/{job_id}/metrics", params={"after": after}).json()
        return [Epoch.from_json(e) for e in data["epochs"]]

    def log(self, job_id: str) -> str:
        return self._request("GET", f"/v1/jobs/{job_id}/log").text

    def cancel(self, job_id: str) -> Job:
        return Job.from_json(self._request("POST", f"/v1/jobs/{job_id}/cancel").json())

    def download_model(self, job_id: str, path: str | Path) -> Path:
        """The trained .keras file (following the service's redirect to object storage, where it presigns)."""
        path = Path(path)
        path.write_bytes(self._request("GET", f"/v1/jobs/{job_id}/model", follow_redirects=True).content)
        return path

    # Using a trained model (the job must have succeeded)
    def evaluate(self, job_id: str, dataset_id: str) -> dict[str, float]:
        """`loss`, each compiled metric and `samples`: the numbers of Keras' `model.evaluate` on the dataset."""
        return dict(self._request("POST", f"/v1/jobs/{job_id}/evaluate", json={"dataset_id": dataset_id}).json())

    def predict(self, job_id: str, inputs: list[Any] | dict[str, Any]) -> Any:
        """Predictions for rows of raw features, `[[...], ...]` (or rows by input name for several inputs)."""
        return self._request("POST", f"/v1/jobs/{job_id}/predict", json={"inputs": inputs}).json()["predictions"]

    def predict_file(self, job_id: str, inputs: str | Path, out: str | Path, *, format: str | None = None) -> Path:
        """Predictions for a .npz / .npy / CSV file of inputs, written to `out` as .npy (or CSV)."""
        inputs = Path(inputs)
        with inputs.open("rb") as f:
            data = {"format": format} if format else {}
            return self._download("POST", f"/v1/jobs/{job_id}/predict", out, files={"file": (inputs.name, f)}, data=data)

    def predict_dataset(self, job_id: str, dataset_id: str, out: str | Path, *, format: str = "npy") -> Path:
        """Predictions for every sample of one of your datasets, written to `out` as .npy or CSV."""
        body = {"dataset_id": dataset_id, "format": format}
        return self._download("POST", f"/v1/jobs/{job_id}/predict", out, json=body)

    def _download(self, method: str, path: str, out: str | Path, **kwargs: Any) -> Path:
        out = Path(out)
        with self._http.stream(method, path, **kwargs) as response:
            if response.status_code >= 400:
                response.read()
                self._raise(response)
            with out.open("wb") as f:
                for chunk in response.iter_bytes(1024 * 1024):
                    f.write(chunk)
        return out

    def stream(self, job_id: str, *, last_event_id: str | None = None) -> Iterator[Event]:
        """Every event of a job until `end`, reconnecting with Last-Event-ID if the connection drops."""
        return self._events(f"/v1/jobs/{job_id}/events", last_event_id)

    def _events(self, path: str, last_event_id: str | None = None) -> Iterator[Event]:
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                with connect_sse(self._http, "GET", path, headers=headers, timeout=None) as source:
                    if source.response.status_code >= 400:
                        source.response.read()
                        raise EpochlyError(source.response.status_code, source.response.json())
                    for sse in source.iter_sse():
                        if not sse.event and not sse.data:
                            continue
                        last_event_id = sse.id or last_event_id
                        event = Event(sse.event, sse.id or None, sse.json() if sse.data else {})
                        yield event
                        if event.type == "end":
                            return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                time.sleep(RECONNECT_DELAY_S)

    # Hyperparameter sweeps: each trial is an ordinary job (`jobs(sweep_id=...)`)
    def create_sweep(self, spec: dict[str, Any], *, dataset_id: str | None = None, queue: str | None = None) -> Sweep:
        """Start a sweep: a base job spec plus `search`, `sampler`, `pruner`, `objective`, `trials`, `parallel`, `seed`."""
        body = {**spec, **({"dataset_id": dataset_id} if dataset_id else {}), **({"queue": queue} if queue else {})}
        return Sweep.from_json(self._request("POST", "/v1/sweeps", json=body).json())

    def sweep(self, sweep_id: str) -> Sweep:
        return Sweep.from_json(self._request("GET", f"/v1/sweeps/{sweep_id}").json())

    def sweeps(self, *, limit: int = 50, cursor: str | None = None) -> tuple[list[Sweep], str | None]:
        page = self._request("GET", "/v1/sweeps", params=_params(limit=limit, cursor=cursor)).json()
        return [Sweep.from_json(s) for s in page["items"]], page["next_cursor"]

    def cancel_sweep(self, sweep_id: str) -> Sweep:
        """No new trials; queued ones are cancelled at once, running ones at their next batch."""
        return Sweep.from_json(self._request("POST", f"/v1/sweeps/{sweep_id}/cancel").json())

    def sweep_importance(self, sweep_id: str) -> Importance:
        return Importance.from_json(self._request("GET", f"/v1/sweeps/{sweep_id}/importance").json())

    def sweep_events(self, sweep_id: str) -> Iterator[Event]:
        """Every event of a sweep until `end`. The server does not replay, so after a dropped connection the
        stream starts again with a fresh `sweep` event (the whole sweep)."""
        return self._events(f"/v1/sweeps/{sweep_id}/events")

    def wait_sweep(self, sweep_id: str) -> Sweep:
        """Block until every trial of the sweep has ended; returns its final state."""
        for _ in self.sweep_events(sweep_id):
            pass
        return self.sweep(sweep_id)

    # API keys (the caller's own) and the audit log
    def create_key(self, *, name: str = "key", scope: str | None = None, expires_in_s: int | None = None) -> dict[str, Any]:
        """A new key for the caller's owner: its record plus, this once, the key itself in `key`."""
        body = _params(name=name, scope=scope, expires_in_s=expires_in_s)
        return dict(self._request("POST", "/v1/keys", json=body).json())

    def keys(self, *, limit: int = 50, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        page = self._request("GET", "/v1/keys", params=_params(limit=limit, cursor=cursor)).json()
        return list(page["items"]), page["next_cursor"]

    def revoke_key(self, key_id: str) -> None:
        self._request("DELETE", f"/v1/keys/{key_id}")

    def audit(self, *, after: int | str | None = None, limit: int = 50) -> tuple[list[dict[str, Any]], str | None]:
        """The caller's audit records, oldest first, after record id `after`."""
        page = self._request("GET", "/v1/audit", params=_params(after=after, limit=limit)).json()
        return list(page["items"]), page["next_cursor"]

    def wait(self, job_id: str) -> Job:
        """Block until the job finishes; returns its final state."""
        for _ in self.stream(job_id):
            pass
        return self.get(job_id)


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}
