"""``ingest status``, ``dead-letters``, ``purge`` and Ctrl-C of ``ingest run``, as a user runs them.

Subprocesses on the real Redis (the batch's ledger written the way the pipeline writes it)
and, for Ctrl-C, a real ``ingest run`` with its workers on an embedded Redis, fetching pages
too slow to finish before it is interrupted.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from config import Settings
from stores.ledger import Ledger
from stores.outbox import Outbox
from tasks.record import DeadLetter
from tests.support.faults import free_port, serve_slow_pages
from tests.support.workers import settings_env
from worker.watch import PHASES

INGEST = [sys.executable, "-m", "worker"]
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _ingest(*arguments: str, env: dict[str, str], **options: Any) -> subprocess.CompletedProcess[str]:
    command = [*INGEST, *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, **options)


def _letter(batch: str, n: int, url: str, stage: str = "fetch", reason: str = "http_error") -> DeadLetter:
    return DeadLetter(
        id=f"r{n}",
        url=url,
        batch=batch,
        stage=stage,
        reason=reason,
        error=f"failure {n} " + "x" * 300,
        attempts=1,
        failed_at=T0 + timedelta(minutes=n),
    )


def _batch_with_letters(settings: Settings, redis_client: redis.Redis, batch: str) -> Ledger:
    """A batch of 4 URLs: one published, three dead (two reasons, two stages, three hosts)."""
    ledger = Ledger(redis_client, settings.key_prefix, settings.batch_ttl)
    outbox = Outbox(redis_client, settings.key_prefix, ledger, 3600)
    ledger.open_batch(batch, total=4)
    ledger.stage_done(batch, "fetch", "ok", 0, seconds=0.05)
    assert ledger.claim_outcome(batch, "ok", "unchanged")
    for letter in (
        _letter(batch, 1, "https://example.org/a"),
        _letter(batch, 2, "https://news.example.org/b", reason="timeout"),
        _letter(batch, 3, "https://other.net/c", stage="clean", reason="no_text"),
    ):
        assert outbox.commit_dead_letter(letter)
    return ledger


@pytest.mark.integration
def test_status_of_a_batch_with_dead_letters_exits_3_and_shows_them(
    settings: Settings, redis_client: redis.Redis
) -> None:
    _batch_with_letters(settings, redis_client, "b-dead")
    env = settings_env(settings)
    shown = _ingest("status", "b-dead", env=env)
    assert shown.returncode == 3, shown.stderr
    assert "3 URLs ended as dead letters: http_error 1, no_text 1, timeout 1" in shown.stderr
    assert "last errors" in shown.stdout and "https://other.net/c" in shown.stdout
    assert "p50 50 ms" in shown.stdout and "queued for fetch" in shown.stdout
    report = json.loads(_ingest("status", "b-dead", "--json", env=env).stdout)
    assert report["outcomes"] == {"published": 0, "duplicate": 0, "unchanged": 1, "seen": 0, "dead": 3}
    assert [error["url"] for error in report["last_errors"]] == [
        "https://other.net/c",
        "https://news.example.org/b",
        "https://example.org/a",
    ]  # newest first, the error cut short
    assert all(len(error["error"]) <= 160 for error in report["last_errors"])
    assert report["queues"] == {"fetch": 0, "cpu": 0}
    listed = _ingest("status", env=env)
    assert listed.returncode == 0 and "b-dead" in listed.stdout and "messages queued" in listed.stderr


@pytest.mark.integration
def test_a_broker_that_does_not_answer_shows_unknown_queue_depths(
    settings: Settings, redis_client: redis.Redis
) -> None:
    Ledger(redis_client, settings.key_prefix, settings.batch_ttl).open_batch("b-q", total=1)
    env = settings_env(settings) | {"INGEST_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    shown = _ingest("status", "b-q", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["queues"] == {"fetch": None, "cpu": None}
    table = _ingest("status", "b-q", env=env)
    assert table.returncode == 0 and "unknown" in table.stdout and "Traceback" not in table.stderr


@pytest.mark.integration
def test_dead_letters_filters(settings: Settings, redis_client: redis.Redis) -> None:
    _batch_with_letters(settings, redis_client, "b-f")
    env = settings_env(settings)

    def urls(*arguments: str) -> list[str]:
        completed = _ingest("dead-letters", *arguments, "--json", env=env)
        assert completed.returncode == 0, completed.stderr
        return [json.loads(line)["url"] for line in completed.stdout.splitlines()]

    assert urls("b-f") == ["https://other.net/c", "https://news.example.org/b", "https://example.org/a"]
    assert urls() == urls("--batch", "b-f")  # no batch: the recent batches in Redis
    assert urls("b-f", "--reason", "timeout") == ["https://news.example.org/b"]
    assert urls("b-f", "--stage", "clean") == ["https://other.net/c"]
    assert urls("b-f", "--host", "example.org") == ["https://news.example.org/b", "https://example.org/a"]
    assert urls("b-f", "--host", "NEWS.example.org", "--stage", "fetch") == ["https://news.example.org/b"]
    assert urls("b-f", "--reason", "bad_url") == []
    limited = _ingest("dead-letters", "b-f", "--limit", "1", env=env)
    assert limited.returncode == 0 and "https://other.net/c" in limited.stdout
    assert "https://example.org/a" not in limited.stdout and "showing 1 of 3" in limited.stderr
    for bad in (["--limit", "0"], ["--reason", "nope"], ["--stage", "nope"], ["b-f", "--batch", "b-g"]):
        completed = _ingest("dead-letters", *bad, env=env)
        assert completed.returncode == 2, (bad, completed.stderr)


@pytest.mark.integration
def test_dead_letters_of_a_batch_redis_does_not_have_come_from_the_jsonl_file(
    settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    lines = [
        _letter("b-gone", 1, "https://example.org/a"),
        _letter("b-other", 2, "https://example.org/b"),
        _letter("b-gone", 3, "https://example.org/c", stage="clean", reason="no_text"),
    ]
    (out / "dead-letters.jsonl").write_text("".join(letter.model_dump_json() + "\n" for letter in lines))
    env = settings_env(settings)
    found = _ingest("dead-letters", "b-gone", "--out", str(out), "--json", env=env)
    assert found.returncode == 0, found.stderr
    assert [json.loads(line)["url"] for line in found.stdout.splitlines()] == [
        "https://example.org/c",
        "https://example.org/a",
    ]
    assert "dead-letters.jsonl" in found.stderr
    in_output_dir = env | {"INGEST_OUTPUT_DIR": str(out)}
    filtered = _ingest("dead-letters", "b-gone", "--reason", "no_text", "--json", env=in_output_dir)
    assert [json.loads(line)["id"] for line in filtered.stdout.splitlines()] == ["r3"]
    unknown = _ingest("dead-letters", "b-never", "--out", str(out), env=env)
    assert unknown.returncode == 1 and "b-never" in unknown.stderr


@pytest.mark.integration
def test_purge_asks_refuses_without_a_terminal_and_deletes_with_yes(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ledger = _batch_with_letters(settings, redis_client, "b-p")
    keys = ledger.batch_keys("b-p")
    outbox_entries = redis_client.xlen(f"{settings.key_prefix}:outbox")
    env = settings_env(settings)
    refused = _ingest("purge", "b-p", env=env, stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert _answer_on_a_terminal(["purge", "b-p"], env, "n").returncode == 1
    assert ledger.batch_keys("b-p") == keys and ledger.is_listed("b-p")
    purged = _ingest("purge", "b-p", "--yes", env=env)
    assert purged.returncode == 0, purged.stderr
    assert all(key in purged.stdout for key in keys) and f"{settings.key_prefix}:batches" in purged.stdout
    assert ledger.batch_keys("b-p") == [] and not ledger.is_listed("b-p")
    assert redis_client.xlen(f"{settings.key_prefix}:outbox") == outbox_entries  # stores' feed untouched
    assert _ingest("status", "b-p", env=env).returncode == 1
    again = _ingest("purge", "b-p", "--yes", env=env)
    assert again.returncode == 1 and "no batch" in again.stderr
    _batch_with_letters(settings, redis_client, "b-p2")
    confirmed = _answer_on_a_terminal(["purge", "b-p2"], env, "y")
    assert confirmed.returncode == 0, confirmed.stderr
    assert ledger.batch_keys("b-p2") == []


def _answer_on_a_terminal(
    arguments: list[str], env: dict[str, str], answer: str
) -> subprocess.CompletedProcess[str]:
    """Run ``ingest`` with a pseudo-terminal as stdin and type ``answer`` at its question."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [*INGEST, *arguments],
            env=env,
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.write(controller, f"{answer}\n".encode())
        stdout, stderr = process.communicate(timeout=120)
    finally:
        os.close(terminal)
        os.close(controller)
    return subprocess.CompletedProcess(arguments, process.returncode, stdout, stderr)


