"""A run that ends on a Redis error gives back the delivery it counted (worker.guard), on real Redis."""

from __future__ import annotations

from functools import partial

import redis

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from worker.guard import pause_after_state_error


def test_a_requeue_after_a_state_error_does_not_count_as_a_lost_worker(settings: Settings) -> None:
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    assert ledger.count_delivery("t-1", 0) == 1
    # The second delivery hits a Redis restart: the live worker requeues it, and takes its count back.
    assert ledger.count_delivery("t-1", 0) == 2
    pause_after_state_error(
        redis.ConnectionError("gone"), pause=0, undo=partial(ledger.uncount_delivery, "t-1", 0)
    )
    assert ledger.count_delivery("t-1", 0) == 2  # the third delivery is the second that counts


def test_an_undo_that_cannot_reach_redis_is_given_up() -> None:
    unreachable = Ledger(redis.Redis(port=1, socket_connect_timeout=0.5), "x", 60)
    pause_after_state_error(
        redis.ConnectionError("gone"), pause=0, undo=partial(unreachable.uncount_delivery, "t", 0)
    )
