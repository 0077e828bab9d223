"""`kcc demo`: the service on the embedded default (SQLite, in-process queues), with simulated
residents writing in on every channel and simulated agents working the queues over the HTTP API,
so a newcomer sees queues fill and drain, and can use the API and the web form alongside.

Everything the simulation does goes through the running server, the way real clients would.
Residents write in through each channel's real inbound path against local stand-ins of the
providers (`kcc/demo_channels.py`, `sandbox/`): the web form as a browser posts it, Telegram
updates with the webhook secret, signed Twilio webhooks for WhatsApp and calls, mail over LMTP,
letter PDFs from the mail room's scanner; the counter (no adapter) goes through the ingest API
with an integration token. Agents use only the agent API, and their replies leave through each
channel's real outbound path to the stand-ins, which count them. The demo makes up
the providers' credentials for every run and never uses those of the environment. The people,
addresses and numbers are fictional.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import shutil
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO, TypeVar

import aiohttp
import sqlalchemy as sa
from aiohttp import web
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_SUBMITTED,
    JobExecutionEvent,
    SchedulerEvent,
)
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from agents.registry import add_agent
from contacts.database import sqlite_url
from contacts.models import Contact
from desk.passwords import hash_password
from desk.sessions import desk_store
from kcc.app import create_app
from kcc.cli import ACCESS_LOG
from kcc.demo_channels import (
    ChannelRoute,
    PhoneRoute,
    Resident,
    RouteError,
    available_routes,
    find_contact,
)
from kcc.services import Services
from kcc.settings import Settings

log = logging.getLogger(__name__)
Result = TypeVar("Result")

# Handling times (seconds) are divided by this, so a few minutes of demo show many contacts.
DEFAULT_SPEED = 1.5
REPORT_SECONDS = 5.0
# Arrivals swing around the average rate in waves of this length (seconds): queues visibly fill
# in the busy half and drain in the quiet half, while the mean stays `rate`.
WAVE_SECONDS = 60.0
WAVE_DEPTH = 0.6
# The people at the keyboard: not simulated, they sign in to the desk and the dashboard.
LEAD_NAME = "Teamleider Demosma"
OWN_NAME = "Proefmedewerker (u zelf)"
# Marks a data directory the demo made, so it never wipes a real service's database.
MARKER = ".kcc-demo"
# Loggers kept at WARNING during the demo: httpx logs request URLs, and a Bot API URL carries the
# bot token; python-telegram-bot logs whole updates (residents' messages) at DEBUG.
QUIET_LOGGERS = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "telegram": logging.WARNING,
    "apscheduler": logging.WARNING,
    # fpdf2 subsets the letters' font and logs every step at INFO.
    "fontTools": logging.WARNING,
}

CHANNEL_MIX: dict[str, float] = {
    "phone": 35,
    "whatsapp": 20,
    "email": 15,
    "webform": 15,
    "telegram": 5,
    "post": 5,
    "counter": 5,
}
# Share of contacts not in Dutch on the written and chat channels (phone, desk, post: Dutch).
FOREIGN_SHARE = 0.12
DUPLICATE_SHARE = 0.05  # the channel delivers the same message twice
FOLLOW_UP_SHARE = 0.10  # of these channels' messages: a second one in a recent conversation
FOLLOW_UP_CHANNELS = ("whatsapp", "telegram", "email")
SPAM_SHARE = 0.01

HANDLE_SECONDS: dict[str, tuple[float, float]] = {
    "phone": (3, 10),
    "counter": (3, 10),
    "chat": (5, 15),
    "written": (5, 20),
}
AGENT_CAPACITY = {"phone": 1, "counter": 1, "chat": 2, "written": 1}
HANDS = 2  # contacts a simulated agent works on at once (a call or a desk visit: only that)
TRANSFER_SHARE = 0.05
WAIT_SHARE = 0.05
RESIDENT_ANSWERS_SHARE = 0.85
# How long an agent gives a resident to answer before closing with "geen-reactie".
CHECK_BACK_SECONDS = 30.0

# Where a contact plausibly goes next when the first line hands it on.
RELATED_QUEUE = {
    "burgerzaken": "algemeen",
    "parkeren": "vergunningen",
    "afval": "openbare-ruimte",
    "openbare-ruimte": "afval",
    "zorg": "werk-inkomen",
    "werk-inkomen": "zorg",
    "belastingen": "werk-inkomen",
    "vergunningen": "openbare-ruimte",
    "klachten": "algemeen",
    "algemeen": "burgerzaken",
}


class DemoError(RuntimeError):
    """A problem the demo reports in one line (a refused directory, an unexpected answer)."""


# --- what residents write -------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A message a resident could send. `queue` is where a person reading it would send it;
    `also` lists other queues that are just as right (a complaint about a passport appointment)."""

    queue: str
    kind: str
    subject: str
    text: str
    language: str = "nl"
    also: tuple[str, ...] = ()
    desk: bool = False  # something people come to the counter for
    spam: bool = False


