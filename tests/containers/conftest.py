"""The container suite prints how long each phase took, at the end of the run (no -s needed)."""

from __future__ import annotations

import pytest

#: (phase, seconds) in the order they ran; tests/containers/test_stack.py appends to it.
TIMINGS: list[tuple[str, float]] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TIMINGS:
        return
    terminalreporter.section("container stack timings")
    for phase, seconds in TIMINGS:
        terminalreporter.write_line(f"TIMING | {phase:<40} | {seconds:7.1f} s")
