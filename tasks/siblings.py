"""Paragraphs the extractor dropped although the page styles them like the article's own.

Main-content extractors sometimes stop early (a paywall wrapper, an inline box between two
halves of the text) or skip blocks. The article's paragraphs usually share one markup
signature (tag and class, e.g. ``p.article--paragraph``); when most extracted paragraphs
carry one signature, every other element with it, outside page chrome, belongs to the text
too, and is put back in document order. Sub-headings the extractor dropped are put back
where the page has them between two consecutive extracted paragraphs.
"""

from __future__ import annotations

from collections import Counter

from lxml import etree

from tasks.boilerplate import is_prose, key
from tasks.html import is_chrome
from tasks.page_guard import CpuGuard

_BLOCKS = ("p", "h2", "h3", "h4", "li", "blockquote")
#: Extracted paragraphs that must share the signature before it is trusted.
MIN_MATCHED = 3
#: Share of the matched prose paragraphs that must carry the dominant signature.
MIN_SHARE = 0.6
#: Probe length (characters of the key) used to match lines to elements.
PROBE = 60


def _signature(element: etree._Element) -> tuple[str, str] | None:
    classes = " ".join(sorted((element.get("class") or "").split()))
    return (str(element.tag), classes) if classes else None


def restore_siblings(root: etree._Element, lines: list[str], guard: CpuGuard | None = None) -> list[str]:
    """``lines`` with the missing paragraphs of the article's signature inserted in page order."""
    if len(lines) < MIN_MATCHED:
        return lines
    order: dict[str, int] = {}
    elements: list[tuple[int, etree._Element, str]] = []
    for position, element in enumerate(root.iter(*_BLOCKS)):
        if guard is not None and not position % 256:
            guard.check("restoring paragraphs")
        if not element.get("class"):
            continue  # no signature: can neither vote nor be restored
        text = " ".join(element.text_content().split())
        if not text:
            continue
        elements.append((position, element, text))
        order.setdefault(key(text)[:PROBE], position)
    line_positions = [order.get(key(line)[:PROBE]) for line in lines]
    by_position = {position: element for position, element, _ in elements}
    signatures = Counter(
        _signature(by_position[position])
        for position, line in zip(line_positions, lines, strict=True)
        if position is not None and is_prose(line)
    )
    signatures.pop(None, None)
    if not signatures:
        return lines
    signature, count = signatures.most_common(1)[0]
    if count < MIN_MATCHED or count < MIN_SHARE * sum(signatures.values()):
        return lines
    present = {position for position in line_positions if position is not None}
    line_keys = {key(line)[:PROBE] for line in lines}
    chrome: dict[etree._Element, bool] = {}
    missing = [
        (position, text)
        for position, element, text in elements
        if position not in present
        and _signature(element) == signature
        and is_prose(text)
        and key(text)[:PROBE] not in line_keys
        and not is_chrome(element, chrome)
    ]
    if not missing:
        return lines
    merged: list[tuple[float, str]] = []
    last = -1.0
    for found, line in zip(line_positions, lines, strict=True):
        last = float(found) if found is not None else last + 0.001
        merged.append((last, line))
    merged.extend((float(position), text) for position, text in missing)
    merged.sort(key=lambda item: item[0])
    return [line for _, line in merged]


#: Sub-headings: the tags, and the longest text (characters) a sub-heading has.
_HEADINGS = frozenset({"h2", "h3", "h4", "h5", "h6"})
HEADING_MAX_CHARS = 150
#: Elements skipped when looking for a heading's neighbouring paragraphs (scripts, ad slots).
_INVISIBLE = frozenset({"script", "style", "noscript", "iframe", "ins", "template"})
#: How many siblings away the neighbouring paragraph may be (an ad slot, other headings).
NEIGHBOUR_STEPS = 4


def _text_start(node: etree._Element, limit: int = 4 * PROBE) -> str:
    """The first ``limit`` characters or so of ``node``'s text: enough for a probe, cheap on a big box."""
    parts: list[str] = []
    size = 0
    for part in node.itertext():
        parts.append(part)
        size += len(part)
        if size >= limit:
            break
    return " ".join("".join(parts).split())


def _neighbour_line(element: etree._Element, forward: bool, line_index: dict[str, int]) -> int | None:
    """The extracted line held by the nearest sibling with text that is not a heading, if any."""
    node = element.getnext() if forward else element.getprevious()
    for _ in range(NEIGHBOUR_STEPS):
        if node is None:
            return None
        tag = node.tag if isinstance(node.tag, str) else ""
        text = "" if not tag or tag in _INVISIBLE else _text_start(node)
        if text and tag not in _HEADINGS:
            return line_index.get(key(text)[:PROBE])
        node = node.getnext() if forward else node.getprevious()
    return None


def restore_subheadings(root: etree._Element, lines: list[str], guard: CpuGuard | None = None) -> list[str]:
    """``lines`` with the sub-headings the extractor dropped between two of its paragraphs.

    A short heading whose nearest siblings before and after (past scripts, ad slots and other
    headings) are two consecutive extracted lines is the article's own sub-heading: nothing
    but the article stands on both sides of it. Extractors drop some (a heading next to an ad
    slot's script, the time stamps of a live ticker).
    """
    if len(lines) < 2:
        return lines
    line_index: dict[str, int] = {}
    for index, line in enumerate(lines):
        line_index.setdefault(key(line)[:PROBE], index)
    inserts: dict[int, list[str]] = {}
    chrome: dict[etree._Element, bool] = {}
    for count, heading in enumerate(root.iter(*_HEADINGS)):
        if guard is not None and not count % 256:
            guard.check("restoring sub-headings")
        text = " ".join(heading.text_content().split())
        if not text or len(text) > HEADING_MAX_CHARS or key(text)[:PROBE] in line_index:
            continue
        before = _neighbour_line(heading, False, line_index)
        after = _neighbour_line(heading, True, line_index)
        if before is not None and after == before + 1 and not is_chrome(heading, chrome):
            inserts.setdefault(after, []).append(text)  # document order within a run of headings
    if not inserts:
        return lines
    restored: list[str] = []
    for index, line in enumerate(lines):
        restored.extend(inserts.get(index, ()))
        restored.append(line)
    return restored
