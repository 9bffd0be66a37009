"""``ingest intake``: the bridge from the intake stream to the pipeline.

Any program pushes URLs with ``XADD <prefix>:intake * url <URL> [source <name>] [batch <id>]
[discovered_at <ISO 8601>] [labels <JSON>]`` (:mod:`stores.intake_stream`); the bridge reads
them with the consumer group ``bridge`` and enqueues each as a pipeline job through the
producer (:func:`worker.producer.dispatch`): a URL published inside the re-ingest window ends
as ``seen``, an entry that is not a URL as a ``bad_url`` dead letter, the rest go to fetch,
with the entry's ``source``, ``labels`` and ``discovered_at`` on their records.

**Rolling batches.** Entries without a ``batch`` field join the open batch of their source
(``b-<time>-<source>-<hex>``), shared by every bridge, which stays open for
``intake_batch_window`` seconds after its first entry or until it holds ``intake_batch_max``
URLs; its ``total`` grows as entries join, so ``ingest status`` follows it like any batch. An
entry with its own ``batch`` field joins that batch (one that ``ingest enqueue`` opened too).

**Nothing lost, nothing enqueued twice.** Per read of entries:

1. *claim* (one Lua script per batch): an entry's marker ``<prefix>:intake:done:<entry id>``
   is set if absent, and only then is its URL counted into the batch (``total``, the URL and
   its intake fields kept for the reconciler), all at once. A marker already there says what
   happened before: ``s`` sent and acknowledged, ``r`` a repeat, ``c <batch>`` claimed;
2. *send* the newly counted jobs to the fetch queue;
3. *acknowledge* (one script): ``XACK`` and the marker set to ``s <batch>``.

A bridge killed anywhere leaves its entries pending; another bridge (or its restart) takes
them over with ``XAUTOCLAIM`` once idle ``intake_claim_idle``. An entry killed after step 3
is not pending any more; after step 1 its marker stops any second count; only an entry with
marker ``c`` (killed between 1 and 3) is sent again, into the same batch under the same
record id, unless a stage already took it, and never by two live bridges at once (the
marker is set once, and only the consumer holding the entry reads it). If the first send did
reach the broker (the kill fell in the instant between the broker's answer and step 3),
the batch's ledger absorbs the second: it claims one outcome per record id, so the URL still
ends as one record or one dead letter, and is counted once in the batch.

SIGTERM or Ctrl-C: the read under way is enqueued and acknowledged, then the bridge exits.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import signal
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import structlog

from config import Settings
from stores.intake_stream import GROUP, Claim, IntakeEntry, IntakeStream, parse_entry
from stores.ledger import Ledger
from stores.redis_client import client_for
from tasks.record import Job
from worker import metrics
from worker.guard import STATE_ERRORS
from worker.intake import IntakeUrl, check_url
from worker.producer import dispatch, fields_json, new_job
from worker.stage import outbox_for

log = structlog.stdlib.get_logger("ingest.intake")

#: How long one read waits for new entries: the bridge notices a stop request this often.
_BLOCK_MS = 1000
#: Seconds between two trims of the stream by one bridge.
_TRIM_EVERY = 60.0
#: Longest wait between two tries while Redis or the broker does not answer.
_BACKOFF_MAX = 30.0


def consumer_name() -> str:
    """This process's consumer name in the group: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


def rolling_batch_id(source: str | None, now: float | None = None) -> str:
    """A new rolling batch's id: ``b-<UTC time>-<source, slugged>-<hex>``, sortable like the others."""
    slug = re.sub(r"[^a-z0-9]+", "-", (source or "").lower()).strip("-")[:24].strip("-") or "intake"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now))
    return f"b-{stamp}-{slug}-{secrets.token_hex(3)}"


def intake_url(entry: IntakeEntry) -> IntakeUrl:
    """The entry as the producer enqueues it: checked and canonicalised, with its fields."""
    fields: dict[str, Any] = {
        "source": entry.source,
        "labels": entry.labels,
        "discovered_at": entry.discovered_at,
        "entry_id": entry.entry_id,
    }
    if entry.url is None or not entry.url.strip():
        # Keyed by the entry, so two entries without a URL are two dead letters, not one.
        return IntakeUrl(
            url=entry.url or "",
            identity=f"intake entry {entry.entry_id}",
            problem="the entry has no url field" if entry.url is None else "empty URL",
            **fields,
        )
    return check_url(entry.url, problem=entry.url_problem, **fields)


@dataclass
class Step:
    """What one read of entries became."""

    entries: int = 0
    counted: int = 0
    """Entries counted into a batch now (sent, seen or dead-lettered)."""
    sent: int = 0
    seen: int = 0
    bad: int = 0
    repeated: int = 0
    """Entries whose URL was already in their batch: not counted, not sent."""
    resent: int = 0
    """Entries a dead bridge had counted but not acknowledged, sent again."""
    done_before: int = 0
    """Entries already enqueued by an earlier take (acknowledged only)."""
    batches: dict[str, int] = field(default_factory=dict)
    """Entries per batch they joined."""


