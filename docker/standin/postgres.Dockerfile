# Stand-in for postgres:16 where Docker Hub cannot be reached (make test-docker): Debian's own
# PostgreSQL on the stand-in base, honouring the same POSTGRES_* variables, data folder and pg_isready.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/
USER postgres
CMD ["postgres-entrypoint.sh"]
