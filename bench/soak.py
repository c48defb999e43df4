"""Figure 8, chaos soak: every job finishes, each epoch written once, while workers, Redis and PostgreSQL fail.

A private PostgreSQL and a private Redis (no persistence: `--save "" --appendonly no`) are started on
loopback ports of their own (the machine's shared servers are never touched), with the API, one
scheduler and 2 Celery workers on them (heartbeat timeout 5 s, a checkpoint after every epoch,
OWNER_MAX_ACTIVE_JOBS 1000). The side-effects example dataset is created, then --jobs small jobs
(Dense 8 -> Dense 1, 6 epochs, batch 32: several epochs, so faults land mid-job) are submitted in
bursts of --burst jobs spread evenly across --duration seconds (so that jobs wait in the queue, where
a broker that forgets loses them), while a driver, after seeded random gaps of 20-60 s, injects one
fault (the kinds are drawn from a shuffled bag, so each kind comes up equally often), at a moment when
a job is running, or for a Redis restart when jobs are queued, if one comes within 30 s (the summary
says how many faults hit their moment):

  kill worker         kill -9 a worker that is running a job; a supervisor starts a replacement, as
                      a process manager would (it also restarts the API or scheduler if they exit,
                      and reports every exit it did not cause)
  restart Redis       stop it, wait 1-3 s, start it empty: every queued message is gone
  restart PostgreSQL  fast shutdown (sessions cut off), wait 2-5 s, start

Submits refused or cut off by an outage are retried until accepted. After the last fault the soak waits
up to --settle seconds for every job to finish, then lists every job of its owner through the API and
reads the private database directly:

  submitted             submits answered 202 (more jobs may be listed: a retried submit whose first
                        answer was lost can have created a job too; every listed job is judged)
  succeeded             listed jobs that ended `succeeded`
  lost                  listed jobs not `succeeded` --settle s after the last fault (queued, running,
                        failed or cancelled), plus accepted ids the list does not have
  epochs written twice  (job, epoch) pairs stored more than once in epoch_metric or served twice
                        by GET /v1/jobs/{id}/metrics
  epoch gaps            jobs whose metrics are not exactly epochs 1..epochs_completed, or that
                        succeeded with fewer epochs than they asked for
  stuck running         jobs still `running` at the end
  restarted jobs        jobs with more than one attempt (reported, not targeted)

Target: 0 lost, 0 epochs written twice, 0 epoch gaps, 0 stuck running. The process exits 1 otherwise,
and keeps the service logs (their folder is printed).
Usage: python -m bench.soak [--jobs 200] [--burst 20] [--duration 600] [--settle 300] [--seed 1] [--quick]
       (--quick: 20 jobs in bursts of 5 over 120 s with a fault every 10-25 s, a smoke run of a few minutes)
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.harness import ROOT, free_port
from bench.servers import PrivatePostgres, PrivateRedis

WORKERS = 2
SOAK_JOB = {
    "model": {"layers": [{"type": "Dense", "units": 8, "activation": "relu"}, {"type": "Dense", "units": 1, "activation": "sigmoid"}]},
    "compile": {"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy"]},
    "fit": {"epochs": 6, "batch_size": 32},
}
FAULT_KINDS = ("kill_worker", "restart_redis", "restart_postgres")
TARGET = "0 lost, 0 epochs written twice, 0 epoch gaps, 0 stuck running"
# As app.serve does: a crash loop should not spin.
RESTART_DELAY_S = 2.0
START_TIMEOUT_S = 180.0
WORKER_PID = re.compile(r"\(pid (\d+)\)")
# Refusals that mean "come back later"; any other 4xx would be refused again, so the submit is dropped.
RETRYABLE_4XX = {408, 409, 429}


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, message: str) -> None:
        print(f"[{self.now():7.1f}s] {message}", flush=True)


@dataclass
class Process:
    role: str
    name: str
    popen: subprocess.Popen
    log: Path
    killed_by_driver: bool = False
    exited_at: float | None = None


class Cluster:
    """The service's processes, kept alive the way a process manager would: whatever exits is started again."""

    def __init__(self, env: dict[str, str], logs: Path, api_port: int, clock: Clock) -> None:
        self.env = env
        self.logs = logs
        self.api_port = api_port
        self.url = f"http://127.0.0.1:{api_port}"
        self.clock = clock
        self.lock = threading.Lock()
        self.processes: list[Process] = []
        self.serial = Counter[str]()
        self.unexpected_exits = Counter[str]()
        self.replacements = Counter[str]()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _command(self, role: str, name: str) -> list[str]:
        from app.serve import api_command, scheduler_command, worker_command

        if role == "api":
            return api_command("127.0.0.1", self.api_port)
        if role == "scheduler":
            return scheduler_command()
        return worker_command(name)

    def start(self, role: str) -> Process:
        self.serial[role] += 1
        # A fresh name per worker, so attempts in the job history show which incarnation ran them.
        name = f"soak{self.serial[role]}" if role == "worker" else f"{role}{self.serial[role]}"
        log = self.logs / f"{role}-{self.serial[role]}.log"
        popen = subprocess.Popen(self._command(role, name), cwd=ROOT, env=self.env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        process = Process(role, name, popen, log)
        with self.lock:
            self.processes.append(process)
        return process

    def wait_ready(self, process: Process, ready: Callable[[], bool], timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.role} exited at start with code {process.popen.returncode}:\n{tail(process.log)}")
            try:
                if ready():
                    return
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{process.role} not ready after {timeout_s:.0f} s:\n{tail(process.log)}")

    def log_says(self, process: Process, text: str) -> Callable[[], bool]:
        return lambda: text.encode() in process.log.read_bytes()

    def live(self, role: str) -> list[Process]:
        with self.lock:
            return [p for p in self.processes if p.role == role and p.popen.poll() is None]

    def kill(self, process: Process) -> None:
        process.killed_by_driver = True
        os.kill(process.popen.pid, signal.SIGKILL)

    def supervise(self) -> None:
        self._thread = threading.Thread(target=self._supervise, name="supervisor", daemon=True)
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self.lock:
                exited = [p for p in self.processes if p.exited_at is None and p.popen.poll() is not None]
                for process in exited:
                    process.exited_at = time.monotonic()
                    if not process.killed_by_driver:
                        self.unexpected_exits[process.role] += 1
                        self.clock.log(f"supervisor: {process.role} {process.name} exited by itself with code "
                                       f"{process.popen.returncode}; last lines of {process.log.name}:\n{tail(process.log, 1500)}")
                due = [p for p in self.processes if p.exited_at is not None and time.monotonic() - p.exited_at >= RESTART_DELAY_S]
                for process in due:
                    self.processes.remove(process)
            for process in due:
                if self._stop.is_set():
                    return
                replacement = self.start(process.role)
                self.replacements[process.role] += 1
                self.clock.log(f"supervisor: started {replacement.role} {replacement.name} (pid {replacement.popen.pid}) "
                               f"in place of {process.name}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        with self.lock:
            processes = list(self.processes)
        for process in processes:
            if process.popen.poll() is None:
                process.popen.terminate()
        for process in processes:
            try:
                process.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait(timeout=10)


@dataclass
class Submitter:
    """Submits bursts at a steady rate; during an outage it retries one submit until it is accepted."""

    url: str
    headers: dict[str, str]
    spec: dict
    jobs: int
    burst: int
    duration_s: float
    clock: Clock
    give_up_at: float
    accepted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)

    def run(self) -> None:
        start = time.monotonic()
        with httpx.Client(base_url=self.url, headers=self.headers, timeout=30) as client:
            bursts = -(-self.jobs // self.burst)
            for index in range(self.jobs):
                burst_index = index // self.burst
                time.sleep(max(0.0, start + burst_index * self.duration_s / bursts - time.monotonic()))
                if not self._submit_one(client):
                    break
        self.clock.log(f"submitter: done, {len(self.accepted)} accepted, {len(self.dropped)} dropped, "
                       f"{sum(self.retries.values())} retries {dict(self.retries)}")

    def _submit_one(self, client: httpx.Client) -> bool:
        while time.monotonic() < self.give_up_at:
            try:
                response = client.post("/v1/jobs", json=self.spec)
            except httpx.HTTPError as error:
                # The request may still have created a job; the final listing counts it if so.
                self.retries[type(error).__name__] += 1
                time.sleep(1.0)
                continue
            if response.status_code == 202:
                self.accepted.append(response.json()["id"])
                return True
            if 400 <= response.status_code < 500 and response.status_code not in RETRYABLE_4XX:
                self.dropped.append(f"{response.status_code} {response.text[:200]}")
                self.clock.log(f"submitter: refused for good: {self.dropped[-1]}")
                return True
            self.retries[str(response.status_code)] += 1
            time.sleep(1.0)
        self.clock.log("submitter: gave up, the service did not accept a submit before the deadline")
        return False


class FaultDriver:
    """Injects one fault at a time, each at a moment when a job is running if one comes within 15 s:
    a fault that lands between jobs proves little."""

    def __init__(self, cluster: Cluster, redis: PrivateRedis, postgres: PrivatePostgres, headers: dict[str, str], rng: random.Random) -> None:
        self.cluster = cluster
        self.redis = redis
        self.postgres = postgres
        self.headers = headers
        self.rng = rng
        self.bag: list[str] = []
        self.injected = Counter[str]()
        self.mid_job = Counter[str]()
        self.failed_faults: list[str] = []

    def next_kind(self) -> str:
        if not self.bag:
            self.bag = list(FAULT_KINDS)
            self.rng.shuffle(self.bag)
        return self.bag.pop()

    def inject(self, kind: str) -> None:
        try:
            getattr(self, kind)()
            self.injected[kind] += 1
        except (subprocess.CalledProcessError, OSError, TimeoutError) as error:
            detail = error.stderr.decode(errors="replace")[-500:] if isinstance(error, subprocess.CalledProcessError) and error.stderr else ""
            self.failed_faults.append(f"{kind}: {error} {detail}")
            self.cluster.clock.log(f"fault {kind} could not be done: {error} {detail}")

    def kill_worker(self) -> None:
        busy, queued = self._wait_for_running(lambda busy, _: {w.popen.pid for w in self.cluster.live("worker")} & busy.keys())
        workers = self.cluster.live("worker")
        candidates = [w for w in workers if w.popen.pid in busy]
        if not workers:
            raise OSError("no worker is alive to kill")
        victim = self.rng.choice(candidates or workers)
        self.cluster.kill(victim)
        self.mid_job["kill_worker"] += bool(candidates)
        what = f"running job {busy[victim.popen.pid]}" if candidates else "idle: no worker ran a job for 15 s"
        self.cluster.clock.log(f"FAULT kill -9 worker {victim.name} (pid {victim.popen.pid}), {what}; {queued} queued")

    def restart_redis(self) -> None:
        # The fault that matters for Redis is queued jobs losing their messages.
        busy, queued = self._wait_for_running(lambda busy, queued: queued > 0)
        self.mid_job["restart_redis"] += bool(queued)
        down_s = self.rng.uniform(1, 3)
        self.cluster.clock.log(f"FAULT restart Redis: stop, {down_s:.1f} s down, start empty; {len(busy)} running, {queued} queued")
        self.redis.stop()
        time.sleep(down_s)
        self.redis.start()

    def restart_postgres(self) -> None:
        busy, queued = self._wait_for_running(lambda busy, _: bool(busy))
        self.mid_job["restart_postgres"] += bool(busy)
        down_s = self.rng.uniform(2, 5)
        self.cluster.clock.log(f"FAULT restart PostgreSQL: fast stop, {down_s:.1f} s down, start; {len(busy)} running, {queued} queued")
        self.postgres.stop()
        time.sleep(down_s)
        self.postgres.start()

    def _wait_for_running(self, good: Callable[[dict[int, str], int], object], timeout_s: float = 30) -> tuple[dict[int, str], int]:
        deadline = time.monotonic() + timeout_s
        while True:
            busy, queued = self._in_flight()
            if good(busy, queued) or time.monotonic() > deadline:
                return busy, queued
            time.sleep(0.25)

    def _in_flight(self) -> tuple[dict[int, str], int]:
        """Running jobs by the pid of their worker, and how many jobs are queued."""
        busy: dict[int, str] = {}
        try:
            with httpx.Client(base_url=self.cluster.url, headers=self.headers, timeout=10) as client:
                running = client.get("/v1/jobs", params={"status": "running", "limit": 200}).raise_for_status().json()["items"]
                queued = len(client.get("/v1/jobs", params={"status": "queued", "limit": 200}).raise_for_status().json()["items"])
        except httpx.HTTPError:
            return busy, 0
        for job in running:
            if job["worker"] and (match := WORKER_PID.search(job["worker"])):
                busy[int(match.group(1))] = job["id"]
        return busy, queued


def tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def api_get(client: httpx.Client, path: str, params: dict | None = None, timeout_s: float = 120) -> dict:
    """A GET that rides out a service still recovering from the last fault."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return client.get(path, params=params).raise_for_status().json()
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def all_jobs(client: httpx.Client, status: str | None = None) -> list[dict]:
    jobs: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 200} | ({"cursor": cursor} if cursor else {}) | ({"status": status} if status else {})
        page = api_get(client, "/v1/jobs", params)
        jobs += page["items"]
        if not (cursor := page["next_cursor"]):
            return jobs


def any_active(client: httpx.Client) -> bool:
    try:
        return any(client.get("/v1/jobs", params={"status": s, "limit": 1}).raise_for_status().json()["items"] for s in ("queued", "running"))
    except httpx.HTTPError:
        return True


def duplicated_epochs_in_database(database_url: str) -> set[tuple[str, int]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(database_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT job_id, epoch, count(*) FROM epoch_metric GROUP BY 1, 2 HAVING count(*) > 1"))
            return {(job_id, epoch) for job_id, epoch, _ in rows}
    finally:
        engine.dispose()


def create_database(admin_url: str, name: str) -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def judge(client: httpx.Client, database_url: str, accepted: list[str]) -> dict:
    jobs = all_jobs(client)
    by_id = {job["id"]: job for job in jobs}
    statuses = Counter(job["status"] for job in jobs)
    missing = [job_id for job_id in accepted if job_id not in by_id]
    not_done = [job for job in jobs if job["status"] != "succeeded"]
    twice = duplicated_epochs_in_database(database_url)
    gaps: dict[str, str] = {}
    for job in jobs:
        epochs = [row["epoch"] for row in api_get(client, f"/v1/jobs/{job['id']}/metrics")["epochs"]]
        twice |= {(job["id"], epoch) for epoch, count in Counter(epochs).items() if count > 1}
        if sorted(set(epochs)) != list(range(1, job["epochs_completed"] + 1)):
            gaps[job["id"]] = f"metrics epochs {epochs}, epochs_completed {job['epochs_completed']}"
        elif job["status"] == "succeeded" and job["epochs_completed"] != job["epochs_total"]:
            gaps[job["id"]] = f"succeeded after {job['epochs_completed']} of {job['epochs_total']} epochs"
    return {
        "jobs": jobs, "statuses": statuses, "missing": missing, "not_done": not_done, "twice": twice, "gaps": gaps,
        "restarted": [job for job in jobs if len(job["attempts"]) > 1],
    }


def describe(job: dict) -> str:
    attempts = ", ".join(f"{a['worker']}: {a['outcome']}" for a in job["attempts"]) or "none"
    history = "; ".join(f"{h['status']} {h['message']}" for h in job["history"][-4:])
    error = f" error {job['error']}" if job.get("error") else ""
    return (f"{job['id']} {job['status']} epochs {job['epochs_completed']}/{job['epochs_total']}{error}; "
            f"attempts [{attempts}]; last history: {history}")


def soak(args: argparse.Namespace, workdir: Path, logs: Path) -> dict:
    from app.admin import create_api_key
    from app.settings import Settings

    clock = Clock()
    rng = random.Random(args.seed)
    redis = PrivateRedis(workdir)
    postgres = PrivatePostgres()
    cluster: Cluster | None = None
    try:
        redis.start()
        postgres.start()
        database_url = create_database(postgres.url, "epochly")
        clock.log(f"private PostgreSQL on 127.0.0.1:{postgres.port}, private Redis (no persistence) on 127.0.0.1:{redis.port}")
        env = {
            **os.environ, "DATA_DIR": str(workdir / "var"), "DATABASE_URL": database_url, "BROKER_URL": redis.url,
            "JOB_HEARTBEAT_TIMEOUT_S": "5", "CHECKPOINT_INTERVAL_S": "0", "OWNER_MAX_ACTIVE_JOBS": "1000",
            "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
        }
        cluster = Cluster(env, logs, free_port(), clock)
        api = cluster.start("api")
        cluster.wait_ready(api, lambda: httpx.get(f"{cluster.url}/health", timeout=2).status_code == 200)
        scheduler = cluster.start("scheduler")
        cluster.wait_ready(scheduler, cluster.log_says(scheduler, "scheduler ready"))
        for _ in range(WORKERS):
            worker = cluster.start("worker")
            cluster.wait_ready(worker, cluster.log_says(worker, " ready."))
        settings = Settings(data_dir=workdir / "var", database_url=database_url, broker_url=redis.url)
        headers = {"Authorization": f"Bearer {create_api_key('soak', settings)}"}
        client = httpx.Client(base_url=cluster.url, headers=headers, timeout=30)
        dataset = client.post("/v1/datasets/examples/side-effects", timeout=120).raise_for_status().json()
        clock.log(f"API, 1 scheduler and {WORKERS} workers ready; logs in {logs}")
        cluster.supervise()

        faults_until = clock.now() + args.duration
        submitter = Submitter(cluster.url, headers, SOAK_JOB | {"dataset_id": dataset["id"]}, args.jobs, args.burst, args.duration, clock,
                              give_up_at=time.monotonic() + args.duration + args.settle)
        submitting = threading.Thread(target=submitter.run, name="submitter", daemon=True)
        submitting.start()
        clock.log(f"submitting {args.jobs} jobs over {args.duration:.0f} s; a fault every {args.min_gap:.0f}-{args.max_gap:.0f} s (seed {args.seed})")

        driver = FaultDriver(cluster, redis, postgres, headers, rng)
        last_fault = clock.now()
        while (next_fault := last_fault + rng.uniform(args.min_gap, args.max_gap)) < faults_until:
            time.sleep(max(0.0, next_fault - clock.now()))
            driver.inject(driver.next_kind())
            last_fault = clock.now()
        clock.log(f"fault phase over; last fault at {last_fault:.1f} s; waiting up to {args.settle:.0f} s after it for every job to finish")

        settle_deadline = last_fault + args.settle
        submitting.join(timeout=max(0.0, settle_deadline - clock.now()))
        while clock.now() < settle_deadline and any_active(client):
            time.sleep(2.0)
        settled_s = clock.now() - last_fault
        clock.log(f"settled {settled_s:.1f} s after the last fault" if clock.now() < settle_deadline else "settle time ran out")
        verdict = judge(client, database_url, submitter.accepted)
        wall_s = clock.now()
        client.close()
        return {
            "verdict": verdict, "submitter": submitter, "driver": driver, "cluster": cluster,
            "settled_s": settled_s, "wall_s": wall_s, "submitting_finished": not submitting.is_alive(),
        }
    finally:
        if cluster:
            cluster.stop()
        redis.stop()
        postgres.remove()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--burst", type=int, default=20, help="jobs submitted back to back at each burst")
    parser.add_argument("--duration", type=float, default=600, help="seconds of submitting and of faults")
    parser.add_argument("--settle", type=float, default=300, help="seconds after the last fault by which every job must be done")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--min-gap", type=float, default=20, help="least seconds between two faults")
    parser.add_argument("--max-gap", type=float, default=60, help="most seconds between two faults")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 jobs in bursts of 5 over 120 s, a fault every 10-25 s")
    parser.add_argument("--keep-logs", action="store_true", help="keep the service logs even when the target is met")
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.burst, args.duration, args.min_gap, args.max_gap = 20, 5, 120.0, 10.0, 25.0

    logs = Path(tempfile.mkdtemp(prefix="epochly-soak-logs-"))
    met = False
    try:
        with tempfile.TemporaryDirectory(prefix="epochly-soak-") as tmp:
            run = soak(args, Path(tmp), logs)
        met = report(args, run)
    finally:
        if met and not args.keep_logs:
            shutil.rmtree(logs, ignore_errors=True)
        else:
            print(f"service logs kept in {logs}", flush=True)
    sys.exit(0 if met else 1)


def report(args: argparse.Namespace, run: dict) -> bool:
    verdict, submitter, driver, cluster = run["verdict"], run["submitter"], run["driver"], run["cluster"]
    jobs = verdict["jobs"]
    lost = len(verdict["not_done"]) + len(verdict["missing"])
    stuck = verdict["statuses"].get("running", 0)
    twice = len(verdict["twice"])
    gaps = len(verdict["gaps"])
    succeeded = verdict["statuses"].get("succeeded", 0)
    met = lost == 0 and twice == 0 and stuck == 0 and gaps == 0
    faults = {kind: driver.injected.get(kind, 0) for kind in FAULT_KINDS}
    mid_job = {kind: driver.mid_job.get(kind, 0) for kind in FAULT_KINDS}

    print(f"\nchaos soak, seed {args.seed}, {WORKERS} workers on PostgreSQL + Redis, {run['wall_s']:.0f} s wall")
    print(f"  faults injected      {faults} (at their moment, a job running or for Redis jobs queued: {mid_job}"
          f"{'; not done: ' + '; '.join(driver.failed_faults) if driver.failed_faults else ''})")
    print(f"  jobs submitted       {len(submitter.accepted)} accepted of {args.jobs} "
          f"({sum(submitter.retries.values())} submit retries {dict(submitter.retries)}, {len(submitter.dropped)} refused for good); "
          f"{len(jobs)} jobs listed{'' if run['submitting_finished'] else '; the submitter never finished'}")
    print(f"  succeeded            {succeeded}   (statuses {dict(verdict['statuses'])})")
    print(f"  lost                 {lost}   (not succeeded {args.settle:.0f} s after the last fault: {len(verdict['not_done'])}, "
          f"accepted but not listed: {len(verdict['missing'])})")
    print(f"  epochs written twice {twice}")
    print(f"  epoch gaps           {gaps}")
    print(f"  stuck running        {stuck}")
    print(f"  restarted jobs       {len(verdict['restarted'])} (more than one attempt)")
    print(f"  process exits the driver did not cause: {dict(cluster.unexpected_exits) or 'none'}; "
          f"replacements started: {dict(cluster.replacements)}")
    settled = f"{run['settled_s']:.1f} s after the last fault" if run["settled_s"] < args.settle else "never (settle time ran out)"
    print(f"  all jobs done        {settled}")
    for job in verdict["not_done"][:20]:
        print(f"  not done: {describe(job)}")
    for job_id in verdict["missing"][:20]:
        print(f"  accepted but not listed: {job_id}")
    for job_id, what in list(verdict["gaps"].items())[:20]:
        print(f"  epoch gap: {job_id}: {what}")
    for job_id, epoch in sorted(verdict["twice"])[:20]:
        print(f"  epoch written twice: {job_id} epoch {epoch}")
    print(f"target: {TARGET}; met: {met}", flush=True)

    result = {
        "figure": "chaos soak", "seed": args.seed, "workers": WORKERS, "duration_s": args.duration,
        "jobs_submitted": len(submitter.accepted), "jobs_listed": len(jobs), "succeeded": succeeded, "lost": lost,
        "epochs_written_twice": twice, "stuck_running": stuck, "epoch_gaps": gaps, "faults": faults,
        "faults_mid_job": mid_job, "restarted_jobs": len(verdict["restarted"]),
        "unexpected_exits": dict(cluster.unexpected_exits), "settled_s_after_last_fault": round(run["settled_s"], 1),
        "wall_s": round(run["wall_s"], 1), "target": TARGET, "met": met,
    }
    print("RESULT: " + json.dumps(result), flush=True)
    return met


if __name__ == "__main__":
    main()
