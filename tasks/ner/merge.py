"""One entity per thing a document names, however many ways it names it.

News text names a thing fully once, then shortens it: "Sergueï Lavrov" then "Lavrov",
"l'organisation Etat islamique (EI)" then "EI". Readers (and joins across articles) want one
entity with all its mentions counted, under its full name. The rules, in order:

1. **acronyms defined in the text**: ``Long Form (LF)`` makes every "LF" an alias of the
   long form (which becomes a mention itself, ORG unless a model said otherwise);
2. **surnames**: a one-word mention equal to the last word of a person's full name in the
   same document is that person, whatever label the model gave it; full names with the
   same surname whose first names start alike ("Sergei Lavrov", "Sergueï Lavrov") are one
   person, "Joe Biden" and "Jill Biden" two (and a lone "Biden" then stays ambiguous);
3. **one label per name**: mentions with the same folded text take their majority label,
   and a one-word "person" or "organisation" that is a country or a big city is a place
   (models read "Washington a exhorté..." as a person);
4. entities are grouped by (canonical fold, label), named by their longest surface form,
   and keyed: ``geonames:<id>`` for places the gazetteer knows, else ``<label>:<fold>``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import replace

from tasks.ner.gazetteer import Gazetteer
from tasks.ner.normalise import Mention, fold
from tasks.record import Entity

_ACRONYM = re.compile(r"\(\s*([A-ZÀ-Ý][A-Za-zÀ-ÿ0-9&]{1,9})\s*\)")
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


def _initials(words: list[str]) -> str:
    """Initials of the words that carry meaning (short function words skipped)."""
    return "".join(word[0] for word in words if len(word) > 2 or word[:1].isupper()).casefold()


def _acronym_definitions(text: str, mentions: list[Mention]) -> list[tuple[Mention, str]]:
    """``(long form mention, acronym)`` for each ``Long Form (LF)`` in the text."""
    by_end = {mention.end: mention for mention in mentions}
    found = []
    for match in _ACRONYM.finditer(text):
        acronym = match.group(1)
        letters = sum(char.isupper() for char in acronym)
        if letters < 2:
            continue
        end = len(text[: match.start()].rstrip())
        mention = by_end.get(end)
        if mention is not None and _initials(_WORD.findall(mention.text)) == acronym.casefold():
            found.append((mention, acronym))
            continue
        # The model missed the long form: look back for capitalised words whose initials spell it.
        words = list(_WORD.finditer(text[max(0, end - 200) : end]))
        offset = max(0, end - 200)
        for size in range(len(acronym), min(len(words), len(acronym) + 5) + 1):
            window = words[-size:]
            if not window[0].group()[:1].isupper():
                continue
            if _initials([word.group() for word in window]) == acronym.casefold():
                start, stop = offset + window[0].start(), offset + window[-1].end()
                long_form = Mention(text[start:stop], "ORG", start, stop, "rule:acronym")
                found.append((long_form, acronym))
                break
    return found


def resolve(text: str, mentions: list[Mention], gazetteer: Gazetteer | None = None) -> list[Mention]:
    """The mentions with ``canonical`` (and ``key`` for known places) set; aliases added.

    Mentions must already be normalised (:func:`tasks.ner.normalise.normalise_mentions`).
    """
    mentions = sorted(mentions, key=lambda mention: mention.start)
    spans = {(mention.start, mention.end) for mention in mentions}
    aliases: dict[str, Mention] = {}  # folded alias -> the mention of the full name

    for long_form, acronym in _acronym_definitions(text, mentions):
        if (long_form.start, long_form.end) not in spans:
            # The model's pieces of the long form ("Groupe international de soutien", "Syrie")
            # give way to it.
            mentions = [m for m in mentions if not (long_form.start <= m.start and m.end <= long_form.end)]
            mentions.append(long_form)
            spans.add((long_form.start, long_form.end))
        aliases[fold(acronym)] = long_form
        for match in re.finditer(rf"(?<!\w){re.escape(acronym)}(?!\w)", text):
            if not any(m.start <= match.start() < m.end for m in mentions):
                mentions.append(
                    Mention(acronym, long_form.label, match.start(), match.end(), long_form.method)
                )
                spans.add((match.start(), match.end()))

    # One label per folded name: the majority (first seen wins a tie).
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for mention in mentions:
        votes[fold(mention.text)][mention.label] += 1
    mentions = [replace(m, label=votes[fold(m.text)].most_common(1)[0][0]) for m in mentions]

    if gazetteer is not None:
        mentions = [_place_not_person(mention, gazetteer) for mention in mentions]

    # Full person names, grouped by (surname, first three letters of the first name).
    people: dict[tuple[str, str], Mention] = {}
    surnames: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for mention in mentions:
        words = fold(mention.text).split()
        if mention.label == "PER" and len(words) >= 2:
            person = (words[-1], words[0][:3])
            best = people.get(person)
            if best is None or len(mention.text) > len(best.text):
                people[person] = mention
            surnames[words[-1]].add(person)
    for surname, persons in surnames.items():
        if len(persons) == 1:
            aliases.setdefault(surname, people[next(iter(persons))])

    resolved = []
    for mention in mentions:
        folded = fold(mention.text)
        words = folded.split()
        target = aliases.get(folded)
        if target is None and mention.label == "PER" and len(words) >= 2:
            target = people.get((words[-1], words[0][:3]))
        if target is not None:
            mention = replace(mention, label=target.label, canonical=target.text)
        else:
            mention = replace(mention, canonical=mention.text)
        resolved.append(mention)

    # Bare surnames the model did not tag ("Kerry a dit") are mentions of the person too.
    unique = {
        surname: people[next(iter(persons))]
        for surname, persons in surnames.items()
        if len(persons) == 1 and len(surname) >= 3
    }
    if unique:
        covered = bytearray(len(text))
        for mention in resolved:
            covered[mention.start : mention.end] = b"\x01" * (mention.end - mention.start)
        for match in _WORD.finditer(text):
            word = match.group()
            if not word[:1].isupper() or covered[match.start()]:
                continue
            full = unique.get(fold(word))
            if full is not None:
                resolved.append(
                    Mention(word, "PER", match.start(), match.end(), full.method, canonical=full.text)
                )

    if gazetteer is not None:
        resolved = [_with_place_key(mention, gazetteer) for mention in resolved]
    return sorted(resolved, key=lambda mention: mention.start)


#: A one-word "person" or "organisation" that is a city this big is the city ("Washington a
#: exhorté la Russie"); smaller cities share their names with clubs and surnames.
BIG_CITY = 500_000


def _place_not_person(mention: Mention, gazetteer: Gazetteer) -> Mention:
    """A one-word PER or ORG mention naming a country or a big city is that place.

    Runs before surname merging, so "Kerry" stays John Kerry and a "Washington" whose
    document names George Washington becomes his surname again.
    """
    if mention.label not in ("PER", "ORG") or " " in mention.text:
        return mention
    place = gazetteer.lookup(mention.text)
    if place is None or (place.kind == "city" and place.population < BIG_CITY):
        return mention
    return replace(mention, label="LOC", key=place.key)


def _with_place_key(mention: Mention, gazetteer: Gazetteer) -> Mention:
    if mention.label != "LOC" or mention.key:
        return mention
    place = gazetteer.lookup(mention.canonical or mention.text)
    return replace(mention, key=place.key) if place else mention


def _surface_rank(text: str) -> tuple[int, int, int]:
    """Prefer the longest name, then the one with accents kept ("États-Unis" > "Etats-Unis")."""
    return (len(text.split()), sum(not char.isascii() for char in text), len(text))


def entity_key(label: str, canonical: str) -> str:
    """The join key of an entity without a better one: ``per:serguei-lavrov``."""
    return f"{label.lower()}:{fold(canonical).replace(' ', '-')}"


def to_entities(mentions: list[Mention]) -> list[Entity]:
    """One :class:`Entity` per (canonical fold, label), ordered by first mention."""
    groups: dict[tuple[str, str], list[Mention]] = defaultdict(list)
    for mention in mentions:
        groups[(fold(mention.canonical or mention.text), mention.label)].append(mention)
    entities = []
    for (_, label), group in groups.items():
        surfaces = [m.canonical or m.text for m in group] + [m.text for m in group]
        text = max(surfaces, key=_surface_rank)
        methods = Counter(m.method for m in group)
        key = next((m.key for m in group if m.key), None) or entity_key(label, text)
        entities.append(
            Entity(
                text=text,
                label=label,  # type: ignore[arg-type]
                count=len(group),
                first_offset=min(m.start for m in group),
                method=methods.most_common(1)[0][0],
                key=key,
            )
        )
    return sorted(entities, key=lambda entity: entity.first_offset)
