# One image for both roles: the default CMD runs the API; docker-compose.yml overrides the
# command to run the Celery worker from the same image, so both always run the same code.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, non-root uid so files on the shared /data volume have the same owner in every container.
RUN groupadd --system --gid 10001 epochly \
    && useradd --system --uid 10001 --gid epochly --create-home --home-dir /home/epochly epochly

WORKDIR /app

# README.md is named by pyproject's `readme`; the [d] glob keeps the build working while the
# file is absent (setuptools only warns), and copies it once it exists.
COPY pyproject.toml README.m[d] alembic.ini ./
COPY app/ app/
COPY worker/ worker/
COPY migrations/ migrations/
RUN pip install .

# The installed wheel carries app/ and worker/ but not alembic.ini or migrations/, and
# app/migrate.py finds those next to the `app` package. Putting /app first on the path makes
# the API import the copied source tree, where both files are, so migrations run at start.
ENV PYTHONPATH=/app

# DATA_DIR holds datasets, trained models (and the SQLite/folder-broker defaults when no
# DATABASE_URL/BROKER_URL is set). HOST=0.0.0.0 is right only inside a container: the port is
# published (on loopback, in docker-compose.yml) by Docker; outside a container the default
# stays 127.0.0.1. HOST/PORT are read by `epochly-serve`; the CMD below passes them explicitly.
ENV DATA_DIR=/data HOST=0.0.0.0 PORT=8000

# Created and chowned before VOLUME: a fresh named volume is initialised from this directory,
# ownership included, so the non-root user can write to it.
RUN mkdir -p /data && chown epochly:epochly /data
VOLUME /data

USER epochly

EXPOSE 8000

# No HEALTHCHECK here: the worker runs from this image too and has no HTTP port;
# docker-compose.yml defines one per service. The API applies Alembic migrations itself at start.
CMD ["uvicorn", "app.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000"]
