"""GET /metrics in Prometheus' text format: what this API process measures itself (request latency by
route template, open event streams), and what the database says (jobs by status and queue, queue
depth, live workers, and the samples workers and schedulers persisted: app/persisted_metrics.py).
No label holds an owner, a job id or anything else a user chose."""

# prometheus_client picks where its values live when first imported: the folder must be chosen
# before, and so this is the one module that imports prometheus_client.
from app.api import prometheus_dir  # noqa: F401

# isort: split

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Celery
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import persisted_metrics
from app.api.prometheus_dir import VARIABLE, process_identity
from app.db import session_scope
from app.lifecycle import JobStatus
from app.models import utcnow
from app.queue import waiting_messages
from app.repositories import jobs as jobs_repo
from app.repositories import leases, metric_counts
from app.repositories import workers as workers_repo
from app.settings import Settings

# Requests that matched no route (404s, probes of made-up paths) share one label, so a scanner
# cannot mint a time series per path.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# A poll is answered in well under a millisecond; uploads and first predictions take seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
# The database part of a scrape is read at most this often, however many scrapers ask.
REUSE_S = 1.0
# Workers silent this long are left out (the scheduler forgets their rows after as long).
WORKER_SHOWN_S = 3600.0

# What generate_latest writes.
MEDIA_TYPE = CONTENT_TYPE_LATEST

# In memory for a lone process; with several, in the shared folder (and this registry goes unused).
LOCAL = CollectorRegistry()
REQUEST_SECONDS = Histogram(
    "epochly_http_request_duration_seconds",
    "API requests by method, route template and status: time to the response's first byte "
    "(so an event stream counts its set-up, not its life)",
    ("method", "route", "status"),
    buckets=LATENCY_BUCKETS,
    registry=LOCAL,
)
OPEN_STREAMS = Gauge(
    "epochly_sse_streams",
    "Server-Sent Events streams open now, by route template",
    ("route",),
    multiprocess_mode="livesum",
    registry=LOCAL,
)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    if "app_root_path" in scope:  # a mounted app (the dashboard's static files), by its mount point
        return str(scope["root_path"])[len(scope["app_root_path"]) :] + "/{path}"
    return UNMATCHED


class RequestMetrics:
    """Plain ASGI middleware for what happens at a response's first byte: the request is timed to it
    (by method, route template and status) and the RateLimit-* headers that auth left in the
    request's state are added to it (errors included: a 404 or a 429 tells the client where it
    stands too). One slotted object per request does both; an event stream holds it for its life."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        first_byte = _FirstByte(scope, send)
        try:
            await self.app(scope, receive, first_byte.send)
        except BaseException:
            if not first_byte.answered:  # the server answers 500 for an error that escaped every handler
                _observe(scope, 500, time.perf_counter() - first_byte.start)
            raise


class _FirstByte:
    __slots__ = ("answered", "downstream", "scope", "start")

    def __init__(self, scope: Scope, downstream: Send) -> None:
        self.scope = scope
        self.downstream = downstream
        self.start = time.perf_counter()
        self.answered = False

    async def send(self, message: Message) -> None:
        if not self.answered and message["type"] == "http.response.start":
            self.answered = True
            verdict = self.scope.get("state", {}).get("ratelimit")
            if verdict is not None:
                message["headers"] = [*message.get("headers", []), *verdict.headers()]
            _observe(self.scope, message["status"], time.perf_counter() - self.start)
        await self.downstream(message)


# The labelled histogram children, looked up once per (method, route, status): a request pays one
# dict lookup and one observe.
_request_seconds: dict[tuple[str, str, int], Any] = {}


def _observe(scope: Scope, status: int, seconds: float) -> None:
    method = scope["method"] if scope["method"] in METHODS else "other"
    key = (method, route_template(scope), status)
    child = _request_seconds.get(key)
    if child is None:
        child = _request_seconds[key] = REQUEST_SECONDS.labels(*key)
    child.observe(seconds)


def open_streams(scope: Scope) -> Any:
    """The gauge of open event streams of the request's route: up while one is open."""
    return OPEN_STREAMS.labels(route_template(scope))


def read_database_metrics(session_factory: sessionmaker[Session], celery: Celery, settings: Settings) -> list[Metric]:
    """What the database says, and where the broker answers, its waiting messages per queue. With the
    database away the scrape still answers: epochly_database_up 0 and this process's own metrics."""
    database_up = GaugeMetricFamily("epochly_database_up", "1 when the API could read the database for this scrape, else 0")
    try:
        families, queues = _database_families(session_factory, settings)
    except SQLAlchemyError:
        database_up.add_metric([], 0)
        return [database_up]
    database_up.add_metric([], 1)
    families.append(database_up)
    try:
        waiting = waiting_messages(celery, queues)
    except Exception:  # the broker is away: /health says so; the other metrics still come
        return families
    broker = GaugeMetricFamily(
        "epochly_broker_messages_waiting", "Messages in each queue's broker queue that no worker has taken yet", labels=["queue"]
    )
    for queue in queues:
        broker.add_metric([queue], waiting.get(queue, 0))
    return [*families, broker]


