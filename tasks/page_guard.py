"""Bounds on what one page may cost the parsers: depth, elements, total nesting, CPU time.

The tree builders and extractors are not linear in the worst case. lexbor (selectolax) walks
its stack of open elements for every start tag (the HTML standard's "p element in button
scope" test), so 100,000 nested ``<div>``\\s cost it 30-60 s and a million would cost about
an hour; libxml2 (lxml) stops building at depth 256 and silently drops the rest of the page;
trafilatura and its justext fallback walk each element's ancestors (elements x depth) and
libxml2's XPath node-set merging is quadratic in text nodes. All of it is fast on real pages,
which are shallow and have a few thousand elements.

So before any tree parser runs, :func:`check_page` makes one linear scan of the markup (a
compiled regex from tag to tag, raw-text elements and comments skipped as the HTML tokenizer
skips them) that estimates the tree a browser would build: its depth, its elements and the
sum of their depths. It stops at the first limit crossed, and such a page is dead-lettered as
``page_too_complex`` in milliseconds. The estimate follows the tree builder closely enough for
limits (void elements, end tags that close unclosed children but not past a table cell,
``<p>``/``<li>``/``<td>``-style implied end tags, implied ``<tbody>``) and errs on the deep
side: on the shared corpora it is never more than 2 levels below lexbor's real tree.

Inside the budget, :class:`CpuGuard` is checked at safe points (between parser calls, and
every few hundred elements in our own loops) and ends a stage that has used more than its
CPU seconds with the same reason. A single extractor call cannot be interrupted: the
structural limits are what bound it (measured on synthetic pages just inside them: at most
about 6 s of CPU for the language and clean stages together). The guard reads the calling
thread's CPU clock, so a busy machine or other threads do not make a page fail.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from tasks.errors import PermanentError

#: Defaults of the ``INGEST_HTML_MAX_*`` settings (see :mod:`config.settings` for the measurements).
DEFAULT_MAX_DEPTH = 256
DEFAULT_MAX_NODES = 20_000
DEFAULT_MAX_NESTING = 1_000_000
DEFAULT_MAX_CPU_SECONDS = 10.0
REASON = "page_too_complex"
#: Markup tokens (tags, end tags, comments) the scan reads per element of the budget.
TOKENS_PER_NODE = 4

#: A start or end tag, or the start of a comment / doctype / processing instruction.
_TAG = re.compile(r"<(?:(!--)|([!?])|(/?)([a-zA-Z][^\s/>]*))")
#: Elements whose content the tokenizer reads as text up to their own end tag.
_RAW_TEXT = {
    name: re.compile(rf"</{name}\s*>", re.IGNORECASE)
    for name in ("script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes")
}
_VOID = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta", "param",
        "source", "track", "wbr", "basefont", "bgsound", "frame", "image",
    }
)  # fmt: skip
#: End tags the tree builder never pops for (it only changes insertion mode).
_IGNORED_END = frozenset({"html", "head", "body", "br"})
#: Elements an end tag does not reach past ("has an element in scope" in the standard).
_SCOPE = frozenset(
    {"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template", "svg", "math"}
)
#: Start tags that close an open ``<p>`` right above them (the standard's block elements).
_CLOSES_P = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div", "dl",
        "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hgroup", "hr", "li", "main", "menu", "nav", "ol", "p", "pre", "section", "summary", "table", "ul",
        "dd", "dt",
    }
)  # fmt: skip
#: Start tags that end an open element of the same family near the top of the stack.
_TABLE_PARTS = frozenset({"thead", "tbody", "tfoot", "tr", "td", "th"})
_SIBLING_FAMILIES: dict[str, frozenset[str]] = {
    "li": frozenset({"li"}),
    "dt": frozenset({"dt", "dd"}),
    "dd": frozenset({"dt", "dd"}),
    "option": frozenset({"option"}),
    "optgroup": frozenset({"optgroup", "option"}),
    "tr": frozenset({"tr", "td", "th"}),
    "td": frozenset({"td", "th"}),
    "th": frozenset({"td", "th"}),
    "thead": _TABLE_PARTS,
    "tbody": _TABLE_PARTS,
    "tfoot": _TABLE_PARTS,
    "rp": frozenset({"rp", "rt"}),
    "rt": frozenset({"rp", "rt"}),
}
#: Elements an implied end tag is not looked for beyond (a list or table of its own).
_FAMILY_BOUNDARY = frozenset({"table", "template", "ul", "ol", "dl", "menu", "select", "svg", "math"})
#: How far down the stack an implied end tag is looked for (an unclosed ``<li>`` under a ``<span>``).
_SIBLING_REACH = 3
_FOREIGN = frozenset({"svg", "math"})
#: What a row or cell start tag implies between itself and its ``<table>``.
_ROW_GROUPS = frozenset({"tbody", "thead", "tfoot", "table"})
_ROW_CONTENT = frozenset({"tr", "td", "th"})


@dataclass(frozen=True)
class PageBudget:
    """The limits of one page (see ``INGEST_HTML_*`` in :mod:`config.settings`)."""

    max_depth: int = DEFAULT_MAX_DEPTH
    max_nodes: int = DEFAULT_MAX_NODES
    max_nesting: int = DEFAULT_MAX_NESTING
    max_cpu_seconds: float = DEFAULT_MAX_CPU_SECONDS

    @classmethod
    def from_settings(cls, settings: Any) -> PageBudget:
        """The budget in force in a worker (``settings`` is a :class:`config.Settings`)."""
        return cls(
            max_depth=settings.html_max_depth,
            max_nodes=settings.html_max_nodes,
            max_nesting=settings.html_max_nesting,
            max_cpu_seconds=settings.html_max_cpu_seconds,
        )


@dataclass(frozen=True)
class PageShape:
    """What :func:`measure` found: estimated tree depth, elements and markup tokens (capped by the scan)."""

    depth: int
    nodes: int
    tokens: int = 0  # start and end tags, comments, doctypes
    nesting: int = 0  # the depths of all elements added up


class _Stack:
    """The stack of open elements, with O(1) "is ``name`` open in scope" (see :data:`_SCOPE`)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.positions: dict[str, list[int]] = {}  # name -> its stack positions, innermost last
        self.scopes: list[int] = [-1]  # positions of open scope boundaries, innermost last
        self.foreign = 0  # open <svg>/<math>: there ``<path/>`` closes itself

    def push(self, name: str) -> int:
        self.positions.setdefault(name, []).append(len(self.names))
        if name in _SCOPE:
            self.scopes.append(len(self.names))
        if name in _FOREIGN:
            self.foreign += 1
        self.names.append(name)
        return len(self.names)

    def pop_to(self, position: int) -> None:
        """Pop every element at ``position`` and above."""
        while len(self.names) > position:
            name = self.names.pop()
            self.positions[name].pop()
            if self.scopes[-1] == len(self.names):
                self.scopes.pop()
            if name in _FOREIGN:
                self.foreign -= 1

    def in_scope(self, name: str) -> int | None:
        """Stack position of the innermost open ``name`` not behind a scope boundary."""
        found = self.positions.get(name)
        if not found:
            return None
        position = found[-1]
        return position if position >= self.scopes[-1] else None

    def implied_end(self, name: str) -> None:
        """Close what ``name`` ends (``<li>`` after an unclosed ``<li>``, ``<tr>`` after a row, an
        open ``<p>`` before a block) and open what it implies (a ``<tbody>`` for a bare ``<tr>``)."""
        family = _SIBLING_FAMILIES.get(name)
        if family is not None:
            outermost = None
            for position in range(len(self.names) - 1, max(len(self.names) - 1 - _SIBLING_REACH, -1), -1):
                current = self.names[position]
                if current in family:
                    outermost = position
                elif current in _FAMILY_BOUNDARY:
                    break
            if outermost is not None:
                self.pop_to(outermost)
        if name in _CLOSES_P and self.names and self.names[-1] == "p":
            self.pop_to(len(self.names) - 1)
        if self.names and name in _ROW_CONTENT:
            if self.names[-1] == "table":
                self.push("tbody")
            if name != "tr" and self.names[-1] in _ROW_GROUPS:
                self.push("tr")


