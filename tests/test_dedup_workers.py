"""Dedup across real worker processes: two CPU workers, shuffled arrival, same groups.

The near-duplicate fixtures (66 pages of the labelled corpus: 12 stories with 3-5 copies
each, 14 single stories, all in the same outlet templates) are served over loopback and
ingested by one fetch worker and two CPU worker processes at once, in a shuffled order.
The groups they publish must be exactly those of a sequential run of the same stages.
"""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from config import Settings
from stores.ledger import Ledger
from stores.seen import SeenUrls
from tasks.dedup import DedupIndexes, dedup_stage
from tasks.record import ArticleRecord, Job, record_id
from tests.support.http_server import serve_pages
from tests.support.pages import Page
from tests.support.workers import running_workers, settings_env, wait_for_batch
from worker import enqueue
from worker.offline import process_html

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "dedup"


def _pages() -> list[Page]:
    pages = []
    for line in (FIXTURES / "index.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        pages.append(Page(id=entry["id"], html_path=FIXTURES / entry["html"], truth=entry))
    return pages


def _groups(root_of: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for page_id, root in root_of.items():
        groups.setdefault(root, set()).add(page_id)
    return {frozenset(group) for group in groups.values()}


def _sequential_groups(pages: list[Page], settings: Settings) -> set[frozenset[str]]:
    """The same stages in file order, one at a time, on a separate index."""
    sequential = settings.model_copy(update={"key_prefix": settings.key_prefix + "-sequential"})
    indexes = DedupIndexes.from_settings(redis.Redis.from_url(settings.effective_redis_url), sequential)
    root_of = {}
    for page in pages:
        record = process_html(page.html, f"http://127.0.0.1/pages/{page.id}", settings, None)
        out = dedup_stage(Job(batch="sequential", record=record), indexes, None, None).record
        root_of[page.id] = out.duplicate_of or out.id
    return _groups(root_of)


def test_two_workers_in_shuffled_order_group_like_a_sequential_run(
    settings: Settings, tmp_path: Path
) -> None:
    # No entities (not what is tested here, and the costliest stage on these pages) and no
    # politeness delay: every page is on the one loopback host.
    settings = settings.model_copy(
        update={
            "spacy_models": {},
            "entities_fallback": False,
            "host_rate": 1000.0,
            "max_retries": 1,
            "retry_backoff_base": 0.1,
        }
    )
    pages = _pages()
    sequential = _sequential_groups(pages, settings)

    # The sequential run already finds the labelled clusters (pairwise precision 1, recall >= 0.95).
    cluster = {page.id: page.truth["cluster"] for page in pages}
    same = {pair for group in sequential for pair in itertools.combinations(sorted(group), 2)}
    true = {(a, b) for a, b in itertools.combinations(sorted(cluster), 2) if cluster[a] == cluster[b]}
    assert same <= true
    assert len(same & true) >= 0.95 * len(true)

    logs = tmp_path / "logs"
    with (
        serve_pages(pages) as server,
        running_workers(
            settings, logs, queues=("fetch", "cpu", "cpu", "deliver"), concurrency={"fetch": 8, "cpu": 1}
        ),
    ):
        urls = [server.url(page.id) for page in pages]
        random.Random(20261129).shuffle(urls)
        result = enqueue(urls, settings=settings)
        status = wait_for_batch(settings, result.batch, timeout=150)

        # The same URLs again: all already seen, none fetched a second time.
        hits = dict(server.hits)
        again = enqueue(urls, settings=settings)
        assert again.seen == len(urls)
        assert wait_for_batch(settings, again.batch, timeout=10)["outcomes"]["seen"] == len(urls)  # type: ignore[index]
        assert server.hits == hits

    articles = [
        json.loads(line) for line in (settings.output_dir / "articles.jsonl").read_text().splitlines()
    ]
    page_of = {server.url(page.id): page.id for page in pages}
    assert sorted(page_of[a["url"]] for a in articles) == sorted(page.id for page in pages)
    concurrent = _groups({page_of[a["url"]]: a["duplicate_of"] or a["id"] for a in articles})
    assert concurrent == sequential

    # Exactly one first member per group; every copy points at it, with a similarity.
    firsts = {a["id"] for a in articles if a["duplicate_of"] is None}
    assert len(firsts) == len(concurrent)
    assert all(a["duplicate_of"] in firsts and a["similarity"] > 0 for a in articles if a["duplicate_of"])
    outcomes = status["outcomes"]
    assert outcomes == {  # type: ignore[comparison-overlap]
        "published": len(firsts),
        "duplicate": len(pages) - len(firsts),
        "unchanged": 0,
        "seen": 0,
        "dead": 0,
    }

    # Both CPU workers really deduplicated at the same time (each ran dedup tasks).
    for log in sorted(logs.glob("worker-*-cpu.log")):
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        assert any(line.get("stage") == "dedup" and line.get("event") == "stage.done" for line in lines), log


def test_dropped_duplicates_are_counted_and_marked_seen_but_not_written(
    settings: Settings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"dedup_drop_duplicates": True})
    original = ArticleRecord(id=record_id("https://a.example/story"), url="https://a.example/story", text="x")
    copy = ArticleRecord(
        id=record_id("https://b.example/story"),
        url="https://b.example/story",
        text="x",
        duplicate_of=original.id,
        similarity=0.9,
    )
    client = redis.Redis.from_url(settings.effective_redis_url)
    Ledger(client, settings.key_prefix, settings.batch_ttl).open_batch("b-drop", 2)
    script = (
        "import sys, json; from worker.app import app; "
        "[app.send_task('ingest.publish', args=[json.loads(job)], queue=sys.argv[1]) for job in sys.argv[2:]]"
    )
    jobs = [Job(batch="b-drop", record=record).model_dump_json() for record in (original, copy)]
    with running_workers(settings, tmp_path / "logs", queues=("cpu", "deliver"), concurrency={"cpu": 1}):
        subprocess.run(
            [sys.executable, "-c", script, settings.cpu_queue, *jobs], env=settings_env(settings), check=True
        )
        status = wait_for_batch(settings, "b-drop", timeout=60)
    assert status["outcomes"]["published"] == 1 and status["outcomes"]["duplicate"] == 1  # type: ignore[index]
    lines = (settings.output_dir / "articles.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [original.id]
    seen = SeenUrls(client, settings.key_prefix, settings.seen_ttl)
    assert all(mark is not None for mark in seen.lookup([copy.url, original.url]))
