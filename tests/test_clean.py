"""The clean stage: article text without page chrome, in the offline path and in real workers."""

from __future__ import annotations

import gzip
import html as html_lib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from config import Settings
from stores.jsonl import JsonlStore
from tasks.boilerplate import PageContext, add_lead, clean_lines, compact, key
from tasks.clean import clean_article, clean_stage, furniture_lines
from tasks.errors import PermanentError
from tasks.html import parse
from tasks.record import ArticleRecord, Job
from tasks.siblings import restore_siblings, restore_subheadings, shown_text
from tests.support.http_server import serve_pages
from tests.support.pages import Page, load_pages
from tests.support.workers import running_workers, wait_for_batch
from worker import enqueue
from worker.offline import process_html

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "extraction"
EXPECTED = json.loads((FIXTURES / "lesoleil-afp-syria.expected.json").read_text(encoding="utf-8"))
SOLEIL_URL = "https://www.lapresse.ca/le-soleil/actualites/monde/201606/01/la-russie.php"
PROSE = "This sentence is long enough and ends like a sentence in an article would end, surely."


def _soleil_rich() -> str:
    """The story inside its site template: breadcrumb, photo tools, share bar, ads, 'most popular'."""
    return (FIXTURES / "lesoleil-afp-syria.html").read_text(encoding="utf-8")


def _soleil_flat() -> str:
    """The worst case: every line of the page text as a sibling <p>, structure tells nothing."""
    lines = (FIXTURES / "lesoleil-afp-syria.page.txt").read_text(encoding="utf-8").splitlines()
    paragraphs = "".join(f"<p>{html_lib.escape(line.strip())}</p>" for line in lines if line.strip())
    return f"<html><head><title>Le Soleil</title></head><body><div>{paragraphs}</div></body></html>"


def _assert_clean_soleil(record: ArticleRecord) -> None:
    lines = record.text.split("\n\n")
    for boilerplate in EXPECTED["boilerplate_never_in_text"]:
        assert boilerplate not in record.text, boilerplate
    for paragraph in EXPECTED["body_paragraphs"]:
        assert paragraph in lines
    assert record.language == EXPECTED["language"]


@pytest.mark.parametrize("page", [_soleil_rich, _soleil_flat], ids=["template", "flat"])
def test_le_soleil_offline(page) -> None:  # type: ignore[no-untyped-def]
    record = process_html(page(), SOLEIL_URL, Settings(_env_file=None), None)  # type: ignore[call-arg]
    _assert_clean_soleil(record)
    # Nor the photo caption, credit, byline or dateline: exactly the story's paragraphs.
    assert record.text.split("\n\n") == EXPECTED["body_paragraphs"]


def test_le_soleil_metadata() -> None:
    record = process_html(_soleil_rich(), SOLEIL_URL, Settings(_env_file=None), None)  # type: ignore[call-arg]
    assert record.title == EXPECTED["title"]
    assert record.authors == EXPECTED["byline"]  # the agency is the only byline: kept


def _shingles(text: str) -> Counter[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text)
    return Counter(tuple(tokens[i : i + 4]) for i in range(max(len(tokens) - 3, 0)))


def test_fixture_pages_match_their_ground_truth_body() -> None:
    """Shingle precision and recall (the corpus metric): >= 0.7 on every page, >= 0.93 on average."""
    precisions, recalls = [], []
    for page in load_pages():
        article = clean_article(page.html, str(page.truth["url"]))
        truth, predicted = _shingles(str(page.truth["body"])), _shingles(article.text)
        hit = sum((truth & predicted).values())
        precisions.append(hit / sum(predicted.values()))
        recalls.append(hit / sum(truth.values()))
        assert precisions[-1] >= 0.7 and recalls[-1] >= 0.7, page.id
        assert "\n\n" in article.text  # paragraphs kept
    assert sum(precisions) / len(precisions) >= 0.93
    assert sum(recalls) / len(recalls) >= 0.93


