"""The kennisbank engine without a database: format, text analysis, ranking, variants, routing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from kcc.settings import REPO_CONFIG
from kennisbank.article import ArticleError, article_files, parse
from kennisbank.gaps import GapBuffer, anonymise, is_bsn
from kennisbank.index import Index
from kennisbank.search import Hit, Kennisbank, KennisbankConfig, margin
from kennisbank.text import content_tokens, normalise, split_compound, stem_nl
from router.classify import Classifier, SearchTopic, TopicFinder

FIXTURES = Path(__file__).parent / "fixtures" / "kennisbank"


@pytest.fixture(scope="module")
def engine() -> Kennisbank:
    return Kennisbank.from_directory(REPO_CONFIG, FIXTURES)


def top(engine: Kennisbank, query: str) -> str | None:
    hits = engine.search(query, 3)
    return hits[0].article.slug if hits else None


# -- format -----------------------------------------------------------------------------------


def test_parses_front_matter_and_sections() -> None:
    article = parse((FIXTURES / "bewoners-parkeren.md").read_text(), "bewoners-parkeren")
    assert article.slug == "bewoners-parkeren"
    assert article.skill == "parkeren"
    assert article.products == ("parkeervergunning-bewoners",)
    assert article.updated == "2026-11-23"
    assert article.languages == ("nl", "en")
    assert article.facts["costs"].startswith("Het bedrag")


def test_rejects_broken_articles_with_a_clear_reason() -> None:
    good = (FIXTURES / "paspoort.md").read_text()
    with pytest.raises(ArticleError, match="front matter"):
        parse("## Antwoord\ntekst")
    with pytest.raises(ArticleError, match="not valid TOML"):
        parse(good.replace('title = "Paspoort aanvragen"', "title = Paspoort"))
    with pytest.raises(ArticleError, match="## Telefoon"):
        parse(good.split("## Telefoon")[0])
    with pytest.raises(ArticleError, match="file name"):
        parse(good, expected_slug="iets-anders")
    with pytest.raises(ArticleError, match="kind"):
        parse(good.replace('kind = "verzoek"', 'kind = "wens"'))


def test_channel_variants_and_english_fallback() -> None:
    article = parse((FIXTURES / "bewoners-parkeren.md").read_text())
    assert article.variant("whatsapp").startswith("Vergunning om te parkeren")
    assert article.variant("telegram") == article.variant("whatsapp")
    assert article.variant("email").startswith("Woont u")
    assert article.variant("post") == article.variant("webform") == article.variant("email")
    assert article.variant("phone").startswith("- Vraag naar het adres")
    assert article.variant("counter") == article.variant("phone")
    assert article.variant("email", "en").startswith("Do you live")
    assert article.variant("whatsapp", "en").startswith("Apply online")
    # No English phone script: the English full answer rather than Dutch.
    assert article.variant("phone", "en").startswith("Do you live")
    dutch_only = parse((FIXTURES / "paspoort.md").read_text())
    assert dutch_only.variant("whatsapp", "en") == dutch_only.variant("whatsapp", "nl")
    assert dutch_only.title_in("en") == "Paspoort aanvragen"


def test_every_repository_article_parses() -> None:
    for path in article_files(REPO_CONFIG / "kennisbank"):
        parse(path.read_text(encoding="utf-8"), path.stem)


# -- text analysis ----------------------------------------------------------------------------


def test_normalisation_folds_case_and_diacritics() -> None:
    assert normalise("Één Café in Groningen") == "een cafe in groningen"
    assert content_tokens("Ik wil graag een PASPOORT aanvragen!") == ["paspoort", "aanvragen"]


def test_dutch_stemming_matches_inflections() -> None:
    assert stem_nl("vergunning") == stem_nl("vergunningen")
    assert stem_nl("parkeren") == stem_nl("parkeer")
    # dutch_porter (PostgreSQL's 'dutch') keeps these apart; the newer 'dutch' does not.
    assert stem_nl("gemeente") != stem_nl("gemeen")


def test_compound_is_split_into_known_parts() -> None:
    known = {stem_nl("parkeren"), stem_nl("vergunning"), stem_nl("belasting"), stem_nl("gemeente")}
    assert split_compound("parkeervergunning", known) == [stem_nl("parkeer"), stem_nl("vergunning")]
    # A linking "s" between the parts.
    assert split_compound("gemeentesbelasting", known)[1] == stem_nl("belasting")
    assert split_compound("parkeervergunning", {stem_nl("vergunning")}) == []


# -- ranking ----------------------------------------------------------------------------------


def test_compound_query_finds_article_with_separate_words(engine: Kennisbank) -> None:
    assert top(engine, "parkeervergunning") == "bewoners-parkeren"
    assert top(engine, "Hoe vraag ik een bewonersparkeervergunning aan?") == "bewoners-parkeren"


def test_separate_words_find_article_with_compound() -> None:
    source = (FIXTURES / "afvalcontainer.md").read_text()
    index = Index([parse(source), parse((FIXTURES / "paspoort.md").read_text())])
    # The article says "afvalcontainer"; the resident writes "container voor afval".
    matches = index.search("mijn container voor het afval", 2)
    assert index.articles[matches[0].doc].slug == "afvalcontainer"


def test_typos_are_tolerated(engine: Kennisbank) -> None:
    assert top(engine, "paspoortt aanvragen") == "paspoort"
    assert top(engine, "vergunnnig parkeren") == "bewoners-parkeren"
    assert top(engine, "contianer kapot") == "afvalcontainer"


def test_synonyms_from_configuration(engine: Kennisbank) -> None:
    # "kliko" and "stuk" are nowhere in the fixture articles; config/kennisbank.toml groups them.
    assert top(engine, "de kliko is stuk") == "afvalcontainer"
    assert top(engine, "wij gaan een bruiloft houden") == "trouwen"


def test_english_questions(engine: Kennisbank) -> None:
    assert top(engine, "my wheelie bin is broken") == "afvalcontainer"
    assert top(engine, "How do I get a passport?") == "paspoort"
    hit = engine.search("my wheelie bin is broken", 1)[0]
    assert hit.view("whatsapp", "en")["text"].startswith("Is your bin broken")


def test_ranking_orders_by_relevance_and_scores_fall(engine: Kennisbank) -> None:
    hits = engine.search("kenteken wijzigen parkeren vergunning", 4)
    assert hits[0].article.slug == "bewoners-parkeren"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert engine.search("xyzzy qwerty", 3) == []


def test_result_has_the_agreed_shape(engine: Kennisbank) -> None:
    view = engine.search("paspoort", 1)[0].view("whatsapp", "nl")
    assert set(view) == {"slug", "title", "version", "score", "skill", "kind", "text", "link"}
    assert view["text"].startswith("Paspoort aanvragen: maak een afspraak")


# -- routing ----------------------------------------------------------------------------------


def test_router_takes_topic_and_skill_from_the_search(engine: Kennisbank) -> None:
    classifier = Classifier.from_config(REPO_CONFIG)
    message = "Mijn kliko is stuk, het deksel is eraf"
    classifier.use_search(engine.finder())
    found = classifier.classify(message, channel="whatsapp")
    assert (found.topic, found.skill) == ("afvalcontainer-kapot", "afval")
    assert engine.route(message, "whatsapp") is not None


def test_router_falls_back_to_rules_without_a_confident_article(engine: Kennisbank) -> None:
    classifier = Classifier.from_config(REPO_CONFIG)
    classifier.use_search(engine.finder())
    # No fixture article is about DigiD; the rules still recognise it.
    found = classifier.classify("Ik kan niet inloggen met mijn DigiD", channel="email")
    assert found.topic == "digid-hulp"


def test_search_decides_where_the_rules_would_not() -> None:
    config = KennisbankConfig.load(REPO_CONFIG)
    engine = Kennisbank(None, config, FIXTURES, {"paspoort-aanvragen": "burgerzaken"})
    articles = [parse(p.read_text()) for p in sorted(FIXTURES.glob("*.md"))]
    # An article that knows a word the rules have never heard of.
    engine.load(
        [
            parse(a.source.replace('"pasfoto"]', '"pasfoto", "zwerfkrokodil"]'))
            if a.slug == "paspoort"
            else a
            for a in articles
        ]
    )
    classifier = Classifier.from_config(REPO_CONFIG)
    before = classifier.classify("zwerfkrokodil zwerfkrokodil", channel="email")
    classifier.use_search(engine.finder())
    after = classifier.classify("zwerfkrokodil zwerfkrokodil", channel="email")
    assert before.topic != "paspoort-aanvragen"
    assert (after.topic, after.skill) == ("paspoort-aanvragen", "burgerzaken")


# -- gaps -------------------------------------------------------------------------------------


def test_anonymise_strips_personal_data() -> None:
    assert is_bsn("123456782") and not is_bsn("123456789")
    text = (
        "Beste gemeente, mijn naam is Jan de Vries. BSN 123456782, bel 06-12345678 of "
        "+31 50 367 1111. Ik woon op de Zonnelaan 12, 9742 AB Groningen. IBAN NL91 ABNA 0417 "
        "1643 00, mail jan.devries@example.nl. Waar vind ik de zwemles voor mevr. Pietersen?"
        "\nMet vriendelijke groet,\nJan de Vries"
    )
    kept = anonymise(text)
    for secret in (
        "123456782",
        "0612345678",
        "12345678",
        "367",
        "9742",
        "12",
        "jan",
        "vries",
        "zonnelaan",
        "groningen",
        "abna",
        "example",
        "pietersen",
        "nl91",
    ):
        assert secret not in kept.split(), secret
    assert "zwemles" in kept.split()
    assert kept == kept.lower()


def test_gap_buffer_counts_per_wording() -> None:
    buffer = GapBuffer()
    buffer.add("zwemles kinderen", "search", None, 0.0)
    buffer.add("zwemles kinderen", "whatsapp", "paspoort", 1.5)
    buffer.add("", "search", None, 0.0)
    taken = buffer.take()
    assert taken == {"zwemles kinderen": (2, "search", "paspoort", 1.5)}
    assert buffer.take() == {}


def test_weak_matches_are_gaps_strong_ones_are_not(engine: Kennisbank) -> None:
    engine.gaps.take()
    assert engine.note_gap("zwemles", engine.search("zwemles"), "search")
    assert not engine.note_gap("paspoort aanvragen", engine.search("paspoort aanvragen"), "x")
    assert list(engine.gaps.take()) == ["zwemles"]


def test_rules_break_ties_among_the_search_candidates() -> None:
    classifier = Classifier.from_config(REPO_CONFIG)
    message = "Ik wil een afspraak maken voor een nieuw paspoort"
    assert classifier.classify(message).topic == "paspoort-aanvragen"  # the rules alone

    def finder(candidates: tuple[str, ...]) -> TopicFinder:
        return lambda _text, _channel: SearchTopic(
            "contact-openingstijden", "algemeen", 3.0, candidates
        )

    classifier.use_search(finder(("contact-openingstijden", "paspoort-aanvragen")))
    assert classifier.classify(message).topic == "paspoort-aanvragen"
    # The rules' topic is not among the search's candidates: the search decides.
    classifier.use_search(finder(("contact-openingstijden", "digid-hulp")))
    found = classifier.classify(message)
    assert (found.topic, found.skill) == ("contact-openingstijden", "algemeen")


def test_margin_ignores_articles_for_the_same_product(engine: Kennisbank) -> None:
    afval = engine.search("container kapot", 1)[0]
    same = Hit(replace(afval.article, slug="afval-2"), 1, afval.score * 0.99)
    other = engine.search("paspoort", 1)[0]
    assert margin([afval, same]) == 1.0
    assert margin([afval, same, replace(other, score=afval.score / 2)]) == pytest.approx(0.5)
    assert margin([]) == 0.0
