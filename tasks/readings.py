"""Two extractions of one page merged paragraph by paragraph: a vote of two readings.

When the clean stage reads a page twice (its layout tables unwrapped, and as served; see
:mod:`tasks.page_layout`), each reading may miss paragraphs the other has. A paragraph both
readings hold is the article's; a paragraph only one holds is trusted when it is prose and
sits inside the stretch both agree on, or is the one prose paragraph just before it (the
lead, which extractors often miss). Lines only one reading has outside that stretch are
what differs most between readings: comments, footers and link lists; they are left out.
"""

from __future__ import annotations

from tasks.boilerplate import is_prose, key


def merge_readings(primary: list[str], secondary: list[str]) -> list[str]:
    """``primary`` plus the prose lines only ``secondary`` has inside their shared stretch.

    Each added line goes right after the shared line that precedes it in ``secondary``, so
    the article keeps its order.
    """
    positions = {key(line): index for index, line in enumerate(primary)}
    shared = [index for index, line in enumerate(secondary) if key(line) in positions]
    if not shared:
        return primary
    first, last = shared[0], shared[-1]
    if first > 0 and is_prose(secondary[first - 1]):
        first -= 1  # the lead just before the shared stretch
    merged = list(primary)
    after = -1  # index in ``merged`` after which the next line of ``secondary`` goes
    for line in secondary[first : last + 1]:
        line_key = key(line)
        if line_key in positions:
            after = positions[line_key]
            continue
        if not is_prose(line):
            continue
        merged.insert(after + 1, line)
        after += 1
        positions = {key(item): index for index, item in enumerate(merged)}
    return merged
