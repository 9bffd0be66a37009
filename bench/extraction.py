"""Extraction quality and speed on the shared news corpus: our offline path vs plain trafilatura.

Reads ``../shared/corpus/news`` (146 pages, 25 languages) and/or ``../shared/corpus/l3s-gn1``
(315 hand-labelled English pages from 2008; research use only, read in place, never copied)
and prints one table per corpus: body F1 / precision / recall (word 4-gram shingles, the
corpus README metric), title exact match (L3S-GN1: its hand-marked headline), published date
same-day, author F1, language accuracy on bodies and on titles alone (L3S-GN1 has no dates
or authors: those columns are blank), CPU milliseconds per page and pages/s on one core.

"ours" is :func:`worker.offline.process_html` without entities: exactly the language and
clean stages the workers run (parse, language, clean, metadata). "trafilatura" is plain
``trafilatura.extract(html, include_comments=False)`` for the text plus
``trafilatura.extract_metadata(html)`` for title, authors and date (the reference the
extraction issue sets, CPU included); it detects no language, so its language columns use
langdetect (seeded) on its text and on the true title.

Run: ``.venv/bin/python bench/extraction.py [--corpus news|l3s-gn1|all] [--repeat N]
[--only ours|trafilatura] [--show-errors]``. Times are this process's CPU time per page (a
busy machine does not inflate them): "CPU ms" is what extracts text and metadata (ours: the
clean stage; trafilatura: ``extract`` + ``extract_metadata``), "all ms" adds language
detection (ours: the language stage; trafilatura: langdetect on its text). pages/s is
wall-clock.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CORPORA = {"news": SHARED / "news", "l3s-gn1": SHARED / "l3s-gn1"}
CORPUS = CORPORA["news"]

_TOKEN = re.compile(r"\w+")


@dataclass
class Prediction:
    """What an extractor says about one page."""

    text: str = ""
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    published: str | None = None
    language: str | None = None
    #: CPU seconds of the part that extracts text and metadata (ours: the clean stage;
    #: trafilatura: extract + extract_metadata), the comparison the extraction issue sets.
    extract_cpu: float = 0.0


@dataclass
class Scores:
    """Per-page scores of one extractor, aggregated by :meth:`row`."""

    precision: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)
    title: list[bool] = field(default_factory=list)
    date: list[bool] = field(default_factory=list)
    author_f1: list[float] = field(default_factory=list)
    lang_body: list[bool] = field(default_factory=list)
    lang_title: list[bool] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    extract_cpu_seconds: float = 0.0
    pages: int = 0

    def row(self) -> dict[str, float]:
        """The aggregate numbers: means over pages, F1 as the harmonic mean of P and R."""
        p = _mean(self.precision)
        r = _mean(self.recall)
        return {
            "F1": 2 * p * r / (p + r) if p + r else 0.0,
            "P": p,
            "R": r,
            "title": _mean(self.title),
            "date": _mean(self.date),
            "author F1": _mean(self.author_f1),
            "lang body": _mean(self.lang_body),
            "lang title": _mean(self.lang_title),
            "CPU ms": 1000 * self.extract_cpu_seconds / self.pages if self.pages else 0.0,
            "all ms": 1000 * self.cpu_seconds / self.pages if self.pages else 0.0,
            "pages/s": self.pages / self.seconds if self.seconds else 0.0,
        }


def _mean(values: list[float] | list[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    """Word n-gram multiset of ``text`` (``\\w+`` tokens, case kept)."""
    tokens = _TOKEN.findall(text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(max(len(tokens) - n + 1, 0)))


def body_scores(truth: str, predicted: str) -> tuple[float | None, float | None]:
    """Per-page precision and recall over shingles (None when undefined)."""
    true_sh, pred_sh = shingles(truth), shingles(predicted)
    tp = sum((true_sh & pred_sh).values())
    fp = sum(pred_sh.values()) - tp
    fn = sum(true_sh.values()) - tp
    total = tp + fp + fn
    if not total:
        return None, None
    tp_, fp_, fn_ = tp / total, fp / total, fn / total
    precision = tp_ / (tp_ + fp_) if pred_sh else None
    recall = tp_ / (tp_ + fn_) if true_sh else None
    return precision, recall


def fold(text: str | None) -> str:
    """NFKC and whitespace folding (the title metric)."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def same_day(truth: str | None, predicted: str | None) -> bool:
    """Same calendar day in UTC (naive times are taken as UTC)."""

    def day(value: str) -> str | None:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return moment.date().isoformat()

    return bool(truth and predicted and day(truth) is not None and day(truth) == day(predicted))


