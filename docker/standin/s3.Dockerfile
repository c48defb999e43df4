# Stand-in for minio/minio where Docker Hub cannot be reached (make test-docker): moto's S3 server
# from the wheelhouse. It keeps objects in memory only, so they do not outlive its container.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS build
COPY wheels/ /wheels/
RUN python3 -m venv /opt/moto && /opt/moto/bin/pip install --no-index --find-links /wheels 'moto[server]'

FROM ${BASE_IMAGE}
COPY --from=build /opt/moto /opt/moto
EXPOSE 9000
CMD ["/opt/moto/bin/moto_server", "-H", "0.0.0.0", "-p", "9000"]
