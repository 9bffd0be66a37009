"""Dedup on real Redis: groups, atomic check-and-insert across processes, expiry, seen URLs.

Texts come from tests/fixtures/dedup (pages of the labelled near-duplicate corpus) run
through the real cleaning stage, so these tests see what the workers see.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from pathlib import Path

import pytest
import redis

from config import Settings
from stores.dedup_index import IndexParams, NearDuplicateIndex
from stores.ledger import Ledger
from stores.seen import SeenUrls
from tasks.dedup import DedupIndexes, check_seen, dedup_stage, index_params, url_identities
from tasks.errors import StopPipeline
from tasks.minhash import content_hash, estimate_jaccard, matches_needed, normalize_text, signature
from tasks.record import ArticleRecord, Job, record_id
from tasks.urls import canonicalize_url
from worker.offline import process_html, read_html_file

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "dedup"


def _entries() -> list[dict[str, object]]:
    return [json.loads(line) for line in (FIXTURES / "index.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    """Cleaned text of every fixture page, by page id."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    out = {}
    for entry in _entries():
        html = read_html_file(FIXTURES / str(entry["html"]))
        out[str(entry["id"])] = process_html(html, f"https://x.example{entry['path']}", settings, None).text
    return out


def _cluster_members(min_size: int = 3) -> list[list[dict[str, object]]]:
    clusters: dict[str, list[dict[str, object]]] = {}
    for entry in _entries():
        clusters.setdefault(str(entry["cluster"]), []).append(entry)
    return [members for members in clusters.values() if len(members) >= min_size]


def _job(url: str, text: str, batch: str = "b1", **fields: object) -> Job:
    record = ArticleRecord(id=record_id(canonicalize_url(url)), url=url, text=text, **fields)  # type: ignore[arg-type]
    return Job(batch=batch, record=record)


def test_normalisation_folds_typography_case_and_space() -> None:
    a = "«Le président» a dit : « non ». L’État — c’est moi…"
    b = '"le  Président"  a dit: "non". L\'état - c\'est   MOI...'
    assert normalize_text(a) == normalize_text(b)
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(a + " encore")
    assert normalize_text("ﬁnal ＡＢＣ") == "final abc"  # NFKC: ligature and full-width forms


def test_jaccard_estimate_and_threshold_agree() -> None:
    needed = matches_needed(0.25, 48)
    assert estimate_jaccard(needed, 48) >= 0.25 > estimate_jaccard(needed - 1, 48)
    assert estimate_jaccard(48, 48) == 1.0
    assert estimate_jaccard(0, 48) == 0.0


def test_copies_join_the_first_arrival_whatever_the_order(settings: Settings, texts: dict[str, str]) -> None:
    client = redis.Redis.from_url(settings.effective_redis_url)
    indexes = DedupIndexes.from_settings(client, settings)
    cluster = _cluster_members()[0]
    # The last member first: a copy arriving before its original still founds the group.
    order = [*reversed(cluster)]
    results = [
        dedup_stage(_job(f"https://site.example/{e['id']}", texts[str(e["id"])]), indexes, None, None).record
        for e in order
    ]
    first = results[0]
    assert first.duplicate_of is None and first.similarity is None
    for record in results[1:]:
        assert record.duplicate_of == first.id
        assert record.similarity is not None and settings.dedup_threshold <= record.similarity <= 1.0


def test_different_stories_in_one_site_template_stay_apart(settings: Settings, texts: dict[str, str]) -> None:
    """Page chrome never makes two pages duplicates: singletons of one outlet stay alone."""
    client = redis.Redis.from_url(settings.effective_redis_url)
    indexes = DedupIndexes.from_settings(client, settings)
    sizes: dict[str, int] = {}
    for entry in _entries():
        sizes[str(entry["cluster"])] = sizes.get(str(entry["cluster"]), 0) + 1
    by_site: dict[str, list[str]] = {}
    for entry in _entries():
        if sizes[str(entry["cluster"])] == 1:
            by_site.setdefault(str(entry["site"]), []).append(str(entry["id"]))
    site, ids = max(by_site.items(), key=lambda item: len(item[1]))
    assert len(ids) >= 2, "fixtures need two singletons of one site"
    for page_id in ids:
        record = dedup_stage(
            _job(f"https://{site}.example/{page_id}", texts[page_id]), indexes, None, None
        ).record
        assert record.duplicate_of is None, page_id


def _insert_at_barrier(
    redis_url: str, prefix: str, params: IndexParams, record_id_: str, text: str, barrier, out
) -> None:  # type: ignore[no-untyped-def]
    index = NearDuplicateIndex(redis.Redis.from_url(redis_url), prefix, params)
    sig = signature(text, params.num_perm, params.shingle_words)
    barrier.wait()
    out.put((record_id_, index.check_and_insert(record_id_, sig).duplicate_of))


def test_concurrent_copies_never_both_become_first(settings: Settings, texts: dict[str, str]) -> None:
    """Processes insert copies of one story at the same instant: exactly one is first."""
    params = index_params(settings)
    context = multiprocessing.get_context("fork")  # children inherit the imports: fast start
    for round_number, cluster in enumerate(_cluster_members()[:3]):
        barrier = context.Barrier(len(cluster))
        out = context.Queue()
        ids = [record_id(f"round{round_number}-{e['id']}") for e in cluster]
        processes = [
            context.Process(
                target=_insert_at_barrier,
                args=(
                    settings.effective_redis_url,
                    settings.key_prefix,
                    params,
                    rid,
                    texts[str(e["id"])],
                    barrier,
                    out,
                ),
            )
            for rid, e in zip(ids, cluster, strict=True)
        ]
        for process in processes:
            process.start()
        answers = dict(out.get(timeout=60) for _ in processes)
        for process in processes:
            process.join(timeout=30)
        firsts = [rid for rid, duplicate_of in answers.items() if duplicate_of is None]
        assert len(firsts) == 1, answers
        assert all(answers[rid] == firsts[0] for rid in ids if rid != firsts[0])


