"""Intake: bad lines are named before anything runs and still end as one dead letter each;
no password from a URL reaches a log line, a dead letter, a record, a queue or the site.

The pure parts are checked directly; the rest as a user meets them: ``ingest enqueue`` and
``ingest run`` as subprocesses, a real Redis, real workers, a real loopback HTTP server.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from tasks.record import DeadLetter
from tests.support.http_server import serve_in_thread, serve_pages
from tests.support.pages import load_pages
from tests.support.workers import running_workers, settings_env, wait_for_batch
from worker.intake import bad_urls, read_url_lines, report
from worker.pipeline import _shown

INGEST = [sys.executable, "-m", "worker"]
PASSWORD = "secret"


# --- reading a URL file -------------------------------------------------------------------------
def test_a_line_that_is_not_utf8_is_one_bad_line_named_by_number_and_column() -> None:
    lines = [
        b"\xef\xbb\xbfhttps://a.example/one\n",  # a byte-order mark is not part of the URL
        b"# caf\xe9: a comment is skipped whatever its bytes\n",
        b"https://b.example/caf\xe9\r\n",
        b"\n",
        b"\xe9\n",
        b"https://c.example/caf\xc3\xa9\n",  # UTF-8 proper
    ]
    entries = read_url_lines(lines)
    assert [entry.line for entry in entries] == [1, 3, 5, 6]
    assert entries[0].url == "https://a.example/one" and entries[0].problem is None
    assert [(entry.line, entry.problem, entry.url) for entry in bad_urls(entries)] == [
        (3, "not UTF-8 (byte 0xe9 at column 22)", "https://b.example/caf\\xe9"),
        (5, "not UTF-8 (byte 0xe9 at column 1)", "\\xe9"),
    ]
    assert entries[3].problem is None and entries[3].url == "https://c.example/café"


def test_report_names_bad_lines_and_removed_credentials() -> None:
    entries = read_url_lines(
        [b"https://a.example/\n", b"ftp://a.example/f\n", b"https://user:secret@a.example/b\n", b"\xff\n"]
    )
    assert report(entries, "urls.txt") == [
        "urls.txt line 2: scheme 'ftp' is not http or https: ftp://a.example/f",
        "urls.txt line 4: not UTF-8 (byte 0xff at column 1): \\xff",
        "urls.txt: 2 bad lines end as bad_url dead letters, not fetched",
        "urls.txt line 3: user name and password removed from the URL; fetched without them,"
        " never logged or stored",
    ]
    assert entries[2].url == "https://a.example/b"
    assert bad_urls(entries)[1].error == "line 4 of the URL file: not UTF-8 (byte 0xff at column 1)"


# --- the nets under intake: letters, task arguments, log lines ----------------------------------
def test_a_dead_letter_never_keeps_a_password() -> None:
    letter = DeadLetter(
        id=None,
        url="https://user:secret@example.com/a",
        batch="b-1",
        stage="fetch",
        reason="bad_url",
        error="invalid URL 'https://user:secret@example.com/a': bad",
        attempts=1,
        failed_at=datetime.now(UTC),
    )
    assert letter.url == "https://user:***@example.com/a"
    assert letter.error == "invalid URL 'https://user:***@example.com/a': bad"
    assert PASSWORD not in letter.model_dump_json()
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


def test_task_arguments_shown_in_flower_never_show_a_password() -> None:
    shown = _shown(["https://user:secret@example.com/a", "https://example.com/b"], "b-1")
    assert (
        shown["argsrepr"] == "Jobs(['https://user:***@example.com/a', 'https://example.com/b'], batch='b-1')"
    )


_LOGGING_SCRIPT = """
import logging, sys
import structlog
from config import Settings
from worker.logging import configure_logging, get_logger

configure_logging(Settings(log_json=sys.argv[1] == "json", _env_file=None))
log = get_logger("test")
with structlog.contextvars.bound_contextvars(url="https://user:secret@h.example/a"):
    log.warning(
        "stage.retry",
        error="connection failed: 'http://user:secret@h.example/a'",
        nested={"final_url": "user:secret@h.example/x", "hops": ["https://u:secret@h.example/"]},
        pair=("https://u:secret@h.example/", 1),
    )
    logging.getLogger("httpx").warning("GET %s", "https://u:secret@h.example/")
    try:
        raise ValueError("bad https://u:secret@h.example/")
    except ValueError:
        log.exception("stage.crashed")
