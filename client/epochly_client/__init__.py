"""Python client for Epochly: upload data, submit Keras training jobs and sweeps, follow them live."""

from epochly_client.client import Client, EpochlyError
from epochly_client.models import Dataset, Epoch, Event, Importance, Job, JobStatus, Sweep, Trial

__all__ = ["Client", "Dataset", "Epoch", "EpochlyError", "Event", "Importance", "Job", "JobStatus", "Sweep", "Trial"]
