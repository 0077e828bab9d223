"""Kennisbank gaps: questions without a good answer, anonymised and counted for the content team
(the "Kennisfabriek" signal from front office to back office).

What is kept of a question is a short list of lower-case words, never the text: e-mail
addresses, IBANs, postcodes, phone numbers, BSNs and every other word containing a digit
(house numbers, dates, reference numbers) go first; then what looks like a name: words after
"mijn naam is", a title (mevrouw, meneer, dhr., ...), a capitalised word that does not start a
sentence (Dutch capitalises names, streets and places, not nouns), and everything after a
closing ("met vriendelijke groet", "mvg", ...), which is where signatures are. Stop words go,
so what remains are the topic words the content team needs.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from kennisbank.text import STOPWORDS, normalise

MAX_WORDS = 16

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b", re.IGNORECASE)
_POSTCODE = re.compile(r"\b\d{4}[ ]?[A-Z]{2}\b", re.IGNORECASE)
_NUMBERISH = re.compile(r"\+?\d[\d\s().-]*\d|\d")
_CLOSING = re.compile(
    r"(?:met\s+)?(?:vriendelijke\s+)?groet(?:en)?\b|\bmvg\b|\bhoogachtend\b|\bgroetjes\b"
    r"|\bkind\s+regards\b|\bbest\s+regards\b|\bregards\b|\bsincerely\b",
    re.IGNORECASE,
)
_NAME_INTRO = re.compile(
    r"\b(?:mijn\s+naam\s+is|ik\s+heet|my\s+name\s+is|namens|i\s+am)\s+((?:\S+\s*){1,3})",
    re.IGNORECASE,
)
_TITLE = re.compile(
    r"\b(?i:mevrouw|meneer|mevr|mw|dhr|hr|mr|mrs|ms|de\s+heer|familie|fam)\.?\s+"
    r"((?:[A-Z][\w'-]*\.?\s*){1,3})",
)
_WORD = re.compile(r"[^\W\d_]+|[.!?\n]")


def is_bsn(digits: str) -> bool:
    """The 11-proef of a burgerservicenummer: 9 digits, weights 9..2 and -1, sum divisible
    by 11. Used to recognise BSNs in tests and checks; the anonymiser drops every number."""
    if not re.fullmatch(r"\d{9}", digits):
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    total -= int(digits[8])
    return total % 11 == 0


def anonymise(text: str) -> str:
    """Lower-case topic words of `text`, without personal data (see the module docstring)."""
    closing = _CLOSING.search(text)
    if closing:
        text = text[: closing.start()]
    for pattern in (_EMAIL, _URL, _IBAN, _POSTCODE):
        text = pattern.sub(" ", text)
    text = _NAME_INTRO.sub(" ", text)
    text = _TITLE.sub(" ", text)
    text = _NUMBERISH.sub(" ", text)

    kept: list[str] = []
    sentence_start = True
    for match in _WORD.finditer(text):
        word = match.group(0)
        if word in ".!?\n":
            sentence_start = True
            continue
        starts_upper = word[0].isupper()
        acronym = word.isupper() and len(word) <= 5  # WOZ, BRP, AOW, WMO
        camel = any(c.isupper() for c in word[1:]) and not word.isupper()  # DigiD
        if starts_upper and not sentence_start and not acronym and not camel:
            continue  # a name, street or place in the middle of a sentence
        sentence_start = False
        token = normalise(word)
        if token in STOPWORDS or len(token) < 2:
            continue
        kept.append(token)
    return " ".join(kept[:MAX_WORDS])[:300]


@dataclass
class _Pending:
    count: int
    source: str
    best_slug: str | None
    best_score: float


class GapBuffer:
    """Gaps noticed by the router (possibly in a worker thread) until they are written.

    Writing a gap in the middle of an intake would add a write to the contact's transaction;
    a gap is a statistic, so it waits here (bounded) and `Kennisbank.flush_gaps` writes the
    counts every few seconds. A crash loses at most those seconds of counts, never a contact.
    """

    def __init__(self, limit: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._limit = limit

    def add(self, query: str, source: str, best_slug: str | None, best_score: float) -> None:
        if not query:
            return
        with self._lock:
            pending = self._pending.get(query)
            if pending is not None:
                pending.count += 1
                pending.best_slug, pending.best_score = best_slug, best_score
            elif len(self._pending) < self._limit:
                self._pending[query] = _Pending(1, source, best_slug, best_score)

    def take(self) -> dict[str, tuple[int, str, str | None, float]]:
        with self._lock:
            taken, self._pending = self._pending, {}
        return {q: (p.count, p.source, p.best_slug, p.best_score) for q, p in taken.items()}

    def put_back(self, items: dict[str, tuple[int, str, str | None, float]]) -> None:
        with self._lock:
            for query, (count, source, slug, score) in items.items():
                pending = self._pending.setdefault(query, _Pending(0, source, slug, score))
                pending.count += count
