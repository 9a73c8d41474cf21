# fnhost in a container: the host and the Rust sample worker built on
# rust:1-bookworm, run on debian:bookworm-slim with python3 and nodejs for
# the Python and Node SDK workers.
#
#   docker build -t fnhost .
#   docker run --rm -v fnhost-data:/var/lib/fnhost -e FNHOST_ADMIN_KEY=... fnhost
#
# The image serves the Rust sample app from /home/site/wwwroot. For your own
# app, build FROM this image and COPY the app (with its worker's
# dependencies: a Python venv, node_modules) over /home/site/wwwroot. Set
# `"shutdown": {"readinessDelay": "00:00:05"}` in its host.json when it runs
# behind a load balancer (see deploy/kubernetes/deployment.yaml).
#
# No HEALTHCHECK: Kubernetes probes /livez and /readyz itself
# (deploy/kubernetes/deployment.yaml).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# No system protoc is needed: the proto crate compiles the .proto files
# with protox.
RUN cargo build --release --locked -p fnhost -p fnhost-sample-worker

FROM debian:bookworm-slim
# tini is PID 1: it reaps orphaned grandchildren of the workers and passes
# SIGTERM to the host alone, which stops its workers in order.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs python3 tini \
 && rm -rf /var/lib/apt/lists/*
# A numeric non-root user, so Kubernetes' runAsNonRoot can check it. The
# data directory must belong to the host's user and not be writable by
# others, or the host refuses it (exit 2).
RUN groupadd --system --gid 10001 fnhost \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/fnhost \
      --no-create-home --shell /usr/sbin/nologin fnhost \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/fnhost
COPY --from=build /src/target/release/fnhost /src/target/release/fnhost-sample-worker /usr/local/bin/
# The app belongs to root: the host's user reads it and cannot change it.
COPY sample-workers/rust-app /home/site/wwwroot
# The sample's worker.config.json points into the build tree; here the
# worker is on PATH.
RUN printf '%s\n' '{' '  "description": {' '    "language": "rust",' \
      '    "defaultExecutablePath": "fnhost-sample-worker",' '    "argumentStyle": "both"' \
      '  }' '}' > /home/site/wwwroot/worker.config.json
USER 10001:10001
# Async events (SQLite), keys and the lock file. The host makes its data
# directory, data/, itself (0700): a Kubernetes volume's root is group
# writable (fsGroup), which the host would refuse.
VOLUME ["/var/lib/fnhost"]
EXPOSE 7071
STOPSIGNAL SIGTERM
# Extra `fnhost start` flags go after the image name (docker run) or in a
# container's `args` (Kubernetes), e.g. --event-store postgres://...
# HTTP binds every interface (the published port and Kubernetes probes
# reach it); the workers' gRPC port stays on the container's loopback.
ENTRYPOINT ["/usr/bin/tini", "--", "fnhost", "start", "/home/site/wwwroot", "--bind", "0.0.0.0", "--port", "7071", "--data-dir", "/var/lib/fnhost/data"]
