"""Title exact match by site: do the title rules carry over to publishers they were not fitted on?

Reads ``../shared/corpus/news`` and ``../shared/corpus/l3s-gn1`` (L3S-GN1: research use only,
read in place, never copied) and prints, for our offline path (:func:`worker.offline.process_html`,
as ``bench/extraction.py`` runs it) and for plain ``trafilatura.extract_metadata(html).title``,
the title exact match (NFKC and whitespace folded, see ``bench/extraction.py``) on each corpus,
and on L3S-GN1 split in two folds by site (CRC-32 of the registered domain, so every page of a
site falls in one fold). A rule with a threshold is chosen on one fold (or on news/) and read on
the other; a rule that only one fold likes is fitted to its sites.

Run: ``.venv/bin/python bench/title_sites.py [--corpus news|l3s-gn1|all] [--show-misses]``
(about a minute for both corpora). ``--show-misses`` prints truth, ours and trafilatura for each
page we get wrong, ``T+`` where trafilatura is right.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.extraction import CORPORA, fold, load_corpus, ours, plain_trafilatura  # noqa: E402

#: Second-level labels under a country's domain (``example.co.uk`` is one site, not ``co.uk``).
_SECOND_LEVEL = {"ac", "co", "com", "edu", "gov", "net", "or", "org"}


def site_of(url: str) -> str:
    """The registered domain of ``url``: ``news.example.co.uk`` -> ``example.co.uk``."""
    labels = (urlsplit(url).hostname or "").lower().split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def fold_of(url: str) -> int:
    """0 or 1, the same for every page of a site."""
    return zlib.crc32(site_of(url).encode()) % 2


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", choices=(*CORPORA, "all"), default="all")
    parser.add_argument("--show-misses", action="store_true", help="print each page our title gets wrong")
    args = parser.parse_args()
    names = list(CORPORA) if args.corpus == "all" else [args.corpus]
    missing = [str(CORPORA[name]) for name in names if not (CORPORA[name] / "index.jsonl").is_file()]
    if missing:
        print(f"corpus not found at {', '.join(missing)} (expected beside the project)")
        return 2
    extract, _ = ours()
    reference, _ = plain_trafilatura()
    for name in names:
        pages = load_corpus(CORPORA[name])
        # right[extractor][fold] = (right, pages)
        right = {"ours": [[0, 0], [0, 0]], "trafilatura": [[0, 0], [0, 0]]}
        misses = []
        for truth, html in pages:
            url, title = str(truth["url"]), fold(str(truth["title"]))
            mine, theirs = extract(html, url).title, reference(html, url).title
            group = fold_of(url)
            for extractor, value in (("ours", mine), ("trafilatura", theirs)):
                right[extractor][group][0] += fold(value) == title
                right[extractor][group][1] += 1
            if fold(mine) != title:
                misses.append((truth, mine, theirs, fold(theirs) == title))
        sites = {site_of(str(truth["url"])) for truth, _ in pages}
        print(f"\n{name}: {len(pages)} pages, {len(sites)} sites")
        print(f"{'extractor':<13}{'all':>16}{'fold 0':>16}{'fold 1':>16}")
        for extractor, folds in right.items():
            hit, total = folds[0][0] + folds[1][0], folds[0][1] + folds[1][1]
            cells = [(hit, total), *(tuple(f) for f in folds)]
            print(f"{extractor:<13}" + "".join(f"{h:>5}/{t:<4} {h / max(t, 1):.3f}" for h, t in cells))
        if args.show_misses:
            for truth, mine, theirs, theirs_right in misses:
                print(f"{'T+' if theirs_right else '  '} {str(truth['id'])[:16]} {str(truth['url'])[:80]}")
                print(f"     truth {str(truth['title'])!r}\n     ours  {mine!r}\n     traf  {theirs!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
