"""Subscriber-only notices: recognised, cut from the article text, and reported.

A paywalled page shows the article's first paragraphs and then a notice, "Il vous reste
57% de cet article à lire. La suite est réservée aux abonnés.", "Subscribe to continue
reading", "この記事は有料会員限定です". The extractor keeps it as the text's last line; it is
not article text, but it tells that the article goes on behind the paywall.
:func:`cut_paywall_notices` takes the cleaned lines and returns them without such notices,
with ``notice`` true when one of them says the article (or its rest) is for subscribers.

The rules are generic, by phrase, in English, French, German, Spanish, Italian, Portuguese,
Dutch and Japanese, never by site:

- *locked* phrases say that this article is withheld: "the rest of this article is for
  subscribers", "subscribe / log in / register to continue reading", "X% of this article
  remains", "this article is reserved for subscribers", "premium content" as a whole line,
  "you have reached your limit of free articles". Cut, and ``notice`` is true.
- *offer* phrases sell a subscription without saying this article is locked ("Already a
  subscriber? Log in", "有料会員になると…", "有料記事読み放題", "unlimited access"): cut,
  ``notice`` stays false (a free article carries them too).
- DOM hint: a paywall box is a short container (``div``, ``section``, ``aside``, ``form``,
  at most :data:`NOTICE_BOX_CHARS`) whose ``class``/``id`` names a paywall (``paywall``,
  ``regwall``, ``loginwall``, ...) but not content (``paywall-content``,
  ``tnpaywallcontent``: sites name the *paid article text* so, as JSON-LD ``hasPart``
  ``cssSelector`` shows, and some mark single paragraphs ``<p class="paywall">``), and that
  holds a link, button or form (the prompt's way to its offer). A short line of such a box
  that mentions subscribing or logging in is cut. Elements the page's JSON-LD marks as paid
  content (``hasPart`` with ``isAccessibleForFree: false`` and a ``cssSelector``) are
  article text and never a box. A box alone never sets ``notice``.

Conservative by construction: only the run of notice lines that ends the text is cut (a
line about subscribers in the middle of the prose stays), only short lines (a notice is a
sentence or two, not a paragraph; a longer line must be mostly notice sentences), never a
line that opens with a quotation mark (a quoted notice is reporting), and at most
:data:`MAX_NOTICE_LINES` lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from tasks.html import iter_jsonld

#: A line longer than this (characters) is article prose, never a notice.
MAX_NOTICE_CHARS = 250
#: A line longer than this must be notice sentences for more than half of its sentences.
SHORT_NOTICE_CHARS = 120
#: At most this many lines are cut from the end of the text.
MAX_NOTICE_LINES = 4
#: A paywall box holding more text than this (characters) is a layout wrapper or the article.
NOTICE_BOX_CHARS = 600

_LOCKED_PATTERNS = (
    # English
    r"\b(?:this|the) (?:article|story|content|piece) is (?:only |exclusively )?"
    r"(?:available|reserved|exclusive)"
    r"(?: only| exclusively)? (?:to|for) (?:our )?(?:[\w'&+-]+ ){0,3}(?:subscribers|members)",
    r"\brest of (?:this|the) (?:article|story|piece) is (?:only |exclusively )?"
    r"(?:available|reserved|exclusive)"
    r"(?: only| exclusively)? (?:to|for) (?:our )?(?:[\w'&+-]+ ){0,3}(?:subscribers|members)",
    r"\b(?:subscribe|sign in|sign up|log ?in|register|become a (?:subscriber|member))"
    r"(?: now| today| for free| free)? to (?:continue|keep) reading",
    r"\bto (?:continue|keep) reading(?: this (?:article|story))?,? (?:please )?"
    r"(?:subscribe|sign in|sign up|log ?in|register|become a|create a)",
    r"\b(?:create|register for) an? (?:free )?account to (?:continue|keep) reading",
    r"\bsubscribe (?:now |today )?to (?:read|unlock|access) "
    r"(?:the (?:full|rest|whole)|this (?:article|story)|more)",
    r"\b\d+(?:[.,]\d+)? ?% of (?:this|the) (?:article|story) (?:remains|is left|left)",
    r"\byou have \d+(?:[.,]\d+)? ?% of (?:this|the) (?:article|story) (?:left|remaining)",
    r"\b(?:subscriber|member|premium)s?[- ]only (?:content|article|story)",
    r"^(?:this is )?(?:an? )?(?:premium|subscriber|exclusive subscriber) (?:content|article|story)\W*$",
    r"\b(?:you(?:'ve| have) )?(?:reached|used up) (?:your|the) (?:monthly )?(?:limit of )?"
    r"free (?:articles|stories)",
    r"\byou have (?:\d+|no) free (?:articles?|stories) (?:left|remaining)",
    # French
    r"\bil (?:vous|te) reste \d+(?:[.,]\d+)? ?% de (?:cet |l')?article à lire",
    r"\bla suite (?:de cet article )?est réservée (?:aux|à nos) (?:abonnés|membres)",
    r"\b(?:cet |l')?(?:article|contenu) (?:est )?(?:réservé|exclusivement réservé) (?:aux|à nos) abonnés",
    r"\bpour (?:lire|continuer à lire|poursuivre (?:votre |la )?lecture|lire la suite)(?: de cet article)?,? "
    r"(?:abonnez-vous|connectez-vous|inscrivez-vous)",
    r"\b(?:abonnez-vous|inscrivez-vous|connectez-vous) pour "
    r"(?:lire|continuer à lire|poursuivre|accéder à la suite)",
    # German
    r"\b(?:artikel|beitrag|inhalt|text)\b.{0,40}\b(?:nur|exklusiv) für (?:\w+[ -])?(?:abonnent|abo)",
    r"\bexklusiv für (?:abonnenten|abonnentinnen|abonnent\W?innen|abo-?kunden)",
    r"\b(?:jetzt )?weiterlesen mit (?:[\w+-]+ )?(?:plus|abo|abonnement)\b",
    r"\bum (?:\w+ ){0,3}(?:weiter)?zu ?lesen\b.{0,60}\b(?:abo|abonnement|registrier\w*|anmelden|einloggen)\b",
    r"\b(?:registrieren|anmelden|abonnieren)\b.{0,30}\b(?:weiterlesen|weiter ?zu ?lesen)\b",
    # Spanish
    r"\b(?:este|el) (?:artículo|contenido|texto)(?: es)? (?:exclusivo|solo|sólo|únicamente) "
    r"(?:para )?(?:suscriptores|socios|abonados)",
    r"\bcontenido (?:exclusivo|solo|sólo) para (?:suscriptores|socios|abonados)",
    r"\b(?:suscríbete|regístrate|inicia sesión|hazte (?:socio|suscriptor))(?: ahora| gratis)? para "
    r"(?:seguir|continuar) leyendo",
    r"\bpara (?:seguir|continuar) leyendo,? (?:suscríbete|regístrate|inicia sesión|hazte)",
    r"\bte queda(?:n)? (?:un |el )?\d+(?:[.,]\d+)? ?% (?:del|de este) artículo",
    # Italian
    r"\b(?:questo |l')?(?:articolo|contenuto)(?: è)? riservato (?:agli|ai) "
    r"(?:abbonati|iscritti|utenti registrati)",
    r"\bper (?:continuare a leggere|leggere (?:tutto )?l'articolo|proseguire (?:nella |la )?lettura)"
    r"(?: questo articolo)?,? (?:abbonati|accedi|registrati)",
    r"\b(?:abbonati|accedi|registrati) per (?:continuare a leggere|leggere (?:tutto )?l'articolo|proseguire)",
    r"\bti rest(?:a|ano) (?:da leggere )?(?:il |l')?\d+(?:[.,]\d+)? ?% (?:dell'|di questo )articolo",
    # Portuguese
    r"\b(?:este|esta) (?:conteúdo|artigo|matéria|notícia|reportagem) é (?:exclusiv[oa]|restrit[oa]) "
    r"(?:para|a|de|aos) (?:assinantes|subscritores|membros)",
    r"\b(?:conteúdo|artigo) (?:exclusivo|restrito) (?:para|a|aos) (?:assinantes|subscritores)",
    r"\b(?:assine|subscreva|cadastre-se|registe-se|registre-se|faça login|entre)(?: já| agora)? para "
    r"(?:continuar|seguir) (?:lendo|a ler)",
    r"\bpara (?:continuar|seguir) (?:lendo|a ler)(?: este artigo| esta matéria)?,? "
    r"(?:assine|subscreva|cadastre-se|faça login|registe-se|registre-se)",
    # Dutch
    r"\b(?:dit|het) (?:artikel|stuk|verhaal) is (?:alleen |exclusief )?(?:beschikbaar )?"
    r"voor (?:abonnees|leden)",
    r"\b(?:word abonnee|neem een abonnement|log in|registreer)(?: nu)? (?:om|en) "
    r"(?:verder te lezen|lees verder)",
    r"\blees (?:verder|het hele artikel|het volledige artikel) met (?:een )?(?:[\w+-]+ )?"
    r"(?:abonnement|premium|plus)\b",
    r"\bom (?:dit artikel )?verder te lezen,? (?:moet je|heb je|word|log|neem|sluit)",
    r"^(?:premium|plus)[- ]?(?:artikel|inhalt|content)\W*$",
    r"^(?:contenido|contenuto|conteúdo) (?:premium|exclusivo|esclusivo)\W*$",
    # Japanese (NFKC-folded: full-width ！ ％ digits are ASCII here)
    r"(?:この|本)記事は(?:有料)?(?:会員|購読者|登録会員)(?:限定|専用)",
    r"^(?:有料|会員限定|有料会員限定|プレミアム)(?:会員)?記事\W*$",
    r"(?:この記事の)?続きを(?:読む|お読み)(?:いただく|になる)?には",
    r"全文を(?:読む|お読み)(?:いただく|になる)?には",
    r"残り\d+文字",
    r"(?:この記事の)?続きは(?:有料)?(?:会員|購読者)",
    r"(?:有料)?会員(?:登録|になる)と(?:続き|全文)",
)
_OFFER_PATTERNS = (
    r"\balready (?:a )?(?:subscriber|member)\s*\?",
    r"\b(?:subscribe|sign up)(?: now| today)? for (?:unlimited|full) (?:digital )?access",
    r"\bunlimited (?:digital )?access to (?:all )?(?:our )?(?:articles|journalism|stories)",
    r"\bdéjà abonnée?\s*\?",
    r"\b(?:schon|bereits) (?:abonnent(?:in)?|abonniert)\s*\?",
    r"\bsie haben (?:bereits|schon) ein (?:abo|abonnement)\s*\?",
    r"\bya eres (?:suscriptora?|socia?|abonada?)\s*\?",
    r"\bsei già abbonat[oa]\s*\?",
    r"\bjá é (?:assinante|subscritor)\s*\?",
    r"\bal (?:een )?abonnee\s*\?",
    r"読み放題",
    r"有料会員になると",
    r"(?:有料)?会員登録(?:は|はこちら|する)",
)
_LOCKED = re.compile("|".join(f"(?:{pattern})" for pattern in _LOCKED_PATTERNS))
_OFFER = re.compile("|".join(f"(?:{pattern})" for pattern in _OFFER_PATTERNS))
#: A line of a paywall box is cut only when it speaks of subscribing or logging in.
_SUBSCRIBE_WORDS = re.compile(
    r"subscri|sign in|sign up|log ?in|regist|premium|member|abonn|inscri|connect|suscri|abbon|accedi"
    r"|assin|subscrev|cadastr|leden|inloggen|aanmelden|\babo\b|anmelden|einloggen|有料|会員|購読|ログイン|登録"
)
#: ``class``/``id`` of a paywall box, and of what sites call their paid article text.
_WALL_MARKER = re.compile(r"pay-?wall|reg-?wall|registration-?wall|login-?wall|subscri\w*-?wall|meter-?wall")
_CONTENT_MARKER = re.compile(r"content|article|body|text|story|paragraph")
#: Paywall boxes are containers: sites also mark single article paragraphs (``<p class=paywall>``).
_BOXES = ("div", "section", "aside", "form")
_QUOTES = "\"'“”„«»‘’‚‹›「『"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=。)")
_SIMPLE_SELECTOR = re.compile(
    r"^(?P<tag>[a-zA-Z][\w-]*)?(?P<names>(?:[.#][\w-]+)*)"
    r"(?:\[(?P<attr>[\w-]+)(?:=['\"]?(?P<value>[^'\"\]]*)['\"]?)?\])?$"
)


@dataclass(frozen=True)
class PaywallCut:
    """The lines without their paywall notices, and what was cut."""

    lines: list[str]
    notice: bool = False
    """A cut line says the article, or its rest, is for subscribers only."""
    dropped: tuple[str, ...] = ()


def fold(text: str) -> str:
    """``text`` as the patterns read it: NFKC, lower case, straight apostrophes, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("ʼ", "'")
    return " ".join(text.split())