@pytest.mark.parametrize(
    "html",
    [
        "",
        "   ",
        "just some words",
        "%PDF-1.4\n%\xe2\xe3",
        "<html><body><nav><a href='/'>Home</a></nav></body></html>",
    ],
)
def test_pages_without_text_are_no_text(html: str) -> None:
    with pytest.raises(PermanentError) as failure:
        clean_article(html, "https://news.example/a")
    assert failure.value.reason == "no_text"


def test_jsonld_article_body_when_the_extractor_finds_nothing() -> None:
    body = "Erster Absatz des Artikels mit genug Text, um als Prosa zu gelten, und einem Punkt am Ende."
    html = (
        '<html><head><script type="application/ld+json">'
        + json.dumps({"@type": "NewsArticle", "headline": "Titel", "articleBody": body})
        + "</script></head><body><div id='app'></div></body></html>"
    )
    assert clean_article(html, "https://news.example/a").text == body


def test_body_language_overrides_a_wrong_prior() -> None:
    job = Job(
        batch="b",
        record=ArticleRecord(id="x", url=SOLEIL_URL, language="en", language_confidence=0.4),
        html_lang="en",
    )
    record = clean_stage(job, _soleil_rich()).record
    assert record.language == "fr"
    assert record.language_confidence is not None and record.language_confidence > 0.5


def test_clean_lines_rules() -> None:
    context = PageContext(
        titles=("Storm hits the coast at dawn",),
        authors=("Jane Doe",),
        link_texts=frozenset({"five things to know about storms"}),
        captions=frozenset({"the harbour at dawn photo ap"}),
    )
    lines = [
        "Storm hits the coast at dawn",  # the headline again
        "By Jane Doe",  # byline
        "28.04.2024, 09:30",  # bare date
        PROSE,
        "What happened next",  # a sub-heading between paragraphs: kept
        PROSE + " Second.",
        "The harbour at dawn. (Photo: AP)",  # image caption
        "- Five things to know about storms",  # a related link
        "Les også: Five things to know about storms",  # a label and a related link
        "Agence France-Presse",  # an agency credit on its own line
        "Advertisement",
        PROSE + " Third.",
        "Advertisement",  # repeated label
        "la boite:91290:box",  # template debris
        "Share",  # chrome after the article
        "Most read",
    ]
    assert clean_lines(lines, context) == [PROSE, "What happened next", PROSE + " Second.", PROSE + " Third."]
    # A label before more than one whole link stays, and so does a longer lead-in.
    kept = [
        "Warning: five things to know about storms, and what the coast guard said about them today.",
        "The coast guard said on Monday: five things to know about storms",
    ]
    assert clean_lines([PROSE, *kept, PROSE + " Second."], context) == [PROSE, *kept, PROSE + " Second."]


def test_furniture_boxes_lines_are_not_article_text() -> None:
    article = "".join(f"<p>{PROSE} Paragraph {n}.</p>" for n in range(40))
    bio = "Jane Doe has covered technology for twenty years and writes the weekly newsletter."
    root = parse(
        "<html><body><div class='article-body promo-slots'>"
        f"{article}"
        f"<div class='author-bio'><p>{bio}</p></div>"
        "<section id='comments-widget'><p>You must confirm your public display name.</p></section>"
        "<div class='biology-facts'><p>Cells divide.</p></div>"  # 'biology' is not 'bio'
        "</div></body></html>"
    )
    assert root is not None
    furniture = furniture_lines(root)
    assert key(bio) in furniture
    assert key("You must confirm your public display name.") in furniture
    assert key("Cells divide.") not in furniture
    # The article's paragraphs are not furniture: their wrapper's class says "promo", but it is
    # too big to be a box.
    assert not any(key(f"{PROSE} Paragraph {n}.") in furniture for n in range(40))


