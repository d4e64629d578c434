# The hookbus image. It runs any `hookbus` subcommand:
#
#   docker build -t hookbus .
#   docker run --rm -v ./deploy/hookbus.yaml:/etc/hookbus/hookbus.yaml:ro --env-file deploy/hookbus.env \
#     -p 8080:8080 hookbus gateway --config /etc/hookbus/hookbus.yaml
#
# docker-compose.yml runs the whole pipeline with it. No `# syntax=` line: the frontend built
# into Docker's BuildKit is enough, and a build needs no registry but the one of its base image.
#
# PYTHON_IMAGE is the base: the official image by default; any Python 3.11 with pip in
# /usr/local works (scripts/containers builds one from Debian's packages). A pip that must
# trust another CA to reach PyPI gets its bundle as a build secret, which no layer keeps:
#
#   docker build --secret id=pip_cert,src=/etc/ssl/certs/ca-certificates.crt -t hookbus .

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: hookbus's wheel, and a wheel of everything it needs --------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hookbus ./hookbus
COPY providers ./providers
COPY ingest ./ingest
COPY normalizer ./normalizer
COPY sinks ./sinks
COPY schemas ./schemas
COPY tools ./tools
# Pinned versions (scripts/lock writes the file), so two builds of one commit install the same.
COPY constraints.txt ./
# The "fast" extra is uvloop, which the gateway uses when it is installed.
RUN --mount=type=secret,id=pip_cert \
    if [ -f /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi \
    && pip wheel --wheel-dir /wheels --constraint constraints.txt ".[fast]"

# --- runtime: the wheels installed offline on a slim Python, run as a non-root user -------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels "hookbus[fast]"
# The gateway's spool and the console's index, owned by the user: a new named volume mounted on
# either (docker-compose.yml) starts as a copy of the directory, owner included.
RUN groupadd --system --gid 10001 hookbus \
    && useradd --system --uid 10001 --gid hookbus --home-dir /var/lib/hookbus --shell /usr/sbin/nologin hookbus \
    && install -d -o hookbus -g hookbus -m 0750 /var/lib/hookbus /var/lib/hookbus/spool /var/lib/hookbus/console \
    && install -d -m 0755 /etc/hookbus
COPY --chmod=0755 deploy/healthcheck.py /usr/local/bin/hookbus-healthcheck
WORKDIR /var/lib/hookbus
# Numeric, so orchestrators that require a non-root user (runAsNonRoot) can verify it.
USER 10001:10001
EXPOSE 8080
# Healthy while the service can do its work: GET /readyz of the gateway (and `hookbus dev`), or
# of a stage's ops server. Any other subcommand is healthy while it runs; see deploy/healthcheck.py.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["hookbus-healthcheck"]
ENTRYPOINT ["hookbus"]
CMD ["--help"]
