"""Language identification: langdetect with two fast second opinions and the page's own tag.

langdetect (the detector the user asked for) is seeded, so the same text always gets the
same answer, reads at most ``sample_chars`` characters and runs 3 random trials instead of
7 (about 6 ms for 1,000 characters). It does
not know some languages we ingest (Icelandic, isiZulu, isiXhosa, ...) and is unreliable on
short texts such as titles; pycld2 (0.2 ms) and py3langid (2 ms) know them and are steadier
on short texts. Each detector votes with its probability for its top candidates; the page's
``lang`` tag adds a smaller vote, enough to decide near-ties (Danish or Norwegian?) but not
to overrule the text (many pages declare ``en`` whatever they hold).

The confidence is calibrated: the probability that the language is right, read from
:data:`CALIBRATION`, a table of the accuracy measured on the shared corpora (news/ and
l3s-gn1/, titles and the first 30 to 1,000 characters of bodies) for the sample's length
(letters), how many detectors put the winner first and whether the page's tag names it.
``bench/language.py`` fits it, cross-validated by site, and prints its reliability. The vote
share itself (:attr:`Evidence.score`) is not a probability: three detectors that agree on a
long text and a matching tag gave 0.9972 to almost every page, right or wrong.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

import pycld2
from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import LangDetectException
from py3langid.langid import MODEL_FILE, LanguageIdentifier

#: Below this many letters there is nothing to judge; the declared language (if any) is used.
MIN_LETTERS = 3
#: Texts shorter than this (letters) are "short": titles, captions, stubs.
SHORT_LETTERS = 120
#: Confidence when the text has fewer than MIN_LETTERS letters and the page's tag alone
#: decides: a convention (low on purpose), not a measurement.
DECLARED_ONLY_CONFIDENCE = 0.3
#: Vote weights. langdetect is the primary detector; the declared tag only breaks ties.
WEIGHT_LANGDETECT = 1.0
WEIGHT_CLD2 = 1.0
WEIGHT_LANGID = 1.0
WEIGHT_DECLARED = 0.6
#: Retired and macro codes the detectors or pages use, mapped to the ISO 639-1 code we record.
ALIASES = {"iw": "he", "in": "id", "ji": "yi", "jw": "jv", "nb": "no", "nn": "no"}

#: langdetect's random trials per text (its default is 7); with two other detectors voting,
#: 3 trials give the same answers on the corpus at 60% of the cost.
LANGDETECT_TRIALS = 3
_langdetect_lock = threading.Lock()


@dataclass(frozen=True)
class LanguageGuess:
    """An ISO 639-1 code (or None) and how sure we are of it (0..1)."""

    language: str | None
    confidence: float | None


def normalize_code(tag: str | None) -> str | None:
    """``fr-CA`` -> ``fr``; ``zh-Hant`` -> ``zh``; ``nb-NO`` -> ``no``; junk -> None."""
    if not tag:
        return None
    primary = tag.strip().replace("_", "-").split("-")[0].lower()
    primary = ALIASES.get(primary, primary)
    return primary if len(primary) == 2 and primary.isalpha() else None


@lru_cache(maxsize=1)
def _langid() -> LanguageIdentifier:
    """py3langid's model with normalised probabilities, loaded once per process (~0.3 s)."""
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


@lru_cache(maxsize=1)
def _langdetect_factory() -> DetectorFactory:
    """langdetect's profiles, loaded once per process (~1 s), with a fixed seed."""
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.seed = 0
    return factory


def _langdetect_votes(sample: str) -> dict[str, float]:
    try:
        with _langdetect_lock:
            detector = _langdetect_factory().create()
        detector.n_trial = LANGDETECT_TRIALS
        detector.append(sample)
        candidates = detector.get_probabilities()
    except LangDetectException:
        return {}
    votes: dict[str, float] = {}
    for candidate in candidates[:3]:
        code = normalize_code(candidate.lang)
        if code:
            votes[code] = votes.get(code, 0.0) + float(candidate.prob)
    return votes


