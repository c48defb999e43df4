"""Each job's record of what makes it repeatable (written as a worker starts it), and how a rerun
compares with the job it was queued from."""

import copy
import secrets
from typing import Any

from sqlalchemy.orm import Session

from app.models import Job
from app.repositories import datasets as datasets_repo
from app.repositories import jobs as jobs_repo

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