"""


@pytest.mark.parametrize("mode", ["json", "console"])
def test_no_log_line_shows_a_password(mode: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _LOGGING_SCRIPT, mode],
        env=settings_env(Settings(_env_file=None)),  # type: ignore[call-arg]
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = completed.stderr
    assert "stage.retry" in lines and "GET https://u:***@h.example/" in lines
    assert "Traceback" in lines and "bad https://u:***@h.example/" in lines  # the traceback too
    assert "user:***@h.example" in lines
    assert PASSWORD not in lines, lines


# --- ingest enqueue: bad lines reported first, each one dead letter; nothing else queued -------
def _queued_urls(client: redis.Redis, queue: str) -> list[str]:
    urls = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        urls += [job["record"]["url"] for job in args[0]]
    return urls


@pytest.mark.integration
def test_enqueue_reports_bad_lines_first_and_ends_each_as_a_dead_letter(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_bytes(
        b"# three good, two bad\n"
        b"https://a.example/one\n"
        b"https://b.example/caf\xe9\n"
        b"https://user:secret@a.example/two\n"
        b"ftp://user:secret@a.example/file\n"
        b"https://c.example/three\n"
    )
    completed = subprocess.run(
        [*INGEST, "enqueue", str(urls_file)], env=settings_env(settings), capture_output=True, text=True
    )
    assert completed.returncode == 0, completed.stderr
    err = completed.stderr
    assert "Traceback" not in err
    first = err.index(f"{urls_file} line 3: not UTF-8 (byte 0xe9 at column 22)")
    second = err.index(f"{urls_file} line 5: scheme 'ftp' is not http or https: ftp://a.example/file")
    summary = err.index("5 URLs (2 bad, dead-lettered as bad_url)")
    assert first < second < summary
    assert f"{urls_file} lines 4, 5: user name and password removed" in err
    assert PASSWORD not in err + completed.stdout

    batch = completed.stdout.strip()
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    status = ledger.status(batch)
    assert status is not None
    assert (status.total, status.accounted, status.outcomes, status.reasons) == (
        5,
        2,
        {"dead": 2},
        {"bad_url": 2},
    )
    assert status.committed == 2  # both letters are in the outbox, for every store
    letters = sorted(ledger.dead_letters(batch), key=lambda letter: letter.error)
    assert [(letter.url, letter.stage, letter.reason, letter.error) for letter in letters] == [
        (
            "https://b.example/caf\\xe9",
            "intake",
            "bad_url",
            "line 3 of the URL file: not UTF-8 (byte 0xe9 at column 22)",
        ),
        (
            "ftp://a.example/file",
            "intake",
            "bad_url",
            "line 5 of the URL file: scheme 'ftp' is not http or https",
        ),
    ]
    # Only the three good URLs were queued for the fetch stage, without their credentials.
    queued = _queued_urls(redis_client, settings.fetch_queue)
    assert sorted(queued) == ["https://a.example/one", "https://a.example/two", "https://c.example/three"]
    assert not any(PASSWORD.encode() in raw for raw in redis_client.lrange(settings.fetch_queue, 0, -1))


# --- ingest run: the report comes before any worker starts ---------------------------------------
@pytest.mark.integration
def test_run_from_stdin_reports_bad_lines_before_workers_start(tmp_path: Path) -> None:
    pages = load_pages()[:3]
    # As a user runs it: no INGEST_* settings beyond this one (so an embedded Redis).
    env = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    env["INGEST_FETCH_ALLOW_PRIVATE"] = "true"
    out = tmp_path / "out"
    with serve_pages(pages) as server:
        good = [server.url(page.id) for page in pages]
        lines = "\n".join(good[:2]).encode() + b"\n\xe9t\xe9\nhttp://[::1/x\n" + good[2].encode() + b"\n"
        completed = subprocess.run(
            [*INGEST, "run", "-", "--out", str(out), "--timeout", "240"],
            input=lines,
            env=env,
            capture_output=True,
            timeout=300,
        )
    err = completed.stderr.decode("utf-8", "replace")
    # 3: the two bad lines ended as dead letters, and the summary says so.
    assert completed.returncode == 3, err[-3000:]
    assert "Traceback" not in err and "2 URLs ended as dead letters: bad_url 2" in err
    first = err.index("stdin line 3: not UTF-8 (byte 0xe9 at column 1)")
    second = err.index("stdin line 4: malformed URL")
    workers = err.index("started an embedded Redis")  # workers start after Redis is up
    assert first < second < workers < err.index("5 URLs (2 bad, dead-lettered as bad_url)")
    letters = [json.loads(line) for line in (out / "dead-letters.jsonl").read_text().splitlines()]
    assert sorted((letter["url"], letter["stage"], letter["reason"]) for letter in letters) == [
        ("\\xe9t\\xe9", "intake", "bad_url"),
        ("http://[::1/x", "intake", "bad_url"),
    ]
    articles = [json.loads(line) for line in (out / "articles.jsonl").read_text().splitlines()]
    assert sorted(article["url"] for article in articles) == sorted(good)


# --- credentials: stripped at intake, never sent, logged or stored ------------------------------
class _AuthSeeingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, html: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _AuthSeeingHandler)
        self.html = html
        self.authorizations: list[str | None] = []


class _AuthSeeingHandler(BaseHTTPRequestHandler):
    server: _AuthSeeingServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.server.authorizations.append(self.headers.get("Authorization"))
        found = self.path == "/story"
        body = self.server.html if found else b""
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def _serve_one_page() -> Iterator[_AuthSeeingServer]:
    with serve_in_thread(_AuthSeeingServer(load_pages()[0].html.encode("utf-8"))) as server:
        yield server


@pytest.mark.integration
def test_a_password_in_a_url_is_never_logged_stored_or_sent(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(
        update={"max_retries": 1, "retry_backoff_base": 0.1, "fetch_connect_timeout": 1.0}
    )
    logs = tmp_path / "logs"
    with _serve_one_page() as server:
        port = server.server_address[1]
        published = f"http://user:{PASSWORD}@127.0.0.1:{port}/story"
        refused = f"http://user:{PASSWORD}@127.0.0.1:1/x"  # nothing listens: connect_error
        bad = f"ftp://user:{PASSWORD}@127.0.0.1/file"  # bad_url at intake
        urls_file = tmp_path / "urls.txt"
        urls_file.write_text(f"{published}\n{refused}\n{bad}\n", encoding="utf-8")
        enqueued = subprocess.run(
            [*INGEST, "enqueue", str(urls_file)],
            env=settings_env(settings),
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        batch = enqueued.stdout.strip()
        with running_workers(settings, logs, concurrency={"fetch": 2, "cpu": 1}):
            status = wait_for_batch(settings, batch, timeout=180)
        authorizations = list(server.authorizations)

    assert status["outcomes"] == {"published": 1, "duplicate": 0, "unchanged": 0, "seen": 0, "dead": 2}
    assert status["dead_letter_reasons"] == {"connect_error": 1, "bad_url": 1}
    assert authorizations and authorizations == [None] * len(authorizations)  # robots.txt and page
    letters = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).dead_letters(batch)
    assert {letter.url: letter.reason for letter in letters} == {
        "http://127.0.0.1:1/x": "connect_error",
        "ftp://127.0.0.1/file": "bad_url",
    }
    articles = (settings.output_dir / "articles.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["url"] for line in articles.splitlines()] == [f"http://127.0.0.1:{port}/story"]
    kept = {
        "enqueue output": enqueued.stdout + enqueued.stderr,
        "ledger dead letters": "".join(letter.model_dump_json() for letter in letters),
        "dead-letters.jsonl": (settings.output_dir / "dead-letters.jsonl").read_text(encoding="utf-8"),
        "articles.jsonl": articles,
    }
    kept |= {path.name: path.read_text(encoding="utf-8", errors="replace") for path in logs.glob("*.log")}
    assert any("stage.dead_letter" in text for text in kept.values())  # the workers did log
    assert [name for name, text in kept.items() if PASSWORD in text] == []
