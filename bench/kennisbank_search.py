"""Kennisbank search latency, next to a raw SQLite FTS5 query over the same texts, same run.

    .venv/bin/python bench/kennisbank_search.py [--generated 5000] [--rounds 20]

1. The default kennisbank (config/kennisbank/*.md) and a kennisbank of N generated articles
   (default 5,000: the real articles' titles, keywords and sentences recombined at random, with
   a seeded generator, so the vocabulary and text lengths are realistic).
2. For each: the index build time, then p50/p95/p99 latency of `Kennisbank.search` (limit 5)
   over a fixed set of resident-style questions written for this benchmark (short ones, long
   e-mail-like ones, typos, compounds, English), each asked `--rounds` times.
3. Baseline in the same run: an in-memory SQLite FTS5 table (unicode61, diacritics removed)
   over the same articles, queried with the same questions as an OR of their words, ranked by
   its built-in bm25(): what a bare full-text engine costs, without stemming, compounds,
   synonyms or typo tolerance.
4. A summary table, and the results as JSON in bench/results/kennisbank-<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import random
import re
import sqlite3
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from kennisbank.article import Article, article_files, parse  # noqa: E402
from kennisbank.search import Kennisbank, KennisbankConfig, load_products  # noqa: E402
from kennisbank.text import tokens  # noqa: E402

QUESTIONS = [
    "paspoort verlopen",
    "hoe verleng ik mijn rijbewijs",
    "parkeervergunning aanvragen",
    "vergunning parkeren bewoners",
    "kliko kapot",
    "wanneer wordt het grofvuil opgehaald",
    "ik ben verhuisd naar een ander adres",
    "geboorte aangeven van mijn dochter",
    "wij willen trouwen in het stadhuis",
    "mijn moeder is overleden wat moet ik regelen",
    "uittreksel nodig voor mijn nieuwe werkgever",
    "bezoekers laten parkeren",
    "gehandicaptenparkeerkaart aanvragen",
    "afvalkalender ophaaldag",
    "lantaarnpaal doet het niet",
    "hulp in huis via de wmo",
    "bijstand aanvragen",
    "schulden hulp",
    "kwijtschelding gemeentelijke belastingen",
    "woz waarde te hoog",
    "hondenbelasting",
    "dakkapel bouwen vergunning",
    "evenement organiseren in het park",
    "klacht over een medewerker",
    "bezwaar tegen besluit",
    "digid werkt niet",
    "hulp bij formulier invullen",
    "openingstijden stadhuis",
    "hoe staat het met mijn aanvraag",
    "paspoordt aanvraagen",  # typos
    "containr stuk",
    "passport expired",
    "my bin was not emptied",
    "how do I register my new address",
    "gemeentebelastingaanslag kwijtschelding",
    (
        "Geachte heer, mevrouw, Op 3 mei ontving ik een aanslag gemeentelijke belastingen. "
        "Ik heb sinds kort een uitkering en kan dit bedrag echt niet betalen. Kan ik "
        "kwijtschelding krijgen of een betalingsregeling? Ik heb ook nog andere schulden en "
        "weet niet goed waar ik moet beginnen. Met vriendelijke groet"
    ),
    (
        "Hallo, wij zijn vorige maand verhuisd en ik weet niet of ik dat nog moet doorgeven. "
        "Ook hebben we een nieuwe auto en vragen we ons af of de parkeervergunning dan "
        "overgaat naar het nieuwe adres en het nieuwe kenteken. Alvast bedankt!"
    ),
]


def load_default() -> list[Article]:
    directory = REPO / "config" / "kennisbank"
    return [parse(p.read_text(encoding="utf-8"), p.stem) for p in article_files(directory)]


def generate(articles: list[Article], count: int, seed: int = 7) -> list[Article]:
    """`count` articles recombined from the real ones (the real ones first)."""
    rng = random.Random(seed)
    sentences = [
        s.strip()
        for a in articles
        for text in a.sections.values()
        for s in re.split(r"(?<=[.!?])\s+|\n", text)
        if len(s.split()) >= 4
    ]
    words = sorted({w for s in sentences for w in tokens(s) if len(w) > 3})
    keywords = sorted({k for a in articles for k in a.keywords})
    generated = list(articles)
    for number in range(count - len(articles)):
        base = articles[number % len(articles)]
        title = f"{base.title} {rng.choice(words)} {rng.choice(words)}"
        answer = " ".join(rng.sample(sentences, k=min(len(sentences), rng.randint(5, 14))))
        short = " ".join(rng.sample(sentences, k=2))
        phone = " ".join(rng.sample(sentences, k=4))
        source = "\n".join(
            [
                "+++",
                f'slug = "gen-{number:05d}"',
                f"title = {json.dumps(title)}",
                f'skill = "{base.skill}"',
                f'kind = "{base.kind}"',
                f"products = {json.dumps(list(base.products))}",
                f"keywords = {json.dumps(rng.sample(keywords, k=6))}",
                f'link = "https://example.org/gen-{number}"',
                "+++",
                "",
                "## Antwoord",
                answer,
                "",
                "## Kort",
                short,
                "",
                "## Telefoon",
                phone,
                "",
            ]
        )
        generated.append(parse(source))
    return generated


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    return {
        "p50_ms": round(at(0.50), 3),
        "p95_ms": round(at(0.95), 3),
        "p99_ms": round(at(0.99), 3),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 3),
    }


def bench_engine(articles: list[Article], rounds: int) -> dict[str, object]:
    config = KennisbankConfig.load(REPO / "config")
    engine = Kennisbank(
        None, config, REPO / "config" / "kennisbank", load_products(REPO / "config")
    )
    started = time.perf_counter()
    engine.load(articles)
    build = time.perf_counter() - started
    for question in QUESTIONS:  # warm the stemmer caches once, as a running service has them
        engine.search(question, 5)
    samples: list[float] = []
    for _ in range(rounds):
        for question in QUESTIONS:
            started = time.perf_counter()
            engine.search(question, 5)
            samples.append(time.perf_counter() - started)
    return {"articles": len(articles), "build_s": round(build, 3), **percentiles(samples)}


def bench_fts5(articles: list[Article], rounds: int) -> dict[str, object]:
    connection = sqlite3.connect(":memory:")
    connection.execute(
        "CREATE VIRTUAL TABLE kb USING fts5(slug UNINDEXED, title, keywords, body, "
        "tokenize = 'unicode61 remove_diacritics 2')"
    )
    started = time.perf_counter()
    connection.executemany(
        "INSERT INTO kb VALUES (?, ?, ?, ?)",
        [(a.slug, a.title, " ".join(a.keywords), "\n".join(a.sections.values())) for a in articles],
    )
    build = time.perf_counter() - started
    queries = [" OR ".join(f'"{w}"' for w in dict.fromkeys(tokens(q))) for q in QUESTIONS]
    statement = (
        "SELECT slug, bm25(kb, 3.0, 2.5, 1.0) AS score FROM kb WHERE kb MATCH ? "
        "ORDER BY score LIMIT 5"
    )
    for query in queries:
        connection.execute(statement, (query,)).fetchall()
    samples: list[float] = []
    for _ in range(rounds):
        for query in queries:
            started = time.perf_counter()
            connection.execute(statement, (query,)).fetchall()
            samples.append(time.perf_counter() - started)
    connection.close()
    return {"articles": len(articles), "build_s": round(build, 3), **percentiles(samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--generated", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    default = load_default()
    large = generate(default, args.generated)
    results: dict[str, dict[str, object]] = {}
    for name, articles in (("default", default), (f"generated-{len(large)}", large)):
        results[f"kennisbank {name}"] = bench_engine(articles, args.rounds)
        results[f"baseline FTS5 {name}"] = bench_fts5(articles, args.rounds)

    header = f"{'run':<36} {'articles':>8} {'build s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    for name, row in results.items():
        print(
            f"{name:<36} {row['articles']:>8} {row['build_s']:>8} {row['p50_ms']:>8} "
            f"{row['p95_ms']:>8} {row['p99_ms']:>8}"
        )
    out = REPO / "bench" / "results" / f"kennisbank-{dt.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "machine": platform.machine(),
                "questions": len(QUESTIONS),
                "rounds": args.rounds,
                "results": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nresults: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
