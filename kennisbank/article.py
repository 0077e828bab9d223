"""One kennisbank article: the Markdown file format with TOML front matter, and its variants.

The format is the contract with the content team (see `config/kennisbank/*.md`): TOML between
`+++` lines (parsed with tomllib), then the sections `## Antwoord`, `## Kort`, `## Telefoon`
(required) and `## Answer`, `## Short`, `## Phone` (English, optional). The source text is what
the database stores per version, so files and API edits share one format and one parser.

A channel gets one variant: WhatsApp and Telegram the short one (a few lines and a link),
e-mail, web form and post the full answer, phone and counter the agent's script. English
exists only where the municipality offers it; otherwise the Dutch text is used.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = frozenset({"vraag", "verzoek", "melding", "klacht", "bezwaar"})
NORMS = frozenset({"answer-6-weeks", "klacht-awb", "bezwaar-awb", "callback-24h", "none"})
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# Section heading -> (language, variant).
SECTIONS: dict[str, tuple[str, str]] = {
    "Antwoord": ("nl", "answer"),
    "Kort": ("nl", "short"),
    "Telefoon": ("nl", "phone"),
    "Answer": ("en", "answer"),
    "Short": ("en", "short"),
    "Phone": ("en", "phone"),
}
REQUIRED = ("Antwoord", "Kort", "Telefoon")

VARIANT_FOR_CHANNEL: dict[str, str] = {
    "whatsapp": "short",
    "telegram": "short",
    "email": "answer",
    "webform": "answer",
    "post": "answer",
    "phone": "phone",
    "counter": "phone",
}

_HEADING = re.compile(r"^## +(.+?)\s*$", re.MULTILINE)
_FRONT = re.compile(r"\A\ufeff?\+\+\+[ \t]*\r?\n(.*?)\r?\n\+\+\+[ \t]*(?:\r?\n|\Z)", re.DOTALL)


def article_files(directory: Path) -> list[Path]:
    """The article files of a directory: `<slug>.md`, so a README.md there is not one."""
    if not directory.is_dir():
        return []
    return [p for p in sorted(directory.glob("*.md")) if SLUG.match(p.stem)]


class ArticleError(ValueError):
    """The article text does not follow the format; the message says what and where."""


@dataclass(frozen=True)
class Article:
    slug: str
    title: str
    skill: str
    kind: str
    products: tuple[str, ...]
    keywords: tuple[str, ...]
    keywords_en: tuple[str, ...]
    link: str
    norm: str
    title_en: str = ""
    updated: str = ""
    verify: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    facts_en: dict[str, Any] = field(default_factory=dict)
    # (language, variant) -> Markdown text of that section.
    sections: dict[tuple[str, str], str] = field(default_factory=dict)
    source: str = ""

    @property
    def languages(self) -> tuple[str, ...]:
        return ("nl", "en") if ("en", "answer") in self.sections else ("nl",)

    def variant(self, channel: str, language: str = "nl") -> str:
        """The text for a channel in a language; Dutch when the article has no English.

        An English article may lack a short or phone variant: then the English full answer is
        closer to what the resident needs than the Dutch short one.
        """
        kind = VARIANT_FOR_CHANNEL.get(channel, "answer")
        if language == "en" and "en" in self.languages:
            return self.sections.get(("en", kind)) or self.sections[("en", "answer")]
        return self.sections[("nl", kind)]

    def title_in(self, language: str) -> str:
        return self.title_en if language == "en" and self.title_en else self.title

    def facts_text(self) -> tuple[str, str]:
        """The facts as plain text (Dutch, English) for the search index."""
        return _flatten(self.facts), _flatten(self.facts_en)


def _flatten(facts: dict[str, Any]) -> str:
    parts: list[str] = []
    for value in facts.values():
        if isinstance(value, list):
            parts.extend(str(v) for v in value)
        else:
            parts.append(str(value))
    return "\n".join(parts)


def _strings(meta: dict[str, Any], key: str, required: bool = False) -> tuple[str, ...]:
    value = meta.get(key, [] if not required else None)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ArticleError(f"front matter: {key} must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _text(meta: dict[str, Any], key: str, required: bool = True) -> str:
    value = meta.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ArticleError(f"front matter: {key} is required (a non-empty string)")
    return value.strip()


def parse(source: str, expected_slug: str | None = None) -> Article:
    """Parse one article. `expected_slug`: the file name must equal the slug."""
    match = _FRONT.match(source)
    if not match:
        raise ArticleError("the article must start with TOML front matter between '+++' lines")
    try:
        meta = tomllib.loads(match.group(1))
    except tomllib.TOMLDecodeError as error:
        raise ArticleError(f"front matter is not valid TOML: {error}") from None

    slug = _text(meta, "slug")
    if not SLUG.match(slug) or len(slug) > 64:
        raise ArticleError(f"slug {slug!r}: lowercase letters, digits and single hyphens")
    if expected_slug is not None and slug != expected_slug:
        raise ArticleError(f"slug {slug!r} differs from the file name {expected_slug!r}")
    kind = _text(meta, "kind")
    if kind not in KINDS:
        raise ArticleError(f"kind {kind!r}: one of {', '.join(sorted(KINDS))}")
    norm = _text(meta, "norm", required=False) or "answer-6-weeks"
    if norm not in NORMS:
        raise ArticleError(f"norm {norm!r}: one of {', '.join(sorted(NORMS))}")
    updated = meta.get("updated", "")
    if isinstance(updated, dt.date):
        updated = updated.isoformat()
    for key in ("facts", "facts_en"):
        if not isinstance(meta.get(key, {}), dict):
            raise ArticleError(f"[{key}] must be a table")

    sections = _sections(source[match.end() :])
    missing = [name for name in REQUIRED if name not in sections]
    if missing:
        raise ArticleError(f"missing section(s): {', '.join('## ' + m for m in missing)}")
    title_en = _text(meta, "title_en", required=False)
    return Article(
        slug=slug,
        title=_text(meta, "title"),
        title_en=title_en,
        skill=_text(meta, "skill"),
        kind=kind,
        products=_strings(meta, "products"),
        keywords=_strings(meta, "keywords"),
        keywords_en=_strings(meta, "keywords_en"),
        link=_text(meta, "link", required=False),
        norm=norm,
        updated=str(updated),
        verify=_strings(meta, "verify"),
        facts=dict(meta.get("facts", {})),
        facts_en=dict(meta.get("facts_en", {})),
        sections={SECTIONS[name]: text for name, text in sections.items()},
        source=source,
    )


def _sections(body: str) -> dict[str, str]:
    found: dict[str, str] = {}
    headings = list(_HEADING.finditer(body))
    for index, heading in enumerate(headings):
        name = heading.group(1)
        end = headings[index + 1].start() if index + 1 < len(headings) else len(body)
        if name not in SECTIONS:
            # Another "## ..." heading is part of the section it sits in (editors may use
            # sub-headings); only the agreed names start a section.
            continue
        if name in found:
            raise ArticleError(f"section '## {name}' appears twice")
        found[name] = ""
        found[name] = body[heading.end() : end].strip()
    # Re-attach text under unknown headings to the preceding known section.
    return _merge_unknown(body, headings, found)


def _merge_unknown(
    body: str, headings: list[re.Match[str]], found: dict[str, str]
) -> dict[str, str]:
    if all(h.group(1) in SECTIONS for h in headings):
        for name, text in found.items():
            if not text:
                raise ArticleError(f"section '## {name}' is empty")
        return found
    merged: dict[str, str] = {}
    current: str | None = None
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(body)
        name = heading.group(1)
        if name in SECTIONS:
            current = name
            merged[name] = body[heading.end() : end].strip()
        elif current is not None:
            merged[current] += "\n\n" + body[heading.start() : end].strip()
    for name, text in merged.items():
        if not text:
            raise ArticleError(f"section '## {name}' is empty")
    return merged