T = Template
TEMPLATES: tuple[Template, ...] = (
    # burgerzaken
    T(
        "burgerzaken",
        "vraag",
        "Paspoort verloopt",
        "Mijn paspoort verloopt over {weeks} weken en wij gaan in {month} op vakantie. Krijg ik "
        "op tijd een nieuw paspoort en moet ik daarvoor een afspraak maken?",
        desk=True,
    ),
    T(
        "burgerzaken",
        "verzoek",
        "Afspraak identiteitskaart",
        "Ik wil graag een afspraak maken om een identiteitskaart aan te vragen voor mijn dochter "
        "van {age}. Welke dagen zijn er nog plekken vrij?",
        desk=True,
    ),
    T(
        "burgerzaken",
        "vraag",
        "Verhuizing doorgeven",
        "Wij zijn op {date} verhuisd naar de {street} {nr}. Hoe geef ik de verhuizing door en "
        "moet mijn partner dat apart doen?",
    ),
    T(
        "burgerzaken",
        "verzoek",
        "Uittreksel BRP",
        "Ik heb een uittreksel uit de BRP nodig voor mijn nieuwe werkgever. Kan ik dat online "
        "aanvragen of moet ik ervoor langskomen?",
        desk=True,
    ),
    T(
        "burgerzaken",
        "vraag",
        "Rijbewijs verlengen",
        "Mijn rijbewijs verloopt volgende maand. Kan ik het bij de gemeente verlengen of heb ik "
        "eerst een gezondheidsverklaring nodig?",
        desk=True,
    ),
    T(
        "burgerzaken",
        "vraag",
        "Aangifte geboorte",
        "Onze zoon is vorige week geboren. Binnen hoeveel dagen moeten wij aangifte doen en wat "
        "moeten we meenemen?",
        desk=True,
    ),
    T(
        "burgerzaken",
        "verzoek",
        "Trouwen in het stadhuis",
        "Wij willen volgend jaar trouwen in het stadhuis. Hoe doen we de melding voorgenomen "
        "huwelijk en hoe lang van tevoren moet dat?",
    ),
    T(
        "burgerzaken",
        "vraag",
        "Overlijden vader",
        "Mijn vader is gisteren overleden. De uitvaartondernemer vroeg of wij zelf nog iets bij "
        "de gemeente moeten regelen. Klopt dat?",
    ),
    T(
        "burgerzaken",
        "klacht",
        "Afspraak paspoort",
        "Ik had vanochtend om {time} een afspraak voor mijn paspoort, maar ik heb meer dan een "
        "uur moeten wachten en werd toen weggestuurd. Daar ben ik erg ontevreden over.",
        also=("klachten",),
    ),
    # parkeren
    T(
        "parkeren",
        "vraag",
        "Parkeervergunning",
        "Ik woon sinds kort aan de {street} en heb een auto. Kom ik in aanmerking voor een "
        "parkeervergunning voor bewoners en hoe lang is de wachtlijst?",
    ),
    T(
        "parkeren",
        "verzoek",
        "Kenteken wijzigen",
        "Graag wil ik het kenteken op mijn bewonersvergunning wijzigen, want ik heb een andere "
        "auto gekocht. Het nieuwe kenteken is {plate}.",
    ),
    T(
        "parkeren",
        "vraag",
        "Bezoekersparkeren",
        "Mijn bezoekerstegoed is op, terwijl mijn moeder deze week bij ons logeert. Kan ik extra "
        "uren bijkopen voor bezoekersparkeren?",
    ),
    T(
        "parkeren",
        "verzoek",
        "Gehandicaptenparkeerkaart",
        "Mijn man is slecht ter been na een operatie. Wij willen een gehandicaptenparkeerkaart "
        "aanvragen. Hoe gaat de medische keuring?",
    ),
    T(
        "parkeren",
        "bezwaar",
        "Naheffing parkeren",
        "Ik maak bezwaar tegen de naheffingsaanslag parkeerbelasting van {date}. Ik had wel "
        "degelijk betaald via de parkeerapp.",
        also=("klachten", "belastingen"),
    ),
    # afval
    T(
        "afval",
        "vraag",
        "Oud papier",
        "Wanneer wordt aan de {street} het oud papier opgehaald? De afvalkalender in de app laat "
        "voor deze week niets zien.",
    ),
    T(
        "afval",
        "melding",
        "Container niet geleegd",
        "De grijze container is vandaag weer niet geleegd. De rest van de straat is wel "
        "opgehaald, alleen wij niet. Adres: {street} {nr}.",
    ),
    T(
        "afval",
        "verzoek",
        "Grofvuil",
        "Ik wil graag grofvuil laten ophalen: een oud bankstel, een matras en een kast. Wanneer "
        "kan dat en wat kost het?",
    ),
    T(
        "afval",
        "melding",
        "Kliko kapot",
        "Onze groene kliko is kapot, het deksel is eraf gebroken bij het legen. Kunnen jullie "
        "een nieuwe container brengen naar {street} {nr}?",
    ),
    T(
        "afval",
        "verzoek",
        "Grotere container",
        "Wij zijn met vijf personen en de container zit steeds te vol. Kunnen wij een grotere of "
        "een extra container krijgen?",
    ),
    # openbare ruimte
    T(
        "openbare-ruimte",
        "melding",
        "Lantaarnpaal kapot",
        "De straatlantaarn voor {street} {nr} is al een week kapot. 's Avonds is het daar "
        "aardedonker en dat voelt niet veilig.",
    ),
    T(
        "openbare-ruimte",
        "melding",
        "Losse stoeptegels",
        "Er liggen losliggende stoeptegels op de hoek van de {street}. Mijn buurvrouw is er "
        "gisteren bijna over gestruikeld.",
    ),
    T(
        "openbare-ruimte",
        "melding",
        "Afval gedumpt",
        "Naast de ondergrondse container bij de {street} is weer afval gedumpt: vuilniszakken, "
        "een oude stoel en glas.",
        also=("afval",),
    ),
    T(
        "openbare-ruimte",
        "melding",
        "Boom op fietspad",
        "Na de storm van vannacht ligt er een omgevallen boom over het fietspad langs de "
        "{street}. Fietsers moeten over het gras.",
    ),
    T(
        "openbare-ruimte",
        "klacht",
        "Gat in de weg",
        "Ik heb al drie keer een melding gedaan over het gat in de weg bij de {street}, maar er "
        "gebeurt niets. Dit vind ik echt slecht.",
        also=("klachten",),
    ),
    # zorg
    T(
        "zorg",
        "verzoek",
        "Huishoudelijke hulp",
        "Mijn moeder van {age} woont alleen en kan het huishouden niet meer aan. Hoe vragen wij "
        "huishoudelijke hulp aan via de Wmo?",
    ),
    T(
        "zorg",
        "vraag",
        "Keukentafelgesprek",
        "Ik heb een brief gekregen voor een keukentafelgesprek. Mag mijn dochter daarbij zijn en "
        "wat moet ik voorbereiden?",
    ),
    T(
        "zorg",
        "verzoek",
        "Traplift",
        "Door mijn knie kom ik de trap niet meer op. Kan ik een traplift of een andere "
        "woningaanpassing aanvragen?",
    ),
    T(
        "zorg",
        "vraag",
        "Scootmobiel",
        "Hoe hoog is de eigen bijdrage voor een scootmobiel via de Wmo? Ik krijg alleen AOW.",
    ),
    # werk en inkomen
    T(
        "werk-inkomen",
        "vraag",
        "Bijstand aanvragen",
        "Ik ben mijn baan kwijtgeraakt en mijn WW stopt over een maand. Kan ik dan een "
        "bijstandsuitkering aanvragen?",
    ),
    T(
        "werk-inkomen",
        "vraag",
        "Uitbetaling bijstand",
        "Wanneer wordt de bijstand deze maand uitbetaald? Er staat nog niets op mijn rekening.",
    ),
    T(
        "werk-inkomen",
        "verzoek",
        "Wasmachine kapot",
        "Mijn wasmachine is kapot en ik heb geen geld voor een nieuwe. Kan ik bijzondere "
        "bijstand aanvragen?",
    ),
    T(
        "werk-inkomen",
        "verzoek",
        "Hulp bij schulden",
        "Ik heb schulden en krijg steeds aanmaningen. Ik weet niet meer hoe ik dit moet oplossen. "
        "Kunnen jullie mij helpen met schuldhulpverlening?",
    ),
    T(
        "werk-inkomen",
        "vraag",
        "Stadjerspas",
        "Hoe vraag ik de Stadjerspas aan voor mijn kinderen? Wij hebben een laag inkomen.",
    ),
    # belastingen
    T(
        "belastingen",
        "verzoek",
        "Kwijtschelding",
        "Ik heb een aanslag gemeentelijke belastingen gekregen, maar ik leef van een uitkering. "
        "Kan ik kwijtschelding aanvragen?",
    ),
    T(
        "belastingen",
        "bezwaar",
        "Bezwaar WOZ-waarde",
        "Ik maak bezwaar tegen de WOZ-waarde van mijn woning aan de {street} {nr}. De waarde is "
        "veel te hoog vergeleken met die van de buren.",
    ),
    T(
        "belastingen",
        "vraag",
        "Hondenbelasting stoppen",
        "Onze hond is in {month} overleden. Hoe stop ik de hondenbelasting en krijg ik geld terug?",
    ),
    T(
        "belastingen",
        "vraag",
        "Betalen in termijnen",
        "Kan ik de aanslag afvalstoffenheffing in termijnen betalen? Het is nu een groot bedrag "
        "ineens.",
        also=("afval",),
    ),
    # vergunningen
    T(
        "vergunningen",
        "vraag",
        "Dakkapel",
        "Wij willen een dakkapel plaatsen aan de achterkant van ons huis. Hebben we daarvoor een "
        "omgevingsvergunning nodig?",
    ),
    T(
        "vergunningen",
        "verzoek",
        "Boom kappen",
        "In onze tuin staat een grote boom die we willen kappen. Moeten we een kapvergunning "
        "aanvragen?",
    ),
    T(
        "vergunningen",
        "vraag",
        "Buurtfeest",
        "Wij organiseren op {date} een buurtfeest aan de {street} met een springkussen. Moeten "
        "we een vergunning aanvragen om de straat af te sluiten?",
    ),
    T(
        "vergunningen",
        "vraag",
        "Aanvraag uitbouw",
        "Hoe lang duurt het voordat ik een besluit krijg op mijn aanvraag voor een "
        "omgevingsvergunning voor een uitbouw?",
    ),
    # klachten
    T(
        "klachten",
        "klacht",
        "Klacht over bejegening",
        "Ik wil een klacht indienen over de medewerker aan de balie van vanochtend. Ik werd "
        "onvriendelijk behandeld en niet serieus genomen.",
        desk=True,
    ),
    T(
        "klachten",
        "klacht",
        "Niet teruggebeld",
        "Mij is al drie keer beloofd dat ik teruggebeld zou worden, maar niemand heeft gebeld. "
        "Ik wil hierover een formele klacht indienen.",
    ),
    T(
        "klachten",
        "bezwaar",
        "Bezwaar tegen besluit",
        "Hierbij maak ik bezwaar tegen het besluit van {date} waarin mijn aanvraag is afgewezen. "
        "Het bezwaarschrift stuur ik ook per post.",
    ),
    T(
        "klachten",
        "bezwaar",
        "Bezwaar boete",
        "Ik ben het niet eens met de boete die ik heb gekregen en wil bezwaar maken. Hoe doe ik "
        "dat en wat is de termijn?",
    ),
    # algemeen
    T(
        "algemeen",
        "vraag",
        "DigiD",
        "Ik krijg de activeringscode van DigiD niet binnen. Kunnen jullie mij helpen met inloggen?",
        desk=True,
    ),
    T(
        "algemeen",
        "verzoek",
        "Hulp bij een brief",
        "Ik heb een brief van de gemeente gekregen, maar ik begrijp de brief niet goed. Kan "
        "iemand mij helpen met het invullen van het formulier?",
        desk=True,
    ),
    T(
        "algemeen",
        "vraag",
        "Openingstijden",
        "Wat zijn de openingstijden van het stadhuis op vrijdag en kan ik zonder afspraak "
        "langskomen?",
        desk=True,
    ),
    T(
        "algemeen",
        "vraag",
        "Status aanvraag",
        "Ik heb {weeks} weken geleden een aanvraag gedaan maar nog niets gehoord. Wat is de "
        "status van mijn aanvraag? Mijn nummer is KCC-{year}-{num}.",
    ),
    # English
    T(
        "burgerzaken",
        "vraag",
        "Registering my new address",
        "Hello, I moved to Groningen last month for work. How do I register my new address with "
        "the municipality? Do I need an appointment?",
        language="en",
    ),
    T(
        "parkeren",
        "verzoek",
        "Residents parking permit",
        "Dear Sir or Madam, I would like to apply for a residents parking permit for my car. "
        "What do I need to send you?",
        language="en",
    ),
    T(
        "afval",
        "melding",
        "Bin not emptied",
        "Hi, our bin was not emptied this week. When is the next collection day in my street?",
        language="en",
    ),
    T(
        "werk-inkomen",
        "vraag",
        "No income",
        "Hello, I lost my job and I have no income at the moment. Can I apply for social "
        "assistance?",
        language="en",
    ),
    # Polish
    T(
        "burgerzaken",
        "vraag",
        "Zameldowanie",
        "Dzień dobry, mieszkam w Groningen od dwóch miesięcy. Jak mogę zgłosić nowy adres? "
        "Potrzebuję zameldowania do pracy.",
        language="pl",
    ),
    T(
        "afval",
        "melding",
        "Pojemnik na śmieci",
        "Dzień dobry, pojemnik na śmieci nie został opróżniony. Kiedy jest wywóz na mojej ulicy?",
        language="pl",
    ),
    T(
        "werk-inkomen",
        "vraag",
        "Zasiłek",
        "Dzień dobry, straciłem pracę i nie mam pieniędzy. Czy mogę dostać zasiłek?",
        language="pl",
    ),
    # Arabic
    T(
        "burgerzaken",
        "vraag",
        "جواز السفر",
        "مرحبا، انتهت صلاحية جواز سفري. كيف يمكنني تجديد جواز السفر في غرونينغن؟",
        language="ar",
    ),
    T(
        "burgerzaken",
        "vraag",
        "تسجيل الولادة",
        "السلام عليكم، وُلد ابني الأسبوع الماضي. كيف أسجل الولادة في البلدية؟",
        language="ar",
    ),
    T(
        "werk-inkomen",
        "verzoek",
        "مساعدة مالية",
        "مرحبا، أحتاج إلى مساعدة مالية لأنه ليس لدي دخل. ماذا يجب أن أفعل؟",
        language="ar",
    ),
    # Turkish
    T(
        "werk-inkomen",
        "vraag",
        "Sosyal yardım",
        "Merhaba, işimi kaybettim ve gelirim yok. Sosyal yardım için nasıl başvurabilirim?",
        language="tr",
    ),
    T(
        "burgerzaken",
        "vraag",
        "Yeni adres",
        "Merhaba, yeni bir eve taşındım. Yeni adresimi belediyeye nasıl bildirebilirim?",
        language="tr",
    ),
    # not a question at all
    T(
        "algemeen",
        "vraag",
        "test",
        "Test test, dit is een test van het contactformulier. Niet beantwoorden.",
        spam=True,
    ),
    T(
        "algemeen",
        "vraag",
        "Aanbieding",
        "Gefeliciteerd! U maakt kans op een gratis cadeaubon. Klik snel op de link in dit bericht "
        "om uw prijs te claimen.",
        spam=True,
    ),
)
del T

