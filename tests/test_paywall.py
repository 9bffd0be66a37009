"""Paywall notices: cut from the end of the article text, flagged as ``paywalled``, prose kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tasks.clean import clean_article, clean_stage
from tasks.html import parse
from tasks.paywall import MAX_NOTICE_LINES, cut_paywall_notices, line_kind
from tasks.record import SCHEMA_VERSION, ArticleRecord, DeadLetter, Job
from tests.test_schema import validate_dead_letter, validate_record

PROSE = [
    "The harbour authority approved the new ferry terminal on Tuesday after two years of hearings.",
    "Construction is due to start in the spring and the first crossings are planned for late next year.",
    "Residents of the old quarter had asked for a noise study, which the council agreed to fund.",
]

LOCKED_NOTICES = {
    "en": "The rest of this article is only available to subscribers.",
    "en-continue": "Subscribe to continue reading.",
    "en-register": "Create a free account to continue reading.",
    "en-percent": "72% of this article remains. Subscribe to read the full story.",
    "en-limit": "You have reached your limit of free articles this month.",
    "fr": "Il vous reste 57.09% de cet article à lire. La suite est réservée aux abonnés.",
    "fr-reserve": "Cet article est réservé aux abonnés.",
    "de": "Dieser Artikel ist nur für Abonnenten verfügbar.",
    "de-weiter": "Jetzt weiterlesen mit Plus",
    "es": "Este artículo es exclusivo para suscriptores.",
    "es-seguir": "Suscríbete para seguir leyendo",
    "it": "Questo articolo è riservato agli abbonati.",
    "it-continuare": "Per continuare a leggere questo articolo abbonati",
    "pt": "Este conteúdo é exclusivo para assinantes.",
    "pt-continuar": "Assine para continuar lendo",
    "nl": "Dit artikel is alleen beschikbaar voor abonnees.",
    "nl-verder": "Word abonnee om verder te lezen",
    "ja": "この記事は有料会員限定です。",
    "ja-continue": "この記事の続きを読むには、有料会員登録が必要です。",
    "ja-remaining": "残り1234文字（全文2048文字）",
    "ja-label": "有料記事",
}

OFFERS = {
    "en": "Already a subscriber? Log in",
    "fr": "Déjà abonné ? Se connecter",
    "de": "Sie haben bereits ein Abo? Hier anmelden",
    "ja-members": "有料会員になると会員限定の有料記事もお読みいただけます。",
    "ja-campaign": "【春のキャンペーン】有料記事読み放題！今なら3カ月間月額100円！詳しくはこちら",
}


def _page(body: str, head: str = "") -> str:
    return f"<html lang='en'><head><title>Ferry terminal</title>{head}</head><body>{body}</body></html>"


@pytest.mark.parametrize("notice", LOCKED_NOTICES.values(), ids=LOCKED_NOTICES.keys())
def test_locked_notice_is_cut_and_flagged(notice: str) -> None:
    cut = cut_paywall_notices([*PROSE, notice], parse(_page("<p>x</p>")))
    assert cut.lines == PROSE
    assert cut.notice is True
    assert cut.dropped == (notice,)


@pytest.mark.parametrize("offer", OFFERS.values(), ids=OFFERS.keys())
def test_subscription_offer_is_cut_but_not_flagged(offer: str) -> None:
    """An offer ends free articles too: not article text, yet it does not say this one is locked."""
    cut = cut_paywall_notices([*PROSE, offer], None)
    assert cut.lines == PROSE
    assert cut.notice is False


def test_a_run_of_notices_at_the_end_is_cut() -> None:
    lines = [*PROSE, LOCKED_NOTICES["fr"], OFFERS["fr"]]
    cut = cut_paywall_notices(lines, None)
    assert cut.lines == PROSE and cut.notice is True and len(cut.dropped) == 2
    many = [*PROSE, *[OFFERS["en"]] * (MAX_NOTICE_LINES + 2)]
    assert len(cut_paywall_notices(many, None).dropped) == MAX_NOTICE_LINES


def test_an_article_about_subscriptions_keeps_its_prose() -> None:
    lines = [
        "The newspaper said on Monday that digital subscribers now outnumber print readers.",
        "Half of its articles are reserved for subscribers, and the rest of the site stays free to read.",
        "Analysts said the paywall had worked because readers could still try a few free articles a month.",
        "The company expects to reach one million subscribers by the end of the year, its chief said.",
        "Subscribers will also get access to the archive, which goes back to 1944.",
    ]
    cut = cut_paywall_notices(lines, None)
    assert cut.lines == lines and cut.notice is False and cut.dropped == ()


def test_a_notice_in_the_middle_of_the_prose_is_kept() -> None:
    lines = [PROSE[0], "Subscribe to continue reading.", PROSE[1], PROSE[2]]
    assert cut_paywall_notices(lines, None).lines == lines


def test_a_paragraph_that_quotes_a_notice_is_kept() -> None:
    quoted = "“Subscribe to continue reading,” the banner said, before the site removed it."
    long_line = (
        "Readers who opened the page on Sunday found the familiar grey box at the foot of the story, "
        "and the editors conceded that it had been shown by mistake. Subscribe to continue reading."
    )
    for last in (quoted, long_line):
        cut = cut_paywall_notices([*PROSE, last], None)
        assert cut.lines == [*PROSE, last] and cut.notice is False
    assert line_kind("Netflix said the rest of its catalogue is available to subscribers.") is None


def test_paywall_box_lines_are_cut_but_paid_content_and_paragraphs_are_not() -> None:
    page = _page(
        "<article>" + "".join(f"<p>{line}</p>" for line in PROSE) + "</article>"
        "<div class='paywall-prompt'><p>Sign in or subscribe for the whole story</p>"
        "<a href='/subscribe'>Subscribe</a></div>"
        "<p class='paywall'>The club now has 300 members and subscribers.</p>"
    )
    root = parse(page)
    cut = cut_paywall_notices([*PROSE, "Sign in or subscribe for the whole story"], root)
    assert cut.lines == PROSE and cut.notice is False  # a box alone does not say the article is locked
    # A paragraph marked "paywall" (sites mark their paid paragraphs so) is article text.
    kept = [*PROSE, "The club now has 300 members and subscribers."]
    assert cut_paywall_notices(kept, root).lines == kept


def test_jsonld_paid_content_is_never_a_notice_box() -> None:
    jsonld = {
        "@context": "https://schema.org",
        "@type": "NewsArticle",
        "isAccessibleForFree": False,
        "hasPart": {"@type": "WebPageElement", "isAccessibleForFree": False, "cssSelector": ".paywall-box"},
    }
    last = "Members can register for the spring excursion at the harbour office."
    page = _page(
        f"<div class='paywall-box'><p>{PROSE[0]}</p><p>{last}</p><a href='/trip'>Details</a></div>",
        head=f"<script type='application/ld+json'>{json.dumps(jsonld)}</script>",
    )
    assert cut_paywall_notices([PROSE[0], last], parse(page)).lines == [PROSE[0], last]


ARTICLE = (
    "<article><h1>Ferry terminal approved</h1>"
    + "".join(
        f"<p>{line} The decision was welcomed by the ferry operators, who had waited a long time for it.</p>"
        for line in PROSE
    )
    + "<p><strong>Il vous reste 57% de cet article à lire. La suite est réservée aux abonnés.</strong></p>"
    "</article>"
)


def test_clean_article_cuts_the_notice() -> None:
    article = clean_article(_page(ARTICLE), "https://news.example.org/ferry")
    assert "réservée aux abonnés" not in article.text
    assert PROSE[2] in article.text
    assert article.paywall_notice is True
    assert article.metadata.paywalled is None  # the page's JSON-LD says nothing


def test_clean_stage_marks_the_record_paywalled_in_the_current_schema() -> None:
    queued = ArticleRecord(
        schema_version=1,  # stamped by an older intake: the clean stage's output is this version's
        id="a" * 32,
        url="https://news.example.org/ferry",
        fetched_at=datetime.now(UTC),
    )
    record = clean_stage(Job(batch="b", record=queued), _page(ARTICLE)).record
    assert "abonnés" not in record.text and PROSE[0] in record.text
    assert record.paywalled is True
    assert record.schema_version == SCHEMA_VERSION == 2
    validate_record(record.model_dump(mode="json"))


def test_clean_stage_without_notice_keeps_the_pages_own_statement() -> None:
    free = ARTICLE.split("<p><strong>")[0] + "</article>"
    jsonld = {"@context": "https://schema.org", "@type": "NewsArticle", "isAccessibleForFree": True}
    page = _page(free, head=f"<script type='application/ld+json'>{json.dumps(jsonld)}</script>")
    record = clean_stage(
        Job(batch="b", record=ArticleRecord(id="b" * 32, url="https://e.org/a")), page
    ).record
    assert record.paywalled is False and PROSE[2] in record.text
    assert clean_stage(Job(batch="b", record=record), _page(free)).record.paywalled is None


def test_version_1_documents_stay_readable() -> None:
    """Stored records and dead letters of version 1 validate and parse (readers check no version)."""
    old = ArticleRecord(id="c" * 32, url="https://e.org/old", paywalled=None).model_dump(mode="json")
    old["schema_version"] = 1
    validate_record(old)
    assert ArticleRecord.model_validate(old).schema_version == 1
    letter = DeadLetter(
        id=None, url="https://e.org/x", batch="b", stage="fetch", reason="bad_url", error="e", attempts=1,
        failed_at=datetime.now(UTC),
    ).model_dump(mode="json")  # fmt: skip
    letter["schema_version"] = 1
    validate_dead_letter(letter)
    assert DeadLetter.model_validate_json(json.dumps(letter)).schema_version == 1