def measure(html: str, max_depth: int | None = None, max_nodes: int | None = None) -> PageShape:
    """Estimated maximum depth and element count of ``html``'s tree, in one pass.

    The scan stops as soon as ``max_depth`` or ``max_nodes`` is exceeded, so a hostile page
    costs no more than a page at the limits. Work per tag is O(1) amortised. End tags and
    comments are not elements but cost a step each: the scan also stops after
    :data:`TOKENS_PER_NODE` times ``max_nodes`` tokens.
    """
    depth_limit = max_depth if max_depth is not None else len(html)
    node_limit = max_nodes if max_nodes is not None else len(html)
    token_limit = node_limit * TOKENS_PER_NODE
    stack = _Stack()
    deepest = nodes = tokens = nesting = 0
    position = 0
    search, find = _TAG.search, html.find
    while tokens <= token_limit:
        match = search(html, position)
        if match is None:
            break
        tokens += 1
        comment, bang, closing, raw_name = match.groups()
        if comment:
            end = find("-->", match.end())
            if end < 0:
                break  # an unclosed comment runs to the end of the page
            position = end + 3
            continue
        tag_end = find(">", match.end())
        if tag_end < 0:
            break
        position = tag_end + 1
        if bang:
            continue
        name = raw_name.lower()
        if closing:
            if name not in _IGNORED_END:
                open_at = stack.in_scope(name)
                if open_at is not None:  # close it and every unclosed element inside it
                    stack.pop_to(open_at)
            continue
        nodes += 1
        if nodes > node_limit:
            break
        raw_end = _RAW_TEXT.get(name)
        if name in _VOID or raw_end is not None or (stack.foreign and html[tag_end - 1] == "/"):
            depth = len(stack.names) + 1  # a leaf: nothing goes inside it
            if raw_end is not None:  # its text runs to its own end tag
                closer = raw_end.search(html, position)
                position = closer.end() if closer else len(html)
        elif name == "plaintext":
            break  # the rest of the page is text
        else:
            stack.implied_end(name)
            depth = stack.push(name)
        nesting += depth
        if depth > deepest:
            deepest = depth
            if deepest > depth_limit:
                break
    return PageShape(depth=deepest, nodes=nodes, tokens=tokens, nesting=nesting)


