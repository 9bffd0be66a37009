"""Text normalisation, the exact content hash and MinHash signatures of article text.

Why MinHash and not SimHash: on the labelled near-duplicate corpus (wire stories with cut
tails, datelines, credits, typography changes and appended updates) the word-5-shingle
Jaccard similarity of true copies goes down to ~0.40 while different stories stay below
~0.10, a wide gap that MinHash estimates without bias. SimHash fingerprints of the same
pairs overlap (copies up to 24 bits apart, different stories from 16 bits), and a Hamming
radius of 16+ bits cannot be indexed anyway. ``bench/dedup.py`` prints both.

The signature is datasketch's MinHash (``affine32`` scheme, fixed seed: changing the
seed, the permutation count or the shingle size makes new signatures incomparable with
indexed ones, so those three name the index, see :mod:`stores.dedup_index`). What the index
stores per article is a *sketch*: one mixed byte per permutation (b-bit MinHash, Li and
König 2010), enough to estimate the Jaccard similarity, and the first ``bands`` full
32-bit MinHash values, each one LSH band (one row per band: a pair of Jaccard J shares at
least one band with probability 1 - (1 - J)^bands, 99.8 % at J = 0.4 with 12 bands).
"""

from __future__ import annotations

import hashlib
import math
import re
import struct
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from datasketch import MinHash

#: MinHash seed. Part of the index name: never change it for a live index.
SEED = 1
SCHEME = "affine32"

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_BYTE_MIX = np.uint32(0x9E3779B1)  # Knuth's multiplicative constant: the top byte mixes all bits


def normalize_text(text: str) -> str:
    """The text reduced to lower-case words separated by single spaces.

    Unicode NFKC (full-width forms, ligatures, non-breaking spaces), case folded,
    punctuation, quotes and dashes of every style dropped, whitespace folded: two copies
    that differ only in typography normalise to the same string.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NON_WORD.sub(" ", folded).split())


def content_hash(text: str) -> str:
    """sha256 of the normalised text: the exact-duplicate key."""
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def shingles(text: str, size: int) -> set[bytes]:
    """The set of word ``size``-grams of the normalised text (the whole text if shorter)."""
    words = normalize_text(text).split()
    if len(words) <= size:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[start : start + size]).encode("utf-8") for start in range(len(words) - size + 1)}


@dataclass(frozen=True)
class Signature:
    """An article's MinHash, in the two forms the index uses."""

    hashvalues: np.ndarray

    @property
    def num_perm(self) -> int:
        """Permutations (bytes of the sketch)."""
        return len(self.hashvalues)

    def sketch(self) -> bytes:
        """One byte per permutation: the top byte of the MinHash value, remixed."""
        mixed = self.hashvalues.astype(np.uint32) * _BYTE_MIX
        return (mixed >> np.uint32(24)).astype(np.uint8).tobytes()

    def bands(self, count: int) -> list[int]:
        """``count`` 32-bit LSH band keys (band number mixed in, so bands never collide)."""
        values = self.hashvalues[:count].astype(np.uint64).tolist()
        return [
            int.from_bytes(hashlib.blake2b(struct.pack("<HQ", band, value), digest_size=4).digest(), "little")
            for band, value in enumerate(values)
        ]


@lru_cache(maxsize=8)
def _permutations(num_perm: int) -> tuple[np.ndarray, np.ndarray]:
    return MinHash(num_perm=num_perm, seed=SEED, scheme=SCHEME).permutations


def signature(text: str, num_perm: int, shingle_words: int) -> Signature:
    """The MinHash signature of ``text``'s word shingles."""
    minhash = MinHash(num_perm=num_perm, seed=SEED, scheme=SCHEME, permutations=_permutations(num_perm))
    minhash.update_batch(sorted(shingles(text, shingle_words)))
    return Signature(hashvalues=np.asarray(minhash.hashvalues))


#: Chance that the sketch bytes of two different minima agree anyway.
_BYTE_COLLISION = 1 / 256


def estimate_jaccard(matches: int, num_perm: int) -> float:
    """The Jaccard similarity estimated from ``matches`` equal sketch bytes out of ``num_perm``.

    Equal bytes come from equal minima (probability J) or from a byte collision
    (1/256 of the rest): E[matches / num_perm] = J + (1 - J) / 256.
    """
    if matches <= 0:
        return 0.0
    share = matches / num_perm
    return round(max(0.0, min(1.0, (share - _BYTE_COLLISION) / (1 - _BYTE_COLLISION))), 4)


def matches_needed(threshold: float, num_perm: int) -> int:
    """Smallest count of equal sketch bytes whose estimate reaches ``threshold``."""
    needed = math.ceil(num_perm * (threshold * (1 - _BYTE_COLLISION) + _BYTE_COLLISION) - 1e-9)
    return max(1, min(num_perm, needed))