# The resident answers an agent's question in a thread that is still open.
RESIDENT_ANSWERS = {
    "nl": (
        "Mijn huisnummer is {nr}. Ik hoop dat u nu verder kunt.",
        "Ik heb de gegevens opgezocht: het gaat om de brief van {date}.",
        "Ja, dat klopt. U kunt mij het beste na vijf uur bellen.",
    ),
    "en": ("Thank you. My house number is {nr}.", "Yes, the letter is dated {date}."),
    "pl": ("Dziękuję. Mój numer domu to {nr}.",),
    "ar": ("شكرا. رقم منزلي هو {nr}.",),
    "tr": ("Teşekkürler. Ev numaram {nr}.",),
}
# A second message in the same WhatsApp chat, Telegram chat or mail thread, open contact or not.
FOLLOW_UPS = (
    "Ik wil nog even toevoegen dat het om {street} {nr} gaat.",
    "Is er al iets bekend over mijn vraag van net?",
    "Sorry, ik vergat te zeggen dat ik overdag niet thuis ben.",
    "Nog een vraag: kan ik dit ook aan de balie regelen?",
)

REPLIES = {
    "burgerzaken": "U maakt online een afspraak via de website van de gemeente. Neem uw oude "
    "document en een recente pasfoto mee naar de afspraak.",
    "parkeren": "U regelt dit via Mijn Groningen op de website. De wijziging gaat in zodra de "
    "betaling binnen is.",
    "afval": "Wij hebben dit doorgegeven aan Stadsbeheer. Binnen drie werkdagen wordt uw "
    "container geleegd of vervangen.",
    "openbare-ruimte": "Dank voor uw melding. De buitendienst gaat ermee aan de slag; u krijgt "
    "bericht als het is opgelost.",
    "zorg": "Een consulent van het WIJ-team neemt binnen vijf werkdagen contact met u op voor "
    "een gesprek.",
    "werk-inkomen": "U kunt dit aanvragen met het formulier op de website. Lukt het invullen "
    "niet, dan helpen wij u graag.",
    "belastingen": "Uw verzoek is doorgestuurd naar de afdeling Belastingen. U krijgt binnen "
    "zes weken een schriftelijke reactie.",
    "vergunningen": "Met de vergunningcheck in het Omgevingsloket ziet u of u een vergunning "
    "nodig heeft. Lukt dat niet, dan belt een vergunningverlener u terug.",
    "klachten": "Wij hebben uw klacht of bezwaar geregistreerd. De behandelaar neemt binnen "
    "vijf werkdagen contact met u op.",
    "algemeen": "Het stadhuis is op werkdagen open van 9.00 tot 17.00 uur. Voor de meeste "
    "zaken maakt u eerst een afspraak.",
}
FOREIGN_REPLIES = {
    "en": "Thank you for your message. We have passed it on to the right team; you will hear "
    "from us within five working days.",
    "pl": "Dziękujemy za wiadomość. Przekazaliśmy ją do właściwego zespołu; odpowiemy w ciągu "
    "pięciu dni roboczych.",
    "tr": "Mesajınız için teşekkür ederiz. Mesajınızı ilgili ekibe ilettik; beş iş günü içinde "
    "size dönüş yapacağız.",
    "ar": "شكرا لرسالتك. لقد أرسلناها إلى الفريق المختص، وسنرد عليك خلال خمسة أيام عمل.",
}

FIRST_NAMES = (
    "Anna",
    "Bram",
    "Daan",
    "Eva",
    "Femke",
    "Gerrit",
    "Hilde",
    "Jan",
    "Lieke",
    "Maarten",
    "Noor",
    "Roelof",
    "Sietske",
    "Tjeerd",
    "Wiebe",
    "Yvonne",
    "Kees",
    "Marieke",
    "Harm",
    "Grietje",
)
# Surnames nobody has: the residents and agents of the demo are made up.
SURNAMES = (
    "Demosma",
    "Proefstra",
    "Testema",
    "Fictiesma",
    "Verzinga",
    "Bedachtsma",
    "Nepkema",
    "Voorbeeldstra",
    "Denkbeeldsma",
    "de Verzonnen",
    "Zomaarhuis",
    "van Fictiedijk",
)
FOREIGN_NAMES = {
    "en": ("Emma Example", "James Sample", "Olivia Placeholder"),
    "pl": ("Katarzyna Przykładowska", "Tomasz Testowski", "Agnieszka Fikcyjna"),
    "ar": ("Fatima Al-Mithali", "Youssef Tajribi", "Amira Wahmi"),
    "tr": ("Ayşe Örnekoğlu", "Mehmet Denemeci", "Elif Hayalioğlu"),
}
STREETS = (
    "Oosterstraat",
    "Herestraat",
    "Korreweg",
    "Paterswoldseweg",
    "Helperzoom",
    "Zonnelaan",
    "Siersteenlaan",
    "Eikenlaan",
    "Hoornsediep",
    "Peizerweg",
    "Damsterdiep",
    "Oranjesingel",
    "Star Numanstraat",
    "Kerklaan",
    "Ebbingestraat",
    "Vinkenstraat",
)
MONTHS = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)
GREETINGS = {
    "nl": ("Geachte heer/mevrouw,", "Met vriendelijke groet,"),
    "en": ("Dear Sir or Madam,", "Kind regards,"),
    "pl": ("Szanowni Państwo,", "Z poważaniem,"),
    "tr": ("Sayın yetkili,", "Saygılarımla,"),
    "ar": ("السادة المحترمون،", "مع التحية،"),
}


