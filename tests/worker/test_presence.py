"""The worker registry from a worker's side (worker/presence.py), on a real database: a row with
its queues and TensorFlow's devices while it runs, none after a clean stop; the scheduler forgets
rows of workers long silent."""

from datetime import timedelta

from sqlalchemy import select, update

from app.db import session_scope
from app.models import WorkerRecord, utcnow
from app.repositories import workers as workers_repo
from app.settings import Settings
from worker.presence import Presence, list_devices
from worker.runner import WorkerContext


def test_a_worker_is_registered_with_its_queues_and_devices_while_it_runs(settings: Settings):
    from app.migrate import upgrade_to_head

    settings.prepare_data_dir()
    upgrade_to_head(settings.resolved_database_url)
    ctx = WorkerContext(
        settings=settings.model_copy(update={"worker_queues": "gpu,default"}), worker_name="w1", devices=list_devices()
    )
    assert ctx.queues == ["gpu", "default"]
    assert ctx.devices and all(d["kind"] in {"CPU", "GPU"} and d["name"] for d in ctx.devices)
    presence = Presence(ctx)
    presence.start()
    try:
        with session_scope(ctx.session_factory) as session:
            row = session.get(WorkerRecord, "w1")
            assert row is not None and (row.queues, row.devices) == (["gpu", "default"], ctx.devices)
            assert workers_repo.live_queues(session, utcnow() - timedelta(seconds=5)) == {"gpu", "default"}
    finally:
        presence.stop()
    with session_scope(ctx.session_factory) as session:
        assert session.get(WorkerRecord, "w1") is None


def test_prune_forgets_only_workers_silent_since_before_the_cutoff(session_factory):
    with session_scope(session_factory) as session:
        workers_repo.beat(session, "old", ["default"], [])
        workers_repo.beat(session, "fresh", ["default"], [])
        session.execute(update(WorkerRecord).where(WorkerRecord.id == "old").values(heartbeat_at=utcnow() - timedelta(hours=2)))
    with session_scope(session_factory) as session:
        assert workers_repo.prune(session, utcnow() - timedelta(hours=1)) == 1
        assert list(session.scalars(select(WorkerRecord.id))) == ["fresh"]
