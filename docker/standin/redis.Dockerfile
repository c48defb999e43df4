# Stand-in for redis:7 where Docker Hub cannot be reached (make test-docker): Debian's redis-server
# on the stand-in base, with the official image's working folder /data (where --appendonly writes).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o redis -g redis /data
USER redis
WORKDIR /data
CMD ["redis-server"]
