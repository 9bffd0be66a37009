"""Paragraphs the extractor dropped although the page styles them like the article's own.

Main-content extractors sometimes stop early (a paywall wrapper, an inline box between two
halves of the text) or skip blocks. The article's paragraphs usually share one markup
signature (tag and class, e.g. ``p.article--paragraph``); when most extracted paragraphs
carry one signature, every other element with it, outside page chrome, belongs to the text
too, and is put back in document order.
"""

from __future__ import annotations

from collections import Counter

from lxml import etree

from tasks.boilerplate import is_prose, key
from tasks.html import is_chrome

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


def restore_siblings(root: etree._Element, lines: list[str]) -> list[str]:
    """``lines`` with the missing paragraphs of the article's signature inserted in page order."""
    if len(lines) < MIN_MATCHED:
        return lines
    order: dict[str, int] = {}
    elements: list[tuple[int, etree._Element, str]] = []
    for position, element in enumerate(root.iter(*_BLOCKS)):
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
    missing = [
        (position, text)
        for position, element, text in elements
        if position not in present
        and _signature(element) == signature
        and is_prose(text)
        and key(text)[:PROBE] not in line_keys
        and not is_chrome(element)
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
