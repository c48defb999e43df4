"""Each job's record of what makes it repeatable (written as a worker starts it), reruns queued from
it, and how a rerun compares with the job it was queued from."""

import copy
import secrets
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.db import session_scope
from app.errors import NotRerunnable
from app.lifecycle import TERMINAL
from app.models import Job
from app.repositories import datasets as datasets_repo
from app.repositories import jobs as jobs_repo
from app.services import jobs as job_service
from app.services.audit import AuditContext
from app.settings import Settings
from app.specs import JobCreate

# What besides the inputs decides a job's numbers: a rerun whose record differs in one of these may
# train to other losses, and says which.
ENVIRONMENT_KEYS = ("python", "tensorflow", "keras", "numpy", "device_kind")
MAX_SEED = 2**31  # fit.seed's range (app/specs.py)


def record_start(session: Session, job: Job, environment: dict[str, str]) -> dict[str, Any]:
    """The job's record: written now by the worker that starts its first attempt, with the seed drawn
    here when fit.seed is null; a later attempt (a resumed or handed-back job) keeps the first one's,
    so the record names the seed the checkpoint carries on with."""
    if job.record is not None:
        return job.record
    spec = copy.deepcopy(job.spec)
    fit = spec.setdefault("fit", {})
    if fit.get("seed") is None:
        fit["seed"] = secrets.randbelow(MAX_SEED)
    dataset = datasets_repo.get(session, job.dataset_id) if job.dataset_id else None
    job.record = {
        "dataset_sha256": dataset.sha256 if dataset else None,
        "seed": fit["seed"],
        "spec": spec,
        **{key: environment[key] for key in ENVIRONMENT_KEYS},
    }
    if job.rerun_of is not None and (original := jobs_repo.get(session, job.rerun_of)) is not None and original.record:
        job.versions_differ = versions_differ(original.record, job.record)
    session.flush()
    return job.record


def versions_differ(original: dict[str, Any], rerun: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": key, "original": original.get(key), "rerun": rerun.get(key)}
        for key in ENVIRONMENT_KEYS
        if original.get(key) != rerun.get(key)
    ]


def rerun_job(
    session_factory: sessionmaker[Session],
    settings: Settings,
    job_id: str,
    *,
    owner_id: str,
    audit: AuditContext | None = None,
) -> Job:
    """A new job from `job_id`'s record: its dataset, its spec with the recorded seed pinned, its
    queue, name and tags; submitted as any job is (the same checks and limits)."""
    with session_scope(session_factory) as session:
        original = job_service.get_job(session, job_id, owner_id=owner_id)
        if original.record is None:
            raise NotRerunnable(
                f"job {job_id!r} has not started yet (status: {original.status}), so it has no record to rerun from; "
                "its `record` is written when a worker starts it"
            )
        if original.dataset_id is None:
            raise NotRerunnable(f"the dataset job {job_id!r} trained on has been deleted; upload it again and submit its spec")
        payload = JobCreate.model_validate(
            {**original.record["spec"], "name": original.name, "tags": original.tags, "queue": original.queue}
        )
    return job_service.submit_job(session_factory, settings, payload, owner_id=owner_id, audit=audit, rerun_of=job_id)


def same_as_original(session: Session, job: Job) -> bool | None:
    """A rerun that has finished, of an original that has finished too: whether it ran with the same
    versions and device kind and trained to the same loss in every epoch, bit for bit. None for any
    other job, and until both have finished."""
    if job.rerun_of is None or job.versions_differ is None or job.status not in TERMINAL:
        return None
    original = jobs_repo.get(session, job.rerun_of)
    if original is None or original.status not in TERMINAL:
        return None
    return not job.versions_differ and jobs_repo.losses(session, job.id) == jobs_repo.losses(session, original.id)
