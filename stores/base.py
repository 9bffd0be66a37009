"""The one interface every store adapter implements (like a Kafka Connect sink connector).

A store receives :class:`Delivery` s, entries of the outbox (:mod:`stores.outbox`), in
batches from its own delivery consumer (:mod:`worker.delivery`), and says per entry how
the write went (:class:`WriteResult`). Writes must be idempotent by record id: an entry
can be handed over again after a crash between the write and its acknowledgement, and the
store must then change nothing.

Transient trouble with the whole batch (the database is down) is :class:`StoreUnavailable`:
nothing is acknowledged and the batch is tried again with backoff. An entry the store will
never take (a webhook's 400) goes in ``rejected`` and becomes a dead letter naming the store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

from tasks.errors import TransientError

#: What an outbox entry holds: a finished article record, or a URL's dead letter.
EntryKind = Literal["record", "dead_letter"]


@dataclass(frozen=True)
class Delivery:
    """One outbox entry handed to a store."""

    entry_id: str
    """The outbox stream id (``<ms>-<seq>``): unique per entry, ordered by time."""
    kind: EntryKind
    record_id: str
    batch: str
    payload: str
    """The record (or dead letter) as JSON text, exactly as committed to the outbox."""

    @cached_property
    def document(self) -> dict[str, Any]:
        """The payload parsed."""
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed

    @property
    def committed_ms(self) -> int:
        """When the entry was committed to the outbox (ms since the epoch, from its id)."""
        return int(self.entry_id.split("-", 1)[0])


@dataclass
class WriteResult:
    """How a batch write went, per entry id. Entries in neither list are tried again."""

    written: list[str] = field(default_factory=list)
    """Stored now, or found already stored (an idempotent no-op)."""
    rejected: dict[str, str] = field(default_factory=dict)
    """Refused for good, with why: each becomes a dead letter naming the store."""
    retry_after: float | None = None
    """For the entries left over: the store's own hint (a ``Retry-After``), in seconds."""

    @classmethod
    def all_written(cls, deliveries: Sequence[Delivery]) -> WriteResult:
        """Every entry of the batch written."""
        return cls(written=[delivery.entry_id for delivery in deliveries])


class StoreUnavailable(TransientError):  # noqa: N818 - reads as a state, like TimeoutError
    """The store cannot take anything right now (down, unreachable, overloaded)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, reason="store_error", retry_after=retry_after)


class Store(Protocol):
    """A downstream store of records: one small adapter module per kind."""

    name: str
    """As ``INGEST_STORES`` spells it; also names its consumer group and its dead letters."""
    takes_dead_letters: bool
    """True if dead-letter entries are written too (JSONL); others only get records."""

    def write(self, deliveries: Sequence[Delivery]) -> WriteResult:
        """Write the batch idempotently by record id; raise StoreUnavailable if none can be."""
        ...

    def close(self) -> None:
        """Release connections (the consumer is stopping)."""
        ...
