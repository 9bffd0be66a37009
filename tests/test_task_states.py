"""How a task's end maps to the state Flower shows (worker/task_states.py, tasks/fetch.py)."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest
from celery.exceptions import Retry

from tasks.errors import PermanentError, TransientError
from tasks.fetch import bundle_state
from worker.task_states import DeadLettered, Deferred, UrlEnded, end_task, sent_again


def test_errors_cross_a_process_boundary_with_their_reason() -> None:
    # A prefork child pickles the exception for the parent, which sends Flower the event.
    retried = pickle.loads(pickle.dumps(TransientError("HTTP 503", reason="server_error", retry_after=4)))
    assert (retried.reason, retried.retry_after) == ("server_error", 4)
    assert repr(retried) == "TransientError('server_error', 'HTTP 503')"
    dead = pickle.loads(pickle.dumps(DeadLettered("http_error", "HTTP 404")))
    assert (dead.reason, dead.error, str(dead)) == ("http_error", "HTTP 404", "http_error: HTTP 404")
    assert pickle.loads(pickle.dumps(PermanentError("x", reason="not_html"))).reason == "not_html"


def test_a_dead_letter_fails_the_task_and_another_end_stops_the_chain() -> None:
    task = SimpleNamespace(request=SimpleNamespace(chain=[{"task": "ingest.publish"}]))
    with pytest.raises(DeadLettered) as failed:
        end_task(task, "https://example.org/a", UrlEnded("dead", "no_text", "no article text"))
    assert failed.value.reason == "no_text"
    assert task.request.chain  # a failed task sends nothing anyway
    assert end_task(task, "https://example.org/a", UrlEnded("seen")) == {
        "url": "https://example.org/a",
        "outcome": "seen",
    }
    assert task.request.chain is None  # Celery sends the next step only while it is set


def test_bundle_state_says_how_the_bundle_ended() -> None:
    dead = UrlEnded("dead", "http_error", "HTTP 404")
    again = sent_again("deferred", Deferred("host a.example busy"), 2.0)
    # SUCCESS: what was fetched and what ended without failing.
    assert bundle_state(2, ["u1"], [("u2", UrlEnded("unchanged"))], []) == {
        "fetched": ["u1"],
        "ended": {"u2": "unchanged"},
    }
    # FAILURE as soon as one URL is a dead letter, whatever the others did.
    with pytest.raises(DeadLettered) as alone:
        bundle_state(1, [], [("u1", dead)], [])
    assert (alone.value.reason, alone.value.error) == ("http_error", "HTTP 404")
    with pytest.raises(DeadLettered) as mixed:
        bundle_state(3, ["u1"], [("u2", dead)], [again])
    assert "1 of 3 URLs dead-lettered: u2: HTTP 404" in mixed.value.error
    # RETRY when URLs were only sent again (retried or deferred).
    with pytest.raises(Retry) as retried:
        bundle_state(1, [], [], [again])
    assert retried.value is again and isinstance(retried.value.exc, Deferred)
    with pytest.raises(Retry) as several:
        bundle_state(3, ["u1", "u2"], [], [again])
    assert "1 of 3 URLs sent again" in str(several.value)
