"""The one kennisbank engine: search for agents, suggestions for a contact, topic recognition
for the router, and gap collection, all on one index of the current article versions.

Lifecycle: `start()` imports new and changed files from `config/kennisbank/` into the database
and builds the index from the database rows. `refresh()` rebuilds it when the database's
version counter moved (an edit through this process's API refreshes at once; other processes
notice within `refresh_seconds` through the periodic job). The index is immutable and replaced
whole, so a search in a worker thread (the router's intake path) never sees half an index.
"""

from __future__ import annotations

import asyncio
import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kennisbank.article import Article, ArticleError, article_files, parse
from kennisbank.gaps import GapBuffer, anonymise
from kennisbank.index import Index, SearchSettings
from kennisbank.store import ArticleStore, ImportReport
from router.classify import SearchTopic, TopicFinder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KennisbankConfig:
    settings: SearchSettings = field(default_factory=SearchSettings)
    synonyms: tuple[tuple[str, ...], ...] = ()
    gap_score: float = 1.5
    gap_margin: float = 0.1
    route_score: float = 1.5
    route_margin: float = 0.15
    refresh_seconds: float = 5.0

    @classmethod
    def load(cls, config_dir: Path) -> KennisbankConfig:
        path = config_dir / "kennisbank.toml"
        if not path.is_file():
            return cls()
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
        search: dict[str, Any] = doc.get("search", {})
        defaults = SearchSettings()
        settings = SearchSettings(
            k1=float(search.get("k1", defaults.k1)),
            weights={**defaults.weights, **search.get("weights", {})},
            b={**defaults.b, **search.get("b", {})},
            compound_part_tf=float(search.get("compound_part_tf", defaults.compound_part_tf)),
            compound_weight=float(search.get("compound_weight", defaults.compound_weight)),
            synonym_weight=float(search.get("synonym_weight", defaults.synonym_weight)),
            typo_weight=float(search.get("typo_weight", defaults.typo_weight)),
            max_query_words=int(search.get("max_query_words", defaults.max_query_words)),
        )
        thresholds = doc.get("thresholds", {})
        groups = doc.get("synonyms", {}).get("groups", [])
        return cls(
            settings=settings,
            synonyms=tuple(tuple(str(w) for w in group) for group in groups),
            gap_score=float(thresholds.get("gap_score", 1.5)),
            route_score=float(thresholds.get("route_score", 1.5)),
            gap_margin=float(thresholds.get("gap_margin", 0.1)),
            route_margin=float(thresholds.get("route_margin", 0.15)),
            refresh_seconds=float(thresholds.get("refresh_seconds", 5.0)),
        )


def load_products(config_dir: Path) -> dict[str, str]:
    """Product slug -> skill, from products.toml."""
    doc = tomllib.loads((config_dir / "products.toml").read_text(encoding="utf-8"))
    return {str(p["slug"]): str(p["skill"]) for p in doc.get("product", [])}


@dataclass(frozen=True)
class Hit:
    article: Article
    version: int
    score: float

    def view(self, channel: str, language: str) -> dict[str, Any]:
        """The search API's result shape (agreed with the agent desk: keep these keys)."""
        article = self.article
        return {
            "slug": article.slug,
            "title": article.title_in(language),
            "version": self.version,
            "score": self.score,
            "skill": article.skill,
            "kind": article.kind,
            "text": article.variant(channel, language),
            "link": article.link,
        }


def margin(hits: list[Hit]) -> float:
    """How far the best hit is ahead of the best hit that answers another product, as a share
    of its score (1.0 when nothing else matched). An article that also answers the best hit's
    product does not compete with it (two articles about passports agree on the topic)."""
    if not hits or hits[0].score <= 0:
        return 0.0
    top = hits[0]
    product = top.article.products[0] if top.article.products else None
    other = next(
        (
            h
            for h in hits[1:]
            if (product not in h.article.products if product else h.article.products)
        ),
        None,
    )
    if other is None:
        return 1.0
    return (top.score - other.score) / top.score


@dataclass(frozen=True)
class TopicMatch:
    """What the router takes from the kennisbank: the product and skill of the best article."""

    topic: str
    skill: str
    kind: str
    score: float
    # The products of the best three articles, in order (the top one's first).
    candidates: tuple[str, ...] = ()


class _Snapshot:
    """An index together with the versions it was built from."""

    def __init__(self, index: Index, versions: Mapping[str, int], counter: int) -> None:
        self.index = index
        self.versions = dict(versions)
        self.counter = counter


