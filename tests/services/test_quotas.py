"""An owner's quotas hold under concurrent writes: the check and the write it allows happen while
the owner's row is held, so a second upload waits for the first's commit and counts it (both back ends)."""

import io
import threading

import numpy as np

from app.db import session_scope
from app.errors import PayloadTooLarge
from app.models import Dataset, Owner
from app.services.datasets import upload_dataset
from app.settings import Settings


def npz(seed: int) -> io.BytesIO:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    np.savez(buffer, x=rng.normal(size=(100, 2)).astype(np.float32), y=rng.integers(0, 2, 100))
    buffer.seek(0)
    return buffer


def test_two_uploads_at_once_cannot_both_pass_a_quota_that_fits_one(session_factory, tmp_path):
    with session_scope(session_factory) as session:
        owner = Owner(name="quota")
        session.add(owner)
        session.flush()
        owner_id = owner.id
    one_dataset = 100 * 2 * 4 + 100 * 8 + 2 * 128  # x, y and their .npy headers
    settings = Settings(data_dir=tmp_path / "var", owner_max_stored_bytes=one_dataset + one_dataset // 2)

    def upload(session, seed: int) -> Dataset:
        return upload_dataset(session, settings, owner_id=owner_id, stream=npz(seed), filename=f"{seed}.npz", name=None, target=None)

    first = session_factory()
    upload(first, 1)  # written, not committed: its bytes are invisible to others until the commit
    outcome: list[object] = []

    def second_upload() -> None:
        try:
            with session_scope(session_factory) as session:
                outcome.append(upload(session, 2))
        except PayloadTooLarge as exc:
            outcome.append(exc)

    racer = threading.Thread(target=second_upload)
    racer.start()
    racer.join(timeout=0.5)  # it reads its limit and stores its arrays, then waits at the owner's row
    first.commit()
    first.close()
    racer.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], PayloadTooLarge), outcome
    with session_scope(session_factory) as session:
        assert session.query(Dataset).filter_by(owner_id=owner_id).count() == 1
