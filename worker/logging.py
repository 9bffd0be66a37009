"""Structured logging: one structlog processor chain for the CLI, workers and tests.

Lines are JSON when stderr is not a terminal (production, CI), pretty on a terminal, and
every line a stage writes carries ``url``, ``batch``, ``stage`` and ``task_id`` from
structlog's context variables.
"""

from __future__ import annotations

import logging
import sys

import structlog

from config import Settings


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library's logging through one processor chain."""
    as_json = settings.log_json if settings.log_json is not None else not sys.stderr.isatty()
    level = logging.getLevelName(settings.log_level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
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
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless asked for.
    for noisy in ("httpx", "httpcore", "trafilatura", "htmldate", "urllib3", "kombu", "celery"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _identity(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    return event_dict


def get_logger(name: str = "ingest") -> structlog.stdlib.BoundLogger:
    """A logger whose lines carry the bound context variables."""
    return structlog.stdlib.get_logger(name)
