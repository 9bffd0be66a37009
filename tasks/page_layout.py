"""The page tree brought closer to what a reader sees, before the extractor reads it.

Two things in older and hand-written pages make a main-content extractor cut real article
text: line breaks of the HTML source inside paragraphs (kept, they split one paragraph into
many short lines that look like menu entries) and whole articles laid out inside table
cells (dropped with the tables, which are left out because data tables are not prose).
Both are fixed on the lxml tree in place, once per page, in the clean stage.
"""

from __future__ import annotations

import re

from lxml import etree

#: Elements whose line breaks are shown as breaks (everywhere else a source newline is a space).
_KEEPS_NEWLINES = ("pre", "textarea", "script", "style")
_SOURCE_NEWLINES = re.compile(r"[ \t\r\f]*\n\s*")


def collapse_source_newlines(root: etree._Element) -> None:
    """Turn line breaks of the HTML source inside text into spaces, as a browser renders them.

    Hand-written and older pages wrap paragraphs at a fixed width in the source; an extractor
    that keeps those newlines turns one paragraph into many short lines, which then look like
    labels or menu entries rather than prose. ``<pre>`` and the like keep their breaks.
    """
    kept = {node for block in root.iter(*_KEEPS_NEWLINES) for node in block.iter()}
    for element in root.iter():
        if element not in kept and element.text and "\n" in element.text:
            element.text = _SOURCE_NEWLINES.sub(" ", element.text)
        if element.tail and "\n" in element.tail:
            parent = element.getparent()
            if parent is None or parent not in kept:
                element.tail = _SOURCE_NEWLINES.sub(" ", element.tail)


_TABLE_PARTS = ("table", "tbody", "thead", "tfoot", "tr", "td", "th", "caption")
#: A cell holding this many characters of its own text (nested tables aside) is page layout.
LAYOUT_CELL_CHARS = 400


def _cell_text_chars(cell: etree._Element) -> int:
    """Characters of ``cell``'s text outside any table nested in it."""
    chars = len((cell.text or "").strip())
    for child in cell:
        if child.tag != "table" and isinstance(child.tag, str):
            chars += len(" ".join(child.text_content().split()))
        chars += len((child.tail or "").strip())
    return chars


def has_layout_tables(root: etree._Element) -> bool:
    """Whether :func:`unwrap_layout_tables` would change anything."""
    return bool(_layout_tables(root))


def _layout_tables(root: etree._Element) -> list[etree._Element]:
    layout: list[etree._Element] = []
    for table in root.iter("table"):
        for cell in table.iter("td", "th"):
            if _nearest_table(cell) is not table:
                continue
            if cell.find(".//p") is not None or _cell_text_chars(cell) >= LAYOUT_CELL_CHARS:
                layout.append(table)
                break
    return layout


def unwrap_layout_tables(root: etree._Element) -> int:
    """Turn tables used for page layout into plain blocks; returns how many.

    Older pages place the whole article inside ``<td>`` cells. Extractors told to leave tables
    out (data tables are not article text) then drop the article with them, and told to keep
    tables they print the layout row by row with its menus. A table one of whose cells holds
    paragraphs or a long run of text is layout, not data: its rows and cells become ``<div>``.
    """
    layout = _layout_tables(root)
    parts = [
        part
        for table in layout
        for part in table.iter(*_TABLE_PARTS)
        if part is table or _nearest_table(part) is table
    ]
    for part in parts:  # renamed only once all are found: a renamed table is no one's nearest
        part.tag = "div"
    for table in root.iter("table"):
        # Text right after a data table is the page's, not the table's: an extractor that
        # drops the table must not drop it too (lxml keeps it as the table's ``tail``).
        if table.tail and table.tail.strip():
            after = etree.Element("span")
            after.text, table.tail = table.tail, None
            table.addnext(after)
    return len(layout)


def _nearest_table(element: etree._Element) -> etree._Element | None:
    for ancestor in element.iterancestors("table"):
        return ancestor
    return None
