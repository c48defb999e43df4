# One image for both roles: the default CMD runs the API; docker-compose.yml overrides the
# command to run the Celery worker or the scheduler from the same image, so all run the same code.
#
# BASE_IMAGE: any Debian-like image with Python >= 3.11 and its venv module. `make test-docker`
# passes one made from Debian's own packages where Docker Hub cannot be reached.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS dependencies

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# wheels/ holds `make wheelhouse`'s output, or only its README. With wheels in it pip installs from
# them alone and never reaches an index (an offline build); without, it installs from the index.
# These stages are thrown away, so the wheels never weigh on the final image.
COPY wheels/ /wheels/
# Only the files that name the dependencies: this layer, TensorFlow and all, is built again only
# when they change, not on every change to the code. Setuptools builds the project's wheels below.
COPY pyproject.toml /src/
COPY client/pyproject.toml /src/client/
RUN if ls /wheels/*.whl >/dev/null 2>&1; then set -- --no-index --find-links /wheels; fi \
    && python3 -c 'import sys, tomllib; [print(d) for f in sys.argv[1:] for d in tomllib.load(open(f, "rb"))["project"]["dependencies"]]' \
        /src/pyproject.toml /src/client/pyproject.toml >/tmp/requirements.txt \
    && python3 -m venv /opt/epochly \
    && /opt/epochly/bin/pip install "$@" setuptools -r /tmp/requirements.txt

FROM dependencies AS project
# README.md is named by pyproject's `readme`; the [d] glob keeps the build working without it.
COPY pyproject.toml setup.py README.m[d] /src/
COPY app/ /src/app/
COPY worker/ /src/worker/
COPY migrations/ /src/migrations/
COPY client/ /src/client/
# The server and the client: `epochly keys create --owner NAME` is the client's command line
# reaching the server's database through app.admin, so a key can be made inside the container.
RUN /opt/epochly/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /dist /src /src/client

FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/epochly/bin:$PATH

# A fixed, non-root uid so files on the shared /data volume have the same owner in every container.
RUN groupadd --system --gid 10001 epochly \
    && useradd --system --uid 10001 --gid epochly --create-home --home-dir /home/epochly epochly

# Everything the roles run, migrations included, is installed in this virtualenv: no source tree,
# no PYTHONPATH. The dependencies first, as their own layer, then the two small project wheels.
COPY --from=dependencies /opt/epochly /opt/epochly
COPY --from=project /dist /tmp/dist
RUN pip install --no-deps --no-index --no-cache-dir /tmp/dist/*.whl && rm -rf /tmp/dist

# DATA_DIR holds datasets, trained models and the first API key (and the SQLite/folder-broker
# defaults when no DATABASE_URL/BROKER_URL is set). HOST=0.0.0.0 is right only inside a container:
# the port is published (on loopback, in docker-compose.yml) by Docker; outside a container the
# default stays 127.0.0.1.
ENV DATA_DIR=/data HOST=0.0.0.0 PORT=8000

# Created and chowned before VOLUME: a fresh named volume is initialised from this directory,
# ownership included, so the non-root user can write to it.
RUN mkdir -p /data && chown epochly:epochly /data
VOLUME /data

USER epochly
WORKDIR /home/epochly

EXPOSE 8000

# No HEALTHCHECK here: the worker and the scheduler run from this image too and have no HTTP port;
# docker-compose.yml defines one per service. `epochly-api` migrates, prints and saves a first API
# key when the service has none, then runs uvicorn with app.main:create_app.
CMD ["epochly-api"]