def author_f1(truth: list[str], predicted: list[str]) -> float:
    """Set F1 over normalised names (both empty counts as a match)."""

    def norm(names: list[str]) -> set[str]:
        return {" ".join(fold(name).lower().split()) for name in names if name.strip()}

    t, p = norm(truth), norm(predicted)
    if not t and not p:
        return 1.0
    hit = len(t & p)
    if not hit:
        return 0.0
    precision, recall = hit / len(p), hit / len(t)
    return 2 * precision * recall / (precision + recall)


def ours() -> tuple[Callable[[str, str], Prediction], Callable[[str], str | None]]:
    """Our offline path (no entities) and our language detector for titles."""
    from config import Settings
    from tasks.clean import clean_stage
    from tasks.errors import PermanentError
    from tasks.language import detect_language, language_stage
    from tasks.page_guard import PageBudget
    from tasks.record import ArticleRecord, Job, record_id

    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    budget = PageBudget.from_settings(settings)
    sample = settings.language_sample_chars

    def extract(html: str, url: str) -> Prediction:
        # The stages worker.offline.process_html runs, timed apart: language, then clean.
        job = Job(batch="bench", record=ArticleRecord(id=record_id(url), url=url, final_url=url))
        cpu_started = time.process_time()
        try:
            job = language_stage(job, html, sample, budget)
            cpu_started = time.process_time()
            job = clean_stage(job, html, sample, budget)
        except PermanentError:
            return Prediction(extract_cpu=time.process_time() - cpu_started)
        cpu = time.process_time() - cpu_started
        record = job.record
        return Prediction(
            record.text, record.title, record.authors, record.published_at, record.language, cpu
        )

    return extract, lambda title: detect_language(title).language


def plain_trafilatura() -> tuple[Callable[[str, str], Prediction], Callable[[str], str | None]]:
    """trafilatura with its defaults; langdetect (seeded, first 1,000 characters) for language."""
    import trafilatura
    from langdetect import DetectorFactory, detect
    from langdetect.lang_detect_exception import LangDetectException

    DetectorFactory.seed = 0

    def language(text: str) -> str | None:
        try:
            return detect(text[:1000]).split("-")[0]
        except LangDetectException:
            return None

    def extract(html: str, url: str) -> Prediction:
        cpu_started = time.process_time()
        text = trafilatura.extract(html, url=url, include_comments=False) or ""
        meta = trafilatura.extract_metadata(html, default_url=url)
        cpu = time.process_time() - cpu_started
        if meta is None:
            return Prediction(text, language=language(text), extract_cpu=cpu)
        authors = [a.strip() for a in (meta.author or "").split(";") if a.strip()]
        return Prediction(text, meta.title, authors, meta.date, language(text), cpu)

    return extract, language


def evaluate(
    makers: dict[str, Callable[[], tuple[Callable[[str, str], Prediction], Callable[[str], str | None]]]],
    pages: list[tuple[dict[str, object], str]],
    repeat: int,
    show_errors: bool,
) -> dict[str, Scores]:
    """Run the extractors over the pages and score the first pass.

    The extractors take turns page by page (in alternating order), so a busy machine slows
    them alike and the pages/s columns stay comparable.
    """
    built = {name: make() for name, make in makers.items()}
    for extract, _ in built.values():  # warm-up: imports, lazy models
        extract(pages[0][1], str(pages[0][0]["url"]))
    scores = {name: Scores() for name in built}
    predictions: dict[str, list[Prediction]] = {name: [] for name in built}
    names = list(built)
    for round_ in range(repeat):
        for index, (truth, html) in enumerate(pages):
            order = names if (index + round_) % 2 == 0 else names[::-1]
            for name in order:
                started, cpu_started = time.perf_counter(), time.process_time()
                prediction = built[name][0](html, str(truth["url"]))
                scores[name].seconds += time.perf_counter() - started
                scores[name].cpu_seconds += time.process_time() - cpu_started
                scores[name].extract_cpu_seconds += prediction.extract_cpu
                scores[name].pages += 1
                if round_ == 0:
                    predictions[name].append(prediction)
    for name, (_, title_language) in built.items():
        _score(name, scores[name], pages, predictions[name], title_language, show_errors)
    return scores


