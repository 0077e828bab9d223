"""Kennisbank articles and their versions in the database (SQLite or PostgreSQL).

The database is the source of truth once articles are imported. How files and API edits
coexist:

- At start-up every `config/kennisbank/<slug>.md` is compared with the database. A new slug
  becomes version 1. A file whose text differs from the last version that came *from the file*
  (its sha256) becomes a new version: the municipality edited the file in the repository.
- An editor's API edit is a new version too (optimistic concurrency: the edit names the version
  it was based on; anything else is a conflict).
- An unchanged file changes nothing, so an API edit made after the file's last import stays
  current. Editing the file again later makes the file current again. Either way every version
  is kept, and a reply records the version it used.

Two processes importing at once both try to insert the same (slug, version); the unique
constraint lets one win and the other skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col, select

from contacts.models import ArticleVersion, KennisbankGap, Message
from kennisbank.article import Article, ArticleError, article_files, parse

log = logging.getLogger(__name__)


class VersionConflict(Exception):
    """The article changed since the version the editor started from."""

    def __init__(self, current: int) -> None:
        super().__init__(f"the article is at version {current}")
        self.current = current


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _file_hashes(slugs: list[str] | None = None) -> Any:
    """(slug, sha256) of the last version that came from a file, per slug (a select)."""
    conditions = [col(ArticleVersion.origin) == "file"]
    if slugs is not None:
        conditions.append(col(ArticleVersion.slug).in_(slugs))
    latest = (
        sa.select(
            col(ArticleVersion.slug).label("slug"),
            sa.func.max(ArticleVersion.version).label("version"),
        )
        .where(*conditions)
        .group_by(col(ArticleVersion.slug))
        .subquery()
    )
    return sa.select(col(ArticleVersion.slug), col(ArticleVersion.source_sha256)).join(
        latest,
        sa.and_(
            col(ArticleVersion.slug) == latest.c.slug,
            col(ArticleVersion.version) == latest.c.version,
        ),
    )


def read_articles(directory: Path) -> list[tuple[Path, str]]:
    """(path, text) of every article file, by name; none when the directory is missing."""
    return [(p, p.read_text(encoding="utf-8")) for p in article_files(directory)]


@dataclass(frozen=True)
class ImportReport:
    created: list[str]
    updated: list[str]
    unchanged: int
    invalid: dict[str, str]


class ArticleStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
    ) -> None:
        self.sessions = sessions
        self.reads = reads

    async def counter(self) -> int:
        """Moves whenever any article gets a new version (ids only grow)."""
        async with self.reads() as session:
            value = await session.scalar(sa.select(sa.func.max(ArticleVersion.id)))
            return int(value or 0)

    async def current(self) -> list[ArticleVersion]:
        """The newest version of every article, by slug."""
        newest = (
            sa.select(
                col(ArticleVersion.slug).label("slug"),
                sa.func.max(ArticleVersion.version).label("version"),
            )
            .group_by(col(ArticleVersion.slug))
            .subquery()
        )
        query = (
            select(ArticleVersion)
            .join(
                newest,
                sa.and_(
                    col(ArticleVersion.slug) == newest.c.slug,
                    col(ArticleVersion.version) == newest.c.version,
                ),
            )
            .order_by(col(ArticleVersion.slug))
        )
        async with self.reads() as session:
            return list((await session.execute(query)).scalars().all())

    async def versions(self, slug: str) -> list[ArticleVersion]:
        async with self.reads() as session:
            query = (
                select(ArticleVersion)
                .where(col(ArticleVersion.slug) == slug)
                .order_by(col(ArticleVersion.version).desc())
            )
            return list((await session.execute(query)).scalars().all())

    async def version(self, slug: str, version: int | None = None) -> ArticleVersion | None:
        """One version, or the current one when `version` is None."""
        async with self.reads() as session:
            query = select(ArticleVersion).where(col(ArticleVersion.slug) == slug)
            if version is None:
                query = query.order_by(col(ArticleVersion.version).desc()).limit(1)
            else:
                query = query.where(col(ArticleVersion.version) == version)
            return (await session.execute(query)).scalars().first()

    async def save(
        self,
        article: Article,
        author: str,
        now: datetime,
        origin: str = "api",
        expected_version: int | None = None,
    ) -> ArticleVersion:
        """A new version of `article.slug`. `expected_version`: the version the edit is based
        on (0 = the article must not exist yet); None = no check (file import)."""
        async with self.sessions() as session, session.begin():
            latest = await session.scalar(
                sa.select(sa.func.max(col(ArticleVersion.version))).where(
                    col(ArticleVersion.slug) == article.slug
                )
            )
            current = int(latest or 0)
            if expected_version is not None and expected_version != current:
                raise VersionConflict(current)
            row = ArticleVersion(
                slug=article.slug,
                version=current + 1,
                title=article.title[:300],
                source=article.source,
                source_sha256=sha256(article.source),
                origin=origin,
                author=author,
                created_at=now,
            )
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                # Another process saved a version of this slug between our read and insert.
                raise VersionConflict(current + 1) from None
            return row

    async def import_directory(self, directory: Path, now: datetime) -> ImportReport:
        """Import new and changed article files (see the module docstring)."""
        created: list[str] = []
        updated: list[str] = []
        invalid: dict[str, str] = {}
        unchanged = 0
        files = await asyncio.to_thread(read_articles, directory)
        last_from_file = await self._last_file_hashes()
        changed: list[Article] = []
        for path, source in files:
            try:
                article = parse(source, expected_slug=path.stem)
            except ArticleError as error:
                # One broken file must not keep the service from starting; it is reported.
                invalid[path.name] = str(error)
                log.warning("kennisbank file %s not imported: %s", path.name, error)
                continue
            known = last_from_file.get(article.slug)
            if known == sha256(source):
                unchanged += 1
                continue
            changed.append(article)
        if not changed:
            return ImportReport(created, updated, unchanged, invalid)
        try:
            # One transaction for the lot: a fresh database imports every article, and one
            # commit (one fsync) instead of one per article keeps the start-up short.
            rows = await self._save_files(changed, now)
        except IntegrityError:
            rows = []  # another process is importing the same files: go one by one
            for article in changed:
                with contextlib.suppress(IntegrityError):  # the other process was first
                    rows += await self._save_files([article], now)
        unchanged += len(changed) - len(rows)
        for row in rows:
            (created if row.version == 1 else updated).append(row.slug)
        return ImportReport(created, updated, unchanged, invalid)

    async def _save_files(self, articles: list[Article], now: datetime) -> list[ArticleVersion]:
        """New file versions of several articles in one transaction, except those whose last
        file version has this very text (checked again inside the transaction: another process
        may have imported them since we looked)."""
        slugs = [a.slug for a in articles]
        async with self.sessions() as session, session.begin():
            result = await session.execute(_file_hashes(slugs))
            imported: dict[str, str] = {slug: digest for slug, digest in result.all()}
            fresh = [a for a in articles if imported.get(a.slug) != sha256(a.source)]
            latest = dict(
                (
                    await session.execute(
                        sa.select(
                            col(ArticleVersion.slug), sa.func.max(col(ArticleVersion.version))
                        )
                        .where(col(ArticleVersion.slug).in_(slugs))
                        .group_by(col(ArticleVersion.slug))
                    )
                ).all()
            )
            rows = [
                ArticleVersion(
                    slug=article.slug,
                    version=int(latest.get(article.slug) or 0) + 1,
                    title=article.title[:300],
                    source=article.source,
                    source_sha256=sha256(article.source),
                    origin="file",
                    author="file",
                    created_at=now,
                )
                for article in fresh
            ]
            session.add_all(rows)
            await session.flush()
            return rows

    async def _last_file_hashes(self) -> dict[str, str]:
        async with self.reads() as session:
            result = await session.execute(_file_hashes())
            return {slug: digest for slug, digest in result.all()}

    # -- replies ------------------------------------------------------------------------------

    async def record_use(self, message_id: int, slug: str, version: int) -> None:
        """Remember on an outbound message which article version its text came from."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                sa.update(Message)
                .where(col(Message.id) == message_id)
                .values(article_slug=slug, article_version=version)
            )

    # -- gaps ---------------------------------------------------------------------------------

    async def add_gaps(
        self, gaps: dict[str, tuple[int, str, str | None, float]], now: datetime
    ) -> None:
        """Count anonymised queries: query -> (count, source, best slug, best score)."""
        if not gaps:
            return
        async with self.sessions() as session, session.begin():
            for query, (count, source, best_slug, best_score) in gaps.items():
                changed = await session.execute(
                    sa.update(KennisbankGap)
                    .where(col(KennisbankGap.query) == query)
                    .values(
                        count=KennisbankGap.count + count,
                        last_at=now,
                        best_slug=best_slug,
                        best_score=best_score,
                    )
                )
                if changed.rowcount:  # type: ignore[attr-defined]
                    continue
                # A write transaction holds the lock (SQLite) and a concurrent insert of the
                # same query in PostgreSQL meets the unique constraint: retried as an update.
                try:
                    async with session.begin_nested():
                        session.add(
                            KennisbankGap(
                                query=query,
                                count=count,
                                source=source,
                                best_slug=best_slug,
                                best_score=best_score,
                                first_at=now,
                                last_at=now,
                            )
                        )
                        await session.flush()
                except IntegrityError:
                    await session.execute(
                        sa.update(KennisbankGap)
                        .where(col(KennisbankGap.query) == query)
                        .values(count=KennisbankGap.count + count, last_at=now)
                    )

    async def gaps(self, limit: int = 200) -> list[KennisbankGap]:
        async with self.reads() as session:
            query = (
                select(KennisbankGap)
                .order_by(col(KennisbankGap.count).desc(), col(KennisbankGap.last_at).desc())
                .limit(limit)
            )
            return list((await session.execute(query)).scalars().all())
