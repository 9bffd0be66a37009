"""deploy/healthcheck.py, the image's health checks, against the test Redis and a real worker.

The container test runs them inside the containers (``podman healthcheck run``); here each
role's check must say healthy when its process works and unhealthy, with a reason, when not.
"""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from config import Settings, get_settings
from stores.outbox import group_name
from tests.support.workers import running_workers, settings_env

ROOT = Path(__file__).resolve().parent.parent


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy" / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def healthcheck(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The module, its settings (get_settings) those of the test."""
    for key, value in settings_env(settings).items():
        if key.startswith("INGEST_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield _module()
    get_settings.cache_clear()


def test_unknown_role_is_a_usage_error(healthcheck: ModuleType) -> None:
    assert healthcheck.main(["healthcheck.py", "nobody"]) == 2


def test_flower_check_needs_an_answer(healthcheck: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    assert healthcheck.main(["healthcheck.py", "flower", str(port)]) == 1
    assert "unhealthy" in capsys.readouterr().err


def test_deliver_check_wants_a_recent_consumer_of_this_host(
    healthcheck: ModuleType, settings: Settings, redis_url: str
) -> None:
    assert healthcheck.check_deliver() is not None  # no outbox yet
    client = redis.Redis.from_url(redis_url)
    key = f"{settings.key_prefix}:outbox"
    for store in settings.store_names:
        client.xgroup_create(key, group_name(store), id="0", mkstream=True)
    assert "no consumer of this host" in str(healthcheck.check_deliver())
    client.xadd(key, {"kind": "record"})
    for store in settings.store_names:  # what a delivery consumer's read does
        client.xreadgroup(group_name(store), f"{socket.gethostname()}-1-0", {key: ">"}, count=1)
    assert healthcheck.check_deliver() is None
    for store in settings.store_names:
        client.xgroup_createconsumer(key, group_name(store), "elsewhere-1-0")
        client.xgroup_delconsumer(key, group_name(store), f"{socket.gethostname()}-1-0")
    assert "no consumer of this host" in str(healthcheck.check_deliver())


@pytest.mark.integration
def test_worker_check_answers_once_a_worker_of_this_host_runs(
    healthcheck: ModuleType, settings: Settings, tmp_path: Path
) -> None:
    from worker.app import create_app

    app = create_app(settings)  # the check's app on these settings (worker.app's reads the environment)
    # (Not asserted unhealthy first: the ping reaches every worker on the shared test Redis.)
    with running_workers(settings, tmp_path / "logs", queues=("fetch",)):
        for _ in range(40):  # each check waits 3 s for replies
            if healthcheck.check_worker(app) is None:
                break
        assert healthcheck.check_worker(app) is None
