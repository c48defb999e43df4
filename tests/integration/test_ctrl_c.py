"""Ctrl-C on `make run` stops it as quietly as it starts, with both warm helpers (the spec checker and
the inference process) spawned: no KeyboardInterrupt traceback from a helper, no leaked semaphores."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from app.admin import LOCAL_KEY_FILE
from epochly_client.tutorial import TUTORIAL_JOB
from tests.conftest import ROOT, wait_for_http
from tests.integration.conftest import free_port
from tests.integration.test_training_e2e import wait_until_done

SERVE = Path(sys.executable).with_name("epochly-serve")


def test_ctrl_c_on_make_run_prints_no_traceback_and_no_leaked_semaphores(tmp_path):
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "var"), "PORT": str(port), "DATABASE_URL": "", "BROKER_URL": ""}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        # A session of its own: the test signals its whole group, as a terminal's Ctrl-C does.
        serve = subprocess.Popen([str(SERVE)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_http(f"{url}/health", serve, log_path, 90)
            key = (tmp_path / "var" / LOCAL_KEY_FILE).read_text().strip()
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as live:
                dataset = live.post("/v1/datasets/examples/side-effects").json()["id"]
                spec = {**TUTORIAL_JOB, "dataset_id": dataset, "fit": {**TUTORIAL_JOB["fit"], "epochs": 1}}
                job = wait_until_done(live, live.post("/v1/jobs", json=spec).json()["id"])  # the spec checker
                assert job["status"] == "succeeded", job
                assert live.post(f"/v1/jobs/{job['id']}/predict", json={"inputs": [[20.0]]}).status_code == 200
            os.killpg(serve.pid, signal.SIGINT)
            assert serve.wait(timeout=60) == 0
        finally:
            if serve.poll() is None:
                os.killpg(serve.pid, signal.SIGKILL)
    output = log_path.read_text()
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "leaked semaphore" not in output, output
