# One image for every role: producer, fetch worker, CPU worker, Flower.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY worker ./worker
COPY tasks ./tasks
COPY stores ./stores
COPY examples ./examples
RUN pip install ".[dev]"
RUN useradd --create-home ingest && mkdir -p /data && chown ingest /data
USER ingest
CMD ["ingest", "--help"]
