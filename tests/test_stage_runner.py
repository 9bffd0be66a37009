"""The stage runner's guarantees, exercised on real worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from tasks.record import ArticleRecord, Job
from tests.support.workers import running_workers, settings_env, wait_for_batch

pytestmark = pytest.mark.integration


def _send(settings: Settings, task: str, job: Job, task_id: str) -> None:
    script = (
        "import sys, json; from worker.app import app; "
        "app.send_task(sys.argv[1], args=[json.loads(sys.argv[2])], queue=sys.argv[3], task_id=sys.argv[4])"
    )
    payload = json.dumps(job.model_dump(mode="json"))
    command = [sys.executable, "-c", script, task, payload, settings.cpu_queue, task_id]
    subprocess.run(command, env=settings_env(settings), check=True)


def test_message_that_keeps_killing_workers_is_dead_lettered(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A message delivered more than max_deliveries times ends as `worker_lost`, not a loop."""
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    ledger.open_batch("b-lost", total=2)
    poison = Job(batch="b-lost", record=ArticleRecord(id="poison", url="https://example.org/poison"))
    expired = Job(
        batch="b-lost",
        record=ArticleRecord(id="expired", url="https://example.org/expired"),
        body_key=f"{settings.key_prefix}:body:missing",
    )
    poison_task = str(uuid.uuid4())
    # As if three earlier deliveries had each taken their worker down with them.
    redis_client.set(f"{settings.key_prefix}:delivery:{poison_task}:0", settings.max_deliveries)
    with running_workers(settings, tmp_path / "logs", queues=("cpu", "deliver"), concurrency={"cpu": 1}):
        _send(settings, "ingest.language", poison, poison_task)
        _send(settings, "ingest.language", expired, str(uuid.uuid4()))
        status = wait_for_batch(settings, "b-lost", timeout=60)
    outcomes = status["outcomes"]
    assert isinstance(outcomes, dict)
    assert outcomes["dead"] == 2 and sum(outcomes.values()) == 2
    letters = {letter.id: letter for letter in ledger.dead_letters("b-lost")}
    assert letters["poison"].reason == "worker_lost" and letters["poison"].stage == "language"
    assert letters["expired"].reason == "body_expired"
    lines = (settings.output_dir / "dead-letters.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == ["expired", "poison"]