@dataclass
class Plan:
    """One read of entries between the bridge's three steps."""

    step: Step
    fresh: defaultdict[str, list[tuple[IntakeUrl, Job]]] = field(default_factory=lambda: defaultdict(list))
    """Per batch: jobs counted into it now, to send."""
    again: defaultdict[str, list[tuple[IntakeUrl, Job]]] = field(default_factory=lambda: defaultdict(list))
    """Per batch: jobs a dead bridge counted into it and did not acknowledge."""
    done: list[tuple[str, str]] = field(default_factory=list)
    """(entry id, batch) of the entries to acknowledge."""


class Bridge:
    """One consumer of the intake stream's group."""

    def __init__(self, settings: Settings, consumer: str | None = None) -> None:
        self.settings = settings
        client = client_for(settings)
        self.ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
        self.outbox = outbox_for(settings, self.ledger)
        self.stream = IntakeStream(client, settings.key_prefix, self.ledger, settings.intake_claim_idle)
        self.consumer = consumer or consumer_name()
        self._own = True  # at start: what an earlier run of this name left unacknowledged
        self._next_claim = 0.0
        self._sent: dict[str, str] = {}  # entry id -> batch: sent by this process, not acknowledged yet
        self._connection: Any = None

    def prepare(self) -> None:
        """The group (and stream) of the bridges, and every store's outbox group, before any entry."""
        self.stream.ensure_group()
        self.outbox.ensure_groups(self.settings.store_names)

    def reset(self) -> None:
        """After an error: read this consumer's own pending entries first, on a new broker connection."""
        self._own = True
        self.close()

    def close(self) -> None:
        """Release the broker connection."""
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.release()
            except Exception as exc:  # a broken connection may fail to close: it is dropped anyway
                log.debug("intake.connection_close_failed", error=str(exc))

    def step(self, block_ms: int = 0) -> Step:
        """Read entries (own pending, then stale ones of dead bridges, then new ones) and enqueue them."""
        entries = self._read(block_ms)
        return self.process(entries) if entries else Step()

    def _read(self, block_ms: int) -> list[tuple[str, dict[Any, Any]]]:
        count = self.settings.intake_read_count
        if self._own:
            own = self.stream.read_own(self.consumer, count)
            if own:
                return own
            self._own = False
        if time.monotonic() >= self._next_claim:  # looked for a few times per claim_idle
            self._next_claim = time.monotonic() + self.stream.claim_idle / 4
            stale = self.stream.claim_stale(self.consumer, count)
            if stale:
                log.warning("intake.claimed", entries=len(stale), idle_s=self.stream.claim_idle)
                return stale
        return self.stream.read_new(self.consumer, count, block_ms)

    def process(self, raw: list[tuple[str, dict[Any, Any]]]) -> Step:
        """Count the entries into their batches, send the new ones, acknowledge them all."""
        plan = self.claim(raw)
        self.send(plan)
        self.ack(plan)
        step = plan.step
        if step.repeated or step.done_before:
            log.info("intake.skipped", repeated=step.repeated, done_before=step.done_before)
        for result, count in (("enqueued", step.sent), ("seen", step.seen), ("bad_url", step.bad),
                              ("repeated", step.repeated), ("resent", step.resent),
                              ("done_before", step.done_before)):  # fmt: skip
            metrics.count_intake(result, count)
        return step

    def claim(self, raw: list[tuple[str, dict[Any, Any]]]) -> Plan:
        """Step 1: each entry's batch, and each entry counted into it unless an earlier take did."""
        plan = Plan(Step(entries=len(raw)))
        parsed = [parse_entry(entry_id, fields) for entry_id, fields in raw]
        for entry in parsed:
            if entry.dropped:
                log.warning("intake.field_dropped", entry=entry.entry_id, problems=list(entry.dropped))
        groups = self._batches([(entry, intake_url(entry)) for entry in parsed])
        for batch, members in groups.items():
            jobs = [new_job(url, batch) for url in members]
            claims = [Claim(url.entry_id or "", job.record.id, job.record.url, fields_json(job))
                      for url, job in zip(members, jobs, strict=True)]  # fmt: skip
            for url, job, state in zip(members, jobs, self.stream.claim(batch, claims), strict=True):
                entry_id = url.entry_id or ""
                if state.state == "new":
                    plan.fresh[batch].append((url, job))
                elif state.state == "claimed" and self._sent.get(entry_id) != state.batch:
                    moved = job if state.batch == batch else new_job(url, state.batch)
                    plan.again[state.batch].append((url, moved))
                else:  # sent, a repeat, or sent by this process before an error stopped its ack
                    plan.done.append((entry_id, state.batch))
                    if state.state in ("repeat", "repeated"):
                        plan.step.repeated += 1
                    else:
                        plan.step.done_before += 1
        return plan

    def send(self, plan: Plan) -> None:
        """Step 2: the newly counted jobs to the pipeline (through the producer); the ones a
        dead bridge counted and did not acknowledge again, unless a stage already has them."""
        step = plan.step
        for batch, counted in plan.fresh.items():
            sent = dispatch(self.settings, self.ledger, self.outbox, batch, counted, self._broker())
            self._mark_sent(batch, counted, plan.done)
            step.counted += len(counted)
            step.sent, step.seen, step.bad = step.sent + sent.sent, step.seen + sent.seen, step.bad + sent.bad
            step.batches[batch] = step.batches.get(batch, 0) + len(counted)
            log.info("intake.enqueued", batch=batch, entries=len(counted), sent=sent.sent, seen=sent.seen,
                     bad=sent.bad, source=counted[0][0].source)  # fmt: skip
        for batch, unsure in plan.again.items():
            step.resent += self._send_again(batch, unsure)
            self._mark_sent(batch, unsure, plan.done)
        plan.fresh.clear()
        plan.again.clear()

    def ack(self, plan: Plan) -> None:
        """Step 3: every entry acknowledged and its marker set to sent, at once."""
        self.stream.ack(plan.done)
        for entry_id, _batch in plan.done:
            self._sent.pop(entry_id, None)

    def _batches(self, items: list[tuple[IntakeEntry, IntakeUrl]]) -> dict[str, list[IntakeUrl]]:
        """The entries by the batch they join: their own ``batch``, else their source's rolling one."""
        groups: dict[str, list[IntakeUrl]] = defaultdict(list)
        rolling: dict[str | None, list[IntakeUrl]] = defaultdict(list)
        for entry, url in items:
            if entry.batch:
                groups[entry.batch].append(url)
            else:
                rolling[entry.source].append(url)
        settings = self.settings
        for source, rest in rolling.items():
            while rest:
                batch, take = self.stream.rolling_batch(
                    source, rolling_batch_id(source), settings.intake_batch_window,
                    settings.intake_batch_max, len(rest),
                )  # fmt: skip
                groups[batch] += rest[: max(take, 1)]
                rest = rest[max(take, 1) :]
        return groups

    def _send_again(self, batch: str, jobs: list[tuple[IntakeUrl, Job]]) -> int:
        """Entries a bridge counted into ``batch`` and died before acknowledging: sent again,
        except those a stage already took (their first send reached a worker)."""
        started = self.ledger.started(batch, [job.record.id for _, job in jobs])
        todo = [(url, job) for url, job in jobs if job.record.id not in started]
        if todo:
            dispatch(self.settings, self.ledger, self.outbox, batch, todo, self._broker())
            self.ledger.resent(batch, len(todo))
            started_already = len(jobs) - len(todo)
            log.warning("intake.resent", batch=batch, entries=len(todo), already_started=started_already)
        return len(todo)

    def _mark_sent(self, batch: str, jobs: list[tuple[IntakeUrl, Job]], done: list[tuple[str, str]]) -> None:
        for url, _job in jobs:
            entry_id = url.entry_id or ""
            self._sent[entry_id] = batch
            done.append((entry_id, batch))

    def _broker(self) -> Any:
        """The broker connection the jobs are sent on, kept across reads."""
        if self._connection is None:
            from worker.app import app

            self._connection = app.connection_for_write(self.settings.effective_broker_url)
        return self._connection