def _database_families(session_factory: sessionmaker[Session], settings: Settings) -> tuple[list[Metric], list[str]]:
    """Four small reads: jobs grouped by status and queue, the scheduler lease, the persisted samples,
    the worker rows. Also returns the queues shown: those of QUEUES, and any a job still names."""
    now = utcnow()
    with session_scope(session_factory) as session:
        jobs = jobs_repo.counts_by_status_and_queue(session)
        scheduler_leads = leases.is_held(leases.current(session))
        samples = metric_counts.all_samples(session)
        workers = [
            (worker.id, list(worker.queues), (now - worker.heartbeat_at).total_seconds())
            for worker in workers_repo.live(session, now - timedelta(seconds=WORKER_SHOWN_S))
        ]
    queues = list(dict.fromkeys([*settings.queue_names, *(queue for _, queue in jobs)]))
    scheduler = GaugeMetricFamily(
        "epochly_scheduler_up", "1 while a scheduler holds the lead (recovery and dispatch run), else 0"
    )
    scheduler.add_metric([], int(scheduler_leads))
    families = [
        *_job_families(jobs, queues),
        *_worker_families(workers, queues, settings.job_heartbeat_timeout_s),
        *_persisted_families(samples),
        scheduler,
    ]
    return families, queues


def _job_families(jobs: dict[tuple[str, str], int], queues: list[str]) -> list[Metric]:
    by_status = GaugeMetricFamily(
        "epochly_jobs", "Jobs by status and queue, as the database has them now", labels=["status", "queue"]
    )
    depth = GaugeMetricFamily("epochly_queue_depth", "Jobs waiting for a worker (status queued), per queue", labels=["queue"])
    for queue in queues:
        for status in JobStatus:
            by_status.add_metric([status.value, queue], jobs.get((status.value, queue), 0))
        depth.add_metric([queue], jobs.get((JobStatus.QUEUED.value, queue), 0))
    return [by_status, depth]


def _worker_families(workers: list[tuple[str, list[str], float]], queues: list[str], timeout_s: float) -> list[Metric]:
    live = GaugeMetricFamily(
        "epochly_workers", "Workers consuming each queue whose last heartbeat is within JOB_HEARTBEAT_TIMEOUT_S", labels=["queue"]
    )
    age = GaugeMetricFamily(
        "epochly_worker_heartbeat_age_seconds",
        "Seconds since each worker's last heartbeat (workers seen in the last hour)",
        labels=["worker"],
    )
    per_queue: dict[str, int] = dict.fromkeys(queues, 0)
    for worker_id, worker_queues, age_s in workers:
        age.add_metric([worker_id], max(0.0, age_s))
        if age_s <= timeout_s:
            for queue in worker_queues:
                per_queue[queue] = per_queue.get(queue, 0) + 1
    for queue, count in per_queue.items():
        live.add_metric([queue], count)
    return [live, age]


def _persisted_families(samples: Iterable[tuple[str, str, float]]) -> list[Metric]:
    values = {(name, labels): value for name, labels, value in samples}
    families: list[Metric] = []
    for histogram in persisted_metrics.HISTOGRAMS:
        family = HistogramMetricFamily(histogram.name, histogram.documentation, labels=list(histogram.labelnames))
        series: dict[str, dict[str, float]] = defaultdict(dict)  # label set → bound → count
        for (name, key), value in values.items():
            if name == f"{histogram.name}_bucket":
                labels = json.loads(key)
                bound = labels.pop("le")
                series[persisted_metrics.label_key(labels)][bound] = value
        for key, counts in sorted(series.items()):
            labels = json.loads(key)
            cumulative, buckets = 0.0, []
            for bound in (*histogram.buckets, float("inf")):
                cumulative += counts.get(persisted_metrics.bound_label(bound), 0.0)
                buckets.append((floatToGoString(bound), cumulative))
            label_values = [labels[label] for label in histogram.labelnames]
            family.add_metric(label_values, buckets, values.get((f"{histogram.name}_sum", key), 0.0))
        families.append(family)
    for counter in persisted_metrics.COUNTERS:
        totals = CounterMetricFamily(counter.name, counter.documentation, labels=list(counter.labelnames))
        for (name, key), value in sorted(values.items()):
            if name == counter.name:
                labels = json.loads(key)
                totals.add_metric([labels[label] for label in counter.labelnames], value)
        families.append(totals)
    return families


class _Fixed:
    """A collector of families read already."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def exposition(database_families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(database_families))
    folder = os.environ.get(VARIABLE)
    if not folder:
        return generate_latest(LOCAL) + generate_latest(registry)
    _forget_dead_processes(folder)
    multiprocess.MultiProcessCollector(registry, folder)
    return generate_latest(registry)


def _forget_dead_processes(folder: str) -> None:
    """A process that died (uvicorn starts another) leaves its open-stream gauge behind: drop it.
    Its counters and histograms stay, so totals do not fall."""
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if process_identity(pid) is None:
            multiprocess.mark_process_dead(pid, folder)