class Kennisbank:
    def __init__(
        self,
        store: ArticleStore | None,
        config: KennisbankConfig,
        articles_dir: Path,
        products: Mapping[str, str] | None = None,
    ) -> None:
        """`products`: product slug -> skill (products.toml), for routing. `store` None: an
        offline engine over `load()`ed articles (evaluation and benchmarks)."""
        self.store = store
        self.config = config
        self.articles_dir = articles_dir
        self.products = dict(products or {})
        self.gaps = GapBuffer()
        self._snapshot = _Snapshot(Index([], config.settings, config.synonyms), {}, -1)
        self._refresh_lock = asyncio.Lock()

    # -- lifecycle ----------------------------------------------------------------------------

    def load(self, articles: list[Article], versions: Mapping[str, int] | None = None) -> None:
        """Index these articles directly (no database)."""
        versions = versions or {a.slug: 1 for a in articles}
        index = Index(articles, self.config.settings, self.config.synonyms)
        self._snapshot = _Snapshot(index, versions, 0)

    @classmethod
    def from_directory(cls, config_dir: Path, articles_dir: Path | None = None) -> Kennisbank:
        """An offline engine over the article files, with the configuration of `config_dir`."""
        articles_dir = articles_dir or config_dir / "kennisbank"
        engine = cls(
            None, KennisbankConfig.load(config_dir), articles_dir, load_products(config_dir)
        )
        engine.load(
            [parse(p.read_text(encoding="utf-8"), p.stem) for p in article_files(articles_dir)]
        )
        return engine

    @property
    def db(self) -> ArticleStore:
        if self.store is None:
            raise RuntimeError("this kennisbank has no database")
        return self.store

    async def start(self, now: datetime) -> ImportReport:
        report = await self.db.import_directory(self.articles_dir, now)
        if report.created or report.updated:
            log.info(
                "kennisbank import: %d new, %d changed, %d unchanged, %d invalid",
                len(report.created),
                len(report.updated),
                report.unchanged,
                len(report.invalid),
            )
        await self.refresh(force=True)
        return report

    async def refresh(self, force: bool = False) -> bool:
        """Rebuild the index if an article changed since it was built; True if rebuilt."""
        async with self._refresh_lock:
            counter = await self.db.counter()
            if not force and counter == self._snapshot.counter:
                return False
            rows = await self.db.current()
            articles: list[Article] = []
            versions: dict[str, int] = {}
            for row in rows:
                try:
                    articles.append(parse(row.source))
                except ArticleError as error:  # stored before a format change; keep the rest
                    log.warning("kennisbank %s v%d unreadable: %s", row.slug, row.version, error)
                    continue
                versions[row.slug] = row.version
            index = await asyncio.to_thread(
                Index, articles, self.config.settings, self.config.synonyms
            )
            self._snapshot = _Snapshot(index, versions, counter)
            return True

    @property
    def size(self) -> int:
        return len(self._snapshot.index.articles)

    def article(self, slug: str) -> tuple[Article, int] | None:
        snapshot = self._snapshot
        for article in snapshot.index.articles:
            if article.slug == slug:
                return article, snapshot.versions[slug]
        return None

    # -- searching ----------------------------------------------------------------------------

    def search(self, text: str, limit: int = 5) -> list[Hit]:
        snapshot = self._snapshot
        return [
            Hit(
                snapshot.index.articles[m.doc],
                snapshot.versions[snapshot.index.articles[m.doc].slug],
                m.score,
            )
            for m in snapshot.index.search(text, limit)
        ]

    def is_gap(self, text: str, hits: list[Hit], strict: bool = False) -> bool:
        """No good answer: no article, a weak best score, or no article clearly ahead of the
        next (overlapping articles are a content problem too). `strict` (an agent's search):
        also when a topic word of a short question is unknown to the whole kennisbank, like
        "bibliotheek" in "wanneer is de bibliotheek open" when no article mentions it."""
        if not hits or hits[0].score < self.config.gap_score:
            return True
        if margin(hits) < self.config.gap_margin:
            return True
        if strict:
            index = self._snapshot.index
            words = index.query_words(text)
            if len(words) <= 6 and any(not index.alternatives(w) for w in words):
                return True
        return False

    def note_gap(self, text: str, hits: list[Hit], source: str, strict: bool = False) -> bool:
        """Count `text` (anonymised) as a gap if it is one; True if it was."""
        if not self.is_gap(text, hits, strict):
            return False
        best = hits[0] if hits else None
        self.gaps.add(
            anonymise(text), source, best.article.slug if best else None, best.score if best else 0
        )
        return True

    async def flush_gaps(self, now: datetime) -> int:
        pending = self.gaps.take()
        try:
            await self.db.add_gaps(pending, now)
        except Exception:
            self.gaps.put_back(pending)
            raise
        return len(pending)

    def route(self, text: str, channel: str) -> TopicMatch | None:
        """Topic and skill for the router: the best article's product, when its score is at
        least `route_score` and it is `route_margin` ahead of the best article for another
        product; None leaves the decision to the rules. A gap is counted as well."""
        hits = self.search(text, limit=5)
        self.note_gap(text, hits, channel)
        if not hits or hits[0].score < self.config.route_score:
            return None
        if margin(hits) < self.config.route_margin:
            return None
        known = [p for h in hits[:3] for p in h.article.products if p in self.products]
        for product in hits[0].article.products:
            if product in self.products:
                return TopicMatch(
                    product,
                    self.products[product],
                    hits[0].article.kind,
                    hits[0].score,
                    tuple(dict.fromkeys(known)),
                )
        return None

    def finder(self) -> TopicFinder:
        """The router's topic recognition (router/classify.py `use_search`)."""

        def find(text: str, channel: str) -> SearchTopic | None:
            found = self.route(text, channel)
            return (
                SearchTopic(found.topic, found.skill, found.score, found.candidates)
                if found
                else None
            )

        return find
