"""Python client for Epochly: upload data, submit Keras training jobs, follow them live."""

from epochly_client.client import Client, EpochlyError
from epochly_client.models import Dataset, Epoch, Event, Job, JobStatus

__all__ = ["Client", "Dataset", "Epoch", "EpochlyError", "Event", "Job", "JobStatus"]
