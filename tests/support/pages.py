"""Test pages with their ground truth (a fundus-style layout: ``fixtures/pages/<id>.html.gz``
plus ``index.jsonl``), and the shared corpus beside the project when it is present."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"
SHARED_CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"


@dataclass(frozen=True)
class Page:
    """One page and what a clean record of it holds."""

    id: str
    html_path: Path
    truth: dict[str, object]

    @property
    def html(self) -> str:
        """The page as served."""
        return gzip.decompress(self.html_path.read_bytes()).decode("utf-8")

    @property
    def language(self) -> str:
        """Its true language."""
        return str(self.truth["language"])


def load_pages(directory: Path = FIXTURES) -> list[Page]:
    """Pages listed in ``directory/index.jsonl``."""
    pages = []
    for line in (directory / "index.jsonl").read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        pages.append(Page(id=entry["id"], html_path=directory / entry["html"], truth=entry))
    return pages
