"""Copy a trained spaCy pipeline (``model-best``) into models/<lang>_news_ner with meta and data licence.

Keeps only what ``spacy.load`` needs (config.cfg, meta.json, tokenizer, vocab, tok2vec/, ner/;
spaCy does not write optimizer state into model directories), rewrites meta.json (name, version,
description, sources, the measured figures given with ``--performance FILE.json``) and writes
LICENSE-DATA.md. Prints the pin INGEST_SPACY_MODEL_SHA256 takes: the sha256 of ner/model followed
by tok2vec/model (see tasks/ner/models.weights_sha256).

Usage: python tools/ner_train/package.py /path/to/model-best de [--performance perf.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEEP = ("config.cfg", "meta.json", "tokenizer", "vocab", "tok2vec", "ner")

GERMEVAL = """## GermEval 2014 NER (CC BY 4.0)

Training data: the GermEval 2014 NER shared-task data (official dev and test files, re-split; see
tools/ner_train/README.md), licensed under Creative Commons Attribution 4.0
(https://creativecommons.org/licenses/by/4.0/). Labels mapped to PER/ORG/LOC/MISC (outer level only).

> Darina Benikova, Chris Biemann, Marc Reznicek. NoSta-D Named Entity Annotation for German:
> Guidelines and Dataset. Proceedings of LREC 2014, Reykjavik, Iceland, pp. 2524-2531.

Source: https://sites.google.com/site/germeval2014ner/data (via github davidsbatista/NER-datasets
@ db7ff3ca4ba1df39907f8bdc036a556fed5ecde7).
"""

EUROPEANA = """## Europeana Newspapers NER corpora (CC0 1.0)

Training data: {parts} from github EuropeanaNewspapers/ner-corpora @
6bf838d23112c255fd81431b1187ab30ef6c2d90, dedicated to the public domain under CC0 1.0
(https://creativecommons.org/publicdomain/zero/1.0/). No attribution is required; credited anyway:

> Clemens Neudecker. An Open Corpus for Named Entity Recognition in Historic Newspapers.
> Proceedings of LREC 2016, Portorož, Slovenia, pp. 4348-4352.
"""

INFO = {
    "de": {
        "description": "German NER (PER, ORG, LOC; also MISC, which the project ignores) trained from "
        "scratch with spaCy 3.8 (beam_ner, so each entity has a probability) for news-ingest on "
        "GermEval 2014 (CC BY 4.0; the re-split's train part). CPU, no static vectors. "
        "See tools/ner_train/README.md.",
        "licence": GERMEVAL,
        "sources": [
            {
                "name": "GermEval 2014 NER",
                "license": "CC BY 4.0",
                "author": "Benikova, Biemann, Reznicek (LREC 2014)",
                "url": "https://sites.google.com/site/germeval2014ner/data",
            },
        ],
    },
    "nl": {
        "description": "Dutch NER (PER, ORG, LOC) trained from scratch with spaCy 3.8 for news-ingest on the "
        "Dutch Europeana Newspapers corpus (KB, historic OCR, CC0). CPU, no static vectors. "
        "See tools/ner_train/README.md.",
        "licence": EUROPEANA.format(parts="enp_NL.kb.bio (first 85 % of sentences)"),
        "sources": [
            {
                "name": "Europeana Newspapers NER corpora (nl: kb)",
                "license": "CC0 1.0",
                "author": "Neudecker (LREC 2016)",
                "url": "https://github.com/EuropeanaNewspapers/ner-corpora",
            },
        ],
    },
}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source")
    parser.add_argument("lang", choices=sorted(INFO))
    parser.add_argument("--version", default="0.1.0")
    parser.add_argument("--performance", help="JSON file with measured figures to put in meta.json")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    source = Path(args.source)
    out = Path(args.out) if args.out else ROOT / "models" / f"{args.lang}_news_ner"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in KEEP:
        item = source / name
        if item.is_dir():
            shutil.copytree(item, out / name)
        elif item.is_file():
            shutil.copy2(item, out / name)
    # the training machine's corpus paths are not part of the pipeline
    config = (out / "config.cfg").read_text("utf-8")
    config = re.sub(r'^(train|dev) = ".*"$', r"\1 = null", config, flags=re.MULTILINE)
    (out / "config.cfg").write_text(config, "utf-8")
    info = INFO[args.lang]
    meta = json.loads((source / "meta.json").read_text("utf-8"))
    meta.update(
        name="news_ner",
        version=args.version,
        description=info["description"],
        author="news-ingest",
        license="CC BY 4.0 (training data GermEval 2014; see LICENSE-DATA.md)"
        if args.lang == "de"
        else "CC0 1.0 (training data; see LICENSE-DATA.md)",
        sources=info["sources"],
    )
    meta.pop("performance", None)
    if args.performance:
        meta["performance"] = json.loads(Path(args.performance).read_text("utf-8"))
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", "utf-8")
    (out / "LICENSE-DATA.md").write_text(
        f"# Training data of {args.lang}_news_ner\n\n" + info["licence"], "utf-8"
    )
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {size / 1e6:.1f} MB")
    print(f"sha256 ner/model: {sha256(out / 'ner' / 'model')}")
    print(f"sha256 tok2vec/model: {sha256(out / 'tok2vec' / 'model')}")
    # what INGEST_SPACY_MODEL_SHA256 pins: the NER and the tok2vec it listens to, in that order
    pin = hashlib.sha256((out / "ner" / "model").read_bytes() + (out / "tok2vec" / "model").read_bytes())
    print(f"pin (cat ner/model tok2vec/model | sha256sum): {pin.hexdigest()}")


if __name__ == "__main__":
    main()
