"""Stage 2, language: which language the article is written in.

The detector (:mod:`tasks.langid`: langdetect, seeded and capped at ``sample_chars``, with
pycld2 and py3langid as second opinions and the page's ``lang`` tag as a tie-breaker) reads
a sample of the article, not of the page: JSON-LD ``articleBody`` when the page has one,
else paragraphs of its ``<article>``/``<main>``, skipping headers, footers and consent
banners (an English cookie notice must not make a German article English). The clean stage
checks the guess again on the extracted body, which is what the record's ``language`` means.
"""

from __future__ import annotations

from typing import Any

from tasks.html import sketch
from tasks.langid import LanguageGuess, detect_language, normalize_code
from tasks.page_guard import CpuGuard, PageBudget, check_page
from tasks.record import Job
from worker.app import app
from worker.stage import StageTask, run_stage

__all__ = ["STAGE", "LanguageGuess", "detect_language", "language_stage", "normalize_code"]

STAGE = "language"


def language_stage(job: Job, html: str, sample_chars: int, budget: PageBudget | None = None) -> Job:
    """Detect the page's language from a sample of its article text (title if it has none).

    A page past ``budget`` ends as ``page_too_complex`` here, before selectolax parses it
    (:mod:`tasks.page_guard`).
    """
    budget = budget or PageBudget()
    check_page(html, budget)
    page = sketch(html, sample_chars, CpuGuard(budget.max_cpu_seconds))
    guess = detect_language(page.text_sample or (page.title or ""), page.declared_language, sample_chars)
    record = job.record.model_copy(
        update={"language": guess.language, "language_confidence": guess.confidence}
    )
    return job.model_copy(update={"record": record, "html_lang": page.declared_language})


@app.task(bind=True, base=StageTask, name="ingest.language")
def language(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Celery wrapper of :func:`language_stage`."""

    def stage(current: Job) -> Job:
        html = self.bodies.get(current.body_key or "")
        budget = PageBudget.from_settings(self.settings)
        return language_stage(current, html, self.settings.language_sample_chars, budget)

    return run_stage(self, STAGE, job, stage)
