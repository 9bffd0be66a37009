"""``python -m worker`` is the ``ingest`` command."""

from worker.cli import main

main()