def _cld2_votes(sample: str) -> dict[str, float]:
    try:
        reliable, _, details = pycld2.detect(sample)
    except pycld2.error:
        return {}
    votes: dict[str, float] = {}
    for _name, code, percent, _score in details:
        lang = normalize_code(code)
        if lang and lang != "un" and percent:
            votes[lang] = votes.get(lang, 0.0) + percent / 100 * (1.0 if reliable else 0.5)
    return votes


def _langid_votes(sample: str) -> dict[str, float]:
    votes: dict[str, float] = {}
    for code, prob in _langid().rank(sample)[:3]:
        lang = normalize_code(code)
        if lang and prob >= 0.05:
            votes[lang] = votes.get(lang, 0.0) + float(prob)
    return votes


def _clean_sample(text: str, sample_chars: int) -> str:
    """The first ``sample_chars`` characters, whitespace folded, invalid code points dropped."""
    sample = " ".join(text[: sample_chars * 2].split())[:sample_chars]
    return sample.encode("utf-8", "ignore").decode("utf-8")


@dataclass(frozen=True)
class Evidence:
    """What the detectors said about one sample: the vote's winner and what backs it.

    ``score`` is the winner's share of the weighted vote (what ``language_confidence`` was
    before it was calibrated); ``agreeing`` counts the detectors whose own first choice is the
    winner, out of ``answered`` that gave any; ``declared`` is the page's tag, normalised.
    """

    language: str
    score: float
    letters: int
    agreeing: int
    answered: int
    declared: str | None


def _top(votes: dict[str, float]) -> str | None:
    return max(votes, key=lambda code: votes[code]) if votes else None


def gather(text: str, declared: str | None = None, sample_chars: int = 1000) -> Evidence | None:
    """The weighted vote on a sample of ``text``, or None when there is nothing to vote on.

    None also when the sample has fewer than :data:`MIN_LETTERS` letters (the declared tag
    alone decides then, see :func:`detect_language`).
    """
    return _evidence(_clean_sample(text or "", sample_chars), normalize_code(declared))


def _evidence(sample: str, declared_code: str | None) -> Evidence | None:
    letters = sum(ch.isalpha() for ch in sample)
    if letters < MIN_LETTERS:
        return None
    scores: dict[str, float] = defaultdict(float)
    weights = 0.0
    tops: list[str | None] = []
    for weight, votes in (
        (WEIGHT_LANGDETECT, _langdetect_votes(sample)),
        (WEIGHT_CLD2, _cld2_votes(sample)),
        (WEIGHT_LANGID, _langid_votes(sample)),
    ):
        if votes:
            weights += weight
            tops.append(_top(votes))
            for code, vote in votes.items():
                scores[code] += weight * vote
    if declared_code:
        weights += WEIGHT_DECLARED
        scores[declared_code] += WEIGHT_DECLARED
    if not scores:
        return None
    best = max(scores, key=lambda code: (scores[code], code == declared_code))
    score = scores[best] / weights if weights else 0.0
    agreeing = sum(top == best for top in tops)
    return Evidence(best, min(score, 1.0), letters, agreeing, len(tops), declared_code)


