"""Sample pages served from 127.0.0.1, so ``ingest demo`` runs the whole job offline."""

from __future__ import annotations

import gzip
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "pages"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def serve_examples(pages: Path = EXAMPLES) -> Iterator[list[str]]:
    """Serve every ``*.html.gz`` of ``pages`` on a free loopback port; yield their URLs."""
    sources = sorted(pages.glob("*.html.gz"))
    if not sources:
        raise FileNotFoundError(f"no sample pages in {pages} (run from a clone of the repository)")
    with tempfile.TemporaryDirectory(prefix="ingest-demo-") as directory:
        root = Path(directory)
        for source in sources:
            (root / source.name.removesuffix(".gz")).write_bytes(gzip.decompress(source.read_bytes()))
        handler = partial(_QuietHandler, directory=str(root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            port = server.server_address[1]
            yield [f"http://127.0.0.1:{port}/{source.name.removesuffix('.gz')}" for source in sources]
        finally:
            server.shutdown()
            server.server_close()
