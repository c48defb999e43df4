"""Refused calls are counted per key and status by every API process into one row: two processes
adding to a counter that does not exist yet must both count (both back ends)."""

import threading
from datetime import UTC, datetime

from app.db import session_scope
from app.models import ApiKey, KeyRefusal, Owner
from app.repositories.owners import add_refusals


def test_two_processes_starting_the_same_counter_at_once_both_count(session_factory):
    with session_scope(session_factory) as session:
        owner = Owner(name="counted")
        session.add(owner)
        session.flush()
        key = ApiKey(owner_id=owner.id, name="k", prefix="abcdefgh", key_hash="0" * 64, scope="write")
        session.add(key)
        session.flush()
        key_id = key.id
    now = datetime.now(UTC)

    first = session_factory()
    add_refusals(first, key_id, 429, 3, now)  # not committed yet: the row does not exist for anyone else
    second_done = threading.Event()
    errors: list[BaseException] = []

    def second_process() -> None:
        try:
            with session_scope(session_factory) as session:
                add_refusals(session, key_id, 429, 4, now)  # waits for the first's commit
        except BaseException as exc:
            errors.append(exc)
        finally:
            second_done.set()

    adder = threading.Thread(target=second_process)
    adder.start()
    second_done.wait(0.3)
    first.commit()
    first.close()
    adder.join(timeout=30)
    assert errors == []
    with session_scope(session_factory) as session:
        assert session.get(KeyRefusal, (key_id, 429)).count == 7
