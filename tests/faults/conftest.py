"""Fixtures of the fault suite."""

from __future__ import annotations

import pytest

from config import Settings


@pytest.fixture
def fault_settings(settings: Settings) -> Settings:
    """Fast retries, a short visibility timeout (20 s: a dead worker's messages come back
    quickly) and a short reconciler deadline; JSONL only."""
    return settings.model_copy(
        update={
            "stores": "jsonl",
            "max_retries": 1,
            "retry_backoff_base": 0.1,
            "fetch_connect_timeout": 2.0,
            "visibility_timeout": 20,
            "fetch_defer_horizon": 5.0,
            "delivery_claim_idle": 10.0,
            "stuck_after": 60.0,
        }
    )