def test_add_lead_only_when_visible_and_missing() -> None:
    lead = "A visible teaser that the extractor skipped, long enough to be prose in the article."
    assert add_lead([PROSE], lead, lambda _: True) == [lead, PROSE]
    assert add_lead([PROSE], lead, lambda _: False) == [PROSE]  # only in <meta>
    assert add_lead([lead, PROSE], lead, lambda _: True) == [lead, PROSE]  # already there
    assert add_lead([PROSE], "Short.", lambda _: True) == [PROSE]


@pytest.mark.integration
def test_le_soleil_through_real_workers(settings: Settings, tmp_path: Path) -> None:
    """Served by a loopback server, fetched and cleaned by real worker processes."""
    page_path = tmp_path / "lesoleil.html.gz"
    page_path.write_bytes(gzip.compress(_soleil_rich().encode("utf-8")))
    page = Page(id="lesoleil", html_path=page_path, truth={"language": "fr"})
    with serve_pages([page]) as server, running_workers(settings, tmp_path / "logs"):
        result = enqueue([server.url("lesoleil")], settings=settings)
        status = wait_for_batch(settings, result.batch, timeout=120)
    assert status["done"]
    articles = JsonlStore(settings.output_dir).articles_path.read_text(encoding="utf-8").splitlines()
    assert len(articles) == 1
    _assert_clean_soleil(ArticleRecord.model_validate_json(articles[0]))


_PARAGRAPHS = [
    f"Paragraph {n} of the story tells what happened in enough words to count as prose here."
    for n in range(5)
]


def test_article_html_from_next_flight_data() -> None:
    """A script-rendered page: the DOM is empty, the article HTML rides in ``self.__next_f``."""
    content = "".join(f'<p class="editor-p">{text}</p>' for text in _PARAGRAPHS)
    payload = "1:" + json.dumps({"article": {"title": "T", "contentHtml": content}})
    script = "self.__next_f.push(" + json.dumps([1, payload]) + ")"
    html = f"<html><body><div id='root'></div><script>{script}</script></body></html>"
    assert clean_article(html, "https://news.example/a").text.split("\n\n") == _PARAGRAPHS


def test_article_html_from_next_data() -> None:
    content = "".join(f"<p>{text}</p>" for text in _PARAGRAPHS)
    data = json.dumps({"props": {"pageProps": {"story": {"body": content}}}})
    html = (
        "<html><body><div id='__next'></div>"
        f'<script id="__NEXT_DATA__" type="application/json">{data}</script></body></html>'
    )
    assert clean_article(html, "https://news.example/a").text.split("\n\n") == _PARAGRAPHS


def test_restore_siblings_puts_back_paragraphs_with_the_article_signature() -> None:
    body = (
        "".join(f'<p class="article-par">{text}</p>' for text in _PARAGRAPHS)
        + f'<p class="teaser">{PROSE} Teaser.</p>'
        + f'<aside><p class="article-par">{PROSE} Aside.</p></aside>'
    )
    root = parse(f"<html><body><div>{body}</div></body></html>")
    assert root is not None
    extracted = [_PARAGRAPHS[0], _PARAGRAPHS[1], _PARAGRAPHS[3]]
    assert restore_siblings(root, extracted) == _PARAGRAPHS
    # Too few matched paragraphs: nothing is trusted.
    assert restore_siblings(root, extracted[:2]) == extracted[:2]


def test_restore_subheadings_between_two_extracted_paragraphs() -> None:
    first, second, third, fourth = (
        f"Part {n}: {PROSE} With a soft hyphen in fyr\u00adir." for n in range(1, 5)
    )
    body = (
        f"<p>{first}</p><script>ads.push(1)</script><h3>What the court said</h3><p>{second}</p>"
        f"<h3>Read next</h3><ul><li>Another story entirely</li></ul>"
        f"<p>{third}</p><h2>Thursday</h2><h5>11.04: Drone strike reported</h5><p>{fourth}</p>"
    )
    root = parse(f"<html><body><article>{body}</article></body></html>")
    assert root is not None
    # The extractor's lines: soft hyphens gone, the sub-heading dropped.
    extracted = [line.replace("\u00ad", "") for line in (first, second, third, fourth)]
    restored = restore_subheadings(root, extracted)
    # Between two consecutive extracted paragraphs (past an ad script): restored.
    # Next to something the extractor left out (a link list): not. A run of headings (a live
    # ticker's day and time stamp): all of it, in page order.
    assert restored == [
        extracted[0],
        "What the court said",
        extracted[1],
        extracted[2],
        "Thursday",
        "11.04: Drone strike reported",
        extracted[3],
    ]
    assert key("fyr\u00adir") == key("fyrir") == "fyrir"


