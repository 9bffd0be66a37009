"""How far to trust ``language_confidence``: reliability of the language detector, before and
after calibration, and the fit of the calibration table it ships (tasks/langid.CALIBRATION).

Reads ``../shared/corpus/news`` (146 pages, 25 languages, grouped by ``publisher``) and
``../shared/corpus/l3s-gn1`` (315 English pages, grouped by site). From every page it takes
several samples: the title (``headline``), the first 30, 100, 300 and 1,000 characters of
the true body, and the language stage's own sample of the page (``page``: what a record's
confidence is computed on). Each sample is judged twice: with the page's declared tag, as the
pipeline does, and without one (``ingest extract`` on a tag-less page).

The calibration map is a table: P(right) by the sample's length in letters (<25, <50, <120,
longer), how many detectors put the winner first (all, most, few) and whether the page's tag
names it. Each cell counts every page once (the mean over the page's samples in that cell:
samples of one page are not independent), is shrunk towards its coarser cell with
``--shrink`` pseudo-pages and stays at most (P + 1) / (P + 2) for P pages (see :func:`fit`).
It is fitted on some sites and scored on the others (``--folds`` folds by publisher / site,
never fit and scored on one site): the "CV" columns are those out-of-fold predictions. "ship"
is the table in the code, fitted on every page, so scored in-sample. "before" is the old
confidence (the winner's vote share, times 0.9 below 120 letters).

Prints: (1) accuracy, ECE and Brier score per corpus and sample kind; (2) the reliability
table per confidence bin, before and after; (3) the table fitted on every page, with its page
counts, as the Python literal to paste into tasks/langid.py, and whether it equals the shipped
one. Never prints corpus text. Run: ``.venv/bin/python bench/language.py``; about 15 s.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

from tasks.html import sketch  # noqa: E402
from tasks.langid import (  # noqa: E402
    CALIBRATION,
    DECLARED_ONLY_CONFIDENCE,
    LENGTH_BUCKETS,
    SHORT_LETTERS,
    Evidence,
    agreement,
    detect_language,
    gather,
    length_bucket,
    normalize_code,
)

KINDS = ("title", "body30", "body100", "body300", "body1000", "page")
AGREEMENTS = ("all", "most", "few")
BUCKETS = (*(f"<{bound}" for bound in LENGTH_BUCKETS), "long")
#: (length bucket, agreement, tag names the winner): a cell of the table.
Cell = tuple[str, str, bool]


@dataclass
class Sample:
    """One judged sample: where it comes from, the evidence, the answer and its confidences."""

    corpus: str
    group: str
    page: str
    kind: str
    tagged: bool
    right: bool
    language: str | None
    evidence: Evidence | None
    before: float | None
    shipped: float | None
    cv: float | None = None


def old_confidence(evidence: Evidence) -> float:
    """What ``language_confidence`` was before the calibration."""
    return round(min(evidence.score * (0.9 if evidence.letters < SHORT_LETTERS else 1.0), 1.0), 4)


def cell_of(evidence: Evidence) -> Cell:
    return (length_bucket(evidence.letters), agreement(evidence), evidence.declared == evidence.language)


def load_samples(sample_chars: int) -> list[Sample]:
    samples = []
    for corpus, title_key, group_key in (("news", "title", "publisher"), ("l3s-gn1", "headline", None)):
        for line in (CORPUS / corpus / "index.jsonl").read_text(encoding="utf-8").splitlines():
            entry = json.loads(line)
            html = gzip.decompress((CORPUS / corpus / entry["html"]).read_bytes()).decode("utf-8", "replace")
            sketched = sketch(html, sample_chars)
            host = urlsplit(entry["url"]).hostname or entry["url"]
            group = f"{corpus}:{entry[group_key] if group_key else host.removeprefix('www.')}"
            body = entry.get("body") or ""
            texts = {"title": entry.get(title_key) or ""}
            texts.update({f"body{size}": body[:size] for size in (30, 100, 300, 1000)})
            texts["page"] = sketched.text_sample or (sketched.title or "")
            for kind, text in texts.items():
                for tagged in (True, False):
                    declared = sketched.declared_language if tagged else None
                    guess = detect_language(text, declared, sample_chars)
                    if guess.confidence is None:
                        continue  # no answer, no claim to score
                    evidence = gather(text, declared, sample_chars)
                    assert evidence is None or evidence.language == guess.language
                    before = old_confidence(evidence) if evidence else DECLARED_ONLY_CONFIDENCE
                    samples.append(
                        Sample(
                            corpus,
                            group,
                            entry["id"],
                            kind,
                            tagged,
                            guess.language == normalize_code(entry["language"]),
                            guess.language,
                            evidence,
                            before,
                            guess.confidence,
                        )
                    )
    return samples


def fit(samples: Iterable[Sample], shrink: float) -> tuple[dict[Cell, float], dict[Cell, int]]:
    """The calibration table fitted on ``samples``, and the pages behind each cell.

    Levels: every sample, then by agreement, then by length bucket, then by tag (agreement
    first, so that a cell no page reached, such as a long text on which the detectors
    disagree, takes the accuracy of its agreement, not of its length). At each level a page
    counts once (its samples' mean correctness); a cell's estimate is
    ``(right + shrink * parent) / (pages + shrink)``, the root's parent being 0.5. No estimate
    exceeds ``(P + 1) / (P + 2)`` for the P pages seen (Laplace's rule for a cell where none was
    wrong): about 460 pages cannot tell 99.8% from 100%. Within a row, the cell where the tag
    names the winner is at least the other one (on one page or four, noise says otherwise).
    """
    order = (1, 0, 2)  # agreement, length bucket, tag
    levels: list[dict[tuple[object, ...], float]] = []
    pages: dict[Cell, int] = {}
    scored = [(cell_of(s.evidence), s.page, s.right) for s in samples if s.evidence is not None]
    seen = len({page for _, page, _ in scored})
    ceiling = (seen + 1) / (seen + 2)
    for depth in range(4):
        by_key: dict[tuple[object, ...], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        for cell, page, right in scored:
            by_key[tuple(cell[i] for i in order[:depth])][page].append(right)
        estimates = {}
        for key, per_page in by_key.items():
            hits = sum(sum(values) / len(values) for values in per_page.values())
            parent = levels[-1][key[:-1]] if depth else 0.5
            estimates[key] = (hits + shrink * parent) / (len(per_page) + shrink)
            if depth == 3:
                agreed, bucket, tag = (str(key[0]), str(key[1]), bool(key[2]))
                pages[(bucket, agreed, tag)] = len(per_page)
        levels.append(estimates)
    table = {}
    for bucket in BUCKETS:
        for agreed in AGREEMENTS:
            for tag in (True, False):
                cell = (bucket, agreed, tag)
                estimate = levels[0][()]
                for depth in (1, 2, 3):
                    estimate = levels[depth].get(tuple(cell[i] for i in order[:depth]), estimate)
                table[cell] = round(min(estimate, ceiling), 3)
    for bucket in BUCKETS:  # a tag naming the winner is never evidence against it
        for agreed in AGREEMENTS:
            other = table[(bucket, agreed, False)]
            table[(bucket, agreed, True)] = max(table[(bucket, agreed, True)], other)
    return table, pages


def cross_validate(samples: list[Sample], folds: int, shrink: float) -> None:
    """Fill each sample's ``cv`` confidence from a table fitted on the other folds' sites."""
    fold_of = {group: zlib.crc32(group.encode()) % folds for group in {s.group for s in samples}}
    for fold in range(folds):
        table, _ = fit((s for s in samples if fold_of[s.group] != fold), shrink)
        for sample in samples:
            if fold_of[sample.group] == fold:
                ev = sample.evidence
                sample.cv = table[cell_of(ev)] if ev is not None else sample.before


def ece(pairs: list[tuple[float, bool]], bins: int) -> float:
    """Expected calibration error: the count-weighted gap between confidence and accuracy per bin."""
    totals: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for confidence, right in pairs:
        total = totals[min(int(confidence * bins), bins - 1)]
        total[0] += 1
        total[1] += confidence
        total[2] += right
    return sum(abs(c - r) for _, c, r in totals.values()) / len(pairs) if pairs else 0.0


def brier(pairs: list[tuple[float, bool]]) -> float:
    return sum((confidence - right) ** 2 for confidence, right in pairs) / len(pairs) if pairs else 0.0


def pairs_of(samples: Iterable[Sample], which: Callable[[Sample], float | None]) -> list[tuple[float, bool]]:
    return [(value, s.right) for s in samples if (value := which(s)) is not None]


def summary_table(samples: list[Sample], bins: int) -> None:
    print("1. Accuracy and calibration per sample set (ECE over", bins, "bins; Brier: mean squared error)")
    header = (
        f"{'set':28s} {'n':>5s} {'accuracy':>8s} {'ECE before':>10s} {'ECE CV':>7s} {'ECE ship':>8s}"
        f" {'Brier before':>12s} {'Brier CV':>8s}"
    )
    print(header)
    print("-" * len(header))
    sets: list[tuple[str, list[Sample]]] = []
    for corpus in ("news", "l3s-gn1"):
        for kind in KINDS:
            chosen = [s for s in samples if s.corpus == corpus and s.kind == kind and s.tagged]
            sets.append((f"{corpus} {kind} (tag)", chosen))
    sets += [
        ("all, with the page's tag", [s for s in samples if s.tagged]),
        ("all, without a tag", [s for s in samples if not s.tagged]),
        ("short (<50 letters), both", [s for s in samples if s.evidence and s.evidence.letters < 50]),
        ("everything", samples),
    ]
    for name, chosen in sets:
        before = pairs_of(chosen, lambda s: s.before)
        cv = pairs_of(chosen, lambda s: s.cv)
        shipped = pairs_of(chosen, lambda s: s.shipped)
        accuracy = sum(s.right for s in chosen) / len(chosen) if chosen else 0.0
        print(
            f"{name:28s} {len(chosen):5d} {accuracy:8.3f} {ece(before, bins):10.4f} {ece(cv, bins):7.4f}"
            f" {ece(shipped, bins):8.4f} {brier(before):12.4f} {brier(cv):8.4f}"
        )


def reliability_table(samples: list[Sample], bins: int) -> None:
    print(f"\n2. Reliability per confidence bin, every sample (n={len(samples)})")
    half = f"{'n':>5s} {'mean conf':>9s} {'accuracy':>8s}"
    header = f"{'bin':>11s} | {half} | {half}"
    print(f"{'':11s} | {'before':^24s} | {'after (cross-validated)':^24s}")
    print(header)
    print("-" * len(header))
    columns = []
    for which in (lambda s: s.before, lambda s: s.cv):
        per_bin: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for confidence, right in pairs_of(samples, which):
            total = per_bin[min(int(confidence * bins), bins - 1)]
            total[0] += 1
            total[1] += confidence
            total[2] += right
        columns.append(per_bin)
    for index in range(bins):
        cells = []
        for per_bin in columns:
            n, summed, hits = per_bin.get(index, [0, 0.0, 0.0])
            cells.append(f"{int(n):5d} {summed / n:9.3f} {hits / n:8.3f}" if n else f"{0:5d} {'':9s} {'':8s}")
        print(f"{f'{index / bins:.2f}-{(index + 1) / bins:.2f}':>11s} | {cells[0]} | {cells[1]}")
    for label, which in (("before", lambda s: s.before), ("after (CV)", lambda s: s.cv)):
        pairs = pairs_of(samples, which)
        print(f"ECE {label}: {ece(pairs, bins):.4f}")


def concentration(samples: list[Sample]) -> None:
    print("\n   The records' case (the language stage's sample of each news page, with its tag):")
    chosen = [s for s in samples if s.corpus == "news" and s.kind == "page" and s.tagged]
    for label, which in (("before", lambda s: s.before), ("after", lambda s: s.shipped)):
        values = Counter(which(s) for s in chosen)
        value, count = values.most_common(1)[0]
        print(
            f"   {label}: {len(values)} distinct values; the commonest, {value}, on {count} of {len(chosen)}"
            f" pages; wrong answers: {sum(not s.right for s in chosen)}"
        )


def fitted_table(samples: list[Sample], shrink: float) -> None:
    table, pages = fit(samples, shrink)
    print(f"\n3. The table fitted on every page (shrink {shrink:g}); pages per cell as (tag names it, not)")
    print("CALIBRATION: dict[tuple[str, str], tuple[float, float]] = {")
    for bucket in BUCKETS:
        for agreed in AGREEMENTS:
            row = (table[(bucket, agreed, True)], table[(bucket, agreed, False)])
            counts = (pages.get((bucket, agreed, True), 0), pages.get((bucket, agreed, False), 0))
            print(f'    ("{bucket}", "{agreed}"): ({row[0]}, {row[1]}),  # pages {counts[0]}, {counts[1]}')
    print("}")
    shipped = {
        (bucket, agreed, tag): CALIBRATION.get((bucket, agreed), (None, None))[0 if tag else 1]
        for bucket, agreed, tag in table
    }
    differs = {cell: (shipped[cell], value) for cell, value in table.items() if shipped[cell] != value}
    if differs:
        print(
            f"tasks/langid.CALIBRATION differs from this fit in {len(differs)} cells"
            f" (shipped, fitted): {differs}"
        )
    else:
        print("tasks/langid.CALIBRATION equals this fit.")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds, by publisher / site")
    parser.add_argument("--bins", type=int, default=10, help="equal-width confidence bins of the ECE")
    parser.add_argument("--shrink", type=float, default=2.0, help="pseudo-pages towards the coarser cell")
    parser.add_argument("--sample-chars", type=int, default=1000, help="INGEST_LANGUAGE_SAMPLE_CHARS")
    args = parser.parse_args()
    if not all((CORPUS / name / "index.jsonl").exists() for name in ("news", "l3s-gn1")):
        print(f"corpus not found at {CORPUS} (expected ../shared/corpus/news and l3s-gn1 beside the project)")
        return 2
    samples = load_samples(args.sample_chars)
    cross_validate(samples, args.folds, args.shrink)
    groups = len({s.group for s in samples})
    pages = len({s.page for s in samples})
    print(
        f"{len(samples)} samples of {pages} pages from {groups} publishers/sites,"
        f" {args.folds} folds by site\n"
    )
    summary_table(samples, args.bins)
    reliability_table(samples, args.bins)
    concentration(samples)
    fitted_table(samples, args.shrink)
    return 0


if __name__ == "__main__":
    sys.exit(main())
