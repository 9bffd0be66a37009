"""Near-duplicate quality on ../shared/corpus/near-duplicates: MinHash LSH vs SimHash.

Every page goes through the real CPU stages (``worker.offline.process_html``: language and
clean, as the workers run them), then through the dedup stage (``tasks.dedup.dedup_stage``)
with the real Redis index under a private key prefix, in the corpus's arrival order and in
shuffled orders. Scored as the corpus README says: pairwise precision and recall over all
page pairs, a pair predicted duplicate when both pages share the same ``duplicate_of``
root. SimHash (64-bit, same shingles) is scored by brute force over every earlier page, an
upper bound for any SimHash index.

    .venv/bin/python bench/dedup.py [--redis-url redis://127.0.0.1:6379/0] [--shuffles 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from tasks.dedup import DedupIndexes, dedup_stage  # noqa: E402
from tasks.minhash import content_hash, estimate_jaccard, shingles, signature  # noqa: E402
from tasks.record import ArticleRecord, Job, record_id  # noqa: E402
from worker.offline import process_html, read_html_file  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "near-duplicates"


@dataclass
class Page:
    """One labelled page and its cleaned text."""

    id: str
    cluster: str
    url: str
    text: str
    language: str | None


def load_pages(corpus: Path, settings: Settings) -> tuple[list[Page], float]:
    """Every page of the corpus, cleaned by the real stages; seconds per page."""
    pages = []
    started = time.perf_counter()
    for line in (corpus / "index.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        url = f"https://{entry['site']}.example{entry['path']}"
        html = read_html_file(corpus / entry["html"])
        try:
            record = process_html(html, url, settings, None)
            text, language = record.text, record.language
        except Exception as exc:  # a page the cleaner rejects stays alone in its cluster
            print(f"  {entry['id']}: not cleaned ({type(exc).__name__}: {exc})", file=sys.stderr)
            text, language = "", None
        pages.append(Page(entry["id"], entry["cluster"], url, text, language))
    return pages, (time.perf_counter() - started) / max(len(pages), 1)


def pairwise(pages: list[Page], root: dict[str, str]) -> tuple[float, float, int, int]:
    """Pairwise precision, recall, false-positive and false-negative pair counts."""
    tp = fp = fn = 0
    for a, b in itertools.combinations(pages, 2):
        predicted = root[a.id] == root[b.id]
        true = a.cluster == b.cluster
        tp += predicted and true
        fp += predicted and not true
        fn += true and not predicted
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, fp, fn


def run_index(pages: list[Page], client: redis.Redis, settings: Settings) -> tuple[dict[str, str], float]:
    """Roots from the real dedup stage and index, in the given order; ms per page."""
    indexes = DedupIndexes.from_settings(client, settings)
    root: dict[str, str] = {}
    used = set()
    started = time.perf_counter()
    for page in pages:
        record = ArticleRecord(id=record_id(page.url), url=page.url, text=page.text, language=page.language)
        if not page.text:
            root[page.id] = record.id
            continue
        index = indexes.for_record(record)
        used.add(index)
        out = dedup_stage(Job(batch="bench", record=record), indexes, None, None).record
        root[page.id] = out.duplicate_of or out.id
    elapsed = (time.perf_counter() - started) * 1000 / max(len(pages), 1)
    for index in used:
        index.clear()
    return root, elapsed


def run_simhash(pages: list[Page], distance: int, shingle_words: int) -> dict[str, str]:
    """First-seen clustering by SimHash Hamming distance, brute force over earlier pages."""
    from simhash import Simhash

    prints: list[tuple[str, int]] = []
    root: dict[str, str] = {}
    for page in pages:
        value = Simhash([s.decode() for s in shingles(page.text, shingle_words)]).value
        best = min(prints, key=lambda item: bin(item[1] ^ value).count("1"), default=None)
        if best is not None and bin(best[1] ^ value).count("1") <= distance:
            root[page.id] = root[best[0]]
        else:
            root[page.id] = page.id
        prints.append((page.id, value))
    return root


def separation(pages: list[Page], settings: Settings) -> dict[str, float]:
    """Lowest similarity of a true pair and highest of a false pair, estimated and exact."""
    sigs = {p.id: signature(p.text, settings.dedup_num_perm, settings.dedup_shingle_words) for p in pages}
    sets = {p.id: shingles(p.text, settings.dedup_shingle_words) for p in pages}
    out = {"true_min_est": 1.0, "false_max_est": 0.0, "true_min_exact": 1.0, "false_max_exact": 0.0}
    for a, b in itertools.combinations(pages, 2):
        if not a.text or not b.text:
            continue
        equal = sum(x == y for x, y in zip(sigs[a.id].sketch(), sigs[b.id].sketch(), strict=True))
        est = estimate_jaccard(equal, settings.dedup_num_perm)
        exact = len(sets[a.id] & sets[b.id]) / len(sets[a.id] | sets[b.id])
        if a.cluster == b.cluster:
            out["true_min_est"] = min(out["true_min_est"], est)
            out["true_min_exact"] = min(out["true_min_exact"], exact)
        else:
            out["false_max_est"] = max(out["false_max_est"], est)
            out["false_max_exact"] = max(out["false_max_exact"], exact)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--shuffles", type=int, default=5, help="Shuffled arrival orders to run.")
    args = parser.parse_args()
    if not (args.corpus / "index.jsonl").exists():
        print(f"corpus not found at {args.corpus} (expected ../shared/corpus/near-duplicates)")
        return 2
    client = redis.Redis.from_url(args.redis_url)
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    pages, clean_seconds = load_pages(args.corpus, base)
    pairs = sum(1 for a, b in itertools.combinations(pages, 2) if a.cluster == b.cluster)
    print(
        f"{len(pages)} pages, {len({p.cluster for p in pages})} clusters, {pairs} true duplicate pairs "
        f"of {len(pages) * (len(pages) - 1) // 2}; cleaning {clean_seconds * 1000:.0f} ms/page\n"
    )

    def settings_with(**update: object) -> Settings:
        return base.model_copy(update={"key_prefix": f"bench-dedup-{uuid.uuid4().hex[:8]}", **update})

    rows: list[tuple[str, str, float, float, int, int, str]] = []
    root, ms = run_index(pages, client, settings_with())
    rows.append(("MinHash LSH (settings in force)", "arrival", *pairwise(pages, root), f"{ms:.2f} ms/page"))
    rng = random.Random(5)
    worst = (1.0, 1.0, 0, 0)
    for _ in range(args.shuffles):
        order = pages[:]
        rng.shuffle(order)
        shuffled_root, _ = run_index(order, client, settings_with())
        result = pairwise(pages, shuffled_root)
        worst = (
            min(worst[0], result[0]),
            min(worst[1], result[1]),
            max(worst[2], result[2]),
            max(worst[3], result[3]),
        )
    if args.shuffles:
        rows.append(("MinHash LSH (settings in force)", f"{args.shuffles} shuffles, worst", *worst, ""))
    for threshold in (0.1, 0.15, 0.35, 0.5):
        root, _ = run_index(pages, client, settings_with(dedup_threshold=threshold))
        rows.append((f"MinHash LSH threshold {threshold}", "arrival", *pairwise(pages, root), ""))
    for words in (3, 4):
        root, _ = run_index(pages, client, settings_with(dedup_shingle_words=words))
        rows.append((f"MinHash LSH {words}-word shingles", "arrival", *pairwise(pages, root), ""))
    for bands in (4, 8):
        root, _ = run_index(pages, client, settings_with(dedup_bands=bands))
        rows.append((f"MinHash LSH {bands} bands", "arrival", *pairwise(pages, root), ""))
    exact = {p.id: content_hash(p.text) if p.text else p.id for p in pages}
    rows.append(("exact content_hash only", "arrival", *pairwise(pages, exact), ""))
    try:
        for distance in (3, 8, 12, 16, 18):
            started = time.perf_counter()
            root = run_simhash(pages, distance, base.dedup_shingle_words)
            ms = (time.perf_counter() - started) * 1000 / len(pages)
            rows.append(
                (
                    f"SimHash 64-bit, Hamming <= {distance}",
                    "arrival",
                    *pairwise(pages, root),
                    f"{ms:.2f} ms/page",
                )
            )
    except ImportError:
        print("(simhash not installed: `pip install simhash` for the SimHash rows)")

    print(
        f"{'method':<36} {'order':<18} {'precision':>9} {'recall':>7} {'FP pairs':>8} {'FN pairs':>8}  time"
    )
    for name, order_name, precision, recall, fp, fn, note in rows:
        print(f"{name:<36} {order_name:<18} {precision:>9.4f} {recall:>7.4f} {fp:>8} {fn:>8}  {note}")
    gap = separation(pages, base)
    print(
        f"\nseparation ({base.dedup_shingle_words}-word shingles): true pairs >= {gap['true_min_exact']:.3f} "
        f"exact Jaccard (>= {gap['true_min_est']:.3f} as estimated from the "
        f"{base.dedup_num_perm}-byte sketch), "
        f"false pairs <= {gap['false_max_exact']:.3f} exact (<= {gap['false_max_est']:.3f} estimated); "
        f"threshold in force {base.dedup_threshold}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
