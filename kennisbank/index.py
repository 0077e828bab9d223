"""An in-process BM25F index over the current version of every article.

Why in-process and not FTS5 or tsvector: the same Python code then ranks on SQLite and on
PostgreSQL, so search, suggestions and routing give identical answers on both; and the
kennisbank is small (hundreds of articles, thousands at most), so a full rebuild from the
database rows takes well under a second for the default kennisbank and a few seconds for 5,000
articles. `search.Kennisbank` rebuilds it when the version counter in the database moves.

Ranking is BM25F (Robertson & Zaragoza): per document, a term's frequency in each field
(title, keywords, body) is length-normalised per field, weighted by the field's weight and
summed, then saturated once with k1 and multiplied by the term's idf. The per-term, per-document
contribution is computed at build time and kept as arrays (numpy), so a query adds whole
postings lists in C: about a millisecond for 5,000 articles.

Query words are matched by alternatives, and each query word counts with its best alternative
(so a word never scores twice): its Dutch stem, its English stem, synonyms from
config/kennisbank.toml, a split into two known compound parts, or — when the word is unknown —
the vocabulary words within a small edit distance. Compounds in the articles are split at build
time too, so "vergunning parkeren" finds "parkeervergunning" and the other way round.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from kennisbank.article import Article
from kennisbank.text import (
    content_tokens,
    deletes,
    edit_distance,
    joined_pairs,
    split_compound,
    stem_en,
    stem_nl,
    typo_distance,
)

FIELDS = ("title", "keywords", "body")


@dataclass(frozen=True)
class SearchSettings:
    """Ranking knobs, from `[search]` in config/kennisbank.toml."""

    k1: float = 1.2
    weights: Mapping[str, float] = field(
        default_factory=lambda: {"title": 3.0, "keywords": 2.5, "body": 1.0}
    )
    b: Mapping[str, float] = field(
        default_factory=lambda: {"title": 0.4, "keywords": 0.3, "body": 0.75}
    )
    # Share of a compound's weight given to each of its parts in the articles' text.
    compound_part_tf: float = 0.5
    # Weight of a query word's compound split, a synonym, and a typo correction.
    compound_weight: float = 0.8
    synonym_weight: float = 0.8
    typo_weight: float = 0.7
    # Longer messages (e-mails, letters) are cut to their most informative words.
    max_query_words: int = 40


@dataclass(frozen=True)
class Match:
    doc: int
    score: float


@dataclass
class _Doc:
    tf: dict[str, dict[str, float]]  # field -> term -> weighted frequency
    length: dict[str, float]


def _field_texts(article: Article) -> dict[str, list[tuple[str, str]]]:
    """(text, language) per field. English text is stemmed as English."""
    facts_nl, facts_en = article.facts_text()
    body: list[tuple[str, str]] = []
    for (language, _variant), text in article.sections.items():
        body.append((text, language))
    body += [(facts_nl, "nl"), (facts_en, "en")]
    return {
        "title": [(article.title, "nl"), (article.title_en, "en")],
        "keywords": [(" ; ".join(article.keywords), "nl"), (" ; ".join(article.keywords_en), "en")],
        "body": body,
    }


class Index:
    """Immutable once built; build a new one to change it (readers never see half an index)."""

    def __init__(
        self,
        articles: Sequence[Article],
        settings: SearchSettings | None = None,
        synonyms: Iterable[Iterable[str]] = (),
    ) -> None:
        self.settings = settings or SearchSettings()
        self.articles: list[Article] = list(articles)
        # Each field as (words, language) parts, tokenised once for both passes.
        texts = [
            {
                name: [
                    ([w for w in content_tokens(t) if not w.isdigit()], lang) for t, lang in parts
                ]
                for name, parts in _field_texts(a).items()
            }
            for a in self.articles
        ]

        # Pass 1: the vocabulary of stems and of surface words (for typo correction).
        self.surface: dict[str, str] = {}
        stems: set[str] = set()
        for fields in texts:
            for parts in fields.values():
                for words, language in parts:
                    for token in words:
                        term = stem_en(token) if language == "en" else stem_nl(token)
                        stems.add(term)
                        self.surface.setdefault(token, term)
        self.stems: frozenset[str] = frozenset(stems)

        # Pass 2: term frequencies per field, with compound parts and joined pairs.
        self._build_splits: dict[str, list[str]] = {}
        docs = [self._analyse(fields) for fields in texts]
        count = len(docs)
        average = {
            name: (sum(d.length[name] for d in docs) / count if count else 0.0) or 1.0
            for name in FIELDS
        }
        document_frequency: dict[str, int] = defaultdict(int)
        for doc in docs:
            for term in set().union(*(doc.tf[name] for name in FIELDS)):
                document_frequency[term] += 1

        s = self.settings
        self.postings: dict[str, dict[int, float]] = defaultdict(dict)
        for number, doc in enumerate(docs):
            pseudo: dict[str, float] = defaultdict(float)
            for name in FIELDS:
                norm = 1.0 - s.b[name] + s.b[name] * doc.length[name] / average[name]
                for term, tf in doc.tf[name].items():
                    pseudo[term] += s.weights[name] * tf / norm
            for term, tf in pseudo.items():
                df = document_frequency[term]
                idf = math.log(1.0 + (count - df + 0.5) / (df + 0.5))
                self.postings[term][number] = idf * tf * (s.k1 + 1.0) / (s.k1 + tf)
        self.postings = dict(self.postings)
        self.vocabulary: frozenset[str] = frozenset(self.postings)
        # The same postings as arrays, made on first use (most terms are never queried and
        # making them all costs more than the rest of the build): a query adds whole postings
        # lists in C, not per article.
        self._arrays: dict[str, tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]] = {}
        # Scores are divided by the idf of a word found in one article only, so that a score
        # means about the same in a kennisbank of 30 articles as in one of 5,000 (raw BM25
        # grows with the log of the collection size) and one threshold fits both.
        self.scale = math.log(1.0 + (count - 0.5) / 1.5) if count > 1 else 1.0
        self._splits: dict[str, list[str]] = {}

        self._typo_index: dict[str, list[str]] = defaultdict(list)
        for word in self.surface:
            if len(word) >= 4:
                for variant in deletes(word, 1):
                    self._typo_index[variant].append(word)

        self.synonyms: dict[str, set[str]] = {}
        for group in synonyms:
            members = {self._stem_phrase(member) for member in group} - {""}
            for member in members:
                self.synonyms.setdefault(member, set()).update(members - {member})

    def _stem_phrase(self, phrase: str) -> str:
        words = content_tokens(phrase)
        return stem_nl("".join(words)) if words else ""

    def _analyse(self, fields: dict[str, list[tuple[list[str], str]]]) -> _Doc:
        part_tf = self.settings.compound_part_tf
        tf: dict[str, dict[str, float]] = {name: defaultdict(float) for name in FIELDS}
        length: dict[str, float] = {}
        for name, parts in fields.items():
            size = 0
            for words, language in parts:
                size += len(words)
                for word in words:
                    if language == "en":
                        tf[name][stem_en(word)] += 1.0
                        continue
                    tf[name][stem_nl(word)] += 1.0
                    pieces = self._build_splits.get(word)
                    if pieces is None:
                        pieces = self._build_splits[word] = split_compound(word, self.stems)
                    for piece in pieces:
                        tf[name][piece] += part_tf
                if language == "nl":
                    for joined in joined_pairs(words):
                        tf[name][stem_nl(joined)] += part_tf
            length[name] = float(size)
        return _Doc(tf={k: dict(v) for k, v in tf.items()}, length=length)

    # -- querying -----------------------------------------------------------------------------

    def alternatives(self, word: str) -> list[tuple[float, tuple[str, ...]]]:
        """Ways a query word can match: (weight, terms whose contributions add up)."""
        s = self.settings
        found: list[tuple[float, tuple[str, ...]]] = []
        known = False
        for term in {stem_nl(word), stem_en(word)}:
            if term in self.vocabulary:
                found.append((1.0, (term,)))
                known = True
            for synonym in self.synonyms.get(term, ()):
                if synonym in self.vocabulary:
                    found.append((s.synonym_weight, (synonym,)))
        parts = self._splits.get(word)
        if parts is None:
            parts = split_compound(word, self.vocabulary)
            if len(self._splits) < 100_000:
                self._splits[word] = parts
        if parts:
            found.append((s.compound_weight, tuple(parts)))
        if not known and not parts:
            for correction in self.corrections(word):
                term = self.surface[correction]
                if term in self.vocabulary:
                    found.append((s.typo_weight, (term,)))
        return found

    def corrections(self, word: str) -> list[str]:
        """Vocabulary words within the allowed edit distance, nearest first (ties all kept)."""
        limit = typo_distance(word)
        if not limit or word in self.surface:
            return []
        candidates: set[str] = set()
        for variant in deletes(word, limit):
            candidates.update(self._typo_index.get(variant, ()))
        best: list[str] = []
        best_distance = limit + 1
        for candidate in candidates:
            distance = edit_distance(word, candidate, limit)
            if distance < best_distance:
                best, best_distance = [candidate], distance
            elif distance == best_distance and distance <= limit:
                best.append(candidate)
        return sorted(best)[:3] if best_distance <= limit else []

    def query_words(self, text: str) -> list[str]:
        words = [w for w in content_tokens(text) if not w.isdigit()]
        unique = list(dict.fromkeys(words))
        limit = self.settings.max_query_words
        if len(unique) <= limit:
            return unique

        # Keep the rarest known words: they say the most about the topic.
        def rarity(word: str) -> float:
            postings = self.postings.get(stem_nl(word)) or self.postings.get(stem_en(word))
            return len(postings) if postings else len(self.articles) + 1.0

        return sorted(unique, key=rarity)[:limit]

    def _postings_array(self, term: str) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
        found = self._arrays.get(term)
        if found is None:
            docs = self.postings[term]
            found = (
                np.fromiter(docs.keys(), dtype=np.intp, count=len(docs)),
                np.fromiter(docs.values(), dtype=np.float64, count=len(docs)),
            )
            self._arrays[term] = found  # a race only makes the same arrays twice
        return found

    def search(self, text: str, limit: int = 5) -> list[Match]:
        """The best `limit` articles for `text`, best first; ties by slug (deterministic)."""
        count = len(self.articles)
        if not count:
            return []
        totals = np.zeros(count)
        for word in self.query_words(text):
            alternatives = self.alternatives(word)
            if not alternatives:
                continue
            if len(alternatives) == 1 and len(alternatives[0][1]) == 1:
                weight, (term,) = alternatives[0]
                docs, values = self._postings_array(term)
                totals[docs] += weight * values  # a term's documents are distinct
                continue
            # Several ways to match one word: it counts with its best one per article.
            best = np.zeros(count)
            for weight, terms in alternatives:
                candidate = np.zeros(count)
                for term in terms:
                    docs, values = self._postings_array(term)
                    candidate[docs] += weight * values
                np.maximum(best, candidate, out=best)
            totals += best
        found = np.flatnonzero(totals > 0)
        if len(found) > limit:
            # Everything scoring at least the limit-th best score (ties kept, then cut).
            kth = np.partition(totals[found], len(found) - limit)[len(found) - limit]
            found = found[totals[found] >= kth]
        ranked = sorted(
            ((float(totals[d]), int(d)) for d in found),
            key=lambda item: (-item[0], self.articles[item[1]].slug),
        )
        return [Match(doc, round(score / self.scale, 4)) for score, doc in ranked[:limit]]
