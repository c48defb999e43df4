"""The hot reads (GET /v1/jobs/{id}, its /metrics, job lists) served from memory, kept fresh by the
event bus that carries every change of a job, instead of a database round trip per poll.

A job's rendered body is cached until a status event or a "changed" one (a cancel request) arrives.
An epoch event, or ACTIVE_TTL_S passing for an active job (its heartbeat moves without an event),
only makes it stale: for STALE_SERVED_S it is still served while one read refreshes it in the
background, so pollers of a training job never wait for the database at every epoch. Past that
nobody has asked for a while, and the next poll waits for the read: a script that polls every ten
seconds sees the job as it is, not as it was at its last poll. A job's newest epoch rows are kept as
a window that epoch events extend; a gap (a lost message) drops the window, and the next read
refills it from the database. The ids of a list page
are kept until any job's status changes (a new job is a status event too), and PAGE_TTL_S at most.

What a process serves only moves forward. Every event ticks a clock. A job read is kept only if it
began after the job's last status or "changed" event, after the read it replaces, and holds every
epoch an event has announced; a window of rows only if it reaches the newest announced epoch.
Otherwise it is served to its callers but not kept, so an older read never replaces a newer one.
(Epochs arrive about ten times a second, so "no event since the read began" would throw away most
reads of a training job.) A bus interruption ("resync") drops everything."""

import asyncio
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from app.api.schemas import EpochRead, JobRead
from app.api.single_flight import SingleFlight
from app.events.publisher import Publisher
from app.lifecycle import TERMINAL, JobStatus
from app.repositories.pagination import Page

# Active jobs change without events (heartbeats), so their bodies are re-read this often at most.
ACTIVE_TTL_S = 2.0
# How long a stale body may still be served while its refresh runs.
STALE_SERVED_S = 0.5
MAX_JOBS = 10_000
# Epoch rows kept per job: enough for pollers that lag by a few hundred epochs.
WINDOW_ROWS = 2_000
# Invalidation times remembered per job; far more than can happen during one database read.
MAX_TOUCHED = 50_000
# List pages are re-read this often at least: a job removed with its owner's account sends no event.
PAGE_TTL_S = 2.0
MAX_PAGES = 10_000
# Rendered on each read rather than kept: they change without an event about the job.
PER_READ_FIELDS = frozenset({"batch", "batches_per_epoch", "waiting_reason"})


