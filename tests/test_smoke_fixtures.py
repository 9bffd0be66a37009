from config import Settings


def test_settings_fixture_isolates_keys(settings: Settings, redis_client) -> None:
    redis_client.set(settings.key("probe"), "1")
    assert redis_client.get(settings.key("probe")) == b"1"
    assert settings.key("probe").startswith("test-")
