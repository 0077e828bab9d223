"""Text analysis for the kennisbank search: normalisation, tokens, stems, compounds and typos.

The steps, in order, for indexed text and queries alike:

1. `normalise`: lowercase and strip diacritics ("Oké" = "oke", "één" = "een"), so residents'
   keyboards and spelling habits do not matter.
2. `tokens`: runs of letters and digits; a hyphen or apostrophe splits ("id-kaart" -> "id",
   "kaart"; the index also keeps the joined form "idkaart", see `joined_pairs`).
3. `stem`: Snowball stemming (PyStemmer, the C build: pure-Python Snowball costs ~0.5 ms a
   word, too slow to index thousands of articles). Dutch uses the `dutch_porter` algorithm,
   the one PostgreSQL's `'dutch'` text-search configuration uses (see NOTES.md): it keeps
   "gemeente" and "gemeen" apart, unlike Snowball's newer `dutch`. English words are stemmed
   with `english`. The search index is built in-process from the database rows, so SQLite and
   PostgreSQL give identical results; the PostgreSQL-compatible stemmer keeps a future
   tsvector index compatible.
4. Stop words (the commonest Dutch and English function words) are dropped from queries and
   documents: they carry no topic and only add noise to BM25.
5. Compounds: Dutch glues nouns together ("parkeervergunning", "afvalcontainer"). A word is
   split into two known parts, each at least `MIN_PART` letters, optionally joined by a linking
   "s", "e" or "en" ("gemeente|s|belasting"). "Known" means: a stem in the index vocabulary, so
   the splitting adapts to whatever the articles say and never invents words.
6. Typos: a query word of `TYPO_MIN_LENGTH` letters or more that is not in the vocabulary is
   matched to vocabulary words within edit distance 1 (2 for words of `TYPO2_MIN_LENGTH`
   letters), found with a deletion index (the SymSpell idea: two words within distance d share
   a string obtained by at most d deletions from each), then checked with a real
   Damerau-Levenshtein distance.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

import Stemmer  # PyStemmer: the Snowball stemmers in C

_FOLD = str.maketrans(
    {"ł": "l", "ı": "i", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe", "ĳ": "ij"}
)
_WORD = re.compile(r"[^\W_]+")

MIN_PART = 4
LINKS = ("", "s", "e", "en")
TYPO_MIN_LENGTH = 5
TYPO2_MIN_LENGTH = 9

# Function words only: never a word that could name a municipal topic.
STOPWORDS = frozenset(
    """
    aan al alle alles als alsjeblieft alstublieft altijd ben bij daar dan dank dat de deze die dit
    doe doen door dus een eens en er ga gaan geen had heb hebben heeft hem het hier hij hoe hoi
    hun ik in is ja je jij jou jullie kan kon kun kunnen maar me mee met mij mijn moet moeten na
    naar niet nog nu of om omdat ons onze ook op over te tot u uw van veel voor vraag vragen waar
    wanneer want was wat we wel welke wie wij wil willen word worden wordt ze zelf zich zij zijn
    zo zou zouden graag goedemiddag goedemorgen goedenavond hallo beste geachte groet groeten
    vriendelijke mvg gr iets even weer nou toch ok oke
    a about am an and are as at be been but by can could do does for from has have hello hi how
    i if in into is it its me my no not of on or our please so that the their them then there
    these they this to us was we were what when where which who why will with would you your
    dear thanks thank regards
    """.split()  # noqa: SIM905 - a word list reads best as text
)

_DUTCH = Stemmer.Stemmer("dutch_porter")
_ENGLISH = Stemmer.Stemmer("english")


def normalise(text: str) -> str:
    """Lowercase without diacritics: 'Één Paspoort' -> 'een paspoort'."""
    folded = text.lower()
    if folded.isascii():
        return folded
    folded = folded.translate(_FOLD)
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(text: str) -> list[str]:
    """Normalised word tokens, stop words included (phrases and anonymisation need them)."""
    return _WORD.findall(normalise(text))


def content_tokens(text: str) -> list[str]:
    """Tokens that can carry a topic: no stop words, no lone letters."""
    return [t for t in tokens(text) if t not in STOPWORDS and (len(t) > 1 or t.isdigit())]


@lru_cache(maxsize=200_000)
def stem_nl(token: str) -> str:
    return str(_DUTCH.stemWord(token))


@lru_cache(maxsize=200_000)
def stem_en(token: str) -> str:
    return str(_ENGLISH.stemWord(token))


def stem(token: str, language: str = "nl") -> str:
    return stem_en(token) if language == "en" else stem_nl(token)


def joined_pairs(words: list[str]) -> Iterator[str]:
    """'id kaart' -> 'idkaart': hyphenated and split spellings of one compound meet."""
    for left, right in itertools.pairwise(words):
        if len(left) + len(right) >= 2 * MIN_PART - 1 and not (left + right).isdigit():
            yield left + right


def split_compound(word: str, known: set[str] | frozenset[str], depth: int = 2) -> list[str]:
    """The known stems a compound word consists of, or [] when there is no such split.

    `word` is a normalised token (not stemmed): each part is stemmed before the look-up, so
    "parkeervergunning" gives ["parker", "vergunn"] when both stems are in `known`. The
    right-hand part may itself be a compound (`depth` levels: "bewonersparkeervergunning").
    Of several splits the one with the longest right-hand part wins (Dutch compounds are
    right-headed: the last part says what the word is).
    """
    size = len(word)
    if size < 2 * MIN_PART:
        return []
    for cut in range(MIN_PART, size - MIN_PART + 1):
        right = word[cut:]
        right_stem = stem_nl(right)
        if right_stem in known:
            right_parts = [right_stem]
        elif depth > 1:
            right_parts = split_compound(right, known, depth - 1)
            if not right_parts:
                continue
        else:
            continue
        left_full = word[:cut]
        for link in LINKS:
            if link and not left_full.endswith(link):
                continue
            left = left_full[: len(left_full) - len(link)] if link else left_full
            if len(left) < MIN_PART:
                continue
            left_stem = stem_nl(left)
            if left_stem in known:
                return [left_stem, *right_parts]
            if left in known:
                return [left, *right_parts]
    return []


def deletes(word: str, distance: int) -> set[str]:
    """All strings made from `word` by deleting up to `distance` characters (word included)."""
    found = {word}
    frontier = {word}
    for _ in range(distance):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def edit_distance(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance (Damerau-Levenshtein with adjacent transpositions),
    cut off at `limit` + 1."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def typo_distance(word: str) -> int:
    if len(word) >= TYPO2_MIN_LENGTH:
        return 2
    if len(word) >= TYPO_MIN_LENGTH:
        return 1
    return 0
