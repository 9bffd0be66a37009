"""Hostile HTML is bounded: deep, huge or junk pages end fast as dead letters, real pages do not.

Before the page budget, 100,000 nested ``<div>``\\s cost the language stage 30-60 s of one CPU
(lexbor's tree builder is quadratic in depth) and ended as ``no_text``; 10 MB of nested tables
was published as an article titled "Tables". The CPU bounds asserted here are generous (a
loaded CI machine must not fail them); the measured times are a few milliseconds for pages
past the budget and well under two seconds for the link farm and the table dump.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from tasks.boilerplate import key
from tasks.clean import clean_article, clean_stage
from tasks.decoding import decode_html
from tasks.errors import REASONS, PermanentError
from tasks.html import parse
from tasks.page_guard import PageBudget, check_page, measure
from tasks.page_kind import MIN_DUMP_SHARE, MIN_PROSE_SHARE, prose_share, text_shares
from tasks.record import ArticleRecord, Job
from tests.support import hostile_pages
from tests.support.http_server import serve_pages
from tests.support.pages import SHARED_CORPUS, Page, load_pages
from tests.support.workers import running_workers, wait_for_batch
from worker import enqueue
from worker.offline import process_html

URL = "https://news.example/2025/01/01/story"
#: CPU seconds a refused page may take here; they take milliseconds (58 s before the budget).
CPU_BOUND = 10.0


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def _reason(html: str) -> tuple[str, float]:
    """The dead-letter reason of ``html`` in the offline path (language, clean) and its CPU seconds."""
    started = time.process_time()
    with pytest.raises(PermanentError) as caught:
        process_html(html, URL, _settings(), None)
    return caught.value.reason, time.process_time() - started


def test_the_new_reasons_are_in_the_closed_list() -> None:
    assert "not_article" in REASONS and "page_too_complex" in REASONS


@pytest.mark.parametrize("depth", [100_000, 1_000_000], ids=["100k-divs", "1M-divs"])
def test_deeply_nested_divs_end_fast_as_page_too_complex(depth: int) -> None:
    reason, seconds = _reason(hostile_pages.nested_divs(depth))
    assert reason == "page_too_complex"
    assert seconds < CPU_BOUND


def test_the_clean_stage_alone_refuses_a_deep_page() -> None:
    """A redriven clean task runs without the language stage before it: it checks the budget too."""
    job = Job(batch="b", record=ArticleRecord(id="x", url=URL))
    started = time.process_time()
    with pytest.raises(PermanentError) as caught:
        clean_stage(job, hostile_pages.nested_divs(100_000))
    assert caught.value.reason == "page_too_complex"
    assert time.process_time() - started < CPU_BOUND


def test_ten_megabytes_of_nested_tables_are_not_published() -> None:
    html = hostile_pages.nested_tables(10_000_000)
    assert len(html) >= 10_000_000
    reason, seconds = _reason(html)
    assert reason in ("page_too_complex", "not_article")
    assert seconds < CPU_BOUND


def test_nested_tables_inside_the_budget_are_not_an_article() -> None:
    """The same dump, small enough for the budget, is judged by what it is."""
    html = hostile_pages.nested_tables(2_400)
    assert measure(html).depth < PageBudget().max_depth
    assert _reason(html)[0] == "not_article"


def test_a_flat_table_dump_is_not_an_article() -> None:
    reason, seconds = _reason(hostile_pages.table_dump(1_000))
    assert reason == "not_article"
    assert seconds < CPU_BOUND


def test_a_link_farm_is_not_an_article() -> None:
    reason, seconds = _reason(hostile_pages.link_farm(2_000))
    assert reason == "not_article"
    assert seconds < CPU_BOUND


def test_a_page_with_too_many_elements_is_refused() -> None:
    assert _reason(hostile_pages.table_dump(5_000))[0] == "page_too_complex"  # 45,000 elements


def test_a_deep_article_inside_the_budget_is_published() -> None:
    started = time.process_time()
    record = process_html(hostile_pages.deep_article(240, 300), URL, _settings(), None)
    assert time.process_time() - started < CPU_BOUND
    assert record.text.startswith(hostile_pages.PROSE)
    assert "Paragraph 299." in record.text


@pytest.mark.parametrize("page", load_pages(), ids=lambda page: page.id)
def test_fixture_pages_still_extract(page: Page) -> None:
    record = process_html(page.html, str(page.truth["url"]), _settings(), None)
    first_line = record.text.split("\n\n")[0]
    assert len(record.text) > 300 and first_line[:30] in str(page.truth["body"])
    assert record.title


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", None], ids=["declared", "sniffed"])
def test_invalid_utf8_still_extracts(content_type: str | None) -> None:
    page = load_pages()[0]
    body = page.html.encode("utf-8")
    cut = body.index(b"<p", len(body) // 3)
    broken = body[:cut] + b"<p>Bad bytes \xff\xfe\xc3\x28 and \xed\xa0\x80 here.</p>" + body[cut:]
    with pytest.raises(UnicodeDecodeError):
        broken.decode("utf-8")
    record = process_html(decode_html(broken, content_type), str(page.truth["url"]), _settings(), None)
    assert len(record.text) > 300


def test_the_cpu_guard_ends_a_stage_that_runs_too_long() -> None:
    page = load_pages()[0]
    with pytest.raises(PermanentError) as caught:
        clean_article(page.html, str(page.truth["url"]), budget=PageBudget(max_cpu_seconds=1e-9))
    assert caught.value.reason == "page_too_complex"


def test_budget_defaults_are_the_settings_defaults() -> None:
    assert PageBudget.from_settings(_settings()) == PageBudget()


# --- The pre-check's estimate of the tree ----------------------------------------------------


@pytest.mark.parametrize(
    ("html", "depth", "nodes"),
    [
        ("<html><body><div><p>a</p><p>b</p></div></body></html>", 4, 5),
        ("<html><body><br><img src=x><hr><input></body></html>", 3, 6),  # void elements
        ("<html><body><ul><li>a<li>b<li>c</ul></body></html>", 4, 6),  # implied </li>
        ("<html><body><p>a<p>b<p>c<div>d</div></body></html>", 3, 6),  # implied </p>
        ("<html><body><table><tr><td>a<td>b<tr><td>c</table></body></html>", 6, 8),  # + <tbody>
        ("<html><body><script>'<div><div><div>'</script><!-- <div><div> --></body></html>", 3, 3),
        ("<html><body><svg><path d='x'/><path d='y'/></svg></body></html>", 4, 5),
        ("<html><body><div/><div/></body></html>", 4, 4),  # an HTML <div/> is not closed
    ],
)
def test_the_scan_follows_the_tree_builder(html: str, depth: int, nodes: int) -> None:
    shape = measure(html)
    assert (shape.depth, shape.nodes) == (depth, nodes)


def test_the_scan_agrees_with_lxml_on_fixture_pages() -> None:
    """The estimate errs on the deep side, by a few levels, never far below the real tree."""
    for page in load_pages():
        root = parse(page.html)
        assert root is not None
        real = max(len(list(element.iterancestors())) + 1 for element in root.iter())
        estimate = measure(page.html).depth
        assert real - 2 <= estimate <= real + 60, page.id


def test_end_tags_do_not_reach_past_a_table_cell() -> None:
    """``</div>`` inside a cell does not close the ``<div>`` around the table: the page stays deep."""
    html = "<html><body><div>" + "<table><tr><td><span></div>" * 200 + "</body></html>"
    assert measure(html).depth > 200 * 4
    with pytest.raises(PermanentError):
        check_page(html, PageBudget())


def test_end_tags_and_comments_count_against_the_budget() -> None:
    with pytest.raises(PermanentError) as caught:
        check_page("<html><body>" + "</div><!---->" * 100_000 + "</body></html>", PageBudget())
    assert caught.value.reason == "page_too_complex"


# --- The not-an-article rule -------------------------------------------------------------------


def test_text_shares_of_links_and_short_cells() -> None:
    shares = text_shares(parse(hostile_pages.link_farm(50)))  # type: ignore[arg-type]
    assert shares.dump_share == 1.0 and shares.links == shares.total
    layout = (
        "<html><body><table><tr><td><p>" + hostile_pages.PROSE * 3 + "</p></td></tr></table></body></html>"
    )
    assert text_shares(parse(layout)).dump_share == 0.0  # type: ignore[arg-type]
    nested = text_shares(parse(hostile_pages.nested_tables(2_000)))  # type: ignore[arg-type]
    assert nested.cells == nested.total  # each cell judged by its own text, nested tables apart


def test_prose_share() -> None:
    assert prose_share([hostile_pages.PROSE, "Menu"]) > 0.9
    assert prose_share(["cell 1 text text", "cell 2 text text"]) == 0.0
    assert prose_share([]) == 0.0


def _corpus_pages() -> list[tuple[str, str, str, str]]:
    pages = []
    for name in ("news", "l3s-gn1"):
        directory = SHARED_CORPUS / name
        if not (directory / "index.jsonl").is_file():
            continue
        for line in (directory / "index.jsonl").read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            html = gzip.decompress((directory / entry["html"]).read_bytes()).decode("utf-8")
            pages.append((f"{name}/{entry['id']}", str(entry["url"]), html, str(entry["body"])))
    return pages


def _parsed_body_holds(html: str, text: str) -> bool:
    """Whether lxml puts the start of ``text`` in the page's visible body text."""
    root = parse(html)
    visible = (
        root.xpath("//body//text()[not(ancestor::script) and not(ancestor::style)]")
        if root is not None
        else []
    )
    return key(text)[:60] in key(" ".join(visible))


