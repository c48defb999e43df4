"""Engine, session factory and the one unit of work, for either back end (SQLite embedded, PostgreSQL in production).

What must happen only once a change is durable (publishing a status event, ringing the broker's
doorbell, removing files a deleted row pointed at) is registered with `after_commit`: it runs after
the commit that makes the change real, and is forgotten if that transaction rolls back."""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

if TYPE_CHECKING:
    from app.events.publisher import Publisher
    from app.queue import Doorbell

log = logging.getLogger("epochly.db")
_PENDING = "epochly.after_commit"
PUBLISHER = "epochly.publisher"
DOORBELL = "epochly.doorbell"


# As many connections as the API has threadpool slots (40): a request holding a thread never waits
# for a connection, so none waits out the pool's timeout under load.
POOL: dict[str, Any] = {"pool_size": 20, "max_overflow": 20}
POOL_CONNECTIONS = POOL["pool_size"] + POOL["max_overflow"]


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # The API and worker processes share one file: WAL lets readers run beside the
        # writer, and the busy timeout turns a brief writer overlap into a wait, not an error.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **POOL)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **POOL)


def make_session_factory(
    engine: Engine, *, publisher: "Publisher | None" = None, doorbell: "Doorbell | None" = None
) -> sessionmaker[Session]:
    """Sessions that publish job events through `publisher` and ring `doorbell`, each after commit."""
    return sessionmaker(engine, expire_on_commit=False, info={PUBLISHER: publisher, DOORBELL: doorbell})


def upsert(session: Session, model: Any, rows: list[dict[str, Any]]) -> postgresql.Insert | sqlite.Insert:
    """INSERT of `rows` that takes `.on_conflict_do_update(...)`: both back ends have one, in their own dialect."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(model).values(rows)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def after_commit(session: Session, action: Callable[[], None]) -> None:
    session.info.setdefault(_PENDING, []).append(action)


def publish_after_commit(session: Session, message: dict[str, Any]) -> None:
    """Live delivery of a job event, once the row it describes is committed (sessions without a publisher skip it)."""
    publisher = session.info.get(PUBLISHER)
    if publisher is not None:
        after_commit(session, lambda: publisher.publish(message))


def publish_control_after_commit(session: Session, message: dict[str, Any]) -> None:
    """A message for every API process (a revoked key), once the change is committed."""
    publisher = session.info.get(PUBLISHER)
    if publisher is not None:
        after_commit(session, lambda: publisher.publish_control(message))


def ring_after_commit(session: Session, job_id: str, queue: str) -> None:
    doorbell: Doorbell | None = session.info.get(DOORBELL)
    if doorbell is not None:
        after_commit(session, lambda: doorbell.ring(job_id, queue))


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for action in session.info.pop(_PENDING, []):
        try:
            action()
        except Exception:  # the change is committed; a side effect that fails must not look like a failed commit
            log.exception("after-commit action failed")


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: SessionTransaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction, not a savepoint inside it
        session.info.pop(_PENDING, None)
