"""End to end on real parts: Celery worker processes, Redis, PostgreSQL and a loopback HTTP server.

Every enqueued URL must end exactly once: as a record (in JSONL and PostgreSQL alike) or as
a dead letter with a reason (in Redis and in dead-letters.jsonl alike).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.stores import drop_postgres_table
from tests.support.workers import running_workers, settings_env, wait_for_batch
from worker import enqueue

pytestmark = pytest.mark.integration


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def pipeline_settings(settings: Settings, postgres_dsn: str) -> Settings:
    """Test settings with PostgreSQL on, fast retries, and a private table."""
    table = "articles_" + settings.key_prefix.replace("-", "_")
    return settings.model_copy(
        update={
            "postgres_dsn": postgres_dsn,
            "postgres_table": table,
            "max_retries": 1,
            "retry_backoff_base": 0.1,
            "fetch_connect_timeout": 2.0,
        }
    )


@pytest.fixture
def drop_table(pipeline_settings: Settings):  # type: ignore[no-untyped-def]
    yield
    drop_postgres_table(pipeline_settings)


def test_every_url_ends_once_as_record_or_dead_letter(
    pipeline_settings: Settings, tmp_path: Path, drop_table: None
) -> None:
    settings = pipeline_settings
    pages = load_pages()
    with (
        serve_pages(pages) as server,
        running_workers(settings, tmp_path / "logs", concurrency={"fetch": 8, "cpu": 2}),
    ):
        page_urls = [server.url(page.id) for page in pages]
        copy_url = server.url(pages[0].id) + "?edition=copy"  # same text, another id
        failing = {
            server.base_url + "/missing": "http_error",
            server.base_url + "/report.pdf": "not_html",
            "http://127.0.0.1:1/unreachable": "connect_error",
            "ftp://example.org/file": "bad_url",
            server.base_url + "/empty": "no_text",
        }
        urls = [*page_urls, copy_url, *failing, page_urls[1] + "#fragment"]  # last: a repeat
        result = enqueue(urls, settings=settings)
        assert result.total == len(urls) - 1
        assert result.repeated == 1
        status = wait_for_batch(settings, result.batch, timeout=180)

    outcomes = status["outcomes"]
    assert isinstance(outcomes, dict)
    assert status["accounted"] == status["total"] == result.total
    assert outcomes["published"] == len(pages)
    assert outcomes["duplicate"] == 1
    assert outcomes["dead"] == len(failing)

    articles = _read_jsonl(settings.output_dir / "articles.jsonl")
    ids = [article["id"] for article in articles]
    assert len(ids) == len(set(ids)) == len(pages) + 1
    by_url = {article["url"]: article for article in articles}
    assert set(by_url) == {*page_urls, copy_url}
    original, copy = by_url[page_urls[0]], by_url[copy_url]
    assert copy["content_hash"] == original["content_hash"]
    # Whichever of the two copies reached dedup first is the original of the other.
    assert {original["duplicate_of"], copy["duplicate_of"]} in ({None, original["id"]}, {None, copy["id"]})
    truth = {server.url(page.id): page for page in pages}
    for url, page in truth.items():
        article = by_url[url]
        assert article["language"] == page.language, url
        assert len(str(article["text"])) > 200, url
        assert article["http_status"] == 200
        assert set(article["pipeline"]) >= {"fetch", "language", "clean", "entities", "dedup"}  # type: ignore[arg-type]
    french = [article for article in articles if article["language"] == "fr"]
    assert french and all(article["entities"] for article in french)

    assert settings.postgres_dsn
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute(
            f"SELECT id, content_hash, duplicate_of, record FROM {settings.postgres_table}"  # type: ignore[arg-type]
        ).fetchall()
    assert {row[0] for row in rows} == set(ids)
    for row_id, digest, duplicate_of, record in rows:
        article = next(a for a in articles if a["id"] == row_id)
        assert digest == article["content_hash"]
        assert duplicate_of == article["duplicate_of"]
        assert record["text"] == article["text"]

    letters = _read_jsonl(settings.output_dir / "dead-letters.jsonl")
    assert {letter["url"]: letter["reason"] for letter in letters} == failing
    unreachable = next(letter for letter in letters if letter["reason"] == "connect_error")
    assert unreachable["attempts"] == 2  # one try plus max_retries=1
    stages = {"no_text": "clean", "bad_url": "intake"}  # refused before any fetch
    assert all(letter["stage"] == stages.get(str(letter["reason"]), "fetch") for letter in letters)
    kept = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).dead_letters(result.batch)
    assert {letter.url for letter in kept} == set(failing)


def test_redelivered_publish_writes_once(
    pipeline_settings: Settings, tmp_path: Path, drop_table: None
) -> None:
    """Publishing the same job twice (a redelivery) leaves one row and one JSONL line."""
    settings = pipeline_settings
    pages = load_pages()[:1]
    with serve_pages(pages) as server, running_workers(settings, tmp_path / "logs"):
        result = enqueue([server.url(pages[0].id)], settings=settings)
        wait_for_batch(settings, result.batch, timeout=120)
        article = _read_jsonl(settings.output_dir / "articles.jsonl")[0]
        # Send the finished job to the publish task again, as a broker redelivery would.
        job = {"batch": result.batch, "record": article, "body_key": None}
        script = (
            "import sys, json; from worker.app import app; "
            "app.send_task('ingest.publish', args=[json.loads(sys.argv[1])], queue=sys.argv[2])"
        )
        env = settings_env(settings)
        subprocess.run(
            [sys.executable, "-c", script, json.dumps(job), settings.cpu_queue], env=env, check=True
        )
        ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
        _wait_until(lambda: _publish_runs(tmp_path / "logs") >= 2)
        status = ledger.status(result.batch)
        assert status is not None and status.stages["publish"] == 1  # counted once per URL
    assert len(_read_jsonl(settings.output_dir / "articles.jsonl")) == 1
    assert settings.postgres_dsn
    with psycopg.connect(settings.postgres_dsn) as conn:
        count = conn.execute(f"SELECT count(*) FROM {settings.postgres_table}").fetchone()  # type: ignore[arg-type]
    assert count == (1,)


def _publish_runs(log_dir: Path) -> int:
    """How many times a publish task finished, from the workers' JSON logs."""
    runs = 0
    for path in log_dir.glob("*.log"):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                event = json.loads(line)
                runs += event.get("event") == "stage.done" and event.get("stage") == "publish"
    return runs


def _wait_until(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.2)
