"""The Celery application, configured for production rather than the tutorial.

JSON only; late acks with reject-on-worker-lost so a crashed worker's task is redelivered,
prefetch 1 so a slow page never queues others behind it; soft and hard time limits; task
events on for Flower. The fetch stage has its own queue (I/O-bound, gevent) and every other
stage shares the CPU queue (prefork).
"""

from __future__ import annotations

from celery import Celery
from celery.signals import celeryd_after_setup, setup_logging, worker_process_init
from kombu import Queue

from config import Settings, get_settings
from worker import broker
from worker.logging import configure_logging, route_celery_say, set_worker_name

broker.register()  # before any Connection resolves the redis:// scheme

STAGE_MODULES = [
    "tasks.fetch",
    "tasks.language",
    "tasks.clean",
    "tasks.entities",
    "tasks.dedup",
    "tasks.publish",
    "worker.failures",
]


def create_app(settings: Settings) -> Celery:
    """A Celery app for these settings."""
    celery_app = Celery("news_ingest", include=STAGE_MODULES)
    celery_app.conf.update(
        broker_url=settings.effective_broker_url,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # A task not acked within this many seconds is redelivered; it must exceed
            # the longest retry countdown plus the hard time limit.
            "visibility_timeout": settings.visibility_timeout,
            # Look for such messages every 10 s (kombu's default scans every 10th look: 100 s).
            "unacked_restore_interval": 10,
            "unacked_restore_throttle": 1,
            # The scan's lock is shared by every worker: one killed while holding it must not
            # stop every restore for kombu's default 5 minutes.
            "unacked_mutex_expire": 30,
            # No publisher confirms on RabbitMQ (`confirm_publish`): with them, fetch tasks of the
            # gevent worker hung on their publishes until the hard time limit (fault suite,
            # RabbitMQ broker); a publish lost that way is re-sent by the reconciler.
        },
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        event_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_soft_time_limit=settings.soft_time_limit,
        task_time_limit=settings.time_limit,
        task_default_queue=settings.cpu_queue,
        # Both queues declared, so that Flower's Broker page lists both even when it could not
        # ask the workers which queues they consume (it asks once, at its start).
        task_queues=[Queue(settings.fetch_queue), Queue(settings.cpu_queue)],
        task_routes={"ingest.fetch": {"queue": settings.fetch_queue}},
        worker_send_task_events=True,
        # Flower works from the worker's events; a "sent" event per chain step would add a
        # publish to every task (bench/fetch.py: events cost ~13% of a fetch worker's CPU).
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        worker_max_memory_per_child=1_500_000,  # KiB: recycle a child that leaks past 1.5 GB
        worker_max_tasks_per_child=settings.cpu_max_tasks_per_child,
        enable_utc=True,
    )
    return celery_app


app = create_app(get_settings())


@setup_logging.connect
def _setup_logging(**_kwargs: object) -> None:
    """Keep Celery from installing its own log handlers: ours are structlog's."""
    configure_logging(get_settings())
    route_celery_say(get_settings())


@worker_process_init.connect
def _init_child(**_kwargs: object) -> None:
    configure_logging(get_settings())


@celeryd_after_setup.connect
def _name_worker(sender: object = None, **_kwargs: object) -> None:
    """Every log line of the worker (and of its pool's children) names the node."""
    set_worker_name(str(sender) if sender else None)