def is_locked_notice(text: str) -> bool:
    """Whether ``text`` says that this article, or its rest, is for subscribers only."""
    return bool(_LOCKED.search(fold(text)))


def _sentence_kind(folded: str) -> str | None:
    if _LOCKED.search(folded):
        return "locked"
    if _OFFER.search(folded):
        return "offer"
    return None


def line_kind(line: str, in_box: Callable[[str], bool] | None = None) -> str | None:
    """``locked``, ``offer`` or ``box`` when ``line`` is a paywall notice, else None.

    ``in_box`` tells whether a folded line is the text of one of the page's paywall boxes.
    """
    text = line.strip()
    if not text or len(text) > MAX_NOTICE_CHARS or text[0] in _QUOTES:
        return None
    folded = fold(text)
    if len(text) > SHORT_NOTICE_CHARS:
        sentences = [part for part in _SENTENCE_END.split(folded) if part]
        kinds = [_sentence_kind(sentence) for sentence in sentences]
        if 2 * sum(kind is not None for kind in kinds) <= len(sentences):
            return None  # a notice sentence inside prose: the prose stays
        return "locked" if "locked" in kinds else "offer" if "offer" in kinds else None
    kind = _sentence_kind(folded)
    if kind is None and in_box is not None and _SUBSCRIBE_WORDS.search(folded) and in_box(folded):
        return "box"  # short (the test above), about subscribing, and in a paywall box
    return kind