# --- the simulated team -----------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    products: dict[str, int]
    languages: dict[str, int]
    kinds: tuple[str, ...]


# A KCC team: specialists in two to four products, a generalist, and the colleagues who speak
# the languages residents write in. The first profiles cover every queue and language, so even
# a small team leaves no contact without anyone who can take it.
PROFILES: tuple[Profile, ...] = (
    Profile(
        {"burgerzaken": 3, "parkeren": 2, "algemeen": 1},
        {"en": 2},
        ("written", "phone", "chat", "counter"),
    ),
    Profile({"algemeen": 3, "klachten": 3}, {}, ("written", "phone", "chat", "counter")),
    Profile(
        {"zorg": 3, "werk-inkomen": 3, "burgerzaken": 1},
        {"ar": 3, "tr": 2},
        ("written", "phone", "chat"),
    ),
    Profile({"afval": 3, "openbare-ruimte": 3, "parkeren": 1}, {}, ("written", "phone", "chat")),
    Profile(
        {"werk-inkomen": 2, "burgerzaken": 2, "afval": 2},
        {"pl": 3, "en": 1},
        ("written", "phone", "chat"),
    ),
    Profile({"belastingen": 3, "vergunningen": 2, "parkeren": 1}, {}, ("written", "phone", "chat")),
    Profile(
        {"vergunningen": 3, "openbare-ruimte": 2, "klachten": 2}, {}, ("written", "phone", "chat")
    ),
    Profile(
        {"burgerzaken": 2, "belastingen": 2, "zorg": 1, "algemeen": 1},
        {},
        ("written", "phone", "counter"),
    ),
    Profile({"afval": 2, "parkeren": 2, "burgerzaken": 1}, {}, ("written", "chat")),
    Profile({"werk-inkomen": 2, "zorg": 2}, {"en": 1}, ("written", "phone")),
)


def roster(count: int, product_skills: Iterable[str]) -> list[tuple[str, dict[str, int]]]:
    """`count` agents (name, skills): everyone Dutch and written, the rest from PROFILES."""
    team: list[tuple[str, dict[str, int]]] = []
    names: set[str] = set()
    for index in range(count):
        profile = PROFILES[index % len(PROFILES)]
        name = (
            f"{FIRST_NAMES[index % len(FIRST_NAMES)]} "
            f"{SURNAMES[(index + index // len(FIRST_NAMES)) % len(SURNAMES)]}"
        )
        while name in names:
            name += " jr."
        names.add(name)
        skills = {"nl": 3, "written": 1}
        skills.update(profile.products)
        skills.update(profile.languages)
        skills.update({kind: 1 for kind in profile.kinds})
        team.append((name, skills))
    # A team smaller than PROFILES still covers every queue, language and channel kind the
    # residents use; otherwise some contacts would wait for ever and the demo looks broken.
    needed = sorted(set(product_skills) | {"en", "pl", "ar", "tr", "phone", "chat", "counter"})
    missing = [s for s in needed if team and not any(s in skills for _, skills in team)]
    for index, skill in enumerate(missing):
        team[index % len(team)][1][skill] = 1
    return team


# --- state ------------------------------------------------------------------------------------


@dataclass
class Sent:
    """What a simulated resident sent, so an agent 'reading' it knows what it is about."""

    template: Template
    channel: str
    sender: dict[str, Any] | str
    thread_key: str | None
    accept: set[str]  # queues where the contact is in the right place
    waited: bool = False
    transfers: int = 0


@dataclass(frozen=True)
class Thread:
    """A conversation a resident started, so they can write in it again."""

    channel: str
    sender: dict[str, Any] | str
    thread_key: str | None
    language: str
    subject: str


@dataclass(frozen=True)
class Posted:
    """What became of a resident's message."""

    reference: str
    outcome: str  # created | follow_up | duplicate
    # The handle a later message in the same conversation needs (a chat id, a mail's id).
    thread: str | None
    # The provider delivers the same message again; returns the reference it then has.
    again: Callable[[], Awaitable[str]]


@dataclass
class DemoStats:
    created: Counter[str] = field(default_factory=Counter)  # new contacts per channel
    follow_ups: int = 0
    duplicates_sent: int = 0
    resent: Counter[str] = field(default_factory=Counter)  # per channel
    duplicates_confirmed: int = 0  # the service answered a resend with the same reference
    duplicate_mismatches: int = 0
    taken: int = 0
    queues_taken: Counter[str] = field(default_factory=Counter)
    replies: int = 0
    replied: Counter[str] = field(default_factory=Counter)  # per contact channel
    closed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    transfers: int = 0
    waits: int = 0
    resident_answers: int = 0
    on_break: int = 0
    in_hand: int = 0
    # An agent received a contact that another simulated agent still held: must stay 0.
    double_assignments: int = 0
    actor_errors: int = 0
    resident_errors: int = 0

    @property
    def received(self) -> int:
        return sum(self.created.values())


@dataclass
class SimAgent:
    id: int
    name: str
    skills: dict[str, int]
    token: str
    session: aiohttp.ClientSession | None = None
    # The contacts being worked on, with their channel kind.
    in_hand: dict[asyncio.Task[None], str] = field(default_factory=dict)
    status: str = "offline"

    @property
    def phone(self) -> str:
        """The desk phone Twilio rings to connect the agent with a caller (fictional)."""
        return f"+31502{self.id:06d}"

    @property
    def hands_full(self) -> bool:
        """A call or a visitor at the desk takes full attention; otherwise two chats or mails
        at a time."""
        kinds = self.in_hand.values()
        return len(kinds) >= HANDS or any(kind in ("phone", "counter") for kind in kinds)


# --- the demo ---------------------------------------------------------------------------------


