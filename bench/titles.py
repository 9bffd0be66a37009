"""Where titles are lost: which source each page's true title follows, and what any vote could reach.

Reads ``../shared/corpus/news`` (146 pages with ground truth) and prints three tables:

1. Title exact-match rate for our choice, for each source alone on the pages where it gives a
   title (its site tail cut), and for an oracle that always picks whichever source is right
   (the ceiling of any choice among the page's own sources).
2. On the pages where og:title and the JSON-LD headline disagree: how often the truth is each
   one, split by which of the two the ``<h1>`` shows. This is the choice no page-level rule
   makes: truths follow each publisher's habit.
3. The best weightings of the five main sources in the vote (the other title statements at
   1), searched over a grid and fitted to the corpus itself: an upper bound for re-weighting,
   not a setting to adopt.

Run: ``.venv/bin/python bench/titles.py [--show-misses]``. Takes a few seconds.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import sys
import unicodedata
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "news"

from tasks.html import iter_jsonld, parse  # noqa: E402
from tasks.metadata import (  # noqa: E402
    TITLE_SOURCES,
    article_object,
    choose_title,
    page_site_name,
    read_meta,
    title_proposals,
    title_sources,
)

WEIGHTS = (0.5, 1.0, 1.5, 2.0)


def _norm(text: str | None) -> str:
    """The corpus README's title comparison: Unicode NFKC, whitespace folded."""
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def _weighted_choice(proposals: dict[str, str], weights: dict[str, float], order: tuple[str, ...]) -> str:
    votes: dict[str, float] = {}
    for source, value in proposals.items():
        votes[value] = votes.get(value, 0.0) + weights[source]
    best = ""
    for source in order:
        proposal = proposals.get(source, "")
        if proposal and (not best or votes[proposal] > votes[best] + 1e-9):
            best = proposal
    return best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--show-misses", action="store_true", help="print each page our choice gets wrong")
    args = parser.parse_args()
    if not (CORPUS / "index.jsonl").exists():
        print(f"corpus not found at {CORPUS} (expected ../shared/corpus/news beside the project)")
        return 2

    pages = []
    for line in (CORPUS / "index.jsonl").read_text(encoding="utf-8").splitlines():
        truth = json.loads(line)
        root = parse(gzip.decompress((CORPUS / truth["html"]).read_bytes()).decode("utf-8", "replace"))
        if root is None:
            continue
        meta = read_meta(root)
        article = article_object(list(iter_jsonld(root)))
        site_name = page_site_name(meta, article)
        candidates = title_sources(root, meta, article)
        pages.append(
            (truth, candidates, title_proposals(candidates, site_name), choose_title(candidates, site_name))
        )

    total = len(pages)
    print(f"{total} pages of {CORPUS}\n")
    print(f"{'choice':<28}{'pages':>7}{'right':>7}{'rate':>9}")
    rows = [("ours (vote)", total, sum(_norm(chosen) == _norm(t["title"]) for t, _, _, chosen in pages))]
    for source in TITLE_SOURCES:
        present = [(t, p[source]) for t, _, p, _ in pages if p.get(source)]
        right = sum(_norm(value) == _norm(t["title"]) for t, value in present)
        rows.append((f"{source} alone", len(present), right))
    oracle = sum(any(_norm(v) == _norm(t["title"]) for v in p.values()) for t, _, p, _ in pages)
    rows.append(("oracle: any source right", total, oracle))
    for name, count, right in rows:
        print(f"{name:<28}{count:>7}{right:>7}{right / max(count, 1):>9.1%}")
    print("(pages: where the source gives a title; rate: of those pages)")

    split: Counter[tuple[str, str]] = Counter()
    for truth, _, proposals, _ in pages:
        jsonld, og = _norm(proposals.get("jsonld")), _norm(proposals.get("og"))
        if not jsonld or not og or jsonld == og:
            continue
        title = _norm(truth["title"])
        follows = "JSON-LD" if title == jsonld else "og:title" if title == og else "neither"
        h1 = _norm(proposals.get("h1"))
        shows = "JSON-LD" if h1 == jsonld else "og:title" if h1 == og else "neither/none"
        split[(shows, follows)] += 1
    print(f"\nog:title and JSON-LD headline disagree on {sum(split.values())} pages; the truth follows:")
    print(f"{'<h1> shows':<16}{'JSON-LD':>9}{'og:title':>10}{'neither':>9}")
    for shows in ("JSON-LD", "og:title", "neither/none"):
        counts = [split[(shows, follows)] for follows in ("JSON-LD", "og:title", "neither")]
        print(f"{shows:<16}{counts[0]:>9}{counts[1]:>10}{counts[2]:>9}")

    results = []
    orders = (TITLE_SOURCES, ("og", "jsonld", "twitter", "h1", "title"))
    main_sources = TITLE_SOURCES[:5]  # the others (meta, sailthru, ...) keep a weight of 1
    for weights in itertools.product(WEIGHTS, repeat=len(main_sources)):
        weighting = dict.fromkeys(TITLE_SOURCES, 1.0) | dict(zip(main_sources, weights, strict=True))
        for order in orders:
            right = sum(
                _norm(_weighted_choice(p, weighting, order)) == _norm(t["title"]) for t, _, p, _ in pages if p
            )
            results.append((right, weights, order[0]))
    results.sort(key=lambda row: row[0], reverse=True)
    print(f"\nbest of {len(results)} weightings (weights {', '.join(main_sources)}; first on a tie):")
    for right, weights, first in results[:5]:
        print(f"  {right}/{total} = {right / total:.1%}  weights {weights}  tie -> {first}")

    if args.show_misses:
        print("\nmisses:")
        for truth, candidates, _, chosen in pages:
            if _norm(chosen) != _norm(truth["title"]):
                print(f"- {truth['id']}\n    truth {truth['title']!r}\n    ours  {chosen!r}")
                for source, value in candidates.items():
                    if value:
                        print(f"    {source:<7}{value!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
