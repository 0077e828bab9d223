"""Classification of a resident's message: topic (product), skill, kind and language.

Topic and skill come from the kennisbank search when it is connected (`use_search`) and its
best article is confident enough: routing and the answers agents get then agree, because they
come from one engine. The keyword rules below remain for kind and language, and decide topic
and skill when the search has no confident answer (or is not connected).

The rules live in `config/classification.toml` so that the municipality can read and change them
without touching code; the product taxonomy lives in `config/products.toml`. Everything here is
plain dictionary look-ups on tokens, so one message takes a fraction of a millisecond and nothing
leaves the machine (messages may hold personal data).
"""

from __future__ import annotations

import math
import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Letters that NFKD does not decompose but that residents (and their keyboards) use
# interchangeably with the plain letter.
_FOLD = str.maketrans(
    {
        "ł": "l",
        "ı": "i",
        "ø": "o",
        "đ": "d",
        "ß": "ss",
        "æ": "ae",
        "œ": "oe",
    }
)
_NON_WORD = re.compile(r"[^\w*]+")
_WORD = re.compile(r"[^\W_]+")
# A boundary token that no keyword can match, so a phrase never spans subject and body.
_SEPARATOR = "\x00"


class ClassificationConfigError(ValueError):
    """classification.toml or products.toml is inconsistent; the message says where."""


def normalise(text: str) -> str:
    """Lowercase and strip diacritics, so 'Aanvraag', 'aanvraag' and 'áánvraag' are one word."""
    folded = text.lower()
    if folded.isascii():
        return folded
    folded = folded.translate(_FOLD)
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokenize(text: str) -> list[str]:
    return _WORD.findall(normalise(text))


@dataclass(frozen=True)
class Classification:
    topic: str
    skill: str
    kind: str
    language: str
    confidence: float


@dataclass(frozen=True)
class _Word:
    """One word of a keyword: `core` must be the whole token, its start, its end, or inside it."""

    core: str
    mode: str  # "exact" | "prefix" | "suffix" | "infix" | "any"

    def matches(self, token: str) -> bool:
        if self.mode == "any":
            return token != _SEPARATOR
        if self.mode == "exact":
            return token == self.core
        if self.mode == "prefix":
            return token.startswith(self.core)
        if self.mode == "suffix":
            return token.endswith(self.core)
        return self.core in token

    @classmethod
    def parse(cls, raw: str) -> _Word:
        if raw == "*":
            return cls("", "any")
        leading, trailing = raw.startswith("*"), raw.endswith("*") and len(raw) > 1
        core = raw.strip("*")
        if not core or "*" in core:
            raise ClassificationConfigError(f"bad keyword word {raw!r}: '*' only at either end")
        if leading and trailing:
            return cls(core, "infix")
        if leading:
            return cls(core, "suffix")
        if trailing:
            return cls(core, "prefix")
        return cls(core, "exact")


@dataclass(frozen=True)
class _Rule:
    text: str
    words: tuple[_Word, ...]
    target: str
    weight: float


