"""Hostile pages built in code: deep nesting, table dumps and link farms.

They are generated rather than stored because they are megabytes of repetition. Each builder
says which page of the issue it stands for (100,000 nested ``<div>``\\s took 58 s of one CPU
in the language stage; 10 MB of nested tables was published as an article titled "Tables").
"""

from __future__ import annotations

PROSE = "This sentence is long enough and ends like a sentence in an article would end, surely."


def nested_divs(depth: int) -> str:
    """``depth`` nested ``<div>``\\s around one word: 100,000 is about 1.1 MB, 1,000,000 about 11 MB."""
    return (
        "<html><head><title>Deep</title></head><body>"
        + "<div>" * depth
        + "text"
        + "</div>" * depth
        + "</body></html>"
    )


def nested_tables(target_bytes: int) -> str:
    """Tables nested in table cells, each cell ``cell N text text``, about ``target_bytes`` long."""
    opening: list[str] = []
    size = 0
    while size < target_bytes:
        part = f"<table><tr><td>cell {len(opening)} text text "
        opening.append(part)
        size += len(part) + len("</td></tr></table>")
    return (
        "<html><head><title>Tables</title></head><body>"
        + "".join(opening)
        + "</td></tr></table>" * len(opening)
        + "</body></html>"
    )


def table_dump(rows: int, columns: int = 8) -> str:
    """One flat table of ``rows`` rows of short cells (``cell N text text``): a data dump."""
    body = "".join(
        "<tr>"
        + "".join(f"<td>cell {row * columns + column} text text</td>" for column in range(columns))
        + "</tr>"
        for row in range(rows)
    )
    return f"<html><head><title>Tables</title></head><body><table>{body}</table></body></html>"


def link_farm(links: int) -> str:
    """``links`` links with short anchor text and no paragraphs: a doorway page."""
    anchors = "\n".join(
        f'<a href="https://spam{index % 97}.example/{index}">cheap pills offer {index}</a>'
        for index in range(links)
    )
    return f"<html><head><title>Best offers</title></head><body><div>{anchors}</div></body></html>"


def deep_article(depth: int, paragraphs: int) -> str:
    """An article ``depth`` ``<div>``\\s deep: inside the budget, it must be published."""
    body = "".join(f"<p>{PROSE} Paragraph {index}.</p>" for index in range(paragraphs))
    return (
        "<html><head><title>Deep but fine</title></head><body>"
        + "<div>" * depth
        + f"<article><h1>Deep but fine</h1>{body}</article>"
        + "</div>" * depth
        + "</body></html>"
    )
