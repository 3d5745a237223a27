# syntax=docker/dockerfile:1
# relaydesk in a container: `docker build -t relaydesk .`, then see docker-compose.yml.
#
# BASE is the official Python image users pull. A machine that cannot reach a container
# registry can build its own Debian bookworm base and pass it (README, "Deploy"):
#   docker build --build-arg BASE=relaydesk-base:bookworm -t relaydesk .
# Both stages install Debian's python3 when the base has none.
ARG BASE=python:3.11-slim-bookworm

# --- build: the panel's front-end packages and a virtualenv with relaydesk ----------------
FROM ${BASE} AS build
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates nodejs npm \
      $(command -v python3 >/dev/null || echo python3 python3-venv) \
 && rm -rf /var/lib/apt/lists/*
# A proxy's CA, if the build needs one (deploy/docker/ca-certificates/README.md).
COPY deploy/docker/ca-certificates/ /usr/local/share/ca-certificates/extra/
RUN update-ca-certificates >/dev/null
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
COPY pyproject.toml README.md ./
COPY scripts/vendor.sh scripts/vendor.sh
COPY src src
RUN sh scripts/vendor.sh \
 && python3 -m venv /opt/relaydesk \
 && /opt/relaydesk/bin/pip install --quiet --upgrade pip \
 && /opt/relaydesk/bin/pip install --quiet /src

# --- runtime: relaydesk, ffmpeg and espeak-ng for voice, as an unprivileged user ----------
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates ffmpeg espeak-ng tini \
      $(command -v python3 >/dev/null || echo python3) \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin relaydesk \
 && mkdir -p /data && chown relaydesk:relaydesk /data
COPY --from=build /opt/relaydesk /opt/relaydesk
COPY deploy/docker/entrypoint.sh /usr/local/bin/relaydesk-entrypoint
ENV PATH=/opt/relaydesk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000
USER relaydesk
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
# /ready: the database and the queues answer, /data takes files and has room.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('PORT', '8000'), timeout=4)"]
ENTRYPOINT ["tini", "--", "relaydesk-entrypoint"]
CMD ["serve"]