@dataclass
class _PhraseIndex:
    """Finds which keywords occur in a token list, indexed on each keyword's first word.

    Checking every keyword against every position would cost (keywords x tokens) regex calls;
    indexing on the first word makes the cost roughly (tokens x word length) dict look-ups.
    """

    exact: dict[str, list[_Rule]] = field(default_factory=dict)
    prefix: dict[str, list[_Rule]] = field(default_factory=dict)
    suffix: dict[str, list[_Rule]] = field(default_factory=dict)
    infix: dict[str, list[_Rule]] = field(default_factory=dict)
    prefix_lengths: list[int] = field(default_factory=list)
    suffix_lengths: list[int] = field(default_factory=list)
    infix_lengths: list[int] = field(default_factory=list)
    # Words recur across messages (de, het, graag, ...); remembering their candidates halves
    # the work. Bounded so that a stream of unique words cannot grow it without limit.
    _cache: dict[str, tuple[_Rule, ...]] = field(default_factory=dict)
    _cache_limit: int = 50_000

    def add(self, rule: _Rule) -> None:
        first = rule.words[0]
        table: dict[str, list[_Rule]] = getattr(self, first.mode)
        table.setdefault(first.core, []).append(rule)
        self.prefix_lengths = sorted({len(k) for k in self.prefix})
        self.suffix_lengths = sorted({len(k) for k in self.suffix})
        self.infix_lengths = sorted({len(k) for k in self.infix})
        self._cache.clear()

    def candidates(self, token: str) -> tuple[_Rule, ...]:
        found = self._cache.get(token)
        if found is None:
            found = tuple(self._candidates(token))
            if len(self._cache) >= self._cache_limit:
                self._cache.clear()
            self._cache[token] = found
        return found

    def _candidates(self, token: str) -> Iterable[_Rule]:
        size = len(token)
        found = self.exact.get(token)
        if found:
            yield from found
        for n in self.prefix_lengths:
            if n > size:
                break
            found = self.prefix.get(token[:n])
            if found:
                yield from found
        for n in self.suffix_lengths:
            if n > size:
                break
            found = self.suffix.get(token[size - n :])
            if found:
                yield from found
        seen: set[str] = set()
        for n in self.infix_lengths:
            if n > size:
                break
            for start in range(size - n + 1):
                piece = token[start : start + n]
                if piece in seen:
                    continue
                seen.add(piece)
                found = self.infix.get(piece)
                if found:
                    yield from found

    def find(self, tokens: Sequence[str], subject_end: int) -> dict[_Rule, _Hit]:
        """Each matched rule: how often, and whether (at least once) in the subject."""
        hits: dict[_Rule, _Hit] = {}
        count = len(tokens)
        for i, token in enumerate(tokens):
            if token == _SEPARATOR:
                continue
            for rule in self.candidates(token):
                words = rule.words
                if i + len(words) > count:
                    continue
                if all(words[j].matches(tokens[i + j]) for j in range(1, len(words))):
                    hit = hits.setdefault(rule, _Hit())
                    hit.count += 1
                    hit.in_subject = hit.in_subject or i < subject_end
        return hits


@dataclass
class _Hit:
    count: int = 0
    in_subject: bool = False


@dataclass(frozen=True)
class _LanguageRule:
    words: dict[str, float]
    letters: frozenset[str]
    ranges: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Override:
    kind: str
    topic: str
    keep_skills: frozenset[str]
    keep_min_score: float


def _as_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ClassificationConfigError(f"{where} must be a list of strings")
    return value


@dataclass(frozen=True)
class SearchTopic:
    """The kennisbank's answer to "what is this about": a product slug, its skill, a score."""

    topic: str
    skill: str
    score: float
    # Products of the next best articles, in order (the search's other candidates).
    candidates: tuple[str, ...] = ()


TopicFinder = Callable[[str, str], "SearchTopic | None"]


