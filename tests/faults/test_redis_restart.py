"""Redis (broker and state) restarted mid-batch: nothing lost, nothing twice.

The test runs its own redis-server with AOF on another port (the shared one is never
stopped), points every process at it, and stops it for 10 s while the batch is in flight.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from config import Settings
from tests.support.faults import assert_each_url_ended_once, outcomes_so_far, private_redis, wait_for
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.workers import running_workers, wait_for_batch
from worker import enqueue

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

OUTAGE_SECONDS = 10


def test_redis_restarted_for_10s_mid_batch(fault_settings: Settings, tmp_path: Path) -> None:
    with private_redis(tmp_path / "redis") as server:
        configured = fault_settings.model_copy(update={"redis_url": server.url})
        pages = load_pages()
        with (
            serve_pages(pages) as pages_server,
            running_workers(configured, tmp_path / "logs", concurrency={"fetch": 8, "cpu": 2}),
        ):
            urls = [pages_server.url(page.id) + f"?v={n}" for page in pages for n in range(6)]
            urls.append(pages_server.base_url + "/missing")
            result = enqueue(urls, settings=configured)
            wait_for(lambda: outcomes_so_far(configured, result.batch) >= 5)
            server.stop()
            time.sleep(OUTAGE_SECONDS)
            server.start()
            back_at = time.monotonic()
            wait_for_batch(configured, result.batch, timeout=400)
            recovered = time.monotonic() - back_at
    fault = f"Redis (AOF) stopped {OUTAGE_SECONDS} s mid-batch"
    assert assert_each_url_ended_once(configured, urls, fault, recovered) == (len(urls) - 1, 1)
