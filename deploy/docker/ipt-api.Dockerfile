# syntax=docker/dockerfile:1
# IPT Care Service API image: FastAPI under uvicorn, plus the `ipt` command line (the Helm chart's
# migrations job runs `ipt migrate` with this image).
#
# Build from the repository root (the context must hold pyproject.toml, uv.lock, packages/ and
# services/); deploy/docker/ipt-api.Dockerfile.dockerignore keeps everything else out:
#   docker build -f deploy/docker/ipt-api.Dockerfile -t ipt-api:0.1.0 .
#
# No HEALTHCHECK: Kubernetes probes /healthz and /readyz (see the Helm chart).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- builder: resolve nothing, install exactly what uv.lock says ------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir --disable-pip-version-check "uv==${UV_VERSION}"

# Compile bytecode now (the runtime filesystem is read-only); copy files rather than hard-link
# from uv's cache; use the image's Python, never a downloaded one; build the venv at its final path.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv

WORKDIR /src

# Third-party dependencies first, from the lock and the members' pyproject.toml files only, so
# this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock ./
COPY packages/ipt-core/pyproject.toml packages/ipt-core/
COPY services/ipt-api/pyproject.toml services/ipt-api/
COPY services/ipt-worker/pyproject.toml services/ipt-worker/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package ipt-api --no-install-workspace

# Then the workspace packages themselves, installed as regular (non-editable) wheels so the
# venv does not point back into /src.
COPY packages/ packages/
COPY services/ services/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --package ipt-api --no-editable

# ---- runtime: the venv on a slim Python, run as a non-root user -------------------------------
FROM ${PYTHON_IMAGE} AS runtime

# tini as PID 1 forwards SIGTERM to the service and reaps children.
# The base image tag pins the Debian release; its stable archive only takes security fixes,
# so tini is not pinned to a build that the archive would later drop.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ipt \
    && useradd --system --uid 10001 --gid ipt --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin ipt

# Root-owned and so read-only to the service's user.
COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IPT_API_HOST=0.0.0.0 \
    IPT_API_PORT=8000

WORKDIR /app
USER 10001:10001
EXPOSE 8000

ENTRYPOINT ["/usr/bin/tini", "--"]
# No access log: request lines carry URLs, and URLs carry patient identifiers. The factory
# also turns it off and sets up the JSON logging itself, so overriding the command is safe.
# `--http`: uvicorn's httptools protocol sending each response in one write (docs/architecture.md,
# "Request dispatch").
CMD ["uvicorn", "ipt_api.app:create_app", "--factory", "--host", "0.0.0.0", "--port", "8000", \
     "--http", "ipt_api.http_protocol:CoalescingHttpToolsProtocol", \
     "--no-access-log", "--no-server-header"]
