"""Pages that are not articles: link farms and table dumps.

A news article is prose: sentences in paragraphs. A link farm (a doorway page of thousands
of links) or a data dump (a table of short cells) has text enough to pass the clean stage's
"some text was found" test, and was published as an article ("cell 0 text text ..."). The
rule, in two halves that must both hold:

* the page is made of links and table cells: at least :data:`MIN_DUMP_SHARE` of the
  visible characters of its ``<body>`` are inside ``<a href>`` or inside short table cells
  (``<td>``/``<th>`` whose own text, nested tables apart, is under :data:`SHORT_CELL_CHARS`
  characters: a layout cell holding a whole article is not short), and there are at least
  :data:`MIN_DUMP_CHARS` of them (a page with a menu and nothing else has ``no_text``); and
* the extracted text is not prose: less than :data:`MIN_PROSE_SHARE` of its characters are
  in prose lines (:func:`tasks.boilerplate.is_prose`), or it is empty.

Such a page ends as ``not_article``. Real pages with a big menu or a results table keep
their article's prose and so pass the second half; real pages with little prose (a gallery)
keep their text outside links and tables and pass the first. Measured on the shared corpora
(146 ``news`` and 315 ``l3s-gn1`` pages) when the limits were set: 73 real pages have a dump
share above 0.5 (Japanese news sites whose menus make 84% of the text, 2008 table layouts
up to 86%), and all of them keep at least 89% of their extracted text in prose; the real
pages with little prose have a dump share of 34% at most. No page meets both halves
(``tests/test_hostile_html.py`` checks this whenever the corpora are present).

The walk over the tree is iterative and linear (each text node is counted once, with flags
carried down), so it is safe on any page the :mod:`tasks.page_guard` budget lets through.
"""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from tasks.boilerplate import is_prose

#: Share of the body's visible characters in links and short cells from which a page is a dump.
MIN_DUMP_SHARE = 0.6
#: Visible characters of links and short cells a dump has at least.
MIN_DUMP_CHARS = 500
#: Share of the extracted text's characters in prose lines below which it is not an article.
MIN_PROSE_SHARE = 0.5
#: A table cell with fewer visible characters than this is data, not a layout cell.
SHORT_CELL_CHARS = 80
_HIDDEN = frozenset({"script", "style", "noscript", "template", "head", "title"})
_CELLS = frozenset({"td", "th"})


@dataclass(frozen=True)
class TextShares:
    """Visible characters (whitespace not counted) of a page body, and how many are dump text."""

    total: int = 0
    links: int = 0
    cells: int = 0  # in short cells
    dump: int = 0  # in a link or a short cell (a link inside a cell counts once)

    @property
    def dump_share(self) -> float:
        """Share of the visible characters in links or short table cells (0 for an empty page)."""
        return self.dump / self.total if self.total else 0.0


def _visible(text: str | None) -> int:
    return len(text) - text.count(" ") - text.count("\n") - text.count("\t") if text else 0


def text_shares(root: etree._Element) -> TextShares:
    """Where the visible text of ``root``'s body sits: in links, in short cells, elsewhere.

    A cell's length is its own text, not that of tables nested in it: in a table of tables
    every inner cell is judged by itself, and a layout cell around a whole article is long.
    """
    body = root.find("body")
    if body is None:
        return TextShares()
    total = links = 0
    # per cell: its own characters, and those of them inside links
    cell_chars: list[int] = []
    cell_link_chars: list[int] = []
    # (element, inside a link, index of the nearest enclosing cell or -1); a tail has its parent's
    stack: list[tuple[etree._Element, bool, int]] = [(body, False, -1)]
    while stack:
        element, in_link, cell = stack.pop()
        tag = element.tag if isinstance(element.tag, str) else ""
        if not tag or tag in _HIDDEN:
            continue
        if tag == "a" and element.get("href") is not None:
            in_link = True
        if tag in _CELLS:
            cell = len(cell_chars)
            cell_chars.append(0)
            cell_link_chars.append(0)
        chars = _visible(element.text)
        for child in element:
            chars += _visible(child.tail)
            stack.append((child, in_link, cell))
        total += chars
        if in_link:
            links += chars
        if cell >= 0:
            cell_chars[cell] += chars
            if in_link:
                cell_link_chars[cell] += chars
    short = [index for index, chars in enumerate(cell_chars) if chars < SHORT_CELL_CHARS]
    cells = sum(cell_chars[index] for index in short)
    dump = links + cells - sum(cell_link_chars[index] for index in short)
    return TextShares(total=total, links=links, cells=cells, dump=dump)


def prose_share(lines: list[str]) -> float:
    """Share of the characters of ``lines`` that are in prose lines (0 for no lines)."""
    total = sum(len(line) for line in lines)
    return sum(len(line) for line in lines if is_prose(line)) / total if total else 0.0


def not_article(lines: list[str], root: etree._Element) -> str | None:
    """Why the page is not an article (see the module docstring), or None when it may be one.

    The prose half is tested first: it is cheap, and real articles pass it, so the tree is
    walked only for pages with little prose.
    """
    share = prose_share(lines)
    if share >= MIN_PROSE_SHARE:
        return None
    shares = text_shares(root)
    if shares.dump_share < MIN_DUMP_SHARE or shares.dump < MIN_DUMP_CHARS:
        return None
    kind = "links" if shares.links >= shares.cells else "short table cells"
    return (
        f"{shares.dump_share:.0%} of the page's text is {kind} and {share:.0%} of the extracted "
        "text is prose: a link list or data table, not an article"
    )
