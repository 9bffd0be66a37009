"""The ``ingest`` command as a user runs it: subprocesses, no settings beyond what the README says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import Settings
from tests.support.faults import free_port
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.workers import settings_env

INGEST = [sys.executable, "-m", "worker"]


def _user_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    env.update(extra)
    return env


@pytest.mark.integration
def test_run_on_embedded_redis_accounts_for_every_url(tmp_path: Path) -> None:
    pages = load_pages()[:3]
    with serve_pages(pages) as server:
        urls = [server.url(page.id) for page in pages] + [server.base_url + "/missing"]
        urls_file = tmp_path / "urls.txt"
        urls_file.write_text("# sample\n" + "\n".join(urls) + "\n\n", encoding="utf-8")
        out = tmp_path / "out"
        runs = [_run(urls_file, out, _user_env(INGEST_FETCH_ALLOW_PRIVATE="true")) for _ in range(2)]
    for completed in runs:
        # 3: some URLs ended as dead letters, and the summary says why.
        assert completed.returncode == 3, completed.stderr[-3000:]
        assert "embedded Redis" in completed.stderr
        assert "published" in completed.stderr and "dead" in completed.stderr
        assert "1 URL ended as a dead letter: http_error 1" in completed.stderr
        phases = [line for line in completed.stderr.splitlines() if line in ("starting workers", "ingesting")]
        assert phases == ["starting workers", "ingesting"], completed.stderr[-3000:]
    # The second run (a fresh embedded Redis: everything fetched and published again) kept
    # the first run's lines and added none twice.
    articles = [json.loads(line) for line in (out / "articles.jsonl").read_text().splitlines()]
    letters = [json.loads(line) for line in (out / "dead-letters.jsonl").read_text().splitlines()]
    assert sorted(article["url"] for article in articles) == sorted(urls[:3])
    assert [(letter["url"], letter["reason"]) for letter in letters] == [(urls[3], "http_error")] * 2
    # The embedded Redis is gone; the batch stays findable in the output directory.
    summary = json.loads((out / "summary.json").read_text())
    assert summary["batch"] == _batch_of(runs[1]) and summary["exit_code"] == 3
    assert summary["outcomes"]["published"] == 3 and summary["dead_letter_reasons"] == {"http_error": 1}
    assert summary["elapsed"] > 0 and summary["rate"] > 0 and not summary["interrupted"]
    assert [error["reason"] for error in summary["last_errors"]] == ["http_error"]
    assert summary["files"]["articles"] == str(out / "articles.jsonl")
    status = subprocess.run(
        [*INGEST, "status", summary["batch"], "--out", str(out)],
        env=_user_env(),
        capture_output=True,
        text=True,
    )
    assert status.returncode == 3, status.stderr
    assert "reading the summary" in status.stderr and "summary.json" in status.stderr
    assert "dead: http_error" in status.stdout and "through publish" in status.stdout
    letters_now = subprocess.run(
        [*INGEST, "dead-letters", summary["batch"], "--json"],
        env=_user_env(INGEST_OUTPUT_DIR=str(out)),
        capture_output=True,
        text=True,
    )
    assert letters_now.returncode == 0, letters_now.stderr
    assert [json.loads(line)["url"] for line in letters_now.stdout.splitlines()] == [urls[3]]


def _batch_of(completed: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"^batch (b-[\w-]+): ", completed.stderr, re.MULTILINE)
    assert found, completed.stderr[-2000:]
    return found.group(1)


def _run(urls_file: Path, out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INGEST, "run", str(urls_file), "--out", str(out), "--timeout", "240"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=urls_file.parent,
    )


@pytest.mark.integration
def test_second_run_on_a_persistent_redis_keeps_the_first_runs_records(
    settings: Settings, tmp_path: Path
) -> None:
    pages = load_pages()[:3]
    env = _user_env(
        INGEST_FETCH_ALLOW_PRIVATE="true",
        INGEST_REDIS_URL=settings.effective_redis_url,
        INGEST_KEY_PREFIX=settings.key_prefix,
    )
    with serve_pages(pages) as server:
        urls_file = tmp_path / "urls.txt"
        urls_file.write_text("\n".join(server.url(page.id) for page in pages) + "\n", encoding="utf-8")
        out = tmp_path / "out"
        first = _run(urls_file, out, env)
        assert first.returncode == 0, first.stderr[-3000:]
        lines = (out / "articles.jsonl").read_text().splitlines()
        second = _run(urls_file, out, env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "3 already seen, not fetched" in second.stderr
    assert len(lines) == 3
    assert (out / "articles.jsonl").read_text().splitlines() == lines
    # Every stage's p50/p95 over the batch's URLs, its rate and the queues, from the ledger.
    status = subprocess.run(
        [*INGEST, "status", _batch_of(first), "--json"], env=env, capture_output=True, text=True
    )
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert set(report["stage_seconds"]) == {"fetch", "language", "clean", "entities", "dedup", "publish"}
    assert all(0 < t["p50"] <= t["p95"] and t["samples"] == 3 for t in report["stage_seconds"].values())
    assert report["urls_per_second"] > 0 and report["done"] is True and report["last_errors"] == []
    assert report["queues"] == {"fetch": 0, "cpu": 0}


@pytest.mark.integration
def test_demo_writes_what_the_readme_says(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    claim = readme.split("`ingest demo` writes", 1)[1].split("On your own URLs", 1)[0]
    named = set(re.findall(r"`ingest-output/([\w.-]+)`", claim))
    completed = subprocess.run(
        [*INGEST, "demo", "--out", str(tmp_path / "ingest-output")],
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    written = {path.name for path in (tmp_path / "ingest-output").iterdir() if not path.name.startswith(".")}
    assert named == written == {"articles.jsonl", "dead-letters.jsonl", "workers.log", "summary.json"}


def test_run_with_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    completed = subprocess.run(
        [*INGEST, "run", str(tmp_path / "nope.txt")], env=_user_env(), capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert "does not exist" in completed.stderr


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("https://example.org/a\n")
    for arguments in (
        ["run", str(urls_file), "--no-such-option"],
        ["run", str(urls_file), "--timeout", "soon"],
        ["run"],
        ["status", "--bogus"],
    ):
        completed = subprocess.run([*INGEST, *arguments], env=_user_env(), capture_output=True, text=True)
        assert completed.returncode == 2, (arguments, completed.stderr)
        assert "Traceback" not in completed.stderr


def test_unreachable_redis_exits_1(tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("https://example.org/a\n")
    env = _user_env(INGEST_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    for arguments in (["run", str(urls_file), "--out", str(tmp_path / "out")], ["status"], ["status", "b-x"]):
        completed = subprocess.run(
            [*INGEST, *arguments], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert completed.returncode == 1, (arguments, completed.stderr)
        assert "cannot reach Redis" in completed.stderr and "Traceback" not in completed.stderr


def test_extract_prints_one_record_per_page() -> None:
    pages = load_pages()[:2]
    completed = subprocess.run(
        [*INGEST, "extract", "--no-entities", *(str(page.html_path) for page in pages)],
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    records = [json.loads(line) for line in completed.stdout.splitlines()]
    assert [record["url"] for record in records] == [page.html_path.resolve().as_uri() for page in pages]
    assert [record["language"] for record in records] == [page.language for page in pages]
    assert all(record["text"] and record["content_hash"] for record in records)


def test_extract_uses_given_url() -> None:
    page = load_pages()[0]
    completed = subprocess.run(
        [*INGEST, "extract", "--no-entities", "--url", "https://example.org/a", str(page.html_path)],
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(completed.stdout)["url"] == "https://example.org/a"


def test_schema_is_a_json_schema_of_the_record() -> None:
    completed = subprocess.run([*INGEST, "schema"], env=_user_env(), capture_output=True, text=True)
    schema = json.loads(completed.stdout)
    required = {"id", "url", "final_url", "fetched_at", "http_status", "title", "authors", "published_at"}
    required |= {"language", "text", "entities", "content_hash", "duplicate_of", "pipeline", "schema_version"}
    assert required <= set(schema["properties"])
    assert "DeadLetter" in schema["$defs"]


@pytest.mark.integration
def test_enqueue_then_status_reports_the_batch(settings: Settings, tmp_path: Path) -> None:
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("https://example.org/a\nhttps://example.org/b\nhttps://example.org/a\n")
    env = settings_env(settings)
    enqueued = subprocess.run(
        [*INGEST, "enqueue", str(urls_file)], env=env, capture_output=True, text=True, check=True
    )
    batch = enqueued.stdout.strip()
    assert batch.startswith("b-")
    assert "1 repeats skipped" in enqueued.stderr
    status = subprocess.run(
        [*INGEST, "status", batch, "--json"], env=env, capture_output=True, text=True, check=True
    )
    report = json.loads(status.stdout)
    assert report["total"] == 2 and report["pending"] == 2 and report["done"] is False
    assert report["queues"] == {"fetch": 2, "cpu": 0}  # no worker: one message per URL waits
    unknown = subprocess.run([*INGEST, "status", "b-nope"], env=env, capture_output=True, text=True)
    assert unknown.returncode == 1 and "no batch" in unknown.stderr


def test_bad_store_settings_are_a_clear_error() -> None:
    for extra, message in (
        ({"INGEST_STORES": "jsonl,elastic"}, "unknown store(s) ['elastic']"),
        ({"INGEST_STORES": "webhook"}, "set INGEST_WEBHOOK_URL and INGEST_WEBHOOK_SECRET"),
        ({"INGEST_STORES": "postgres"}, "INGEST_POSTGRES_DSN is unset"),
    ):
        completed = subprocess.run(
            [*INGEST, "status"], env=_user_env(**extra), capture_output=True, text=True
        )
        assert completed.returncode == 2, completed.stderr
        assert message in completed.stderr and "Traceback" not in completed.stderr


def test_run_loads_language_models_on_first_use_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker.cli_run import preload_default

    monkeypatch.delenv("INGEST_PRELOAD_MODELS", raising=False)
    assert preload_default(Settings(_env_file=None)) == {"INGEST_PRELOAD_MODELS": "none"}  # type: ignore[call-arg]
    monkeypatch.setenv("INGEST_PRELOAD_MODELS", "all")  # a user's choice is kept, `all` too
    assert preload_default(Settings(_env_file=None)) == {}  # type: ignore[call-arg]