def etag(body: bytes) -> str:
    """From the content alone, so every API process gives an unchanged job the same tag."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


@dataclass
class JobEntry:
    owner_id: str
    status: JobStatus
    epochs_completed: int
    # The body without its closing brace and without PER_READ_FIELDS, which change between events.
    head: bytes
    refresh_at: float | None
    queue: str
    read_since: int  # the clock when the read that made it began
    # When an epoch event or ACTIVE_TTL_S made it stale (JobViews' clock); None while current.
    stale_since: float | None = None

    @property
    def stale(self) -> bool:
        return self.stale_since is not None

    def render(self, progress: dict[str, Any] | None, served_queues: Collection[str] | None) -> bytes:
        """The body, with the in-epoch position while it runs and, while it waits in a queue that no
        live worker consumes (`served_queues`: None when unknown), why."""
        if self.status is JobStatus.RUNNING and progress:
            batch, batches = progress.get("batch"), progress.get("batches_per_epoch")
            tail = f',"batch":{_int_or_null(batch)},"batches_per_epoch":{_int_or_null(batches)}'
        else:
            tail = ',"batch":null,"batches_per_epoch":null'
        reason = None
        if self.status is JobStatus.QUEUED and served_queues is not None and self.queue not in served_queues:
            reason = unserved_queue_reason(self.queue)
        return self.head + f'{tail},"waiting_reason":{json.dumps(reason)}}}'.encode()


def unserved_queue_reason(queue: str) -> str:
    return f"no worker is consuming queue `{queue}`"


def _int_or_null(value: Any) -> str:
    return str(int(value)) if isinstance(value, int) else "null"


@dataclass
class EpochWindow:
    """Contiguous rows first..last of one job, each its EpochRead JSON."""

    first: int
    rows: list[bytes] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1

    def covers(self, after: int) -> bool:
        return self.first <= after + 1

    def slice(self, after: int, limit: int) -> tuple[list[bytes], bool]:
        start = max(0, after + 1 - self.first)
        picked = self.rows[start : start + limit]
        return picked, start + limit < len(self.rows)


def _awaits_original(read: JobRead) -> bool:
    """A finished rerun whose original still runs: its same_as_original changes with no event of its own."""
    return read.rerun_of is not None and read.versions_differ is not None and read.same_as_original is None


def job_head(read: JobRead) -> bytes:
    return read.model_dump_json(exclude=set(PER_READ_FIELDS)).encode()[:-1]


def epoch_row(epoch: int, logs: dict[str, float], duration_s: float, finished_at: Any) -> bytes:
    return EpochRead(epoch=epoch, logs=logs, duration_s=duration_s, finished_at=finished_at).model_dump_json().encode()


class JobViews:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._jobs: OrderedDict[str, JobEntry] = OrderedDict()
        self._windows: OrderedDict[str, EpochWindow] = OrderedDict()
        self._tick = 0
        self._touched: OrderedDict[str, int] = OrderedDict()
        # The newest epoch announced per job (epoch events do not touch: see keep_job).
        self._announced: OrderedDict[str, int] = OrderedDict()
        # Reads that began before the last clear() are not kept.
        self._floor = 0
        # List pages by (owner, filters, cursor, limit): their ids, and until when they may be served.
        self._pages: OrderedDict[tuple[Any, ...], tuple[Page[str], float]] = OrderedDict()
        # Page reads that began before the last status change are not kept.
        self._pages_floor = 0
        # One database read at a time per (what, job): a popular job's invalidation must not send
        # every waiting poller to the database at once.
        self.once = SingleFlight()

    # -- reading ---------------------------------------------------------------------------------

    def tick(self) -> int:
        """Call before a database read; pass the result to keep_* once it returns."""
        return self._tick

    def job(self, job_id: str) -> JobEntry | None:
        """The job as last read, unless it has been stale for longer than STALE_SERVED_S; check
        `stale` before relying on it being current."""
        entry = self._jobs.get(job_id)
        if entry is None:
            return None
        now = self._clock()
        if entry.stale_since is None and entry.refresh_at is not None and entry.refresh_at <= now:
            entry.stale_since = entry.refresh_at
        if entry.stale_since is not None and now - entry.stale_since > STALE_SERVED_S:
            return None
        self._jobs.move_to_end(job_id)
        return entry

    def window(self, job_id: str) -> EpochWindow | None:
        window = self._windows.get(job_id)
        if window is not None:
            self._windows.move_to_end(job_id)
        return window

    def page(self, query: tuple[Any, ...]) -> Page[str] | None:
        kept = self._pages.get(query)
        if kept is None:
            return None
        if kept[1] <= self._clock():
            del self._pages[query]
            return None
        return kept[0]

    # -- filling (after a database read that began at `since`) ---------------------------------

    def keep_page(self, query: tuple[Any, ...], page: Page[str], since: int) -> None:
        if since < self._pages_floor:
            return
        self._pages[query] = (page, self._clock() + PAGE_TTL_S)
        self._pages.move_to_end(query)
        if len(self._pages) > MAX_PAGES:
            self._pages.popitem(last=False)

    def keep_job(self, read: JobRead, owner_id: str, since: int) -> JobEntry:
        status = JobStatus(read.status)
        settled = status in TERMINAL and not _awaits_original(read)
        refresh_at = None if settled else self._clock() + ACTIVE_TTL_S
        entry = JobEntry(owner_id, status, read.epochs_completed, job_head(read), refresh_at, read.queue, since)
        current = self._jobs.get(read.id)
        newer = current is None or current.read_since <= since
        if newer and self._fresh(read.id, since) and read.epochs_completed >= self._announced.get(read.id, 0):
            self._jobs[read.id] = entry
            self._jobs.move_to_end(read.id)
            if len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)
        return entry

    def keep_window(self, job_id: str, first: int, rows: list[bytes], since: int) -> None:
        """Rows first.. up to the newest the database had when read (a read that reached the end; no
        rows at all is an answer too: none after first - 1)."""
        if since < self._floor or first + len(rows) - 1 < self._announced.get(job_id, 0):
            return
        kept = rows[-WINDOW_ROWS:]
        self._windows[job_id] = EpochWindow(first + len(rows) - len(kept), kept)
        if len(self._windows) > MAX_JOBS:
            self._windows.popitem(last=False)

    def _fresh(self, job_id: str, since: int) -> bool:
        """No status or "changed" event of the job (and no clear) since the read began."""
        return since >= self._floor and self._touched.get(job_id, -1) <= since

    # -- the event bus ---------------------------------------------------------------------------

    def on_event(self, message: dict[str, Any]) -> None:
        kind, job_id = message.get("type"), message.get("job_id")
        if not isinstance(job_id, str) or kind == "progress":
            return
        self._tick += 1
        if kind == "epoch":
            epoch = message.get("epoch")
            if isinstance(epoch, int) and epoch > self._announced.get(job_id, 0):
                _remember(self._announced, job_id, epoch)
            if (entry := self._jobs.get(job_id)) is not None and entry.stale_since is None:
                entry.stale_since = self._clock()
            self._extend(job_id, message)
            return
        _remember(self._touched, job_id, self._tick)
        self._jobs.pop(job_id, None)
        if kind == "status":  # a new job, or one that moved between status filters
            self._pages.clear()
            self._pages_floor = self._tick

    def _extend(self, job_id: str, message: dict[str, Any]) -> None:
        window = self._windows.get(job_id)
        if window is None:
            return
        epoch = message.get("epoch")
        if not isinstance(epoch, int) or epoch <= window.last:  # the window has it already
            return
        if epoch != window.last + 1:  # a lost message: the database decides
            del self._windows[job_id]
            return
        window.rows.append(epoch_row(message["epoch"], message["logs"], message["duration_s"], message["finished_at"]))
        if len(window.rows) > WINDOW_ROWS:
            drop = len(window.rows) - WINDOW_ROWS
            del window.rows[:drop]
            window.first += drop

    def clear(self) -> None:
        self._tick += 1
        self._jobs.clear()
        self._windows.clear()
        self._touched.clear()
        self._announced.clear()
        self._pages.clear()
        self._floor = self._pages_floor = self._tick


def _remember(table: "OrderedDict[str, int]", job_id: str, value: int) -> None:
    table[job_id] = value
    table.move_to_end(job_id)
    if len(table) > MAX_TOUCHED:
        table.popitem(last=False)


class ReadYourWrites:
    """The API process's publisher: an event of a change this process made (a submit, a cancel) also
    reaches its own views before the request that made it is answered, so a client never reads its
    own change missing. The bus brings the same event back a moment later, which changes nothing."""

    def __init__(self, publisher: Publisher, views: JobViews) -> None:
        self._publisher = publisher
        self._views = views
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop that serves reads (views are touched only there)."""
        self._loop = loop

    def publish(self, message: dict[str, Any]) -> None:
        self._publisher.publish(message)
        if self._loop is None:
            return
        try:
            on_the_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_the_loop = False
        if on_the_loop:
            self._views.on_event(message)
        else:  # a sync route's thread: queued before the thread hands its answer back to the loop
            self._loop.call_soon_threadsafe(self._views.on_event, message)

    def publish_control(self, message: dict[str, Any]) -> None:
        self._publisher.publish_control(message)