#: The last pages measured, by (length, hash, limits): the language and clean stages check the
#: same page one after the other, often in the same process. Python's string hash is seeded
#: per process, so a page cannot be crafted to pass as another.
_MEASURED: dict[tuple[int, int, int, int], PageShape] = {}
_MEASURED_KEEP = 8
_MEASURED_LOCK = threading.Lock()


def _measured(html: str, max_depth: int, max_nodes: int) -> PageShape:
    memo = (len(html), hash(html), max_depth, max_nodes)
    with _MEASURED_LOCK:
        shape = _MEASURED.get(memo)
    if shape is None:
        shape = measure(html, max_depth, max_nodes)
        with _MEASURED_LOCK:
            if len(_MEASURED) >= _MEASURED_KEEP:
                _MEASURED.pop(next(iter(_MEASURED)))
            _MEASURED[memo] = shape
    return shape


def check_page(html: str, budget: PageBudget) -> PageShape:
    """The page's shape, or ``page_too_complex`` when it is deeper or larger than ``budget``."""
    shape = _measured(html, budget.max_depth, budget.max_nodes)
    if shape.depth > budget.max_depth:
        raise PermanentError(
            f"the page nests elements deeper than {budget.max_depth} (INGEST_HTML_MAX_DEPTH)", reason=REASON
        )
    if shape.nodes > budget.max_nodes:
        raise PermanentError(
            f"the page has more than {budget.max_nodes} elements (INGEST_HTML_MAX_NODES)", reason=REASON
        )
    if shape.tokens > budget.max_nodes * TOKENS_PER_NODE:
        raise PermanentError(
            f"the page has more than {budget.max_nodes * TOKENS_PER_NODE} tags and comments "
            f"({TOKENS_PER_NODE} x INGEST_HTML_MAX_NODES)",
            reason=REASON,
        )
    if shape.nesting > budget.max_nesting:
        raise PermanentError(
            f"the depths of the page's elements add up to more than {budget.max_nesting} "
            "(INGEST_HTML_MAX_NESTING)",
            reason=REASON,
        )
    return shape


class CpuGuard:
    """CPU seconds of the calling thread since the guard was made, checked at safe points."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.thread_time()

    def check(self, where: str) -> None:
        """Raise ``page_too_complex`` once the page has used more than its CPU seconds."""
        if time.thread_time() - self.started > self.seconds:
            raise PermanentError(
                f"the page used more than {self.seconds:g} s of CPU ({where}; INGEST_HTML_MAX_CPU_SECONDS)",
                reason=REASON,
            )
