"""Real worker processes against the hostile server: every URL ends right, the workers live on.

One batch mixes good pages with every misbehaviour; each URL must end as a published record
or as exactly one dead letter with the right reason, and the fetch worker must still be
serving at the end (the last good page, enqueued after the bad ones, is published).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from tests.support.hostile_server import serve_hostile
from tests.support.workers import running_workers, wait_for_batch
from worker.producer import enqueue

pytestmark = pytest.mark.integration

EXPECTED_DEAD = {
    "/hang": "timeout",
    "/dribble": "timeout",
    "/big": "too_large",
    "/big-chunked": "too_large",
    "/gzip-bomb": "too_large",
    "/loop": "too_many_redirects",
    "/to/http://169.254.169.254/latest/meta-data/": "blocked_address",
    "/to/http://10.0.0.1/": "blocked_address",
    "/fake.pdf": "not_html",
    "/private/secret": "robots_disallowed",
    "/nothing-here": "http_error",
}
EXPECTED_PUBLISHED = ["/page/first", "/429", "/503", "/cp1252", "/xhtml", "/page/last"]


def test_hostile_batch_ends_right_and_workers_keep_serving(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(
        update={
            # Loopback is exempted as an operator-owned network; 10/8 and 169.254/16 stay refused.
            "fetch_allow_private": False,
            "fetch_allowed_networks": ["127.0.0.0/8"],
            "fetch_connect_timeout": 1.0,
            "fetch_read_timeout": 1.0,
            "fetch_deadline": 2.0,
            "fetch_max_bytes": 2_000_000,
            "max_retries": 2,
            "retry_backoff_base": 0.2,
            "host_rate": 50.0,
        }
    )
    with (
        serve_hostile() as server,
        running_workers(settings, tmp_path / "logs", concurrency={"fetch": 16, "cpu": 1}) as workers,
    ):
        urls = [server.url(path) for path in [EXPECTED_PUBLISHED[0], *EXPECTED_DEAD, *EXPECTED_PUBLISHED[1:]]]
        result = enqueue([*urls, "ftp://127.0.0.1/file"], settings=settings)
        status = wait_for_batch(settings, result.batch, timeout=120)
        alive = [process.poll() is None for process in workers]
    assert all(alive)
    assert status["outcomes"]["published"] == len(EXPECTED_PUBLISHED)  # type: ignore[index]
    letters = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).dead_letters(result.batch)
    reasons = {letter.url.removeprefix(server.base_url): letter.reason for letter in letters}
    assert reasons == {**EXPECTED_DEAD, "ftp://127.0.0.1/file": "bad_url"}
    timeouts = [letter for letter in letters if letter.reason == "timeout"]
    assert all(letter.attempts == settings.max_retries + 1 for letter in timeouts)
    articles = [
        json.loads(line) for line in (settings.output_dir / "articles.jsonl").read_text().splitlines()
    ]
    by_path = {article["url"].removeprefix(server.base_url): article for article in articles}
    assert sorted(by_path) == sorted(EXPECTED_PUBLISHED)
    for word in ("évoquent", "Sergueï", "Qaïda"):
        assert word in by_path["/cp1252"]["text"]
    # 429 (Retry-After: 1) and 503 x2 were retried until they succeeded.
    assert server.hits["/429"] == 2 and server.hits["/503"] == 3
    assert "/private/secret" not in server.hits