_DISPATCH = [
    "LISBON - The harbour authority opened the old ferry pier again on Tuesday, two winters after the storm.",
    "Fishermen who moored there for decades said the repairs had taken longer than anyone had promised them.",
    "The mayor said the pier would also host the summer market, which had moved inland during the works.",
    "Engineers will check the pilings every spring, and the ferry company plans a second daily crossing.",
    "Residents were invited to walk the length of the pier at noon, before the first boat came in to dock.",
]


def test_a_paragraph_split_at_a_br_is_not_restored_twice() -> None:
    """A kicker and the first paragraph in one ``<p>`` split by ``<br>``: read as the extractor's two lines.

    ``text_content()`` glues the two (``CORRESPONDENTLISBON``), so the element matched no
    extracted line and came back as a "missing" paragraph: the dispatch twice.
    """
    first = _DISPATCH[0].replace("The harbour authority", "<b>The harbour authority</b>")
    body = (
        f'<p class="standfirst">{PROSE}</p>'
        f'<p class="story-text">FROM OUR CORRESPONDENT<br>{first}</p>'
        + "".join(f'<p class="story-text">{text}</p>' for text in _DISPATCH[1:])
    )
    html = f"<html><head><title>Pier</title></head><body><article>{body}</article></body></html>"
    lines = clean_article(html, "https://news.example/pier").text.split("\n\n")
    assert lines == [PROSE, "FROM OUR CORRESPONDENT", *_DISPATCH]
    # The same, on the lines alone: the glued and the spaced reading are one paragraph.
    root = parse(html)
    assert root is not None
    extracted = ["FROM OUR CORRESPONDENT", *_DISPATCH[:3], _DISPATCH[4]]
    assert restore_siblings(root, extracted) == ["FROM OUR CORRESPONDENT", *_DISPATCH]


def test_restore_siblings_adds_a_paragraph_the_page_repeats_once() -> None:
    """The page holds a dropped paragraph twice (say a mobile copy): it is put back once."""
    body = "".join(f'<p class="story-text">{text}</p>' for text in _DISPATCH)
    body += f'<div><p class="story-text">{_DISPATCH[2]}</p></div>'
    root = parse(f"<html><body><article>{body}</article></body></html>")
    assert root is not None
    extracted = [text for index, text in enumerate(_DISPATCH) if index != 2]
    assert restore_siblings(root, extracted) == _DISPATCH


def test_shown_text_spaces_block_and_br_boundaries() -> None:
    root = parse(
        "<html><body><div id='x'>One<br>two <b>thr</b>ee<p>four</p>five<script>var six;</script>"
        "<!-- seven --><li>eight</li></div></body></html>"
    )
    assert root is not None
    (box,) = root.xpath("//div[@id='x']")
    assert shown_text(box) == "One two three four five eight"
    assert box.text_content().startswith("Onetwo")  # what the restore used to compare
    assert compact("One two") == compact("ONE-TWO") == compact("onetwo") == "onetwo"


def test_add_lead_not_when_the_text_holds_it_without_a_space() -> None:
    lead = "A visible teaser that the extractor kept, long enough to be prose in the article."
    glued = lead.replace("teaser that", "teaserthat")
    assert add_lead([glued, PROSE], lead, lambda _: True) == [glued, PROSE]
    # Over two lines (a <br> inside the teaser): there too.
    split = ["A visible teaser", "that the extractor kept, long enough to be prose in the article."]
    assert add_lead([*split, PROSE], lead, lambda _: True) == [*split, PROSE]
