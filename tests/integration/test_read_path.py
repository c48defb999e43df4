"""The hot reads served from memory, on both back ends, against a real worker: what a poller sees only
moves forward, ETags turn an unchanged job into a 304, /metrics pages long histories, and 200
concurrent clients on a mix of routes never meet a 5xx or a request slower than 5 s."""

import os
import re
import shutil
import subprocess
import threading
import time

import httpx
import pytest

from tests.integration.test_training_e2e import tutorial, wait_until_done

ORDER = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "cancelled": 2}


def test_what_pollers_see_only_moves_forward(live, service):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=40, batch_size=64)).json()["id"]
    problems: list[str] = []

    def poll(route: str) -> None:
        seen_status, seen_epochs, seen_rows = 0, 0, 0
        with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.key}"}, timeout=30) as http:
            while True:
                if route == "job":
                    job = http.get(f"/v1/jobs/{job_id}").json()
                    status, epochs = ORDER[job["status"]], job["epochs_completed"]
                    rows = epochs
                else:
                    page = http.get(f"/v1/jobs/{job_id}/metrics").json()
                    status, epochs = ORDER[page["status"]], len(page["epochs"])
                    rows = [row["epoch"] for row in page["epochs"]]
                    if rows != list(range(1, len(rows) + 1)):
                        problems.append(f"rows with a gap: {rows}")
                    rows = len(rows)
                if status < seen_status or epochs < seen_epochs or rows < seen_rows:
                    problems.append(f"{route}: went back from {(seen_status, seen_epochs)} to {(status, epochs)}")
                seen_status, seen_epochs, seen_rows = status, epochs, rows
                if status == 2:
                    if route == "metrics" and rows != 40:
                        problems.append(f"finished with {rows} rows")
                    return

    pollers = [threading.Thread(target=poll, args=(route,)) for route in ("job", "metrics", "job", "metrics")]
    for poller in pollers:
        poller.start()
    for poller in pollers:
        poller.join(timeout=180)
    assert not problems, problems[:5]
    assert wait_until_done(live, job_id)["status"] == "succeeded"


def test_a_poll_after_a_quiet_while_sees_every_epoch_written_meanwhile(live):
    """A slow poller (a script checking every few seconds) is not served the job as it was at its
    last poll, while /metrics, fed by the bus, already shows the epochs since."""
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=60, batch_size=64)).json()["id"]
    while live.get(f"/v1/jobs/{job_id}").json()["epochs_completed"] < 2:  # the process now holds the job
        time.sleep(0.05)
    time.sleep(1.5)
    rows = live.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]
    # A body may be served up to half a second stale while it is refreshed (README), so the job is read
    # past that bound: it must then hold every row /metrics showed (it held 2 of 50 before the fix).
    time.sleep(0.6)
    job = live.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "succeeded" or job["epochs_completed"] >= len(rows) > 2, (job["epochs_completed"], len(rows))
    assert wait_until_done(live, job_id)["status"] == "succeeded"


def test_an_unchanged_job_is_a_304_and_long_histories_come_in_pages(live):
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=12, batch_size=128)).json()["id"]
    wait_until_done(live, job_id)
    first = live.get(f"/v1/jobs/{job_id}")
    tag = first.headers["ETag"]
    again = live.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag and again.content == b""
    assert live.get(f"/v1/jobs/{job_id}", headers={"If-None-Match": '"stale"'}).status_code == 200

    page = live.get(f"/v1/jobs/{job_id}/metrics", params={"limit": 5}).json()
    assert [r["epoch"] for r in page["epochs"]] == [1, 2, 3, 4, 5] and page["more"] is True
    last = live.get(f"/v1/jobs/{job_id}/metrics", params={"after": 10, "limit": 5}).json()
    assert [r["epoch"] for r in last["epochs"]] == [11, 12] and last["more"] is False
    whole = live.get(f"/v1/jobs/{job_id}/metrics")
    assert len(whole.json()["epochs"]) == 12
    unchanged = live.get(f"/v1/jobs/{job_id}/metrics", headers={"If-None-Match": whole.headers["ETag"]})
    assert unchanged.status_code == 304
    assert live.get(f"/v1/jobs/{job_id}/metrics", params={"limit": 10_001}).status_code == 422


WRK_MIX = """
local routes = {ROUTES}
local i = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) fives = 0; answered = 0 end
wrk.headers["Authorization"] = "Bearer KEY"
request = function() i = i + 1; return wrk.format("GET", routes[(i % #routes) + 1]) end
response = function(status, headers, body)
  answered = answered + 1
  if status >= 500 then fives = fives + 1 end
end
done = function(summary, latency, requests)
  local fives_total, answered_total = 0, 0
  for _, thread in ipairs(threads) do
    fives_total = fives_total + thread:get("fives")
    answered_total = answered_total + thread:get("answered")
  end
  io.write(string.format("MIX fives=%d answered=%d max_ms=%.1f timeouts=%d\\n",
    fives_total, answered_total, latency.max / 1000, summary.errors.timeout))
end
"""


def test_two_hundred_clients_on_a_mix_of_routes_get_no_5xx_and_no_slow_answer(live, service, tmp_path):
    """wrk, not a Python client: at 200 connections httpx itself takes seconds per request."""
    if shutil.which("wrk") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("wrk is not installed (.ci/run installs it)")
        pytest.skip("wrk is not installed")
    dataset = live.post("/v1/datasets/examples/side-effects").json()
    job_id = live.post("/v1/jobs", json=tutorial(dataset["id"], epochs=60, batch_size=64)).json()["id"]
    routes = [f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/metrics?after=5", "/v1/jobs?limit=50", "/v1/datasets", "/health", "/v1/sweeps"]
    script = tmp_path / "mix.lua"
    lua_routes = ", ".join(f'"{route}"' for route in routes)
    script.write_text(WRK_MIX.replace("ROUTES", lua_routes).replace("KEY", service.key))
    command = ["wrk", "-t2", "-c200", "-d8s", "--timeout", "5s", "-s", str(script), service.url + "/"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    output = run.stdout
    figures = dict(item.split("=") for item in re.search(r"MIX (.*)", output).group(1).split())
    live.post(f"/v1/jobs/{job_id}/cancel")
    assert int(figures["answered"]) >= 400, output
    assert int(figures["fives"]) == 0, output
    assert int(figures["timeouts"]) == 0 and float(figures["max_ms"]) < 5000, output
