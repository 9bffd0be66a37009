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

from tasks.boilerplate import compact, is_prose, key
from tasks.html import is_chrome
from tasks.page_guard import CpuGuard

_BLOCKS = ("p", "h2", "h3", "h4", "li", "blockquote")
#: Extracted paragraphs that must share the signature before it is trusted.
MIN_MATCHED = 3
#: Share of the matched prose paragraphs that must carry the dominant signature.
MIN_SHARE = 0.6
#: Probe length (characters of the key) used to match lines to elements.
PROBE = 60


#: Elements a browser shows on a line of their own (and ``<br>``): their text is set apart by
#: a space, so ``A<br>B`` reads ``A B``, not ``AB`` as ``text_content()`` has it.
_SPACED = frozenset(
    {"address", "article", "aside", "blockquote", "br", "details", "div", "fieldset", "figure"}
    | {"figcaption", "footer", "form", "header", "hr", "main", "nav", "p", "pre", "section", "summary"}
    | {"h1", "h2", "h3", "h4", "h5", "h6", "dd", "dl", "dt", "li", "ol", "ul"}
    | {"caption", "table", "td", "th", "tr"}
)
#: Elements whose text a browser does not show.
_UNSHOWN = frozenset({"script", "style", "noscript", "template"})


def shown_text(element: etree._Element, limit: int | None = None) -> str:
    """``element``'s text as a browser shows it, whitespace folded; about ``limit`` characters at most.

    Unlike ``text_content()``, block boundaries and ``<br>`` are read as spaces and scripts,
    styles and comments are left out, so the text compares with the extractor's lines.
    """
    parts: list[str] = []
    size = 0
    stack: list[tuple[etree._Element, bool]] = [(element, True)]
    while stack and (limit is None or size < limit):
        node, opening = stack.pop()
        tag = node.tag if isinstance(node.tag, str) else ""
        if opening:
            if tag in _SPACED:
                parts.append(" ")
            stack.append((node, False))
            if tag and tag not in _UNSHOWN:
                if node.text:
                    parts.append(node.text)
                    size += len(node.text)
                stack.extend((child, True) for child in reversed(node))
            continue
        if tag in _SPACED:
            parts.append(" ")
        if node is not element and node.tail:
            parts.append(node.tail)
            size += len(node.tail)
    return " ".join("".join(parts).split())


class _Written:
    """What the text already says, to tell whether a paragraph would repeat it.

    Compared by :func:`key` and by its space-free form (:func:`compact`): an element read as
    ``A<br>B`` -> ``AB`` repeats the lines ``A`` and ``B``. A paragraph repeats the text when
    the text holds the whole of it (also across consecutive lines), or it holds a whole prose
    line of the text (the extractor kept the paragraph's second half).
    """

    def __init__(self, lines: list[str]) -> None:
        self.probes = {key(line)[:PROBE] for line in lines}
        self.compact_probes = {compact(line)[:PROBE] for line in lines}
        self.joined = "".join(compact(line) for line in lines)  # a paragraph may span lines
        self.prose = [compact(line) for line in lines if is_prose(line)]

    def holds(self, text: str) -> bool:
        text_key = key(text)
        text_compact = text_key.replace(" ", "")
        return (
            text_key[:PROBE] in self.probes
            or text_compact[:PROBE] in self.compact_probes
            or text_compact in self.joined
            or any(line in text_compact for line in self.prose)
        )

    def add(self, text: str) -> None:
        self.probes.add(key(text)[:PROBE])
        self.compact_probes.add(compact(text)[:PROBE])
        self.joined += compact(text)
        if is_prose(text):
            self.prose.append(compact(text))


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
        text = shown_text(element)
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
    written = _Written(lines)
    chrome: dict[etree._Element, bool] = {}
    missing: list[tuple[int, str]] = []
    for position, element, text in elements:
        if (
            position not in present
            and _signature(element) == signature
            and is_prose(text)
            and not is_chrome(element, chrome)
            and not written.holds(text)  # nor a paragraph restored just before (a page's copy)
        ):
            missing.append((position, text))
            written.add(text)
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
    return shown_text(node, limit)


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
    compact_lines = {compact(line) for line in lines}
    inserts: dict[int, list[str]] = {}
    chrome: dict[etree._Element, bool] = {}
    for count, heading in enumerate(root.iter(*_HEADINGS)):
        if guard is not None and not count % 256:
            guard.check("restoring sub-headings")
        text = shown_text(heading)
        if not text or len(text) > HEADING_MAX_CHARS or key(text)[:PROBE] in line_index:
            continue
        if compact(text) in compact_lines:
            continue  # in the text already, spaced otherwise
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