def test_no_real_page_is_refused() -> None:
    """Every page of the shared corpora (146 news, 315 l3s-gn1) passes the budget and the rule.

    Measured when the rule was set: the highest dump share is 0.86 (a 2008 table layout; the
    real link-heavy pages are Japanese sites at 0.84), but every page above 0.5 keeps at least
    0.89 of its text in prose; the pages with little prose have a dump share of 0.34 at most.
    """
    pages = _corpus_pages()
    if not pages:
        pytest.skip(f"shared corpus not found at {SHARED_CORPUS}")
    refused = []
    for page_id, url, html, body in pages:
        try:
            clean_article(html, url)
        except PermanentError as error:
            if error.reason == "no_text":  # six pages hold no text at all (frames, scripts)
                continue
            if error.reason == "not_article" and not _parsed_body_holds(html, body):
                continue  # lxml lost the article (one page: a broken <script> swallows it)
            refused.append((page_id, error.reason, str(error)))
    assert refused == []
    assert MIN_DUMP_SHARE > 0.5 and MIN_PROSE_SHARE <= 0.5


# --- Through real workers ----------------------------------------------------------------------


def test_hostile_pages_through_real_workers(settings: Settings, tmp_path: Path) -> None:
    """Fetched and processed by real worker processes: two dead letters, one record, workers alive."""
    pages = []
    for page_id, html in (
        ("deep", hostile_pages.nested_divs(100_000)),
        ("farm", hostile_pages.link_farm(2_000)),
        ("good", hostile_pages.deep_article(10, 12)),
    ):
        path = tmp_path / f"{page_id}.html.gz"
        path.write_bytes(gzip.compress(html.encode("utf-8")))
        pages.append(Page(id=page_id, html_path=path, truth={}))
    with serve_pages(pages) as server, running_workers(settings, tmp_path / "logs") as workers:
        result = enqueue([server.url(page.id) for page in pages], settings=settings)
        status = wait_for_batch(settings, result.batch, timeout=120)
        alive = [process.poll() is None for process in workers]
    assert all(alive)
    assert status["outcomes"]["published"] == 1  # type: ignore[index]
    letters = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).dead_letters(result.batch)
    reasons = {letter.url.rsplit("/", 1)[-1]: letter.reason for letter in letters}
    assert reasons == {"deep": "page_too_complex", "farm": "not_article"}
