"""Configuration: every setting lives in :mod:`config.settings`."""

from config.settings import DEFAULT_REDIS_URL, Settings, get_settings

__all__ = ["DEFAULT_REDIS_URL", "Settings", "get_settings"]