def cut_paywall_notices(lines: list[str], root: etree._Element | None) -> PaywallCut:
    """``lines`` without the paywall notices that end them, and whether one says the article is locked."""
    end = len(lines)
    locked = False
    boxes: list[str] | None = None

    def in_box(folded: str) -> bool:
        nonlocal boxes
        if boxes is None:
            boxes = notice_boxes(root) if root is not None else []
        return any(folded in box for box in boxes)

    while end > 0 and len(lines) - end < MAX_NOTICE_LINES:
        kind = line_kind(lines[end - 1], in_box)
        if kind is None:
            break
        locked = locked or kind == "locked"
        end -= 1
    if end == len(lines):
        return PaywallCut(lines=lines)
    return PaywallCut(lines=lines[:end], notice=locked, dropped=tuple(lines[end:]))


def _falsy(value: Any) -> bool:
    return value is not None and str(value).strip().lower() in ("false", "0", "no")


def _selectors(value: Any) -> Iterable[str]:
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            yield from (part.strip() for part in item.split(","))


def _selector_xpath(selector: str) -> str | None:
    """XPath of a simple CSS selector (its last compound: ``main .paid`` reads ``.paid``), else None."""
    parts = selector.replace(">", " ").split()
    match = _SIMPLE_SELECTOR.match(parts[-1]) if parts else None
    if match is None or not (match["tag"] or match["names"] or match["attr"]):
        return None
    tests = []
    for name in re.findall(r"[.#][\w-]+", match["names"] or ""):
        if name[0] == ".":
            tests.append(f"[contains(concat(' ', normalize-space(@class), ' '), ' {name[1:]} ')]")
        else:
            tests.append(f"[@id='{name[1:]}']")
    if match["attr"]:
        value = match["value"]
        tests.append(f"[@{match['attr']}='{value}']" if value is not None else f"[@{match['attr']}]")
    return f"//{match['tag'] or '*'}{''.join(tests)}"