@pytest.mark.integration
@pytest.mark.parametrize("when", ["batch b-", "ingesting"], ids=["enqueued", "fetching"])
def test_ctrl_c_prints_the_summary_and_how_to_resume_stops_the_workers_exits_130(
    tmp_path: Path, when: str
) -> None:
    """Ctrl-C once the batch is enqueued (workers still starting), or once the slow pages are
    being fetched (the fetch worker will not finish them: it is killed after its grace)."""
    out = (tmp_path / "out").resolve()
    env = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    env |= {"INGEST_FETCH_ALLOW_PRIVATE": "true"}
    with serve_slow_pages() as server:
        urls_file = tmp_path / "urls.txt"
        urls_file.write_text("".join(server.url(f"/slow/120/p{n}") + "\n" for n in range(3)))
        process = subprocess.Popen(
            [*INGEST, "run", str(urls_file), "--out", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        lines: list[str] = []
        reader = threading.Thread(target=_read_lines, args=(process, lines), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 180
            while not any(line.startswith(when) for line in lines):
                assert process.poll() is None and time.monotonic() < deadline, "".join(lines)
                time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
        reader.join(timeout=30)
    stderr = "".join(lines)
    assert code == 130, stderr[-3000:]
    batch = next(line for line in lines if line.startswith("batch b-")).split()[1].rstrip(":")
    assert f"batch {batch}" in stderr and "pending" in stderr  # the batch table, so far
    assert f"To resume, run it again: ingest run {urls_file} --out {out}" in stderr
    assert "every URL is fetched again" in stderr and "Traceback" not in stderr
    if when == "ingesting":  # no page finished: the workers' own answers said they were ready
        shown = [line.strip() for line in lines if line.strip() in PHASES.values()]
        assert shown[0] == PHASES["starting workers"] and shown[-1] == PHASES["ingesting"], shown
        assert shown == [text for text in PHASES.values() if text in shown], shown  # in order, once each
    summary = json.loads((out / "summary.json").read_text())
    assert summary["batch"] == batch and summary["interrupted"] is True and summary["exit_code"] == 130
    assert summary["total"] == 3
    assert _processes_with(f"INGEST_OUTPUT_DIR={out}") == []  # the workers and their pools are gone


def _read_lines(process: subprocess.Popen[str], lines: list[str]) -> None:
    assert process.stderr is not None
    for line in process.stderr:
        lines.append(line)


def _processes_with(variable: str) -> list[int]:
    """Live processes whose environment holds ``variable`` (the workers of one run)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if variable.encode() in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found
