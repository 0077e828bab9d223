"""The desk and the dashboard in a real browser (Debian's Chromium through Playwright) against
the real service: an agent signs in, takes the next contact, sees the resident's history,
uses the kennisbank, replies and closes, while a team lead in a second browser sees the numbers
change live; resident HTML stays inert text; axe-core finds no serious accessibility problem."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import (
    AXE,
    CHROMIUM,
    CHROMIUM_ARGS,
    LiveService,
    axe_violations,
    require,
    save_screenshot,
)

PASSWORD = "Groningen-KCC-2026!"
SCRIPT_TEXT = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveService]:
    live = LiveService(tmp_path_factory.mktemp("desk-browser"))
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require(CHROMIUM, "Chromium")
    from playwright.sync_api import expect, sync_playwright

    # A shared 2-core CI machine: allow for slow moments (a passing page is not slowed down).
    expect.set_options(timeout=10_000)

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def sign_in(browser: Any, service: LiveService, name: str) -> Any:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="nl-NL")
    page = context.new_page()
    page.goto(service.url + "/signin")
    page.get_by_label("Naam").fill(name)
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_role("button", name="Aanmelden").click()
    return page


def test_agent_takes_next_replies_and_closes_while_the_lead_watches_live(
    service: LiveService, browser: Any
) -> None:
    from playwright.sync_api import expect

    service.person("Anna de Vries", "agent", "burgerzaken:3,nl,written,chat,phone", PASSWORD)
    service.person("Lea Bakker", "teamlead", None, PASSWORD)
    website = service.person("Website", "integration", None, PASSWORD)

    # Earlier contact of the same resident on another channel: the history to tell once.
    status, earlier = service.api(
        "POST",
        "/api/contacts",
        website,
        {
            "channel": "email",
            "channel_message_id": "mail-1",
            "from": {"name": "Jan Jansen", "email": "jan@example.nl", "phone": "+31612345678"},
            "subject": "Verhuizing doorgeven",
            "text": "Ik ben verhuisd naar de Vismarkt. Hoe geef ik dat door?",
        },
    )
    assert status == 201
    # The contact of today, on WhatsApp, with HTML and script in it.
    status, today = service.api(
        "POST",
        "/api/contacts",
        website,
        {
            "channel": "whatsapp",
            "channel_message_id": "wa-1",
            "from": {
                "name": "Jan Jansen",
                "phone": "+31612345678",
                "support_needs": ["interpreter", "prefers_phone"],
            },
            "text": f"Mijn paspoort is verlopen, hoe vraag ik een nieuw aan? {SCRIPT_TEXT}",
        },
    )
    assert status == 201

    lead = sign_in(browser, service, "Lea Bakker")
    expect(lead).to_have_url(re.compile(r"/dashboard$"))
    expect(lead.locator("#live-state")).to_have_text("live", timeout=10_000)
    expect(lead.locator("#t-waiting")).to_have_text("2", timeout=10_000)
    expect(lead.locator("#t-arrivals")).to_have_text("2")

    agent = sign_in(browser, service, "Anna de Vries")
    expect(agent).to_have_url(re.compile(r"/desk$"))
    expect(agent.locator("#list-empty")).to_be_visible()
    # The queues Anna serves, with what waits in them; not the queues she has no skill for.
    expect(agent.locator("#my-queues")).to_contain_text("burgerzaken")
    expect(agent.locator("#my-queues")).not_to_contain_text("parkeren")

    # Becoming available: the router offers contacts and they appear without a reload.
    agent.get_by_label("Mijn status").select_option("available")
    offered = agent.locator("#worklist .item")
    expect(offered).to_have_count(2, timeout=10_000)
    expect(offered.first).to_contain_text(today["reference"])  # phone/chat before written
    expect(offered.first).to_contain_text("Nieuw aanbod")
    # ...and the team lead's waiting count drops live.
    expect(lead.locator("#t-waiting")).to_have_text("0", timeout=5_000)
    expect(lead.locator("#agents")).to_contain_text("Anna de Vries")
    expect(lead.locator("#agents")).to_contain_text(today["reference"])

    # "Next" from the keyboard takes the router's choice.
    agent.keyboard.press("Alt+n")
    title = agent.locator("#contact-title")
    expect(title).to_contain_text(today["reference"])
    expect(title).to_be_focused()
    # The whole history across channels, and the support needs.
    expect(agent.locator("#history")).to_contain_text(earlier["reference"])
    expect(agent.locator("#history")).to_contain_text("E-mail")
    expect(agent.locator("#support-needs")).to_contain_text("Tolk nodig")
    expect(agent.locator("#support-needs")).to_contain_text("Liever telefonisch")
    expect(agent.locator("#window")).to_contain_text("WhatsApp-venster open")

    # Resident HTML is shown as text and never runs.
    message = agent.locator("#messages .body").first
    expect(message).to_contain_text(SCRIPT_TEXT)
    assert agent.locator("#messages script, #messages img").count() == 0
    assert agent.evaluate("window.__pwned") is None

    # Kennisbank: the suggestions for this contact; insert one (the WhatsApp variant) and edit it.
    suggestion = agent.locator("#kb-results li").first
    expect(suggestion).to_be_visible()
    title = suggestion.locator(".kb-title").inner_text()
    suggestion.get_by_role("button", name=f"Invoegen: {title}").click()
    expect(agent.locator("#reply")).not_to_have_value("")
    expect(agent.locator("#reply")).to_be_focused()
    agent.locator("#reply").press("End")
    agent.locator("#reply").type("\nMet vriendelijke groet, Anna")
    save_screenshot(agent, "desk.png")
    assert axe_findings(agent) == []

    agent.get_by_role("button", name="Versturen").click()
    expect(agent.locator("#reply-message")).to_contain_text("Antwoord verstuurd")
    expect(agent.locator("#messages li.outbound")).to_have_count(1)
    # The reply records the kennisbank article version it used.
    expect(agent.locator("#messages li.outbound")).to_contain_text("kennisbank: ")
    expect(agent.locator("#messages li.outbound")).to_contain_text("Met vriendelijke groet, Anna")

    agent.get_by_label("Uitkomst").select_option("beantwoord")
    agent.get_by_role("button", name="Afsluiten").click()
    expect(agent.locator("#list-message")).to_contain_text("is afgesloten")
    expect(agent.locator("#worklist .item")).to_have_count(1)
    expect(agent.locator("#contact")).to_be_hidden()

    # The lead sees the handled count go up without reloading.
    expect(lead.locator("#t-handled")).to_have_text("1", timeout=5_000)
    expect(lead.locator("#queues")).to_contain_text("burgerzaken")
    save_screenshot(lead, "dashboard.png")
    assert axe_findings(lead) == []

    # The lead reassigns the e-mail still offered to Anna; it leaves her desk by itself.
    lead.get_by_label("Referentie").fill(earlier["reference"])
    lead.get_by_label("Naar wachtrij").select_option("algemeen")
    lead.get_by_role("button", name="Herverdelen").click()
    expect(lead.locator("#reassign-message")).to_contain_text("algemeen")
    expect(lead.locator("#t-waiting")).to_have_text("1", timeout=5_000)
    expect(agent.locator("#worklist .item")).to_have_count(0, timeout=10_000)

    # Every view of the resident was recorded, through the desk's session.
    lead_token = service.person("Audit Lead", "teamlead", None, PASSWORD)
    status, audit = service.api("GET", f"/api/audit?reference={today['reference']}", lead_token)
    assert status == 200
    assert {(e["view"], e["via"]) for e in audit["entries"]} >= {("next", "session")}


def test_sign_in_page_is_accessible_and_refuses_a_wrong_password(
    service: LiveService, browser: Any
) -> None:
    from playwright.sync_api import expect

    service.person("Piet Smit", "agent", None, PASSWORD)
    context = browser.new_context()
    page = context.new_page()
    page.goto(service.url + "/desk")
    expect(page).to_have_url(re.compile(r"/signin\?next=/desk$"))
    assert axe_findings(page) == []
    # Keyboard only.
    page.get_by_label("Naam").focus()
    page.keyboard.type("Piet Smit")
    page.keyboard.press("Tab")
    page.keyboard.type("not the password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Naam of wachtwoord is onjuist.")
    page.get_by_label("Wachtwoord").fill(PASSWORD)
    page.get_by_label("Wachtwoord").press("Enter")
    expect(page).to_have_url(re.compile(r"/desk$"))
    page.get_by_role("button", name="Afmelden").click()
    expect(page).to_have_url(re.compile(r"/signin$"))
    page.goto(service.url + "/desk")
    expect(page).to_have_url(re.compile(r"/signin\?next=/desk$"))
    context.close()


def axe_findings(page: Any) -> list[dict[str, Any]]:
    require(AXE, "axe-core")
    return axe_violations(page)


def test_screenshots_are_linked_from_the_notes() -> None:
    """The README (or the desk's page under docs/) shows both pages."""
    repo = Path(__file__).resolve().parent.parent
    texts = [p.read_text(encoding="utf-8") for p in [repo / "README.md", *repo.glob("docs/*.md")]]
    for name in ("desk.png", "dashboard.png"):
        assert any(f"screenshots/{name}" in text for text in texts), name
        assert (repo / "docs" / "screenshots" / name).stat().st_size > 10_000


def test_agent_asks_the_resident_makes_a_callback_and_refers_to_a_partner(
    service: LiveService, browser: Any
) -> None:
    from playwright.sync_api import expect

    service.person("Bram Mulder", "agent", "parkeren:2,nl,written,chat,phone", PASSWORD)
    website = service.person("Website 2", "integration", None, PASSWORD)
    references = []
    for n, text in enumerate(
        [
            "Ik wil een parkeervergunning voor bewoners aanvragen voor mijn auto.",
            "Hoeveel kost een bezoekersvergunning parkeren per jaar?",
        ]
    ):
        status, contact = service.api(
            "POST",
            "/api/contacts",
            website,
            {
                "channel": "email",
                "channel_message_id": f"bram-{n}",
                "from": {
                    "name": "Fatima El Amrani",
                    "email": f"fatima{n}@example.nl",
                    "phone": f"+3161111000{n}",
                },
                "subject": "Parkeervergunning",
                "text": text,
            },
        )
        assert status == 201 and contact["queue"] == "parkeren"
        references.append(contact["reference"])

    page = sign_in(browser, service, "Bram Mulder")
    page.get_by_label("Mijn status").select_option("available")
    expect(page.locator("#worklist .item")).to_have_count(2, timeout=10_000)

    # The first: ask the resident something; it waits on them, still on Bram's list.
    page.get_by_role("button", name="Volgende contact").click()
    expect(page.locator("#contact-title")).to_contain_text(references[0])
    page.get_by_text("Vraag aan de inwoner (wachten op antwoord)").click()
    page.get_by_label("Vraag", exact=True).fill("Wat is het kenteken van uw auto?")
    page.get_by_role("button", name="Vraag versturen en wachten").click()
    expect(page.locator("#list-message")).to_contain_text("wacht op de inwoner")
    expect(page.locator("#worklist")).to_contain_text("wacht op inwoner")

    # The second: a callback task, then a referral to the WIJ-team with a hand-over note.
    page.locator(f'#worklist .item[data-reference="{references[1]}"]').click()
    expect(page.locator("#contact-title")).to_contain_text(references[1])
    page.get_by_text("Terugbelverzoek", exact=True).click()
    page.get_by_label("Terugbellen vóór").fill("2099-01-05T10:30")
    page.get_by_label("Waarover").fill("Uitleg over de kosten van de bezoekersvergunning")
    page.get_by_role("button", name="Terugbelverzoek maken").click()
    expect(page.locator("#action-message")).to_contain_text("Terugbelverzoek gemaakt")
    expect(page.locator("#history")).to_contain_text("Terugbellen over " + references[1])

    page.get_by_text("Doorverwijzen naar een ketenpartner").click()
    page.get_by_label("Partner", exact=True).select_option("wij-team")
    page.get_by_label("Warme overdracht: notitie voor de partner").fill(
        "Mevrouw heeft geldzorgen; graag contact over een regeling."
    )
    page.get_by_role("button", name="Doorverwijzen en afsluiten").click()
    expect(page.locator("#list-message")).to_contain_text("doorverwezen en afgesloten")
    expect(page.locator(f'#worklist .item[data-reference="{references[1]}"]')).to_have_count(0)
    page.context.close()
