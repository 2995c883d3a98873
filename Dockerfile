# integrateio-exporter: Prometheus exporter for Integrate.io (Xplenty) ETL jobs.
#
#   docker build -t integrateio-exporter .
#   docker run --rm -p 9863:9863 integrateio-exporter --demo          # simulated API, no key needed
#   docker run --rm -p 9863:9863 -e INTEGRATEIO_API_KEY \
#     -v "$PWD/config.yaml:/etc/integrateio-exporter/config.yaml:ro" integrateio-exporter
#
# The API key comes from the environment (INTEGRATEIO_API_KEY) or from a mounted file named by api.api_key_file.
# tests/test_dockerfile.py lints this file with hadolint and replays the builder's install steps in a fresh venv.

# Builder: a virtual environment at /opt/venv holding the exporter and its dependencies, built from the
# repository's pyproject.toml. Only the venv goes on to the final image: no pip cache, no build tools.
FROM python:3.11-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools \
    && /opt/venv/bin/integrateio-exporter --version

# Final image: the same Python, the venv, nothing else; runs as an unprivileged numeric user.
FROM python:3.11-slim-bookworm

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="integrateio-exporter" \
      org.opencontainers.image.description="Prometheus exporter for Integrate.io (Xplenty) ETL jobs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

COPY --from=builder /opt/venv /opt/venv

USER 65532:65532
EXPOSE 9863

# /healthz answers 200 while the process and its poller are alive. Python, because the slim image has no curl.
# Set INTEGRATEIO_HEALTHCHECK_URL when the exporter listens elsewhere (--web.listen-address). With a web config
# (TLS with a private CA, or basic auth, which covers /healthz too) run with --no-healthcheck or your own check.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('INTEGRATEIO_HEALTHCHECK_URL', 'http://127.0.0.1:9863/healthz'), timeout=4)"]

ENTRYPOINT ["integrateio-exporter"]
CMD ["--config", "/etc/integrateio-exporter/config.yaml"]