#: Upper bounds (exclusive) of the sample lengths, in letters, of :data:`CALIBRATION`'s rows;
#: a longer sample is ``long``.
LENGTH_BUCKETS = (25, 50, SHORT_LETTERS)
#: P(the language is right) by (length bucket, detector agreement): (the page's tag names the
#: winner, it does not or there is none). Agreement: ``all`` detectors that answered (two at
#: least) put the winner first, ``most`` (two of three) did, or ``few`` (one or none). Fitted by
#: ``bench/language.py`` on 461 pages of ../shared/corpus (news/: 25 languages, l3s-gn1/:
#: English; titles, 30 to 1,000 characters of bodies and the language stage's sample, with and
#: without the tag). Each page counts once per cell, each cell is shrunk towards the accuracy
#: of its agreement (a cell no page reached, e.g. a long text the detectors disagree on, gets
#: that: 0.499), and none exceeds 0.998 (Laplace's rule for 461 pages, none wrong).
#: Cross-validated by site, the ECE is 0.006 (0.099 for the old vote share). The comment is
#: the pages behind each cell. Re-fit and paste what the bench prints whenever a detector, a
#: weight or the sampling changes.
CALIBRATION: dict[tuple[str, str], tuple[float, float]] = {
    ("<25", "all"): (0.998, 0.994),  # pages 63, 165
    ("<25", "most"): (0.968, 0.816),  # pages 9, 38
    ("<25", "few"): (0.905, 0.381),  # pages 10, 54
    ("<50", "all"): (0.998, 0.996),  # pages 166, 338
    ("<50", "most"): (0.993, 0.94),  # pages 16, 42
    ("<50", "few"): (0.89, 0.569),  # pages 5, 23
    ("<120", "all"): (0.998, 0.998),  # pages 219, 454
    ("<120", "most"): (0.998, 0.998),  # pages 4, 11
    ("<120", "few"): (0.499, 0.499),  # pages 0, 0
    ("long", "all"): (0.998, 0.998),  # pages 220, 457
    ("long", "most"): (0.989, 0.989),  # pages 1, 4
    ("long", "few"): (0.499, 0.499),  # pages 0, 0
}


def length_bucket(letters: int) -> str:
    """The row of :data:`CALIBRATION` for a sample of this many letters: ``<25`` ... ``long``."""
    for bound in LENGTH_BUCKETS:
        if letters < bound:
            return f"<{bound}"
    return "long"


def agreement(evidence: Evidence) -> str:
    """``all``, ``most`` or ``few`` of the detectors put the vote's winner first."""
    if evidence.answered >= 2 and evidence.agreeing == evidence.answered:
        return "all"
    return "most" if evidence.agreeing >= 2 else "few"


def calibrated(evidence: Evidence) -> float:
    """The probability, measured on the corpora, that ``evidence.language`` is right."""
    tag_agrees, otherwise = CALIBRATION[(length_bucket(evidence.letters), agreement(evidence))]
    return tag_agrees if evidence.declared == evidence.language else otherwise


def detect_language(text: str, declared: str | None = None, sample_chars: int = 1000) -> LanguageGuess:
    """The language of ``text`` (ISO 639-1), helped by the page's declared ``lang`` tag, and the
    calibrated probability that it is right (:func:`calibrated`).

    Empty, non-text or letter-free input gives the declared language at
    :data:`DECLARED_ONLY_CONFIDENCE`, or ``LanguageGuess(None, None)`` when there is none; it
    never raises.
    """
    declared_code = normalize_code(declared)
    sample = _clean_sample(text or "", sample_chars)
    if sum(ch.isalpha() for ch in sample) < MIN_LETTERS:
        return LanguageGuess(declared_code, DECLARED_ONLY_CONFIDENCE if declared_code else None)
    evidence = _evidence(sample, declared_code)
    if evidence is None:
        return LanguageGuess(None, None)
    return LanguageGuess(evidence.language, calibrated(evidence))


def second_opinion(text: str, sample_chars: int = 1000) -> str | None:
    """The language pycld2 reliably finds in ``text`` (~0.2 ms), or None when it is unsure.

    Used to confirm an earlier full guess on a longer text: when pycld2 agrees with it, two
    independent detectors do and the full vote need not run again.
    """
    sample = _clean_sample(text or "", sample_chars)
    if sum(ch.isalpha() for ch in sample) < SHORT_LETTERS:
        return None
    try:
        reliable, _, details = pycld2.detect(sample)
    except pycld2.error:
        return None
    if not reliable or not details or details[0][2] < 80:
        return None
    return normalize_code(details[0][1])
