"""The page tree as a reader sees it: source line breaks and layout tables (tasks.page_layout)."""

from __future__ import annotations

from tasks.clean import clean_article
from tasks.html import parse
from tasks.page_layout import collapse_source_newlines, unwrap_layout_tables

SENTENCE = "The council met on Tuesday evening and voted on the new budget for the schools. "


def _root(html: str):  # type: ignore[no-untyped-def]
    root = parse(html)
    assert root is not None
    return root


def test_source_newlines_inside_a_paragraph_become_spaces_but_pre_keeps_them() -> None:
    root = _root(
        "<html><body><p>one line\n   goes on\n<b>bold\nword</b>\nend</p><pre>a\nb</pre></body></html>"
    )
    collapse_source_newlines(root)
    assert root.xpath("string(//p)") == "one line goes on bold word end"
    assert root.xpath("string(//pre)") == "a\nb"


def test_a_hard_wrapped_paragraph_comes_out_whole() -> None:
    wrapped = "\n".join(SENTENCE[i : i + 30] for i in range(0, len(SENTENCE), 30))
    body = "".join(f"<p>{wrapped}\n{wrapped}</p>" for _ in range(4))
    nav = "<nav><a href='/'>Home</a></nav>"
    html = f"<html><head><title>Budget vote</title></head><body>{nav}{body}</body></html>"
    text = clean_article(html, "https://example.org/news/budget").text
    paragraphs = text.split("\n\n")
    assert len(paragraphs) == 4, paragraphs
    assert all("schools." in paragraph and "\n" not in paragraph for paragraph in paragraphs)


def test_a_table_holding_paragraphs_is_layout_and_a_data_table_stays() -> None:
    root = _root(
        "<html><body><table><tr><td><a href='/'>Home</a></td><td><p>Article text.</p></td></tr></table>"
        "<table><tr><th>Team</th><th>Points</th></tr><tr><td>Reds</td><td>12</td></tr></table>"
        "</body></html>"
    )
    assert unwrap_layout_tables(root) == 1
    assert [table.xpath("string()") for table in root.iter("table")] == ["TeamPointsReds12"]
    assert not root.xpath("//p/ancestor::table | //p/ancestor::td")


def test_an_article_laid_out_in_table_cells_is_extracted() -> None:
    article = "".join(f"<p>{SENTENCE * 2}</p>" for _ in range(5))
    html = (
        "<html><head><title>Schools budget</title></head><body><table width='780'><tr>"
        "<td width='160'><a href='/a'>News</a><br><a href='/b'>Sport</a><br><a href='/c'>Weather</a></td>"
        f"<td width='620'><table><tr><td><img src='x.jpg'></td></tr></table>Lead text after the photo "
        f"table is part of the article too, and it is long enough to count as prose.{article}</td>"
        "</tr></table></body></html>"
    )
    text = clean_article(html, "https://example.org/news/schools").text
    assert text.count("voted on the new budget") == 10
    assert "Lead text after the photo table" in text
    assert "Weather" not in text


def test_an_article_split_between_layout_cells_is_read_both_ways_and_merged() -> None:
    """The lead in the table as served and the body in a cell: nothing of either is lost."""
    body = "".join(f"<p>{SENTENCE * 2}</p>" for _ in range(4))
    lead = "A lead set in its own cell, in bold, before the body of the story, which readers see first."
    html = (
        "<html><head><title>Schools budget</title></head><body><table><tr>"
        f"<td><a href='/a'>News</a></td><td><b>{lead}</b><div>{body}</div></td>"
        "</tr></table></body></html>"
    )
    text = clean_article(html, "https://example.org/news/schools-lead").text
    assert text.count("voted on the new budget") == 8
    assert text.count("A lead set in its own cell") <= 1
