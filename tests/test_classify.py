"""The rule-based classifier, on made-up messages (none taken from the evaluation set)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from router.classify import Classification, ClassificationConfigError, Classifier, normalise

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "config"
DEV_SET = Path("/work/shared/eval/questions-dev.tsv")


@pytest.fixture(scope="module")
def classifier() -> Classifier:
    return Classifier.from_config(CONFIG_DIR)


# (message, expected topic): a few per skill, in the styles residents write in.
TOPIC_CASES: list[tuple[str, str]] = [
    # burgerzaken
    (
        "Mijn reispas is gestolen op het station, hoe kom ik snel aan een nieuw paspoort?",
        "paspoort-aanvragen",
    ),
    (
        "Moet mijn zoontje van 2 ook een eigen identiteitskaart hebben voor een dagje Duitsland?",
        "id-kaart-aanvragen",
    ),
    (
        "Mijn rijbewijs verloopt volgende maand, kan ik het verlengen bij de gemeente?",
        "rijbewijs-verlengen",
    ),
    (
        "Per 1 juni wonen wij op een ander adres in de stad, waar geef ik de verhuizing door?",
        "verhuizing-doorgeven",
    ),
    (
        "Voor mijn nieuwe werkgever heb ik een uittreksel uit de BRP nodig, kan dat online?",
        "uittreksel-brp",
    ),
    (
        "Onze tweeling is vorige week geboren. Binnen hoeveel dagen moeten we aangifte doen?",
        "geboorteaangifte",
    ),
    (
        "Wij willen volgend voorjaar trouwen in het stadhuis, wat zijn de kosten?",
        "huwelijk-partnerschap",
    ),
    (
        "Mijn vader is gisteren overleden in het ziekenhuis. Wie regelt de aangifte?",
        "overlijden-aangifte",
    ),
    # parkeren
    (
        "Ik heb een tweede auto gekocht, kan ik een extra parkeervergunning krijgen?",
        "parkeervergunning-bewoners",
    ),
    (
        "Hoe zet ik het kenteken van mijn bezoek in de app voor bezoekersparkeren?",
        "bezoekersparkeren",
    ),
    (
        "Mijn moeder zit in een rolstoel, hoe vraagt zij een gehandicaptenparkeerkaart aan?",
        "gehandicaptenparkeerkaart",
    ),
    # afval
    (
        "Wanneer wordt het oud papier in onze wijk weer opgehaald? Ik kan de ophaaldag niet vinden",
        "afvalkalender",
    ),
    (
        "Ik wil een oude kledingkast en een wasmachine laten ophalen als grofvuil.",
        "grofvuil-ophalen",
    ),
    (
        "De kliko is bij het legen in de vuilniswagen gevallen en nu zit er een scheur in.",
        "afvalcontainer-kapot",
    ),
    # openbare ruimte
    (
        "Er zit een diepe kuil in het fietspad langs het kanaal, levensgevaarlijk in het donker.",
        "melding-openbare-ruimte",
    ),
    ("Al drie avonden brandt de straatverlichting in onze straat niet.", "melding-openbare-ruimte"),
    # zorg
    (
        "Mijn man kan na zijn beroerte de trap niet meer op. Kunnen we een traplift via de Wmo "
        "krijgen?",
        "wmo-hulp-aanvragen",
    ),
    (
        "Ik heb hulp nodig bij het schoonmaken van mijn huis, ik ben 88. Kan dat via de gemeente?",
        "wmo-hulp-aanvragen",
    ),
    # werk en inkomen
    (
        "Ik ben mijn baan kwijt en heb geen inkomen meer. Kan ik een bijstandsuitkering aanvragen?",
        "bijstandsuitkering",
    ),
    (
        "Ik zit in de bijstand en mijn koelkast is stuk. Is er bijzondere bijstand voor?",
        "bijzondere-bijstand",
    ),
    (
        "Ik heb steeds meer schulden en de deurwaarder staat voor de deur. Wie kan mij helpen?",
        "schuldhulpverlening",
    ),
    # belastingen
    (
        "Ik heb een kleine AOW en kan de afvalstoffenheffing niet betalen. Kan ik kwijtschelding "
        "krijgen?",
        "kwijtschelding-belastingen",
    ),
    (
        "De WOZ-waarde van ons huis is veel hoger dan wat vergelijkbare huizen opbrachten.",
        "woz-waarde",
    ),
    (
        "We hebben sinds kort een herdershond. Hoe geef ik die op voor de hondenbelasting?",
        "hondenbelasting",
    ),
    # vergunningen
    (
        "Mag ik zonder vergunning een dakkapel op de achterkant van mijn huis plaatsen?",
        "omgevingsvergunning",
    ),
    (
        "Wij organiseren in juli een buurtfeest met een springkussen en muziek op straat.",
        "evenementenvergunning",
    ),
    # klachten
    (
        "Ik wil een klacht indienen over de medewerker aan de balie, die was erg onbeschoft.",
        "klacht-indienen",
    ),
    (
        "Ik ben het niet eens met het besluit over mijn aanvraag en wil bezwaar maken.",
        "bezwaar-maken",
    ),
    # algemeen
    ("Ik krijg mijn DigiD niet geactiveerd, de sms-code komt niet aan.", "digid-hulp"),
    (
        "Ik heb een brief gekregen en ik begrijp hem niet. Kan iemand mij helpen met het "
        "invullen van het formulier?",
        "hulp-bij-formulieren",
    ),
    ("Wat zijn de openingstijden van het stadsloket op zaterdag?", "contact-openingstijden"),
    (
        "Ik heb zes weken geleden een aanvraag ingediend en nog niets gehoord. Wat is de status?",
        "status-aanvraag",
    ),
    # other languages
    ("Hello, my passport expires soon. How do I renew it in Groningen?", "paspoort-aanvragen"),
    (
        "We are moving to a new address next month, how do I register the move?",
        "verhuizing-doorgeven",
    ),
    ("Dzień dobry, chciałbym zapytać, kiedy jest wywóz śmieci na mojej ulicy?", "afvalkalender"),
    (
        "Guten Tag, ich möchte meinen Führerschein verlängern. Was muss ich mitbringen?",
        "rijbewijs-verlengen",
    ),
    ("Merhaba, evlilik için belediyeye ne zaman başvurmam gerekiyor?", "huwelijk-partnerschap"),
    ("مرحبا، أريد تجديد جواز السفر الخاص بي", "paspoort-aanvragen"),
]


@pytest.mark.parametrize(("text", "topic"), TOPIC_CASES)
def test_topic(classifier: Classifier, text: str, topic: str) -> None:
    result = classifier.classify(text)
    assert result.topic == topic
    assert result.skill == classifier.products[topic][0]
    assert 0.0 < result.confidence <= 1.0


KIND_CASES: list[tuple[str, str]] = [
    ("Hoe lang is een paspoort eigenlijk geldig voor iemand van 16?", "vraag"),
    ("Wat kost een uittreksel uit de BRP?", "vraag"),
    ("Ik wil graag een afspraak maken om een nieuwe identiteitskaart aan te vragen.", "verzoek"),
    ("Kunt u mij een papieren aanvraagformulier voor de parkeervergunning toesturen?", "verzoek"),
    ("Could you please send me a new activation letter for DigiD?", "verzoek"),
    ("De lantaarnpaal voor nummer 12 is kapot en het is daar 's avonds erg donker.", "melding"),
    ("Bij de speeltuin ligt een stoeptegel los, mijn kind is er al over gevallen.", "melding"),
    ("The street light outside my house is broken.", "melding"),
    ("Ik ben zeer ontevreden over hoe ik aan de telefoon ben behandeld.", "klacht"),
    ("I want to file a complaint: nobody ever answers my emails.", "klacht"),
    (
        "Hierbij maak ik bezwaar tegen de aanslag hondenbelasting, wij hebben geen hond meer.",
        "bezwaar",
    ),
    ("I object to the decision to refuse my permit application.", "bezwaar"),
]


@pytest.mark.parametrize(("text", "kind"), KIND_CASES)
def test_kind(classifier: Classifier, text: str, kind: str) -> None:
    assert classifier.classify(text).kind == kind


def test_bezwaar_against_tax_stays_with_belastingen(classifier: Classifier) -> None:
    result = classifier.classify(
        "Ik maak bezwaar tegen de WOZ-beschikking, de waarde van mijn woning is veel te hoog."
    )
    assert (result.topic, result.skill, result.kind) == ("woz-waarde", "belastingen", "bezwaar")


def test_bezwaar_against_other_decision_goes_to_bezwaar_desk(classifier: Classifier) -> None:
    result = classifier.classify(
        "Ik teken bezwaar aan tegen de afwijzing van mijn aanvraag voor een scootmobiel."
    )
    assert (result.topic, result.skill, result.kind) == ("bezwaar-maken", "klachten", "bezwaar")


LANGUAGE_CASES: list[tuple[str, str]] = [
    ("Goedemorgen, ik heb een vraag over mijn aanslag.", "nl"),
    ("Good morning, I have a question about the bin collection in my street.", "en"),
    ("Dzień dobry, mam pytanie dotyczące mojego dowodu osobistego.", "pl"),
    ("Dzien dobry, mam pytanie czy moge zmienic adres", "pl"),  # typed without diacritics
    ("Guten Tag, ich habe eine Frage zu meinem Personalausweis.", "de"),
    ("Merhaba, kimlik kartım için randevu almak istiyorum.", "tr"),
    ("السلام عليكم، أحتاج مساعدة في ملء استمارة من البلدية", "ar"),
]


@pytest.mark.parametrize(("text", "language"), LANGUAGE_CASES)
def test_language(classifier: Classifier, text: str, language: str) -> None:
    assert classifier.classify(text).language == language


def test_dutch_street_names_do_not_make_english_dutch(classifier: Classifier) -> None:
    text = "Hi, I live at Oosterstraat 12 in Groningen and I would like to know about parking."
    assert classifier.classify(text).language == "en"


def test_fallback_when_nothing_matches(classifier: Classifier) -> None:
    result = classifier.classify("Goedemiddag, met wie spreek ik?", channel="phone")
    assert result == Classification(
        topic="contact-openingstijden",
        skill="algemeen",
        kind="vraag",
        language="nl",
        confidence=0.0,
    )
    assert classifier.classify("xyz", channel="post").topic == "hulp-bij-formulieren"


def test_case_and_diacritics_do_not_matter(classifier: Classifier) -> None:
    plain = classifier.classify("ik wil mijn paspoort verlengen")
    shouting = classifier.classify("IK WIL MIJN PÀSPOORT VERLENGEN")
    assert plain.topic == shouting.topic == "paspoort-aanvragen"
    assert normalise("Ünïcödé ŁÓDŹ İstanbul") == "unicode lodz istanbul"


def test_compound_words_match_on_stems(classifier: Classifier) -> None:
    assert classifier.classify("kinderpaspoortaanvraag").topic == "paspoort-aanvragen"
    assert classifier.classify("Onze GFT-container is weg").topic == "afvalcontainer-kapot"


def test_form_subject_counts_and_labels_are_not_text(classifier: Classifier) -> None:
    result = classifier.classify(
        "Onderwerp: hondenbelasting\nBericht: Ik heb een vraag over de aanslag van dit jaar.",
        channel="webform",
    )
    assert result.topic == "hondenbelasting"
    assert result.language == "nl"
    with_subject = classifier.classify("vraag over de aanslag", subject="hondenbelasting")
    assert with_subject.topic == "hondenbelasting"


def test_quoted_reply_is_ignored(classifier: Classifier) -> None:
    text = (
        "Hello, I still have not heard anything about my application.\n\n"
        "-----Original Message-----\nFrom: gemeente\n> Uw aanvraag voor een dakkapel is ontvangen."
    )
    assert classifier.classify(text, channel="email").topic == "status-aanvraag"


def test_products_and_skills_exposed(classifier: Classifier) -> None:
    assert len(classifier.products) == 30
    assert classifier.products["woz-waarde"][0] == "belastingen"
    assert "burgerzaken" in classifier.skills
    assert len(classifier.skills) == 10


def test_rules_only_name_known_products(tmp_path: Path) -> None:
    (tmp_path / "products.toml").write_text(
        '[[product]]\nslug = "a"\nskill = "s"\ntitle = "A"\n', encoding="utf-8"
    )
    (tmp_path / "classification.toml").write_text(
        '[weights.levels]\nstrong = 3.0\n[fallback]\ntopic = "a"\n'
        '[topic.unknown]\nstrong = ["x"]\n',
        encoding="utf-8",
    )
    with pytest.raises(ClassificationConfigError, match="unknown"):
        Classifier.from_config(tmp_path)


def test_dev_set_accuracy_floors(classifier: Classifier) -> None:
    if not DEV_SET.is_file():
        pytest.skip(f"{DEV_SET} is not available")
    with DEV_SET.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    hits = {"topic": 0, "skill": 0, "kind": 0, "language": 0}
    for row in rows:
        got = classifier.classify(row["text"].replace("\\n", "\n"), channel=row["channel"])
        hits["topic"] += got.topic == row["slug"]
        hits["skill"] += got.skill == row["skill"]
        hits["kind"] += got.kind == row["kind"]
        hits["language"] += got.language == row["language"]
    accuracy = {field: count / len(rows) for field, count in hits.items()}
    # About five points below what the rules reach today, so a regression fails here.
    floors = {"topic": 0.93, "skill": 0.95, "kind": 0.80, "language": 0.95}
    for field, floor in floors.items():
        assert accuracy[field] >= floor, f"{field}: {accuracy[field]:.1%} < {floor:.0%}"
