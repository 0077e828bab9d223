"""Content checks for the default kennisbank (config/kennisbank/*.md).

Every article must follow the format agreed in the kennisbank format contract: TOML front matter
between `+++` lines, then the Markdown sections. These tests only read files; they need no
services.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KB_DIR = ROOT / "config" / "kennisbank"
ARTICLES = sorted(p for p in KB_DIR.glob("*.md") if p.name != "README.md")

REQUIRED_KEYS = {
    "slug",
    "title",
    "skill",
    "kind",
    "products",
    "keywords",
    "keywords_en",
    "link",
    "norm",
    "updated",
}
OPTIONAL_KEYS = {"title_en", "verify", "facts", "facts_en"}
FACT_KEYS = {"conditions", "costs", "processing_time", "bring", "where", "norm_text"}
KINDS = {"vraag", "verzoek", "melding", "klacht", "bezwaar"}
NORMS = {"answer-6-weeks", "klacht-awb", "bezwaar-awb", "callback-24h", "none"}
REQUIRED_SECTIONS = ("Antwoord", "Kort", "Telefoon")
ENGLISH_SECTIONS = ("Answer", "Short", "Phone")
ALL_SECTIONS = REQUIRED_SECTIONS + ENGLISH_SECTIONS
SHORT_MAX_CHARS = 600
PLACEHOLDERS = re.compile(r"lorem ipsum|\bTODO\b|\bTBD\b|\bXXX\b|\bFIXME\b", re.IGNORECASE)


def _products() -> dict[str, str]:
    data = tomllib.loads((ROOT / "config" / "products.toml").read_text(encoding="utf-8"))
    return {p["slug"]: p["skill"] for p in data["product"]}


def _parse(path: Path) -> tuple[dict, dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("+++\n"), f"{path.name}: front matter must start with +++"
    end = text.find("\n+++\n", 4)
    assert end > 0, f"{path.name}: front matter must end with a +++ line"
    meta = tomllib.loads(text[4 : end + 1])
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text[end + 5 :].splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            assert current not in sections, f"{path.name}: section {current!r} twice"
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
        else:
            assert not line.strip(), f"{path.name}: text before the first section: {line!r}"
    return meta, {name: "\n".join(lines).strip() for name, lines in sections.items()}


def test_there_are_articles_for_every_product() -> None:
    slugs = {p.stem for p in ARTICLES}
    missing = set(_products()) - slugs
    assert not missing, f"products without an article of the same slug: {sorted(missing)}"


@pytest.mark.parametrize("path", ARTICLES, ids=[p.stem for p in ARTICLES])
def test_article(path: Path) -> None:
    products = _products()
    meta, sections = _parse(path)

    keys = set(meta)
    assert keys >= REQUIRED_KEYS, f"missing keys: {sorted(REQUIRED_KEYS - keys)}"
    unknown = keys - REQUIRED_KEYS - OPTIONAL_KEYS
    assert not unknown, f"unknown keys: {sorted(unknown)}"

    assert meta["slug"] == path.stem
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", meta["slug"])
    assert meta["title"].strip()
    assert meta["skill"] in set(products.values()), f"unknown skill {meta['skill']!r}"
    assert meta["kind"] in KINDS
    assert meta["norm"] in NORMS
    assert isinstance(meta["updated"], dt.date)
    assert meta["link"].startswith("https://")

    assert isinstance(meta["products"], list)
    for slug in meta["products"]:
        assert slug in products, f"unknown product {slug!r}"
    if meta["slug"] in products:
        assert meta["products"] == [meta["slug"]]
        assert meta["skill"] == products[meta["slug"]]

    for key, (minimum, maximum) in (("keywords", (10, 30)), ("keywords_en", (5, 15))):
        words = meta[key]
        assert isinstance(words, list), f"{key}: must be a list"
        assert minimum <= len(words) <= maximum, f"{key}: {minimum}-{maximum} entries"
        assert all(isinstance(w, str) and w.strip() == w and w for w in words)
        lowered = [w.lower() for w in words]
        assert len(set(lowered)) == len(lowered), f"{key}: duplicates"

    for table in ("facts", "facts_en"):
        facts = meta.get(table, {})
        assert set(facts) <= FACT_KEYS, f"{table}: unknown keys {sorted(set(facts) - FACT_KEYS)}"
        if "bring" in facts:
            assert isinstance(facts["bring"], list) and facts["bring"]
    if "verify" in meta:
        assert isinstance(meta["verify"], list) and all(meta["verify"])

    assert set(sections) <= set(ALL_SECTIONS), f"unknown sections: {sorted(sections)}"
    for name in REQUIRED_SECTIONS:
        assert sections.get(name), f"section ## {name} missing or empty"
    if any(name in sections for name in ENGLISH_SECTIONS):
        assert meta.get("title_en"), "title_en is required with English sections"
        for name in ENGLISH_SECTIONS:
            assert sections.get(name), f"section ## {name} missing or empty"
    for name in ("Kort", "Short"):
        if name in sections:
            assert len(sections[name]) <= SHORT_MAX_CHARS, f"## {name} longer than allowed"

    text = path.read_text(encoding="utf-8")
    assert not PLACEHOLDERS.search(text), "placeholder text"