def paid_content(root: etree._Element) -> set[etree._Element]:
    """Elements the page's JSON-LD marks as paid article text (``hasPart``, not free, ``cssSelector``)."""
    elements: set[etree._Element] = set()
    for item in iter_jsonld(root):
        parts = item.get("hasPart")
        for part in parts if isinstance(parts, list) else [parts]:
            if not isinstance(part, dict) or not _falsy(part.get("isAccessibleForFree")):
                continue
            for selector in _selectors(part.get("cssSelector")):
                xpath = _selector_xpath(selector)
                if xpath is None:
                    continue
                try:
                    elements.update(node for node in root.xpath(xpath) if isinstance(node, etree._Element))
                except etree.XPathError:
                    continue
    return elements


def notice_boxes(root: etree._Element) -> list[str]:
    """Folded texts of the page's paywall boxes (see the module notes)."""
    paid = paid_content(root)
    boxes = []
    for element in root.iter(*_BOXES):
        marker = f"{element.get('class') or ''} {element.get('id') or ''}".lower()
        if not _WALL_MARKER.search(marker) or _CONTENT_MARKER.search(marker):
            continue
        if not any(True for _ in element.iter("a", "button", "form")):  # a prompt links to its offer
            continue
        if element in paid or any(ancestor in paid for ancestor in element.iterancestors()):
            continue
        if any(node in paid for node in element.iterdescendants()):
            continue
        text = fold(element.text_content())
        if text and len(text) <= NOTICE_BOX_CHARS:
            boxes.append(text)
    return boxes
