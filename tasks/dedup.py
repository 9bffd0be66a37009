"""Stage 5, dedup: is this article's text one we have already published?

The text is normalised (Unicode NFKC, case and whitespace folded, quote and dash styles
unified, punctuation dropped) and hashed. The check-and-insert in Redis is one Lua script,
so two workers holding two copies at the same moment can never both become "first".
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

import redis

from tasks.record import Job
from worker.app import app
from worker.stage import StageTask, run_stage

STAGE = "dedup"
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)

_CHECK_AND_INSERT = """
-- KEYS[1]: hash key; ARGV: record id, ttl. Returns the id of the first holder.
local first = redis.call('GET', KEYS[1])
if first then
  return first
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""


def normalize_text(text: str) -> str:
    """The text reduced to lower-case words separated by single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", folded).split())


def content_hash(text: str) -> str:
    """sha256 of the normalised text."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


class ExactDedupIndex:
    """Content hashes in Redis, each pointing at the first record that had it."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int) -> None:
        self._prefix = prefix
        self._ttl = ttl
        self._script = client.register_script(_CHECK_AND_INSERT)

    def first_holder(self, digest: str, record_id: str) -> str:
        """Insert ``digest`` for ``record_id`` unless present; the id that holds it."""
        raw = self._script(keys=[f"{self._prefix}:hash:{digest}"], args=[record_id, self._ttl])
        return raw.decode() if isinstance(raw, bytes) else str(raw)


def dedup_stage(job: Job, index: ExactDedupIndex) -> Job:
    """Set ``content_hash`` and, for a copy, ``duplicate_of``."""
    digest = content_hash(job.record.text)
    first = index.first_holder(digest, job.record.id)
    duplicate_of = None if first == job.record.id else first
    record = job.record.model_copy(update={"content_hash": digest, "duplicate_of": duplicate_of})
    return job.model_copy(update={"record": record})


@app.task(bind=True, base=StageTask, name="ingest.dedup")
def dedup(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Celery wrapper of :func:`dedup_stage`."""

    def stage(current: Job) -> Job:
        from stores.redis_client import client_for

        index = ExactDedupIndex(client_for(self.settings), self.settings.key_prefix, self.settings.dedup_ttl)
        return dedup_stage(current, index)

    return run_stage(self, STAGE, job, stage)