def _score(
    name: str,
    scores: Scores,
    pages: list[tuple[dict[str, object], str]],
    predictions: list[Prediction],
    title_language: Callable[[str], str | None],
    show_errors: bool,
) -> None:
    for (truth, _), pred in zip(pages, predictions, strict=True):
        precision, recall = body_scores(str(truth["body"]), pred.text)
        if precision is not None:
            scores.precision.append(precision)
        if recall is not None:
            scores.recall.append(recall)
        title_ok = fold(str(truth["title"])) == fold(pred.title)
        scores.title.append(title_ok)
        if truth.get("published"):
            scores.date.append(same_day(str(truth["published"]), pred.published))
        if "authors" in truth:
            scores.author_f1.append(author_f1(list(truth["authors"]), pred.authors))  # type: ignore[call-overload]
        scores.lang_body.append(pred.language == truth["language"])
        title_lang = title_language(str(truth["title"]))
        scores.lang_title.append(title_lang == truth["language"])
        if show_errors:
            _show(name, truth, pred, precision, recall, title_ok, title_lang)


def _show(
    name: str,
    truth: dict[str, object],
    pred: Prediction,
    precision: float | None,
    recall: float | None,
    title_ok: bool,
    title_lang: str | None,
) -> None:
    problems = []
    if precision is not None and precision < 0.9:
        problems.append(f"P={precision:.2f}")
    if recall is not None and recall < 0.9:
        problems.append(f"R={recall:.2f}")
    if precision is None and recall is not None:
        problems.append("no text")
    if not title_ok:
        problems.append(f"title {pred.title!r} != {truth['title']!r}")
    if truth.get("published") and not same_day(str(truth["published"]), pred.published):
        problems.append(f"date {pred.published!r} != {truth['published']!r}")
    if "authors" in truth and author_f1(list(truth["authors"]), pred.authors) < 1:  # type: ignore[call-overload]
        problems.append(f"authors {pred.authors!r} != {truth['authors']!r}")
    if pred.language != truth["language"]:
        problems.append(f"lang {pred.language} != {truth['language']}")
    if title_lang != truth["language"]:
        problems.append(f"title lang {title_lang} != {truth['language']}")
    if problems:
        print(f"[{name}] {truth['id']}: " + "; ".join(problems))


def load_corpus(corpus: Path = CORPUS) -> list[tuple[dict[str, object], str]]:
    """(ground truth, page HTML) for every page of ``corpus``.

    L3S-GN1's hand-marked ``headline`` stands in for ``title``; it has no authors or dates.
    """
    pages = []
    for line in (corpus / "index.jsonl").read_text(encoding="utf-8").splitlines():
        truth = json.loads(line)
        truth.setdefault("title", truth.get("headline") or "")
        html = gzip.decompress((corpus / str(truth["html"])).read_bytes()).decode("utf-8")
        pages.append((truth, html))
    return pages


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=(*CORPORA, "all"), default="news", help="which dev set")
    parser.add_argument("--repeat", type=int, default=1, help="timed passes over the corpus")
    parser.add_argument("--only", choices=("ours", "trafilatura"), help="run one extractor")
    parser.add_argument("--show-errors", action="store_true", help="print per-page misses")
    args = parser.parse_args()
    names = list(CORPORA) if args.corpus == "all" else [args.corpus]
    missing = [CORPORA[name] for name in names if not (CORPORA[name] / "index.jsonl").is_file()]
    if missing:
        print(f"corpus not found at {', '.join(map(str, missing))} (expected beside the project)")
        return 2
    if hasattr(os, "sched_setaffinity"):  # one core: the first this process may use
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    extractors = {"ours": ours, "trafilatura": plain_trafilatura}
    chosen = {name: make for name, make in extractors.items() if not args.only or name == args.only}
    for corpus_name in names:
        pages = load_corpus(CORPORA[corpus_name])
        scored = evaluate(chosen, pages, args.repeat, args.show_errors)
        rows = {name: scores.row() for name, scores in scored.items()}
        columns = list(next(iter(rows.values())))
        print(
            f"\n{corpus_name}: {len(pages)} pages of {CORPORA[corpus_name]}, {args.repeat} timed pass(es),"
            " one core, extractors interleaved\n"
        )
        print(f"{'extractor':<12}" + "".join(f"{c:>11}" for c in columns))
        for name, row in rows.items():
            blank = {"date", "author F1"} if corpus_name == "l3s-gn1" else set()
            cells = [
                f"{'-':>11}"
                if c in blank
                else f"{row[c]:>11.1f}"
                if c in ("pages/s", "CPU ms", "all ms")
                else f"{row[c]:>11.4f}"
                for c in columns
            ]
            print(f"{name:<12}" + "".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
