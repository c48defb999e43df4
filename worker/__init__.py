"""The Celery worker: one training job at a time per process, TensorFlow loaded once per process."""
