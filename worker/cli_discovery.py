"""The ``ingest`` commands of discovery: ``discover`` (look) and ``watch`` (poll and send).

Registered on :data:`worker.cli.cli`; the work is in :mod:`worker.watcher`,
:mod:`worker.discovery_fetch` and :mod:`tasks.discovery`.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from config import get_settings
from worker.cli import _check_redis, cli, err
from worker.report import EXIT_DEAD_LETTERS
from worker.sources import Source, SourcesFileError, load_sources


def _sources_or_exit(path: Path) -> list[Source]:
    try:
        return load_sources(path).sources
    except SourcesFileError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None


def _target(target: str, sources: Path | None) -> Source:
    """The source called ``target`` in the file, or a one-URL source for a URL."""
    if target.lower().startswith(("http://", "https://")):
        try:
            return Source(name="cli", feeds=[target])
        except ValueError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None
    if sources is None:
        err.print(f"[red]error:[/red] {target!r} is not a URL: name a source with --sources FILE")
        raise typer.Exit(2)
    listed = _sources_or_exit(sources)
    found = next((source for source in listed if source.name == target), None)
    if found is None:
        names = ", ".join(source.name for source in listed)
        err.print(f"[red]error:[/red] {sources} has no source {target!r} (it has: {names})")
        raise typer.Exit(2)
    return found


@cli.command()
def discover(
    target: Annotated[
        str, typer.Argument(metavar="SOURCE_OR_URL", help="A source of --sources, or a feed/sitemap URL.")
    ],
    sources: Annotated[
        Path | None, typer.Option("--sources", help="The sources file (TOML) naming SOURCE.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    show_all: Annotated[bool, typer.Option("--all", help="List the URLs already sent too (marked).")] = False,
) -> None:
    """Print what `ingest watch` would send to the intake stream for a source or a URL: the new
    URLs (title and date where the feed gives them). Sends nothing, marks nothing as seen.

    Exits 0, 3 when some feed or sitemap could not be read (named on stderr), 2 for a bad
    sources file or an unknown source, 1 when Redis does not answer."""
    from stores.discovered import DiscoveredUrls
    from stores.redis_client import client_for
    from worker.discovery_fetch import build_discovery_fetcher, collect, source_host_rates
    from worker.watcher import _canonical

    settings = get_settings()
    source = _target(target, sources)
    _check_redis(settings)
    fetcher = build_discovery_fetcher(
        settings, source_host_rates(settings, [(source.host_rate, source.urls)])
    )
    try:
        found = collect(fetcher, source.urls, conditional=False)
    finally:
        fetcher.client.close()
    pairs = _canonical(found.entries)
    known = DiscoveredUrls(client_for(settings), settings.key_prefix, settings.discovery_seen_ttl).known(
        [canonical for canonical, _ in pairs]
    )
    new = 0
    for (_canonical_url, entry), sent in zip(pairs, known, strict=True):
        new += not sent
        if sent and not show_all:
            continue
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "url": entry.url,
                        "title": entry.title,
                        "published_at": entry.published_at.isoformat() if entry.published_at else None,
                        "updated_at": entry.updated_at.isoformat() if entry.updated_at else None,
                        "new": not sent,
                        "source": source.name,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            date = entry.date.isoformat() if entry.date else "-"
            mark = "sent\t" if show_all and sent else ("new\t" if show_all else "")
            typer.echo(f"{mark}{entry.url}\t{date}\t{entry.title or ''}")
    err.print(
        f"{new} new URLs of {len(pairs)} listed ({len(pairs) - new} already sent), "
        f"{found.documents} documents read",
        highlight=False,
    )
    for error in found.errors:
        err.print(
            f"[yellow]{escape(error.url)}: {error.reason}: {escape(error.error[:300])}[/yellow]",
            highlight=False,
        )
    if found.errors:
        raise typer.Exit(EXIT_DEAD_LETTERS)


@cli.command()
def watch(
    sources_file: Annotated[Path, typer.Argument(metavar="SOURCES_FILE", help="The sources file (TOML).")],
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Serve Prometheus /metrics on this port (INGEST_METRICS_PORT; 0: off)."
        ),
    ] = None,
) -> None:
    """Poll every source of SOURCES_FILE on its interval and send its new URLs to the intake stream
    (`<prefix>:intake`), with the source's name, labels and discovered_at. Run as many replicas
    as you like: each source is polled once per interval. Stops on SIGTERM or Ctrl-C (exit 0)."""
    settings = get_settings()
    _sources_or_exit(sources_file)
    _check_redis(settings)
    from worker.metrics import prepare_metrics

    prepare_metrics(settings, metrics_port)
    from worker.watcher import Watcher

    stop = threading.Event()
    try:
        watcher = Watcher(settings, sources_file, stop=stop)
    except SourcesFileError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        raise typer.Exit(2) from None

    def _stop(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    watcher.run()