class Classifier:
    """Scores a message against weighted keywords; see classification.toml for the format."""

    # (text, channel) -> the kennisbank's topic, or None to let the rules decide.
    topic_finder: TopicFinder | None = None

    def use_search(self, finder: TopicFinder | None) -> None:
        self.topic_finder = finder

    def __init__(
        self,
        products: Mapping[str, tuple[str, str]],
        rules: Mapping[str, Any],
    ) -> None:
        self.products: dict[str, tuple[str, str]] = dict(products)
        self.skills: frozenset[str] = frozenset(skill for skill, _ in self.products.values())

        weights = rules.get("weights", {})
        self._levels: dict[str, float] = {
            level: float(value) for level, value in weights.get("levels", {}).items()
        }
        if not self._levels:
            raise ClassificationConfigError("classification.toml: [weights.levels] is empty")
        self._subject_factor = float(weights.get("subject_factor", 1.0))
        self._question_mark = float(weights.get("question_mark", 0.0))
        self._kind_hint = float(weights.get("kind_hint", 0.0))
        self._repeat_bonus = float(weights.get("repeat_bonus", 0.0))
        self._repeat_max = int(weights.get("repeat_max", 0))

        matching = rules.get("matching", {})
        self._min_topic_score = float(matching.get("min_topic_score", 1.0))
        self._confidence_saturation = float(matching.get("confidence_saturation", 6.0))
        labels = _as_list(matching.get("subject_labels", []), "matching.subject_labels")
        body_labels = _as_list(matching.get("body_labels", []), "matching.body_labels")
        self._quote_markers = tuple(
            normalise(m) for m in _as_list(matching.get("quote_markers", []), "quote_markers")
        )
        self._subject_re = _label_pattern(labels, with_value=True)
        self._body_re = _label_pattern(body_labels, with_value=False)

        fallback = rules.get("fallback", {})
        self._fallback_topic = str(fallback.get("topic", ""))
        self._fallback_by_channel: dict[str, str] = dict(fallback.get("channel", {}))
        for where, slug in [("fallback.topic", self._fallback_topic)] + [
            (f"fallback.channel.{c}", s) for c, s in self._fallback_by_channel.items()
        ]:
            if slug not in self.products:
                raise ClassificationConfigError(f"classification.toml: {where} = {slug!r} unknown")

        self._topic_index = _PhraseIndex()
        self._kind_hints: dict[str, str] = {}
        for slug, section in rules.get("topic", {}).items():
            if slug not in self.products:
                raise ClassificationConfigError(
                    f"classification.toml: [topic.{slug}] is not a product in products.toml"
                )
            self._add_rules(self._topic_index, f"topic.{slug}", slug, section)
            if "kind" in section:
                self._kind_hints[slug] = str(section["kind"])

        kinds = rules.get("kinds", {})
        self._kind_order: list[str] = _as_list(kinds.get("order", []), "kinds.order")
        self._default_kind = str(kinds.get("default", "vraag"))
        if self._default_kind not in self._kind_order:
            self._kind_order.append(self._default_kind)
        self._kind_index = _PhraseIndex()
        self._kind_min_score: dict[str, float] = {}
        for kind, section in rules.get("kind", {}).items():
            if kind not in self._kind_order:
                raise ClassificationConfigError(f"classification.toml: kind {kind!r} not in order")
            if "min_score" in section:
                self._kind_min_score[kind] = float(section["min_score"])
            self._add_rules(self._kind_index, f"kind.{kind}", kind, section)
        for slug, kind in self._kind_hints.items():
            if kind not in self._kind_order:
                raise ClassificationConfigError(f"topic.{slug}.kind = {kind!r} is not a kind")

        self._overrides: list[_Override] = []
        for i, item in enumerate(rules.get("override", [])):
            override = _Override(
                kind=str(item["kind"]),
                topic=str(item["topic"]),
                keep_skills=frozenset(_as_list(item.get("keep_skills", []), f"override[{i}]")),
                keep_min_score=float(item.get("keep_min_score", math.inf)),
            )
            if override.topic not in self.products:
                raise ClassificationConfigError(f"override[{i}].topic {override.topic!r} unknown")
            self._overrides.append(override)

        languages = rules.get("languages", {})
        self._default_language = str(languages.get("default", "nl"))
        self._letter_weight = float(languages.get("letter_weight", 1.0))
        self._languages: dict[str, _LanguageRule] = {}
        for code, section in rules.get("language", {}).items():
            words: dict[str, float] = {}
            for word in _as_list(section.get("words", []), f"language.{code}.words"):
                for token in tokenize(word):
                    words[token] = 1.0
            ranges = tuple(
                (int(lo, 16), int(hi, 16))
                for lo, hi in (r.split("-") for r in _as_list(section.get("ranges", []), "ranges"))
            )
            self._languages[code] = _LanguageRule(
                words=words, letters=frozenset(str(section.get("letters", ""))), ranges=ranges
            )

    def _add_rules(
        self, index: _PhraseIndex, where: str, target: str, section: Mapping[str, Any]
    ) -> None:
        for level, value in section.items():
            if level in ("kind", "min_score"):
                continue
            if level not in self._levels:
                raise ClassificationConfigError(
                    f"classification.toml: [{where}] has unknown weight level {level!r}; "
                    f"known: {sorted(self._levels)}"
                )
            for keyword in _as_list(value, f"{where}.{level}"):
                raw_words = _NON_WORD.sub(" ", normalise(keyword)).split()
                if not raw_words:
                    raise ClassificationConfigError(f"{where}: empty keyword {keyword!r}")
                words = tuple(_Word.parse(w) for w in raw_words)
                if words[0].mode == "any" or words[-1].mode == "any":
                    raise ClassificationConfigError(
                        f"{where}: {keyword!r} may use a lone '*' only between words"
                    )
                index.add(_Rule(keyword, words, target, self._levels[level]))

    @classmethod
    def from_config(cls, config_dir: Path) -> Classifier:
        products_doc = tomllib.loads((config_dir / "products.toml").read_text(encoding="utf-8"))
        products = {
            str(p["slug"]): (str(p["skill"]), str(p["title"]))
            for p in products_doc.get("product", [])
        }
        rules = tomllib.loads((config_dir / "classification.toml").read_text(encoding="utf-8"))
        return cls(products, rules)

    # -- classification -------------------------------------------------------------------------

    def _split(self, text: str, subject: str) -> tuple[str, str]:
        """Take a form's 'Onderwerp: ...' line out of the body: it is the subject."""
        if not subject:
            match = self._subject_re.match(text) if self._subject_re else None
            if match:
                subject = match.group("value")
                text = text[match.end() :]
        if self._body_re:
            match = self._body_re.match(text)
            if match:
                text = text[match.end() :]
        return subject, self._drop_quoted(text)

    def _drop_quoted(self, text: str) -> str:
        """Cut a quoted earlier message off an e-mail reply: its words are not the resident's."""
        if not self._quote_markers:
            return text
        lines = text.split("\n")
        seen_text = False
        for number, line in enumerate(lines):
            stripped = normalise(line.strip())
            if seen_text and stripped.startswith(self._quote_markers):
                return "\n".join(lines[:number])
            seen_text = seen_text or bool(stripped)
        return text

    def message_text(self, text: str, subject: str = "") -> str:
        """The resident's own words as the router reads them: the subject, then the body
        without form labels and without a quoted earlier e-mail (what the search gets)."""
        subject, body = self._split(text, subject)
        return subject + "\n" + body

    def classify(self, text: str, subject: str = "", channel: str = "webform") -> Classification:
        subject, body = self._split(text, subject)
        subject_tokens = tokenize(subject)
        tokens = [*subject_tokens, _SEPARATOR, *tokenize(body)]
        subject_end = len(subject_tokens)

        topic_scores = self._scores(self._topic_index, tokens, subject_end)
        ranked = sorted(topic_scores.items(), key=lambda item: item[1], reverse=True)
        best_score = ranked[0][1] if ranked else 0.0
        found = self.topic_finder(subject + "\n" + body, channel) if self.topic_finder else None
        rules_topic = ranked[0][0] if best_score >= self._min_topic_score else None
        if found is not None and found.topic in self.products:
            # The search proposes, the keyword rules break ties: when the rules' topic is one
            # of the search's candidates ("an appointment for a passport": the appointment
            # article first, the passport article next), the more specific product wins.
            in_candidates = rules_topic is not None and rules_topic in found.candidates
            topic = rules_topic if in_candidates and rules_topic else found.topic
            # Same curve as the rules, on the search score (scale ~ 2x a strong keyword).
            confidence = 1.0 - math.exp(-found.score / (2 * self._confidence_saturation))
        elif best_score >= self._min_topic_score:
            topic = ranked[0][0]
            runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
            confidence = (best_score / (best_score + max(runner_up, 0.0))) * (
                1.0 - math.exp(-best_score / self._confidence_saturation)
            )
        else:
            topic = self._fallback_by_channel.get(channel, self._fallback_topic)
            confidence = 0.0

        kind = self._kind(tokens, subject_end, subject + "\n" + body, topic)
        for override in self._overrides:
            if kind != override.kind or topic == override.topic:
                continue
            skill = self.products[topic][0]
            if skill in override.keep_skills or best_score >= override.keep_min_score:
                continue
            topic, confidence = override.topic, min(confidence, 0.5)

        return Classification(
            topic=topic,
            skill=self.products[topic][0],
            kind=kind,
            language=self._language(subject + "\n" + body, tokens),
            confidence=round(max(0.0, min(1.0, confidence)), 3),
        )

    def explain(self, text: str, subject: str = "") -> dict[str, list[tuple[str, float]]]:
        """Which keywords fired, per topic and per kind ('kind:<name>'), for tuning the rules."""
        subject, body = self._split(text, subject)
        subject_tokens = tokenize(subject)
        tokens = [*subject_tokens, _SEPARATOR, *tokenize(body)]
        found: dict[str, list[tuple[str, float]]] = {}
        for prefix, index in (("", self._topic_index), ("kind:", self._kind_index)):
            for rule, hit in index.find(tokens, len(subject_tokens)).items():
                weight = rule.weight * (self._subject_factor if hit.in_subject else 1.0)
                found.setdefault(prefix + rule.target, []).append((rule.text, weight))
        return found

    def _scores(
        self, index: _PhraseIndex, tokens: Sequence[str], subject_end: int
    ) -> dict[str, float]:
        scores: dict[str, float] = {}
        for rule, hit in index.find(tokens, subject_end).items():
            weight = rule.weight
            if weight > 0:
                # A word the writer keeps coming back to is what the message is about.
                repeats = min(hit.count - 1, self._repeat_max)
                weight *= 1.0 + self._repeat_bonus * repeats
                if hit.in_subject:
                    weight *= self._subject_factor
            scores[rule.target] = scores.get(rule.target, 0.0) + weight
        return scores

    def _kind(self, tokens: Sequence[str], subject_end: int, text: str, topic: str) -> str:
        scores = self._scores(self._kind_index, tokens, subject_end)
        if "?" in text and self._question_mark:
            scores[self._default_kind] = scores.get(self._default_kind, 0.0) + self._question_mark
        hint = self._kind_hints.get(topic)
        if hint:
            scores[hint] = scores.get(hint, 0.0) + self._kind_hint
        rank = {kind: i for i, kind in enumerate(self._kind_order)}

        def strongest(candidates: dict[str, float]) -> tuple[str, float]:
            return max(
                candidates.items(),
                key=lambda item: (item[1], -rank.get(item[0], len(rank))),
                default=(self._default_kind, 0.0),
            )

        # A bezwaar, klacht or melding is a speech act of its own: clear evidence of one decides
        # the kind even when the letter also politely asks ("ik verzoek u ...") or questions.
        marked = {
            kind: score
            for kind, score in scores.items()
            if kind in self._kind_min_score and score >= self._kind_min_score[kind]
        }
        if marked:
            return strongest(marked)[0]
        rest = {k: v for k, v in scores.items() if k not in self._kind_min_score}
        best, score = strongest(rest)
        return best if score > 0 else self._default_kind

    def _language(self, text: str, tokens: Sequence[str]) -> str:
        scores: dict[str, float] = {}
        # Only non-ASCII characters can be a letter or script signal; skipping the rest keeps
        # this loop short.
        non_ascii = [ch for ch in text.lower() if ord(ch) > 127]
        for code, rule in self._languages.items():
            score = float(sum(rule.words.get(token, 0.0) for token in tokens))
            if rule.letters or rule.ranges:
                marked = sum(
                    1
                    for ch in non_ascii
                    if ch in rule.letters or any(lo <= ord(ch) <= hi for lo, hi in rule.ranges)
                )
                score += marked * self._letter_weight
            scores[code] = score
        best = max(scores.items(), key=lambda item: item[1], default=(self._default_language, 0))
        default_score = scores.get(self._default_language, 0.0)
        # Ties go to the default language: Dutch names and street names are everywhere.
        return best[0] if best[1] > default_score else self._default_language


def _label_pattern(labels: Sequence[str], *, with_value: bool) -> re.Pattern[str] | None:
    """A form label at the start of the text ('Onderwerp: ...'), with or without its line."""
    if not labels:
        return None
    alternatives = "|".join(re.escape(label) for label in labels)
    value = r"(?P<value>[^\n]*)\n?" if with_value else ""
    return re.compile(rf"\s*(?:{alternatives})\s*:[ \t]*{value}", re.IGNORECASE)
