"""Workers killed, stopped and recycled mid-batch; a task outliving the visibility timeout.

Real ``ingest worker`` processes on the shared Redis; each test checks the promise from the
stores' contents: every URL is exactly one record or one dead letter. The visibility
timeout is 20 s here (default 120 s) so that a dead worker's messages come back quickly.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from config import Settings
from tests.support.faults import (
    assert_each_url_ended_once,
    batch_urls,
    batch_with_a_worker_killed,
    outcomes_so_far,
    serve_slow_pages,
    wait_for,
)
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.workers import running_workers, wait_for_batch
from worker import enqueue

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]


def test_cpu_worker_killed_with_its_pool_mid_batch(fault_settings: Settings, tmp_path: Path) -> None:
    run = batch_with_a_worker_killed(fault_settings, tmp_path / "logs", "cpu")
    ended = assert_each_url_ended_once(
        fault_settings, run.urls, "kill -9 of the CPU worker's main process and pool", run.seconds_after_kill
    )
    assert ended == (len(run.urls) - 2, 2)


def test_cpu_pool_children_killed_mid_batch(fault_settings: Settings, tmp_path: Path) -> None:
    settings = fault_settings
    with (
        serve_pages(load_pages()) as server,
        running_workers(settings, tmp_path / "logs", concurrency={"fetch": 8, "cpu": 2}) as workers,
    ):
        urls = batch_urls(server.base_url, server.url)
        result = enqueue(urls, settings=settings)
        wait_for(lambda: outcomes_so_far(settings, result.batch) >= 5)
        children = subprocess.run(["pgrep", "-P", str(workers[1].pid)], capture_output=True, text=True)
        for pid in children.stdout.split():
            os.kill(int(pid), signal.SIGKILL)  # the main process stays and starts new children
        wait_for_batch(settings, result.batch, timeout=300)
    assert assert_each_url_ended_once(settings, urls, "kill -9 of the CPU pool's children") == (
        len(urls) - 2,
        2,
    )


def test_fetch_worker_killed_holding_postponed_fetches(fault_settings: Settings, tmp_path: Path) -> None:
    # One host at 4 requests/s: most URLs are deferred (re-queued with a countdown) and the
    # fetch worker holds them, reserved and unacknowledged, when it dies.
    settings = fault_settings.model_copy(update={"host_rate": 4.0})
    run = batch_with_a_worker_killed(settings, tmp_path / "logs", "fetch")
    ended = assert_each_url_ended_once(
        settings, run.urls, "kill -9 of the fetch worker holding deferred fetches", run.seconds_after_kill
    )
    assert ended == (len(run.urls) - 2, 2)


def test_both_workers_stopped_warm_mid_batch_and_started_again(
    fault_settings: Settings, tmp_path: Path
) -> None:
    settings = fault_settings
    logs = tmp_path / "logs"
    with serve_pages(load_pages()) as server:
        urls = batch_urls(server.base_url, server.url)
        with running_workers(settings, logs, queues=("deliver",)):
            with running_workers(
                settings, logs / "first", queues=("fetch", "cpu"), concurrency={"fetch": 8, "cpu": 2}
            ) as first:
                result = enqueue(urls, settings=settings)
                wait_for(lambda: outcomes_so_far(settings, result.batch) >= 5)
                for process in first:
                    process.send_signal(signal.SIGTERM)  # warm shutdown: running tasks finish
            with running_workers(
                settings, logs / "second", queues=("fetch", "cpu"), concurrency={"fetch": 8, "cpu": 2}
            ):
                wait_for_batch(settings, result.batch, timeout=300)
    assert assert_each_url_ended_once(settings, urls, "SIGTERM of both workers, then new ones") == (
        len(urls) - 2,
        2,
    )


def test_cpu_pool_processes_recycled_during_the_batch(fault_settings: Settings, tmp_path: Path) -> None:
    settings = fault_settings.model_copy(update={"cpu_max_tasks_per_child": 3})
    with (
        serve_pages(load_pages()) as server,
        running_workers(settings, tmp_path / "logs", concurrency={"fetch": 8, "cpu": 2}),
    ):
        urls = batch_urls(server.base_url, server.url, variants=3)
        result = enqueue(urls, settings=settings)
        wait_for_batch(settings, result.batch, timeout=300)
    assert assert_each_url_ended_once(settings, urls, "CPU pool processes recycled every 3 tasks") == (
        len(urls) - 2,
        2,
    )


def test_a_fetch_longer_than_the_visibility_timeout_is_published_once(
    fault_settings: Settings, tmp_path: Path
) -> None:
    # 45 s to send the page against a 10 s visibility timeout: the broker hands the message
    # out again every 10-20 s (later on a loaded machine) while the first fetch is still
    # reading, and every copy runs to the end. The delivery cap is raised so the copies are
    # not taken for a page that kills its worker (that cap has its own test).
    settings = fault_settings.model_copy(
        update={
            "visibility_timeout": 10,
            "fetch_defer_horizon": 5.0,
            "fetch_deadline": 100.0,
            "max_deliveries": 10,
            "fetch_read_timeout": 20.0,
        }
    )
    with (
        serve_slow_pages() as server,
        running_workers(settings, tmp_path / "logs", concurrency={"fetch": 4, "cpu": 1}),
    ):
        urls = [server.url("/slow/45/long")]
        result = enqueue(urls, settings=settings)
        status = wait_for_batch(settings, result.batch, timeout=300)
        wait_for(lambda: server.hits["/slow/45/long"] >= 2, timeout=120)  # it was handed out again
    assert status["outcomes"]["published"] == 1  # type: ignore[index]
    assert assert_each_url_ended_once(settings, urls, "a fetch longer than the visibility timeout") == (1, 0)