def prepare_data_dir(data_dir: Path) -> None:
    """Start from nothing: remove the demo's database and attachments, only in `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    database = Path(make_url(sqlite_url(data_dir)).database or "")
    marker = data_dir / MARKER
    if database.exists() and not marker.exists():
        raise DemoError(
            f"{data_dir} holds a database the demo did not create; it is left alone. "
            "Choose another --data-dir (the default is data/demo)."
        )
    for suffix in ("", "-wal", "-shm", "-journal"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    attachments = data_dir / "attachments"
    if attachments.is_symlink():
        attachments.unlink()  # never follow a link out of the demo's directory
    elif attachments.is_dir():
        shutil.rmtree(attachments)
    marker.write_text("made by `kcc demo`; its contents are wiped when the demo starts\n")


def client_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class JobsInFlight:
    """Counts the scheduler's running jobs, so the demo can let a sweep finish before the
    services close: `Services.close` cancels a running sweep, which logs a traceback."""

    def __init__(self, scheduler: BaseScheduler | None) -> None:
        self.scheduler = scheduler
        self.running = 0
        self.idle = asyncio.Event()
        self.idle.set()
        if scheduler is not None:
            scheduler.add_listener(
                self._on_event, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
            )

    def _on_event(self, event: SchedulerEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            self.running += 1
        elif isinstance(event, JobExecutionEvent):
            self.running = max(0, self.running - 1)
        if self.running:
            self.idle.clear()
        else:
            self.idle.set()

    async def settle(self) -> None:
        """Start no more jobs and wait (a few seconds at most) for the running ones."""
        if self.scheduler is None:
            return
        self.scheduler.pause()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), 5.0)


class Demo:
    def __init__(
        self,
        settings: Settings,
        minutes: float,
        port: int,
        agents: int,
        rate: float,
        *,
        speed: float = DEFAULT_SPEED,
        report_every: float = REPORT_SECONDS,
        seed: int | None = None,
        out: TextIO | None = None,
        handle_signals: bool = True,
        channel_mix: Mapping[str, float] | None = None,
        resend_share: float = DUPLICATE_SHARE,
    ) -> None:
        # The demo wipes its data: never point it at a configured database or Redis.
        self.settings = replace(settings, database_url="", redis_url="")
        self.ignored_backends = bool(settings.database_url or settings.redis_url)
        self.minutes = max(0.0, minutes)
        self.port = port
        self.agent_count = max(0, agents)
        self.rate = max(0.0, rate)
        self.speed = max(0.01, speed)
        # Breaks, residents' answers and check-backs speed up less than the work itself, so a
        # fast demo does not turn into agents on a break every few seconds.
        self._pause_factor = max(1.0, self.speed / 2)
        self.report_every = report_every
        self.rng = random.Random(seed)
        self.out = out or sys.stdout
        self.err = out or sys.stderr
        self.handle_signals = handle_signals
        self.resend_share = resend_share
        # How often residents use each channel (weights); unknown channels are left out.
        self.channel_mix = {
            c: w for c, w in (channel_mix or CHANNEL_MIX).items() if c in CHANNEL_MIX and w > 0
        } or dict(CHANNEL_MIX)
        self.stats = DemoStats()
        self.base_url = ""
        self.services: Services | None = None
        self.agents: list[SimAgent] = []
        self._channel_class: dict[str, str] = {}
        self._queues: list[str] = []
        self._lead_token = ""
        self._own_token = ""
        self._password = ""
        self._integration_token = ""
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._in_flight: set[asyncio.Future[Any]] = set()
        self._sessions: list[aiohttp.ClientSession] = []
        self._residents_session: aiohttp.ClientSession | None = None
        self._sent: dict[str, Sent] = {}
        # The channels that go through their real inbound path, against a local stand-in.
        self.routes: dict[str, ChannelRoute] = {}
        # Per routed channel, the provider message ids delivered through its real inbound path.
        self.delivered_ids: defaultdict[str, set[str]] = defaultdict(set)
        self._holders: dict[str, str] = {}
        # Recent conversations on the chat and mail channels, for follow-up messages.
        self._threads: deque[Thread] = deque(maxlen=60)
        self._started = 0.0
        self._message_number = 0

    # --- running ------------------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def complain(self, text: str) -> None:
        print(f"kcc demo: {text}", file=self.err, flush=True)

    async def run(self) -> int:
        try:
            prepare_data_dir(self.settings.data_dir)
        except (DemoError, OSError) as error:
            self.complain(str(error))
            return 2
        verbose = logging.getLogger().isEnabledFor(logging.DEBUG)
        quiet = dict(QUIET_LOGGERS)
        if not verbose:
            # One INFO line per contact or mail, or per request to a stand-in, would scroll the
            # queue table off the screen.
            quiet["adapters"] = logging.WARNING
            quiet["aiohttp.access"] = logging.WARNING
            # "Job skipped: maximum number of running instances" says the machine is busy.
            quiet["apscheduler"] = logging.ERROR
        levels = {name: logging.getLogger(name).level for name in quiet}
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
        try:
            await self._prepare_routes()
            services = await Services.build(self.settings)
            self.services = services
            self._channel_class = {n: r.channel_class for n, r in services.config.channels.items()}
            self._queues = list(services.config.queues)
            return await self._serve(services, verbose)
        finally:
            for route in self.routes.values():
                with contextlib.suppress(Exception):
                    await route.close()
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)

    async def _prepare_routes(self) -> None:
        """Start the providers' stand-ins and give the service fresh credentials for them: the
        environment's real ones (TWILIO_*, TELEGRAM_*...) are never used by the demo."""
        demo_secrets: dict[str, str] = {}
        for route in available_routes():
            self.routes[route.channel] = route
            demo_secrets.update(await route.prepare())
        self.settings = replace(self.settings, secrets=demo_secrets)

    async def _serve(self, services: Services, verbose: bool) -> int:
        # The access log (hundreds of simulated requests) only with --verbose.
        runner = web.AppRunner(
            create_app(services),
            access_log=logging.getLogger("aiohttp.access") if verbose else None,
            access_log_format=ACCESS_LOG,
        )
        try:
            await runner.setup()
        except BaseException:
            await services.close()
            raise
        jobs = JobsInFlight(services.scheduler)
        installed: list[signal.Signals] = []
        try:
            site = web.TCPSite(runner, self.settings.host, self.port)
            try:
                await site.start()
            except OSError as error:
                self.complain(f"cannot listen on {self.settings.host}:{self.port}: {error}")
                return 2
            port = self._bound_port(runner)
            self.base_url = f"http://{client_host(self.settings.host)}:{port}"
            await self._create_people(services)
            for route in self.routes.values():
                await route.connect(self.settings, self.base_url, self._integration_token)
            installed = self._install_signal_handlers()
            self._welcome()
            self._started = time.monotonic()
            await self._start_actors()
            await self._wait_for_stop()
        finally:
            self._remove_signal_handlers(installed)
            await self._shut_down()
            for route in self.routes.values():
                try:
                    await route.drain()
                except Exception as error:
                    log.warning("demo: %s could not finish: %s", route.channel, error)
            await jobs.settle()
            await runner.cleanup()
        self._farewell()
        return 0

    def _bound_port(self, runner: web.AppRunner) -> int:
        # Port 0 lets the system choose (tests); report the port actually bound.
        for address in runner.addresses:
            if isinstance(address, tuple) and len(address) >= 2:
                return int(address[1])
        return self.port

    def _install_signal_handlers(self) -> list[signal.Signals]:
        if not self.handle_signals:
            return []
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                continue
            installed.append(sig)
        return installed

    @staticmethod
    def _remove_signal_handlers(installed: list[signal.Signals]) -> None:
        # Removed as soon as the demo stops, so a second Ctrl-C interrupts a slow shutdown.
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)

    async def _wait_for_stop(self) -> None:
        if self.minutes > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.minutes * 60)
        else:
            await self._stop.wait()

    async def _shut_down(self) -> None:
        tasks = list(self._tasks)
        for agent in self.agents:
            tasks.extend(agent.in_hand)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight), timeout=5.0)
        for session in self._sessions:
            await session.close()
        self._sessions.clear()

    def _spawn(self, coroutine: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _session(self, token: str) -> aiohttp.ClientSession:
        session = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientTimeout(total=30),
        )
        self._sessions.append(session)
        return session

    async def _create_people(self, services: Services) -> None:
        store, config, clock = services.store, services.config, services.clock
        _, self._integration_token = await add_agent(
            store, config, clock, "Demo-koppeling kanalen", "integration"
        )
        lead, self._lead_token = await add_agent(
            store, config, clock, LEAD_NAME, "teamlead", {"nl": 3}
        )
        # For the person trying the API: not simulated, so nothing else acts on its contacts.
        own_skills = {skill: 1 for skill in config.product_skills}
        own_skills.update({"nl": 1, "en": 1, "written": 1, "chat": 1, "phone": 1})
        own, self._own_token = await add_agent(
            store, config, clock, OWN_NAME, "agent", own_skills
        )
        # The same two people sign in to the desk and the dashboard with a password of this run.
        self._password = secrets.token_urlsafe(12)
        desk = desk_store(services)
        for person in (lead, own):
            await desk.set_password_hash(person.id or 0, hash_password(self._password))
        for name, skills in roster(self.agent_count, config.product_skills):
            capacity = {kind: n for kind, n in AGENT_CAPACITY.items() if kind in skills}
            added, token = await add_agent(store, config, clock, name, "agent", skills, capacity)
            self.agents.append(SimAgent(added.id or 0, name, skills, token))

    async def _start_actors(self) -> None:
        self._spawn(self._monitor(), "demo-monitor")
        residents = self._session(self._integration_token)
        self._residents_session = residents
        if self.rate > 0:
            self._spawn(
                self._supervise("residents", lambda: self._residents(residents)), "residents"
            )
        for agent in self.agents:
            agent.session = self._session(agent.token)
            self._spawn(
                self._supervise(agent.name, lambda agent=agent: self._shift(agent)),  # type: ignore[misc]
                f"agent {agent.name}",
            )

    async def _supervise(self, who: str, actor: Callable[[], Awaitable[None]]) -> None:
        """Run an actor; if it fails, report it and start it again: one bad actor must not
        end the demo."""
        while True:
            try:
                await actor()
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.stats.actor_errors += 1
                log.warning(
                    "demo: %s stopped on %s: %s; restarting", who, type(error).__name__, error
                )
                await asyncio.sleep(1.0)

    def _elapsed(self) -> float:
        return time.monotonic() - self._started

    # --- HTTP ---------------------------------------------------------------------------------

    async def _call(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        payload: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200, 201),
    ) -> tuple[int, dict[str, Any]]:
        status, body = await self._shielded(self._request(session, method, path, payload))
        if status not in expect:
            raise DemoError(f"{method} {path} answered {status}: {body.get('error', '')}")
        return status, body

    async def _shielded(self, work: Awaitable[Result]) -> Result:
        # Stopping the demo cancels the actors, not a request half sent (the server would see a
        # broken connection, a provider would retry); `_shut_down` lets these finish.
        request = asyncio.ensure_future(work)
        self._in_flight.add(request)
        request.add_done_callback(self._in_flight.discard)
        request.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(request)

    async def _request(
        self,
        session: aiohttp.ClientSession,
        method: str,
        path: str,
        payload: dict[str, Any] | None,
    ) -> tuple[int, dict[str, Any]]:
        async with session.request(method, self.base_url + path, json=payload) as response:
            body: dict[str, Any] = {}
            if response.status != 204:
                with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
                    parsed = await response.json()
                    if isinstance(parsed, dict):
                        body = parsed
            return response.status, body

    # --- residents ----------------------------------------------------------------------------

    async def _residents(self, session: aiohttp.ClientSession) -> None:
        """Poisson arrivals; the rate follows a slow wave around the average."""
        channels = list(self.channel_mix)
        weights = list(self.channel_mix.values())
        while True:
            wave = 1 + WAVE_DEPTH * math.sin(2 * math.pi * self._elapsed() / WAVE_SECONDS)
            await asyncio.sleep(self.rng.expovariate(self.rate * wave))
            channel = self.rng.choices(channels, weights)[0]
            self._spawn(self._arrival(session, channel), f"resident on {channel}")

    async def _arrival(self, session: aiohttp.ClientSession, channel: str) -> None:
        try:
            threads = [t for t in self._threads if t.channel == channel]
            if threads and self.rng.random() < FOLLOW_UP_SHARE:
                await self._follow_up(session, self.rng.choice(threads))
                return
            template = self._pick_template(channel)
            request = self._compose(channel, template)
            posted = await self._send(session, request)
            if posted.outcome == "follow_up":
                self.stats.follow_ups += 1
                return
            if posted.outcome == "duplicate":
                return
            self.stats.created[channel] += 1
            self._sent[posted.reference] = Sent(
                template,
                channel,
                request.sender,
                posted.thread,
                {template.queue, *template.also},
            )
            if channel in FOLLOW_UP_CHANNELS:
                self._threads.append(
                    Thread(
                        channel, request.sender, posted.thread, template.language, request.subject
                    )
                )
            if self.rng.random() < self.resend_share:
                # The provider delivers the same message again: the service must recognise it.
                await asyncio.sleep(self.rng.uniform(0.2, 2.0))
                again = await posted.again()
                # Counted once the provider had its answer (not when the demo stopped it).
                self.stats.duplicates_sent += 1
                self.stats.resent[channel] += 1
                if again == posted.reference:
                    self.stats.duplicates_confirmed += 1
                else:
                    self.stats.duplicate_mismatches += 1
                    log.warning(
                        "demo: a resent message made %s besides %s", again, posted.reference
                    )
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stats.resident_errors += 1
            log.warning(
                "demo: a resident on %s failed: %s: %s", channel, type(error).__name__, error
            )

    async def _follow_up(self, session: aiohttp.ClientSession, thread: Thread) -> None:
        """A second message in a conversation the resident started a little earlier."""
        language = thread.language
        text = (
            self._fill(self.rng.choice(FOLLOW_UPS))
            if language == "nl"
            else self._fill(self.rng.choice(RESIDENT_ANSWERS[language]))
        )
        subject = f"Re: {thread.subject}" if thread.subject else ""
        request = Request(
            thread.channel,
            self._message_id(thread.channel),
            thread.sender,
            subject,
            text,
            thread_key=thread.thread_key,
        )
        posted = await self._send(session, request)
        if posted.outcome == "follow_up":
            self.stats.follow_ups += 1
        elif posted.outcome == "created":
            # The earlier contact was closed: a new one in the same conversation.
            self.stats.created[thread.channel] += 1
            template = Template("algemeen", "vraag", subject, text, language=language)
            self._sent[posted.reference] = Sent(
                template, thread.channel, thread.sender, posted.thread, set(self._queues)
            )

    def _pick_template(self, channel: str) -> Template:
        if self.rng.random() < SPAM_SHARE and channel in ("email", "webform"):
            return self.rng.choice([t for t in TEMPLATES if t.spam])
        pool = [t for t in TEMPLATES if not t.spam]
        if channel == "counter":
            pool = [t for t in pool if t.desk]
        elif channel in ("phone", "post") or self.rng.random() >= FOREIGN_SHARE:
            pool = [t for t in pool if t.language == "nl"]
        else:
            pool = [t for t in pool if t.language != "nl"]
        return self.rng.choice(pool)

    def _fill(self, text: str) -> str:
        day = self.rng.randint(1, 28)
        month = self.rng.randint(1, 12)
        letters = "BDFGHJKLNPRSTXZ"
        values = {
            "street": self.rng.choice(STREETS),
            "nr": str(self.rng.randint(1, 180)),
            "date": f"{day} {MONTHS[month - 1]}",
            "month": self.rng.choice(MONTHS),
            "weeks": str(self.rng.randint(2, 8)),
            "age": str(self.rng.randint(8, 94)),
            "time": f"{self.rng.randint(9, 16)}.{self.rng.choice(['00', '15', '30', '45'])} uur",
            "plate": f"{self.rng.choice(letters)}{self.rng.choice(letters)}-"
            f"{self.rng.randint(100, 999)}-{self.rng.choice(letters)}",
            "year": "2026",
            "num": f"{self.rng.randint(1, 999999):06d}",
        }
        return text.format_map(values)

    def _person(self, language: str) -> tuple[str, str, str]:
        """A fictional name, mobile number in the +3161234xxxx range and example.nl address."""
        if language == "nl":
            name = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(SURNAMES)}"
        else:
            name = self.rng.choice(FOREIGN_NAMES[language])
        phone = f"+3161234{self.rng.randint(0, 9999):04d}"
        local = "".join(c for c in name.lower().replace(" ", ".") if c.isascii() and c != "'")
        email = f"{local.strip('.') or 'inwoner'}{self.rng.randint(1, 99)}@example.nl"
        return name, phone, email

    def _message_id(self, channel: str) -> str:
        self._message_number += 1
        token = uuid.uuid4().hex
        return {
            "whatsapp": f"wamid.DEMO{token}",
            "telegram": f"tg-demo-{self._message_number}-{token[:8]}",
            "email": f"<{token}@mail.example.nl>",
            "phone": f"call-demo-{token}",
            "counter": f"balie-demo-{token}",
            "post": f"post-demo-{self._message_number:06d}",
            "webform": token,
        }[channel]

    def _compose(self, channel: str, template: Template) -> Request:
        name, phone, email = self._person(template.language)
        text = self._fill(template.text)
        subject = self._fill(template.subject)
        message_id = self._message_id(channel)
        if channel == "webform":
            form: dict[str, Any] = {
                "name": name,
                "email": email,
                "subject": subject,
                "message": text,
                "submission_id": message_id,
            }
            if self.rng.random() < 0.3:
                form["phone"] = phone
            return Request(channel, message_id, form, subject, text)
        if channel == "email":
            hello, bye = GREETINGS[template.language]
            body = f"{hello}\n\n{text}\n\n{bye}\n{name}"
            # Our own thread id, so an answer to a question the agent asks joins this contact.
            return Request(
                channel,
                message_id,
                {"name": name, "email": email},
                subject,
                body,
                thread_key=f"mail:{message_id}",
            )
        if channel == "post":
            address = (
                f"{self.rng.choice(STREETS)} {self.rng.randint(1, 180)}, "
                f"97{self.rng.randint(11, 47)} {self.rng.choice('ABCDEGHJKLMNPRST')}"
                f"{self.rng.choice('ABCDEGHJKLMNPRST')} Groningen"
            )
            body = (
                f"Aan het college van burgemeester en wethouders,\n\n{text}\n\nHoogachtend,\n{name}"
            )
            return Request(
                channel, message_id, {"name": name, "postal_address": address}, subject, body
            )
        if channel == "telegram":
            chat_id = str(self.rng.randint(700_000_000, 799_999_999))
            return Request(channel, message_id, {"name": name, "telegram_id": chat_id}, "", text)
        if channel == "counter":
            sender: dict[str, Any] = {"name": name, "phone": phone}
            if self.rng.random() < 0.15:
                sender["support_needs"] = [self.rng.choice(["low_digital_skills", "low_literacy"])]
            return Request(channel, message_id, sender, "", f"Bezoeker aan de balie: {text}")
        if channel == "phone":
            return Request(channel, message_id, phone, "", text, topic=template.queue)
        # WhatsApp: Twilio passes the resident's profile name along with the number.
        return Request(channel, message_id, {"name": name, "phone": phone}, "", text)

    async def _send(self, session: aiohttp.ClientSession, request: Request) -> Posted:
        """Send a resident's message on its channel's real inbound path where the demo has one,
        else through the ingest API."""
        route = self.routes.get(request.channel)
        if route is None:
            reference, outcome = await self._post(session, request)

            async def post_again() -> str:
                return (await self._post(session, request))[0]

            return Posted(reference, outcome, request.thread_key, post_again)
        outgoing, thread = route.compose(
            self._resident_of(request),
            request.subject,
            request.text,
            request.thread_key,
            topic=request.topic,
        )
        # Noted before: a delivery under way when the demo stops still completes (shielded).
        self.delivered_ids[request.channel].add(outgoing.message_id)
        await self._shielded(outgoing.deliver())
        reference, outcome = await self._find(request.channel, outgoing.message_id)

        async def deliver_again() -> str:
            await self._shielded(outgoing.deliver())
            return (await self._find(request.channel, outgoing.message_id))[0]

        return Posted(reference, outcome, thread, deliver_again)

    async def _find(self, channel: str, message_id: str) -> tuple[str, str]:
        # The provider got a plain success answer, no reference: look the message up.
        assert self.services is not None
        found = await find_contact(self.services, channel, message_id)
        if found is None:
            raise RouteError(f"the {channel} message was answered but not stored")
        return found

    @staticmethod
    def _resident_of(request: Request) -> Resident:
        sender = request.sender
        if isinstance(sender, str):
            return Resident(name="", phone=sender)
        return Resident(
            name=str(sender.get("name", "")),
            phone=str(sender.get("phone", "")),
            email=str(sender.get("email", "")),
            telegram_id=str(sender.get("telegram_id", "")),
            postal_address=str(sender.get("postal_address", "")),
        )

    async def _post(self, session: aiohttp.ClientSession, request: Request) -> tuple[str, str]:
        """Send a resident's message to the web form or the ingest API; returns the contact's
        reference and the intake outcome."""
        if request.channel == "webform":
            assert isinstance(request.sender, dict)
            status, body = await self._call(
                session, "POST", "/channels/webform", request.sender, expect=(200, 201)
            )
            return str(body["reference"]), "created" if status == 201 else "duplicate"
        payload: dict[str, Any] = {
            "channel": request.channel,
            "channel_message_id": request.message_id,
            "from": request.sender,
            "subject": request.subject,
            "text": request.text,
        }
        if request.thread_key:
            payload["thread_key"] = request.thread_key
        _, body = await self._call(session, "POST", "/api/contacts", payload, expect=(200, 201))
        return str(body["reference"]), str(body["outcome"])

    async def _resident_answers(self, reference: str, sent: Sent) -> None:
        """The resident answers the agent's question, on the channel and thread they used."""
        await asyncio.sleep(self.rng.uniform(1.5, 6.0) / self._pause_factor)
        if self.rng.random() >= RESIDENT_ANSWERS_SHARE:
            return  # no answer: the agent closes with "geen-reactie" later
        language = sent.template.language
        text = self._fill(self.rng.choice(RESIDENT_ANSWERS.get(language, RESIDENT_ANSWERS["nl"])))
        subject = f"Re: {sent.template.subject}" if sent.channel == "email" else ""
        request = Request(
            sent.channel,
            self._message_id(sent.channel),
            sent.sender,
            subject,
            text,
            thread_key=sent.thread_key,
        )
        try:
            assert self._residents_session is not None
            posted = await self._send(self._residents_session, request)
            if posted.outcome == "follow_up":
                self.stats.resident_answers += 1
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stats.resident_errors += 1
            log.warning("demo: a resident's answer to %s failed: %s", reference, error)

    # --- agents -------------------------------------------------------------------------------

    async def _shift(self, agent: SimAgent) -> None:
        assert agent.session is not None
        session = agent.session
        await asyncio.sleep(self.rng.uniform(0.0, 1.0))  # people do not all sign in at once
        next_break = time.monotonic() + self._until_break()
        while True:
            if time.monotonic() >= next_break:
                await self._take_break(agent)
                next_break = time.monotonic() + self._until_break()
            if agent.hands_full:
                # Busy: the router offers nothing more until a hand is free.
                await self._set_status(agent, "busy")
                if agent.in_hand:  # the work may have finished during that request
                    await asyncio.wait(list(agent.in_hand), return_when=asyncio.FIRST_COMPLETED)
                continue
            await self._set_status(agent, "available")
            status, contact = await self._call(
                session, "POST", "/api/agents/me/next", expect=(200, 204)
            )
            if status == 204:
                await asyncio.sleep(self.rng.uniform(0.3, 0.8))
                continue
            self._took(agent, contact)
            task = asyncio.ensure_future(self._handle(agent, contact))
            task.set_name(f"{agent.name} on {contact.get('reference')}")
            agent.in_hand[task] = self._channel_class.get(str(contact.get("channel")), "written")
            task.add_done_callback(lambda done: agent.in_hand.pop(done, None))

    async def _set_status(self, agent: SimAgent, status: str) -> None:
        if agent.status != status:
            assert agent.session is not None
            await self._call(agent.session, "POST", "/api/agents/me/status", {"status": status})
            agent.status = status

    def _until_break(self) -> float:
        return self.rng.uniform(40, 120) / self._pause_factor

    async def _take_break(self, agent: SimAgent) -> None:
        """Away (offers not yet taken go back to the queue), finish what is in hand, pause."""
        await self._set_status(agent, "away")
        self.stats.on_break += 1
        try:
            if agent.in_hand:
                await asyncio.wait(list(agent.in_hand))
            await asyncio.sleep(self.rng.uniform(5, 15) / self._pause_factor)
        finally:
            self.stats.on_break -= 1

    def _took(self, agent: SimAgent, contact: dict[str, Any]) -> None:
        reference = str(contact["reference"])
        holder = self._holders.get(reference)
        if holder is not None and holder != agent.name:
            self.stats.double_assignments += 1
            log.error(
                "demo: %s was given to %s while %s still has it", reference, agent.name, holder
            )
        self._holders[reference] = agent.name
        self.stats.taken += 1
        self.stats.queues_taken[str(contact.get("queue"))] += 1

    def _let_go(self, agent: SimAgent, reference: str) -> None:
        if self._holders.get(reference) == agent.name:
            del self._holders[reference]

    async def _handle(self, agent: SimAgent, contact: dict[str, Any]) -> None:
        assert agent.session is not None
        session = agent.session
        reference = str(contact["reference"])
        path = f"/api/contacts/{reference}"
        self.stats.in_hand += 1
        try:
            channel_class = self._channel_class.get(str(contact["channel"]), "written")
            low, high = HANDLE_SECONDS.get(channel_class, HANDLE_SECONDS["written"])
            duration = self.rng.uniform(low, high) / self.speed
            sent = self._sent.get(reference)
            queue = str(contact.get("queue"))
            target = self._transfer_target(sent, queue, str(contact.get("language")))
            if target is not None:
                await asyncio.sleep(duration * 0.3)  # reading it takes a moment
                note = (
                    "hoort bij een andere afdeling"
                    if sent and queue not in sent.accept
                    else "tweede lijn nodig"
                )
                # Let go before the call: the moment it returns, a colleague may have it.
                self._let_go(agent, reference)
                await self._call(
                    session, "POST", f"{path}/transfer", {"queue": target, "note": note}
                )
                if sent is not None:
                    sent.transfers += 1
                    sent.accept.add(target)
                self.stats.transfers += 1
                return
            if (
                sent is not None
                and not sent.waited
                and sent.channel in ("whatsapp", "telegram", "email")
                and self.rng.random() < WAIT_SHARE
            ):
                await asyncio.sleep(duration * 0.4)
                self._let_go(agent, reference)
                await self._call(
                    session, "POST", f"{path}/wait", {"reason": "gegevens nodig van de inwoner"}
                )
                sent.waited = True
                self.stats.waits += 1
                self._spawn(self._resident_answers(reference, sent), f"answer to {reference}")
                self._spawn(self._check_back(agent, reference), f"check back on {reference}")
                return
            phone = self.routes.get("phone")
            if contact.get("channel") == "counter":
                # The visitor is answered at the desk: nothing to send.
                await asyncio.sleep(duration)
            elif contact.get("channel") == "phone" and isinstance(phone, PhoneRoute):
                # A call is answered by talking: Twilio rings the agent and bridges the caller.
                await self._call(session, "POST", f"{path}/call", {"phone": agent.phone})
                await self._shielded(phone.bridged(reference))
                await asyncio.sleep(duration)
                await self._shielded(phone.hang_up(reference, duration * self.speed))
            else:
                await asyncio.sleep(duration)
                language = str(contact.get("language") or "nl")
                text = FOREIGN_REPLIES.get(language) or REPLIES.get(queue, REPLIES["algemeen"])
                await self._call(session, "POST", f"{path}/reply", {"text": text})
                self.stats.replies += 1
                self.stats.replied[str(contact.get("channel"))] += 1
            outcome = self._outcome(sent, queue, channel_class)
            self._let_go(agent, reference)
            await self._call(session, "POST", f"{path}/close", {"outcome": outcome})
            self.stats.closed += 1
            self.stats.outcomes[outcome] += 1
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stats.actor_errors += 1
            log.warning("demo: %s could not finish %s: %s", agent.name, reference, error)
        finally:
            self.stats.in_hand -= 1
            self._let_go(agent, reference)

    def _transfer_target(self, sent: Sent | None, queue: str, language: str) -> str | None:
        if sent is None or sent.template.spam or sent.transfers >= 2:
            return None
        if queue not in sent.accept:
            # The router guessed wrong; most agents fix it, some just answer it themselves.
            return sent.template.queue if self.rng.random() < 0.8 else None
        if sent.transfers == 0 and language == "nl" and self.rng.random() < TRANSFER_SHARE:
            return RELATED_QUEUE.get(queue)
        return None

    def _outcome(self, sent: Sent | None, queue: str, channel_class: str) -> str:
        if sent is not None and sent.template.spam:
            return "spam"
        roll = self.rng.random()
        kind = sent.template.kind if sent else "vraag"
        if kind in ("melding", "klacht", "bezwaar"):
            return "zaak-aangemaakt" if roll < 0.8 else "beantwoord"
        if kind == "verzoek" and roll < 0.5:
            return "zaak-aangemaakt"
        if queue in ("zorg", "werk-inkomen") and roll < 0.3:
            return "doorverwezen"
        if channel_class == "phone" and roll < 0.1:
            return "terugbelverzoek"
        if roll > 0.98:
            return "dubbel"
        return "beantwoord"

    async def _check_back(self, agent: SimAgent, reference: str) -> None:
        await asyncio.sleep(CHECK_BACK_SECONDS / self._pause_factor)
        assert agent.session is not None
        try:
            # 404: the resident answered and the contact went on to a colleague (not ours now).
            status, contact = await self._call(
                agent.session, "GET", f"/api/contacts/{reference}", expect=(200, 404)
            )
            if (
                status == 200
                and contact.get("status") == "waiting_on_resident"
                and contact.get("assigned_agent_id") == agent.id
            ):
                await self._call(
                    agent.session,
                    "POST",
                    f"/api/contacts/{reference}/close",
                    {"outcome": "geen-reactie"},
                )
                self.stats.closed += 1
                self.stats.outcomes["geen-reactie"] += 1
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self.stats.actor_errors += 1
            log.warning("demo: %s could not check back on %s: %s", agent.name, reference, error)

    # --- the screen ---------------------------------------------------------------------------

    def _welcome(self) -> None:
        url = self.base_url
        until = f"for {self.minutes:g} min" if self.minutes else "until Ctrl-C"
        self.say("KCC demo: the service with simulated residents and agents")
        self.say(
            f"  data (wiped at every start): {self.settings.data_dir} (SQLite, in-process queues)"
        )
        if self.ignored_backends:
            self.say("  note: the configured database/Redis URL is ignored; the demo uses its own")
        self.say(f"  web form:  {url}/channels/webform")
        self.say(f"  desk:      {url}/desk  (sign in as {OWN_NAME!r})")
        self.say(f"  dashboard: {url}/dashboard  (sign in as {LEAD_NAME!r})")
        self.say(f"  password for both (this run only, not logged): {self._password}")
        self.say(f"  metrics:   {url}/metrics")
        self.say(f"  API:       {url}/api/openapi.json")
        self.say("  tokens for this run (shown here only, not logged):")
        self.say(f"    export KCC_LEAD={self._lead_token}    # team lead")
        self.say(f"    export KCC_AGENT={self._own_token}    # an agent nobody simulates: you")
        self.say("  try:")
        self.say(f'    curl -s -H "Authorization: Bearer $KCC_LEAD" {url}/api/queues')
        self.say(
            f'    curl -s -H "Authorization: Bearer $KCC_AGENT" -H "Content-Type: '
            f'application/json" -d \'{{"status": "available"}}\' '
            f"{url}/api/agents/me/status"
        )
        self.say(
            f'    curl -s -X POST -H "Authorization: Bearer $KCC_AGENT" {url}/api/agents/me/next'
        )
        self.say("  how residents' messages come in (and replies go out):")
        answered = (
            "answered by e-mail (below)" if "email" in self.routes else "answers wait in the outbox"
        )
        self.say(f"    webform   the form above, posted as a browser does; {answered}")
        for name, route in self.routes.items():
            self.say(f"    {name:<9} {route.how(url)}")
        others = [c for c in self.channel_mix if c != "webform" and c not in self.routes]
        if others:
            self.say(
                f"    {', '.join(others)}: POST {url}/api/contacts with an integration token "
                "(no adapter in this build)"
            )
        self.say(
            "    provider credentials are made up for this run; none from the environment is used"
        )
        self.say(
            f"  {len(self.agents)} simulated agents, about {self.rate:g} new contacts per "
            f"second, handling {self.speed:g}x faster than real, {until}"
        )
        self.say()

    async def _monitor(self) -> None:
        session = self._session(self._lead_token)
        while True:
            await asyncio.sleep(self.report_every)
            try:
                _, body = await self._call(session, "GET", "/api/queues")
                statuses = await self._status_counts()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("demo: could not read the queues: %s", error)
                continue
            self.say(self._table(body.get("queues", []), statuses))

    async def _status_counts(self) -> Counter[str]:
        """Contacts per status, from the database: the totals include what you do by hand."""
        assert self.services is not None
        async with self.services.store.readers() as session:
            rows = await session.execute(
                select(Contact.status, sa.func.count()).group_by(col(Contact.status))
            )
            return Counter({str(status): int(count) for status, count in rows})

    def _table(self, queues: list[dict[str, Any]], statuses: Counter[str]) -> str:
        elapsed = int(self._elapsed())
        s = self.stats
        lines = [
            f"--- {time.strftime('%H:%M:%S')}  demo {elapsed // 60}:{elapsed % 60:02d} " + "-" * 44,
            f"{'queue':<16}{'waiting':>8}{'oldest':>9}{'available':>11}",
        ]
        for queue in queues:
            lines.append(
                f"{queue['queue']:<16}{queue['waiting']:>8}"
                f"{queue['oldest_wait_seconds']:>8.0f}s{queue['agents_available']:>11}"
            )
        waiting = sum(int(q["waiting"]) for q in queues)
        with_agents = statuses["assigned"] + statuses["answered"]
        errors = s.actor_errors + s.resident_errors
        lines.append(
            f"{'total':<16}{waiting:>8}   received {statuses.total()} · with agents "
            f"{with_agents} · waiting on resident {statuses['waiting_on_resident']} · "
            f"closed {statuses['closed']}"
        )
        lines.append(
            f"{'':<27}{s.follow_ups} follow-ups · {s.duplicates_sent} resent · "
            f"{s.transfers} transferred · {s.on_break}/{len(self.agents)} agents on a break"
            + (f" · {errors} errors (see the log)" if errors else "")
        )
        if self.routes:
            lines.append(f"{'':<27}delivered out: {self._delivered()}")
        return "\n".join(lines)

    def _delivered(self) -> str:
        """What reached each provider's stand-in: agents' replies, and the acknowledgements the
        SLA timers send on the written channels."""
        return ", ".join(
            f"{route.label or name} {route.replies_delivered()}"
            for name, route in self.routes.items()
        )

    def _farewell(self) -> None:
        s = self.stats
        channels = ", ".join(f"{c} {n}" for c, n in s.created.most_common())
        outcomes = ", ".join(f"{o} {n}" for o, n in s.outcomes.most_common())
        self.say()
        self.say(f"KCC demo stopped after {self._elapsed():.0f} s.")
        self.say(
            f"  received {s.received} contacts ({channels or 'none'}), {s.follow_ups} "
            f"follow-ups, {s.duplicates_confirmed}/{s.duplicates_sent} resent messages "
            "recognised"
        )
        self.say(
            f"  closed {s.closed} ({outcomes or 'none'}), transferred {s.transfers}, "
            f"waited on residents {s.waits} ({s.resident_answers} answered)"
        )
        if self.routes:
            self.say(
                f"  delivered through the channels (replies, acknowledgements): {self._delivered()}"
            )
        if s.double_assignments or s.actor_errors or s.resident_errors:
            self.say(
                f"  problems: {s.double_assignments} double assignments, "
                f"{s.actor_errors} agent errors, {s.resident_errors} resident errors "
                "(see the log)"
            )
        self.say(f"  the data stays in {self.settings.data_dir} until the next demo")


@dataclass(frozen=True)
class Request:
    channel: str
    message_id: str
    sender: dict[str, Any] | str  # for the web form: the whole form
    subject: str
    text: str
    thread_key: str | None = None
    topic: str = ""  # the queue it is about: a caller's choice in the phone menu


async def run_demo(
    settings: Settings,
    minutes: float,
    port: int,
    agents: int,
    rate: float,
    *,
    speed: float = DEFAULT_SPEED,
) -> int:
    """`kcc demo`: run the service with simulated residents and agents; returns the exit code."""
    return await Demo(settings, minutes, port, agents, rate, speed=speed).run()