def test_redelivery_gets_the_same_answer_without_a_second_insert(
    settings: Settings, texts: dict[str, str]
) -> None:
    client = redis.Redis.from_url(settings.effective_redis_url)
    index = NearDuplicateIndex(client, settings.key_prefix, index_params(settings))
    cluster = _cluster_members()[1]
    sigs = [signature(texts[str(e["id"])], 48, 5) for e in cluster]
    ids = [record_id(str(e["id"])) for e in cluster]
    first = [index.check_and_insert(rid, sig) for rid, sig in zip(ids, sigs, strict=True)]
    again = [index.check_and_insert(rid, sig) for rid, sig in zip(ids, sigs, strict=True)]
    assert [m.duplicate_of for m in again] == [m.duplicate_of for m in first]
    assert first[0].duplicate_of is None and all(m.duplicate_of == ids[0] for m in first[1:])
    assert not any(m.inserted for m in again)


def test_index_forgets_articles_after_the_window(settings: Settings, texts: dict[str, str]) -> None:
    client = redis.Redis.from_url(settings.effective_redis_url)
    params = IndexParams(**{**index_params(settings).__dict__, "window": 4 * 3600, "generations": 4})
    cluster = _cluster_members()[2]
    original_sig = signature(texts[str(cluster[0]["id"])], 48, 5)
    copy_sig = signature(texts[str(cluster[1]["id"])], 48, 5)
    original, copy = record_id("original"), record_id("copy")
    start = time.time()
    inside = NearDuplicateIndex(client, settings.key_prefix, params, partition="inside")
    assert inside.check_and_insert(original, original_sig, now=start).duplicate_of is None
    # Every key carries the expiry of its generation: end of the generation plus the window.
    ttls = [client.ttl(key) for key in client.scan_iter(match=f"{inside.base}:[bd]:*")]
    assert ttls and all(0 < ttl <= params.window + params.generation_seconds for ttl in ttls)
    # Inside the window, a copy joins the group.
    assert inside.check_and_insert(copy, copy_sig, now=start + params.window - 60).duplicate_of == original
    # Past the window plus a generation, the original's generation is no longer looked up.
    past = NearDuplicateIndex(client, settings.key_prefix, params, partition="past")
    assert past.check_and_insert(original, original_sig, now=start).duplicate_of is None
    later = start + params.window + 2 * params.generation_seconds
    assert past.check_and_insert(copy, copy_sig, now=later).duplicate_of is None


def test_seen_urls_from_an_earlier_batch_stop_the_pipeline(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.effective_redis_url)
    seen = SeenUrls(client, settings.key_prefix, settings.seen_ttl)
    published = _job("https://example.com/news/story", "text", batch="b1")
    seen.mark(url_identities(published.record), published.record.id, "b1")
    # Another URL whose page redirects to, or declares as canonical, the published one.
    for field in ("final_url", "canonical_url"):
        later = _job(
            "https://short.example/x1",
            "text",
            batch="b2",
            **{field: "https://www.example.com/news/story/amp"},
        )
        with pytest.raises(StopPipeline) as info:
            check_seen(later, seen)
        assert info.value.outcome == "seen"
        # Inside the same batch it is left to content dedup.
        check_seen(later.model_copy(update={"batch": "b1"}), seen)
    check_seen(published.model_copy(update={"batch": "b2"}), seen)  # itself, redelivered: not seen
    assert not SeenUrls(client, settings.key_prefix, 0).lookup(["https://example.com/news/story"])[0]


def test_dedup_stage_reads_the_canonical_link(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.effective_redis_url)
    seen = SeenUrls(client, settings.key_prefix, settings.seen_ttl)
    seen.mark([canonicalize_url("https://example.com/original")], record_id("x"), "b0")
    html = '<html><head><link rel="canonical" href="/original?utm_source=x"></head><body></body></html>'
    job = _job("https://example.com/syndicated", "some text here", batch="b1")
    job = job.model_copy(update={"record": job.record.model_copy(update={"final_url": job.record.url})})
    indexes = DedupIndexes.from_settings(client, settings)
    with pytest.raises(StopPipeline):
        dedup_stage(job, indexes, seen, html)
    out = dedup_stage(job, indexes, SeenUrls(client, settings.key_prefix + "-other", 3600), html).record
    assert out.canonical_url == "https://example.com/original?utm_source=x"
    assert out.content_hash == content_hash("some text here")


def test_intake_counts_seen_urls_and_does_not_send_them(settings: Settings) -> None:
    from worker.producer import enqueue

    client = redis.Redis.from_url(settings.effective_redis_url)
    seen = SeenUrls(client, settings.key_prefix, settings.seen_ttl)
    seen.mark([canonicalize_url("https://example.com/old")], record_id("old"), "b0")
    urls = [
        "https://www.example.com/old/?utm_source=rss",
        "https://example.com/new",
        "https://example.com/new#top",
    ]
    result = enqueue(urls, settings=settings)
    assert (result.total, result.repeated, result.seen) == (2, 1, 1)
    status = Ledger(client, settings.key_prefix, settings.batch_ttl).status(result.batch)
    assert status is not None and status.outcomes == {"seen": 1} and not status.done
    assert client.llen(settings.fetch_queue) == 1  # only the new URL was sent to be fetched
