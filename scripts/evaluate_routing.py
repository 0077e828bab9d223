"""Accuracy of the kennisbank search and of routing on a labelled set of resident messages.

    python scripts/evaluate_routing.py [--dataset PATH] [--errors] [--rules-only]

Two tables:
- search: is an article for the expected product the first hit (top-1) or among the first
  three (top-3) of the kennisbank search on the message text, and is the first hit's skill the
  expected one (skill@1, the search alone, no rules), per channel and per language;
- routing: the router's classification (topic and skill from the kennisbank when confident,
  else the rules; kind and language from the rules), per channel and per language. With
  `--rules-only` the routing table uses the rules alone (the pre-kennisbank router), to compare.

The dataset is a TSV with columns id, channel, slug, skill, kind, language, text. Error listings
show ids and labels only, never the message text: the messages may hold personal data.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    # Run as a plain script (python scripts/...), the repo's packages are not importable yet.
    sys.path.insert(0, str(REPO_ROOT))

from kennisbank.search import Kennisbank  # noqa: E402
from router.classify import Classification, Classifier  # noqa: E402

# ../shared next to the repository (a worktree sits one level deeper, in wt/<name>).
DEFAULT_DATASET = next(
    (
        base / "shared" / "eval" / "questions-dev.tsv"
        for base in (REPO_ROOT.parent, REPO_ROOT.parent.parent)
        if (base / "shared" / "eval" / "questions-dev.tsv").is_file()
    ),
    REPO_ROOT.parent / "shared" / "eval" / "questions-dev.tsv",
)
FIELDS = ("topic", "skill", "kind", "language")


@dataclass(frozen=True)
class Example:
    id: str
    channel: str
    topic: str
    skill: str
    kind: str
    language: str
    text: str


@dataclass(frozen=True)
class Outcome:
    example: Example
    got: Classification

    def correct(self, field: str) -> bool:
        return bool(getattr(self.example, field) == getattr(self.got, field))


def load_dataset(path: Path) -> list[Example]:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            Example(
                id=row["id"],
                channel=row["channel"],
                topic=row["slug"],
                skill=row["skill"],
                kind=row["kind"],
                language=row["language"],
                # The file stores line breaks as a literal backslash-n.
                text=row["text"].replace("\\n", "\n"),
            )
            for row in reader
        ]


def search_table(kennisbank: Kennisbank, examples: Sequence[Example]) -> tuple[str, list[str]]:
    """Top-1/top-3 of the search per group, and the ids missed at top-3."""
    hits: dict[str, tuple[bool, bool, bool]] = {}
    for example in examples:
        found = kennisbank.search(example.text, limit=3)
        products = [set(hit.article.products) for hit in found]
        top1 = bool(products) and example.topic in products[0]
        top3 = any(example.topic in p for p in products)
        skill = bool(found) and found[0].article.skill == example.skill
        hits[example.id] = (top1, top3, skill)
    groups: list[tuple[str, list[Example]]] = [("overall", list(examples))]
    for label in ("channel", "language"):
        by: dict[str, list[Example]] = defaultdict(list)
        for example in examples:
            by[getattr(example, label)].append(example)
        groups += [(f"{label}={name}", by[name]) for name in sorted(by)]
    rows = [["group", "n", "top-1", "top-3", "skill@1"]]
    for name, members in groups:
        n = len(members) or 1
        rates = [sum(hits[e.id][i] for e in members) / n for i in range(3)]
        rows.append([name, str(len(members)), *(f"{r * 100:5.1f}%" for r in rates)])
    missed = [f"{e.id} [{e.channel}] expected {e.topic}" for e in examples if not hits[e.id][1]]
    return _render(rows), missed


def _render(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def evaluate(classifier: Classifier, examples: Sequence[Example]) -> list[Outcome]:
    return [
        Outcome(example, classifier.classify(example.text, channel=example.channel))
        for example in examples
    ]


def accuracy(outcomes: Sequence[Outcome]) -> dict[str, float]:
    if not outcomes:
        return {field: 0.0 for field in FIELDS}
    return {field: sum(o.correct(field) for o in outcomes) / len(outcomes) for field in FIELDS}


def table(outcomes: Sequence[Outcome]) -> str:
    groups: list[tuple[str, list[Outcome]]] = [("overall", list(outcomes))]
    for label, key in (("channel", "channel"), ("language", "language")):
        by: dict[str, list[Outcome]] = defaultdict(list)
        for outcome in outcomes:
            by[getattr(outcome.example, key)].append(outcome)
        groups += [(f"{label}={name}", by[name]) for name in sorted(by)]

    header = ["group", "n", *FIELDS]
    rows = [header]
    for name, members in groups:
        scores = accuracy(members)
        rows.append([name, str(len(members)), *(f"{scores[f] * 100:5.1f}%" for f in FIELDS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def errors(outcomes: Sequence[Outcome]) -> str:
    lines = []
    for outcome in outcomes:
        wrong = [f for f in FIELDS if not outcome.correct(f)]
        if not wrong:
            continue
        parts = [f"{f}: {getattr(outcome.example, f)} -> {getattr(outcome.got, f)}" for f in wrong]
        lines.append(
            f"{outcome.example.id}  [{outcome.example.channel}]  "
            f"conf={outcome.got.confidence:.2f}  " + "; ".join(parts)
        )
    return "\n".join(lines) if lines else "no errors"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--config", type=Path, default=REPO_ROOT / "config")
    parser.add_argument(
        "--errors", action="store_true", help="list misclassified ids (labels only, no text)"
    )
    parser.add_argument(
        "--rules-only", action="store_true", help="route with the rules only (no kennisbank)"
    )
    args = parser.parse_args(argv)

    if not args.dataset.is_file():
        print(f"dataset not found: {args.dataset}", file=sys.stderr)
        return 2
    examples = load_dataset(args.dataset)
    kennisbank = Kennisbank.from_directory(args.config)
    classifier = Classifier.from_config(args.config)
    if not args.rules_only:
        classifier.use_search(kennisbank.finder())
    print(f"dataset: {args.dataset} ({len(examples)} messages)")
    print(f"kennisbank: {kennisbank.size} articles\n")
    searched, missed = search_table(kennisbank, examples)
    print(
        "search (an article for the expected product in the first 1 / 3 hits; "
        "skill@1: the first hit's skill, search alone):"
    )
    print(searched)
    outcomes = evaluate(classifier, examples)
    how = (
        "rules only"
        if args.rules_only
        else "kennisbank search for topic and skill, rules for kind, language"
    )
    print(f"\nrouting ({how}):")
    print(table(outcomes))
    if args.errors:
        print("\nsearch misses at top-3 (expected product):")
        print("\n".join(missed) or "none")
        print("\nmisclassified (expected -> got):")
        print(errors(outcomes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
