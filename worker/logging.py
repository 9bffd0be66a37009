"""Structured logging: one structlog processor chain for the CLI, workers and tests.

Lines are JSON when stderr is not a terminal (production, CI), pretty on a terminal, and
every line a stage writes carries ``url``, ``batch``, ``stage`` and ``task_id`` from
structlog's context variables. Every line carries the ``pid`` and, in a worker, the Celery
node name (``worker``), so the lines of a pool can be told apart. Python warnings and the
standard library's loggers (Celery, kombu, gevent's hub) go through the same chain: in
JSON mode the stream is JSON only.

No line ever shows a password from a URL (:mod:`tasks.redact`): :func:`redact_credentials`
masks every string of the event dict, nested ones included, before it is rendered, and the
rendered line is masked once more, so a traceback or a third-party message quoting a URL is
covered too. URLs lose their user info at intake already; this is the net under that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any

import structlog

from config import Settings
from tasks.redact import redact_text, redact_url

#: Depth past which nested values are rendered as they are (no log line nests that deep).
_MAX_DEPTH = 8

#: The Celery node name of this process's worker (children inherit it at fork), if any.
_worker_name: str | None = None


def set_worker_name(name: str | None) -> None:
    """Name every later line of this process (and of the children it forks) ``worker=name``."""
    global _worker_name
    _worker_name = name


def add_process(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """``pid`` and ``worker`` on every line."""
    event_dict.setdefault("pid", os.getpid())
    if _worker_name is not None:
        event_dict.setdefault("worker", _worker_name)
    return event_dict


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library's logging through one processor chain."""
    as_json = json_mode(settings)
    level = logging.getLevelName(settings.log_level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        add_process,
        redact_credentials,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if as_json else _identity,
            _redacted(renderer),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)  # warnings.warn() lines become log lines ("py.warnings")
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in ("httpx", "httpcore", "trafilatura", "htmldate", "urllib3", "kombu", "celery"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def json_mode(settings: Settings) -> bool:
    """True when lines are rendered as JSON (``INGEST_LOG_JSON``, else stderr not a terminal)."""
    return settings.log_json if settings.log_json is not None else not sys.stderr.isatty()


def route_celery_say(settings: Settings) -> None:
    """In JSON mode, Celery's own shutdown messages ("worker: Warm shutdown") as JSON lines.

    Celery writes them with ``safe_say`` from its signal handlers, straight to the terminal;
    a signal handler must not take the logging locks, so the replacement writes one JSON line
    with a single ``os.write``, as ``safe_say`` itself does.
    """
    if not json_mode(settings):
        return
    import json
    from datetime import UTC, datetime

    from celery import _original_os_write
    from celery.apps import worker as celery_worker

    def say(message: str, f: Any = None) -> None:
        line = {
            "event": "celery.say",
            "message": str(message).strip(),
            "level": "info",
            "logger": "celery.apps.worker",
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "pid": os.getpid(),
            "worker": _worker_name,
        }
        with contextlib.suppress(OSError):
            _original_os_write(2, (json.dumps(line) + "\n").encode())

    celery_worker.safe_say = say


def redact_credentials(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """Mask URL passwords in every value of the event (``url``-named keys as whole URLs)."""
    return {
        key: _redact(value, url_field="url" in key.lower()) if isinstance(key, str) else value
        for key, value in event_dict.items()
    }


def _redact(value: Any, *, url_field: bool = False, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_url(value) if url_field else redact_text(value)
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            key: _redact(item, url_field=isinstance(key, str) and "url" in key.lower(), depth=depth + 1)
            for key, item in value.items()
        }
    if type(value) in (list, tuple, set, frozenset):  # exact types: a namedtuple keeps its shape
        return type(value)(_redact(item, url_field=url_field, depth=depth + 1) for item in value)
    return value


def _redacted(renderer: structlog.types.Processor) -> structlog.types.Processor:
    """``renderer``, its rendered line masked: tracebacks are formatted after the event dict
    was masked (and on a terminal, by the renderer itself)."""

    def render(logger: Any, name: str, event_dict: structlog.types.EventDict) -> Any:
        line = renderer(logger, name, event_dict)
        return redact_text(line) if isinstance(line, str) else line

    return render


def _identity(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    return event_dict


def get_logger(name: str = "ingest") -> structlog.stdlib.BoundLogger:
    """A logger whose lines carry the bound context variables."""
    return structlog.stdlib.get_logger(name)
