"""Store outages through a proxy the test controls (the shared servers are never stopped).

Slow (a 60 s outage): marked ``faults``, run by its own step of ``.ci/run``
(``pytest -m faults``).
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from tests.support.faults import wait_for
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.stores import drop_postgres_table, jsonl_ids, jsonl_lines, postgres_ids
from tests.support.tcp_proxy import tcp_proxy
from tests.support.workers import running_workers, wait_for_batch
from worker import enqueue

pytestmark = [pytest.mark.integration, pytest.mark.faults]

OUTAGE_SECONDS = 60


def test_postgres_cut_for_60s_mid_batch_delays_its_records_and_loses_none(
    settings: Settings, postgres_dsn: str, tmp_path: Path
) -> None:
    target = urlsplit(postgres_dsn)
    pages = load_pages()
    with tcp_proxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        dsn = postgres_dsn.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}")
        configured = settings.model_copy(
            update={
                "postgres_dsn": dsn,
                "postgres_table": "articles_" + settings.key_prefix.replace("-", "_"),
                "stores": "jsonl,postgres",
                "delivery_backoff_max": 5.0,
                "delivery_batch": 5,
            }
        )
        ledger = Ledger(client_for(configured), configured.key_prefix, configured.batch_ttl)
        try:
            with (
                serve_pages(pages) as server,
                running_workers(configured, tmp_path / "logs", concurrency={"fetch": 8, "cpu": 2}),
            ):
                urls = [server.url(page.id) + f"?v={n}" for page in pages for n in range(6)]
                result = enqueue(urls, settings=configured)
                wait_for(lambda: (ledger.status(result.batch) or _none()).delivered.get("postgres", 0) > 0)
                proxy.cut()
                cut_at = time.monotonic()
                # JSONL goes on while PostgreSQL is down: the whole batch reaches it. The cut
                # lasts until it has (however slow the machine) and at least 60 s.
                wait_for(lambda: _undelivered(ledger, result.batch, "jsonl") == 0, timeout=300)
                during = ledger.status(result.batch)
                assert during is not None and during.undelivered("postgres") > 0
                time.sleep(max(OUTAGE_SECONDS - (time.monotonic() - cut_at), 0))
                proxy.restore()
                restored_at = time.monotonic()
                status = wait_for_batch(configured, result.batch, timeout=240)
                caught_up = time.monotonic() - restored_at
            assert proxy.refused > 0  # the consumer kept trying during the outage
            published = jsonl_ids(configured)
            assert len(published) == status["committed"] - status["outcomes"]["dead"] == len(urls)  # type: ignore[index, operator]
            assert all(count == 1 for count in published.values())
            assert postgres_ids(configured) == published
            assert status["delivery"]["postgres"]["failed"] == 0  # type: ignore[index]
            assert jsonl_lines(configured.output_dir / "dead-letters.jsonl") == []
            waited = during.undelivered("postgres")
            print(
                f"\nFAULT | PostgreSQL cut {OUTAGE_SECONDS} s mid-batch ({waited} of {during.committed}"
                f" records waited; JSONL took all meanwhile) | {len(urls)} | {len(published)} | 0 | 0 | 0 |"
                f" {caught_up:.1f} s |"
            )
        finally:
            drop_postgres_table(configured.model_copy(update={"postgres_dsn": postgres_dsn}))


def _undelivered(ledger: Ledger, batch: str, store: str) -> int:
    status = ledger.status(batch)
    return status.undelivered(store) if status and status.done else 1


def _none():  # type: ignore[no-untyped-def]
    raise AssertionError("batch vanished")