def run_bridge(settings: Settings, stop: threading.Event | None = None, consumer: str | None = None) -> None:
    """``ingest intake``: enqueue the intake stream's entries until SIGTERM/SIGINT (or ``stop``)."""
    stop = stop or threading.Event()
    bridge = Bridge(settings, consumer)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("intake.stopping", signal=signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    failures = 0
    prepared = False
    last_trim = time.monotonic()
    while not stop.is_set():
        try:
            if not prepared:
                bridge.prepare()
                prepared = True
                log.info("intake.ready", stream=bridge.stream.key, group=GROUP, consumer=bridge.consumer)
            bridge.step(_BLOCK_MS)
            failures = 0
            if time.monotonic() - last_trim >= _TRIM_EVERY:
                last_trim = time.monotonic()
                if trimmed := bridge.stream.trim():
                    log.info("intake.trimmed", entries=trimmed)
        except STATE_ERRORS as exc:
            bridge.reset()  # what it had read stays pending: read again first
            failures += 1
            wait = round(min(0.5 * 2 ** (failures - 1), _BACKOFF_MAX) * random.uniform(0.75, 1.25), 3)
            log.warning("intake.unavailable", error=f"{type(exc).__name__}: {exc}", wait=wait)
            stop.wait(wait)
    bridge.close()
    log.info("intake.stopped", consumer=bridge.consumer)


__all__ = ["Bridge", "Plan", "Step", "consumer_name", "intake_url", "rolling_batch_id", "run_bridge"]
