"""The API's in-memory views: list pages kept until a status change, reads that began before an
invalidation never kept, and a process's own changes reaching its views before its answer."""
import asyncio

from fastapi.concurrency import run_in_threadpool

from app.api.views import ACTIVE_TTL_S, PAGE_TTL_S, STALE_SERVED_S, JobViews, ReadYourWrites
from app.repositories.pagination import Page

QUERY = ("owner_a", None, None, None, None, 50)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_list_page_is_kept_until_a_status_change_or_its_ttl():
    clock = Clock()
    views = JobViews(clock)
    views.keep_page(QUERY, Page(["job_a"], None), views.tick())
    views.on_event({"type": "epoch", "job_id": "job_a", "epoch": 1})
    assert views.page(QUERY) == Page(["job_a"], None)  # epochs change no list's membership or order
    views.on_event({"type": "status", "job_id": "job_b", "status": "queued"})
    assert views.page(QUERY) is None
    views.keep_page(QUERY, Page(["job_b", "job_a"], None), views.tick())
    clock.now += PAGE_TTL_S
    assert views.page(QUERY) is None


def test_a_page_read_that_began_before_a_status_change_is_served_but_not_kept():
    views = JobViews()
    since = views.tick()
    views.on_event({"type": "status", "job_id": "job_new", "status": "queued"})
    views.keep_page(QUERY, Page(["job_old"], None), since)
    assert views.page(QUERY) is None
    views.keep_page(QUERY, Page(["job_new", "job_old"], None), views.tick())
    assert views.page(QUERY) == Page(["job_new", "job_old"], None)


class Recorded:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def publish(self, message: dict) -> None:
        self.messages.append(message)

    def publish_control(self, message: dict) -> None:
        self.messages.append(message)


def test_a_change_committed_in_a_route_thread_reaches_the_views_before_its_answer():
    views = JobViews()
    bus = Recorded()
    publisher = ReadYourWrites(bus, views)

    async def route() -> tuple:
        publisher.bind(asyncio.get_running_loop())
        views.keep_page(QUERY, Page([], None), views.tick())
        await run_in_threadpool(publisher.publish, {"type": "status", "job_id": "job_a", "status": "queued"})
        served_after_threaded_commit = views.page(QUERY)
        views.keep_page(QUERY, Page(["job_a"], None), views.tick())
        publisher.publish({"type": "status", "job_id": "job_a", "status": "cancelled"})  # on the loop itself
        return served_after_threaded_commit, views.page(QUERY)

    after_thread, after_loop = asyncio.run(route())
    assert after_thread is None and after_loop is None
    assert [m["status"] for m in bus.messages] == ["queued", "cancelled"]  # the bus still carries both


def _job_read(status: str, epochs: int):
    from datetime import UTC, datetime

    from app.api.schemas import JobRead

    return JobRead(
        id="job_a", name=None, tags={}, dataset_id=None, status=status, spec={}, created_at=datetime.now(UTC),
        started_at=None, finished_at=None, epochs_total=10, epochs_completed=epochs, latest=None, error=None,
        worker=None, history=[],
    )


def test_an_epoch_makes_a_job_stale_but_still_served_and_a_status_change_drops_it():
    clock = Clock()
    views = JobViews(clock)
    views.keep_job(_job_read("running", 3), "owner_a", views.tick())
    views.on_event({"type": "epoch", "job_id": "job_a", "epoch": 4})
    stale = views.job("job_a")
    assert stale is not None and stale.stale and stale.epochs_completed == 3
    views.keep_job(_job_read("running", 4), "owner_a", views.tick())
    fresh = views.job("job_a")
    assert fresh is not None and not fresh.stale and fresh.epochs_completed == 4
    clock.now += 2.0  # ACTIVE_TTL_S: a running job's heartbeat moves without events
    assert views.job("job_a").stale
    views.on_event({"type": "status", "job_id": "job_a", "status": "succeeded"})
    assert views.job("job_a") is None  # never served again: the next read waits for the database


def test_a_job_stale_for_longer_than_a_busy_pollers_gap_is_read_again_before_it_is_served():
    clock = Clock()
    views = JobViews(clock)
    views.keep_job(_job_read("running", 3), "owner_a", views.tick())
    views.on_event({"type": "epoch", "job_id": "job_a", "epoch": 4})
    clock.now += STALE_SERVED_S / 2
    views.on_event({"type": "epoch", "job_id": "job_a", "epoch": 5})  # stale since epoch 4, not 5
    assert views.job("job_a").epochs_completed == 3  # a busy poller's refresh is under way
    clock.now += STALE_SERVED_S
    assert views.job("job_a") is None  # nobody asked for a while: the poll waits for the read
    views.keep_job(_job_read("running", 5), "owner_a", views.tick())
    assert views.job("job_a").epochs_completed == 5 and not views.job("job_a").stale
    clock.now += ACTIVE_TTL_S + 2 * STALE_SERVED_S  # the heartbeat's TTL, then the grace, with no poll
    assert views.job("job_a") is None


def test_a_read_overtaken_by_an_epoch_is_kept_only_if_it_holds_that_epoch():
    views = JobViews()
    views.keep_job(_job_read("running", 3), "owner_a", views.tick())
    since = views.tick()
    views.on_event({"type": "epoch", "job_id": "job_a", "epoch": 4})
    views.keep_job(_job_read("running", 3), "owner_a", since)  # read before epoch 4 was written
    assert views.job("job_a").stale and views.job("job_a").epochs_completed == 3
    views.keep_job(_job_read("running", 4), "owner_a", since)  # read after, though begun before the event
    assert not views.job("job_a").stale and views.job("job_a").epochs_completed == 4
    newer = views.tick()
    views.keep_job(_job_read("running", 4), "owner_a", newer)
    views.keep_job(_job_read("running", 4), "owner_a", since)  # an older read finishing last replaces nothing
    assert views.job("job_a").read_since == newer


def test_a_window_is_kept_only_if_it_reaches_the_newest_announced_epoch():
    views = JobViews()
    since = views.tick()
    views.on_event({"type": "epoch", "job_id": "job_a", "epoch": 3, "logs": {}, "duration_s": 0.1, "finished_at": "x"})
    views.keep_window("job_a", 1, [b"1", b"2"], since)
    assert views.window("job_a") is None
    views.keep_window("job_a", 1, [b"1", b"2", b"3"], since)
    assert views.window("job_a").last == 3
    views.on_event({"type": "epoch", "job_id": "job_a", "epoch": 3, "logs": {}, "duration_s": 0.1, "finished_at": "x"})
    assert views.window("job_a").last == 3  # a repeated message changes nothing
    views.on_event({"type": "epoch", "job_id": "job_a", "epoch": 5, "logs": {}, "duration_s": 0.1, "finished_at": "x"})
    assert views.window("job_a") is None  # epoch 4 was lost: the database decides
