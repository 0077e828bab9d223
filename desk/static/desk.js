/* The agent desk: one list across channels, the contact with the resident's whole history, the
   reply composer with kennisbank answers, and the actions on a contact. */
(function () {
  "use strict";
  const { api, el, clear, duration, when, message, errorText, config } = window.KCC;
  const cfg = config();
  const $ = (id) => document.getElementById(id);
  const CHANNEL_SHORT = { whatsapp: "WA", telegram: "TG", email: "MAIL", webform: "WEB", post: "POST", phone: "TEL", counter: "BALIE" };
  const STATUS_LABELS = {
    queued: "in de wachtrij", assigned: "toegewezen", answered: "beantwoord",
    waiting_on_resident: "wacht op inwoner", transferred: "doorgezet", closed: "afgesloten", received: "ontvangen",
  };
  const RISK_LABELS = { at_risk: "Dreigt te verlopen", breached: "Termijn verstreken", ok: "Op tijd" };
  const NORM_LABELS = { ack: "ontvangstbevestiging", answer: "antwoord" };
  let items = [];
  let known = new Set();
  let current = null;  // the full view of the open contact
  let kennisbankAvailable = true;

  function channelLabel(channel) { return (cfg.channel_labels || {})[channel] || channel; }

  function channelBadge(channel) {
    return el("span", { className: "channel " + channel, title: channelLabel(channel) },
      el("span", { "aria-hidden": "true" }, CHANNEL_SHORT[channel] || channel),
      el("span", { className: "visually-hidden" }, channelLabel(channel)));
  }

  function riskMark(state, norm) {
    if (state !== "at_risk" && state !== "breached") return null;
    return el("span", { className: "risk " + state },
      RISK_LABELS[state] + (norm ? " (" + (NORM_LABELS[norm] || norm) + ")" : ""));
  }

  function announce(text) { $("announcer").textContent = text; }

  // --- the list ----------------------------------------------------------------------------

  function renderList(contacts) {
    const fresh = contacts.filter((c) => c.offered && !known.has(c.reference));
    if (fresh.length && known.size + items.length > 0) {
      announce("Nieuw aanbod: " + fresh.map((c) => c.reference).join(", "));
    }
    known = new Set(contacts.map((c) => c.reference));
    items = contacts;
    const list = $("worklist");
    clear(list);
    for (const c of contacts) {
      const button = el("button", {
        type: "button", className: "item" + (c.offered ? " offered" : ""),
        "data-reference": c.reference,
        "aria-current": current && current.reference === c.reference ? "true" : "false",
      },
        channelBadge(c.channel),
        el("span", {}, el("span", { className: "ref" }, c.reference), " ",
          c.offered ? el("span", { className: "risk ok" }, "Nieuw aanbod") : el("span", { className: "meta" }, STATUS_LABELS[c.status] || c.status),
          " ", riskMark(c.deadline_state, c.deadline_norm)),
        el("span", { className: "subject" }, c.subject || "(geen onderwerp)"),
        el("span", { className: "times", "data-received": c.received_at },
          "Wacht " + duration((Date.now() - Date.parse(c.received_at)) / 1000) +
          (c.deadline ? " · termijn " + when(c.deadline) : "")));
      button.addEventListener("click", async () => {
        if (c.offered) {
          // Opening an offer takes it: it stops being "new" for the router and the lead.
          await api("POST", "/api/contacts/" + encodeURIComponent(c.reference) + "/take");
          loadList();
        }
        openContact(c.reference);
      });
      list.append(el("li", {}, button));
    }
    $("list-empty").hidden = contacts.length > 0;
  }

  function tickTimes() {
    for (const span of document.querySelectorAll(".times[data-received]")) {
      const item = items.find((c) => c.received_at === span.getAttribute("data-received"));
      span.textContent = "Wacht " + duration((Date.now() - Date.parse(span.getAttribute("data-received"))) / 1000) +
        (item && item.deadline ? " · termijn " + when(item.deadline) : "");
    }
  }

  // The live stream is the authority; a fetch whose answer crosses a pushed list is dropped, or
  // an older answer could overwrite a newer push (the stream only sends changes).
  let pushes = 0;

  async function loadList() {
    const before = pushes;
    const result = await api("GET", "/api/desk/list");
    if (pushes !== before) return;
    if (result.ok) renderList(result.data.contacts);
    else message($("list-message"), errorText(result), true);
  }

  function listen() {
    const source = new EventSource("/desk/events");
    source.addEventListener("list", (event) => { pushes += 1; renderList(JSON.parse(event.data).contacts); });
    source.addEventListener("signed_out", () => window.location.assign("/signin?next=/desk"));
  }

  async function next() {
    message($("list-message"), "Volgende contact ophalen…");
    const result = await api("POST", "/api/agents/me/next");
    if (result.status === 204) {
      message($("list-message"), "Er is nu geen contact voor u. Staat uw status op Beschikbaar?");
      return;
    }
    if (!result.ok) { message($("list-message"), errorText(result), true); return; }
    message($("list-message"), "Contact " + result.data.reference + " geopend.");
    showContact(result.data);
    loadList();
  }

  // --- the contact -------------------------------------------------------------------------

  async function openContact(reference) {
    const result = await api("GET", "/api/contacts/" + encodeURIComponent(reference));
    if (!result.ok) { message($("list-message"), errorText(result), true); return; }
    showContact(result.data);
  }

  function pair(list, term, value) {
    list.append(el("dt", {}, term), el("dd", {}, value === null || value === undefined || value === "" ? "—" : value));
  }

  function showContact(contact) {
    current = contact;
    $("contact").hidden = false;
    $("contact-title").textContent = "Contact " + contact.reference + (contact.subject ? ": " + contact.subject : "");
    const meta = $("contact-meta");
    clear(meta);
    meta.append(channelBadge(contact.channel), " ", STATUS_LABELS[contact.status] || contact.status,
      " · ", contact.kind, " · wachtrij ", contact.queue || "—", " · ontvangen ", when(contact.received_at));

    const deadlines = $("deadlines");
    clear(deadlines);
    pair(deadlines, "Ontvangstbevestiging", contact.ack_due ? when(contact.ack_due) + (contact.acked_at ? " (verstuurd " + when(contact.acked_at) + ")" : "") : "geen");
    pair(deadlines, "Antwoord", contact.answer_due ? when(contact.answer_due) + (contact.answered_at ? " (beantwoord " + when(contact.answered_at) + ")" : "") : "geen");
    const item = items.find((c) => c.reference === contact.reference);
    if (item && riskMark(item.deadline_state, item.deadline_norm)) {
      deadlines.append(el("dt", {}, "Stand"), el("dd", {}, riskMark(item.deadline_state, item.deadline_norm)));
    }

    const resident = contact.resident || {};
    const residentList = $("resident");
    clear(residentList);
    pair(residentList, "Naam", resident.name);
    pair(residentList, "Telefoon", resident.phone);
    pair(residentList, "E-mail", resident.email);
    if (resident.telegram_id) pair(residentList, "Telegram", resident.telegram_id);
    if (resident.postal_address) pair(residentList, "Adres", resident.postal_address);
    pair(residentList, "Taal", resident.language || contact.language);
    pair(residentList, "Voorkeurskanaal", resident.preferred_channel ? channelLabel(resident.preferred_channel) : null);
    const needs = $("support-needs");
    clear(needs);
    for (const need of resident.support_needs || []) {
      needs.append(el("li", {}, (cfg.support_labels || {})[need] || need));
    }

    const messages = $("messages");
    clear(messages);
    if (!contact.messages.length && contact.body) {
      messages.append(el("li", { className: "inbound" }, el("div", { className: "who" }, "Inwoner"), el("p", { className: "body" }, contact.body)));
    }
    for (const m of contact.messages) {
      messages.append(el("li", { className: m.direction },
        el("div", { className: "who" }, (m.direction === "inbound" ? "Inwoner" : "KCC") + " via " + channelLabel(m.channel) + " · " + when(m.at) +
          (m.direction === "outbound" ? " · " + m.delivery_status + (m.delivery_detail ? " (" + m.delivery_detail + ")" : "") : "") +
          (m.article ? " · kennisbank: " + m.article.slug + " (versie " + m.article.version + ")" : "")),
        el("p", { className: "body" }, m.body)));
    }
    const attachments = $("attachments");
    clear(attachments);
    $("attachments-block").hidden = !contact.attachments.length;
    for (const a of contact.attachments) {
      attachments.append(el("li", {}, el("a", {
        href: "/api/contacts/" + encodeURIComponent(contact.reference) + "/attachments/" + a.id,
        target: "_blank", rel: "noopener",
      }, a.filename + " (" + a.content_type + ", " + Math.ceil(a.size / 1024) + " kB)")));
    }

    const history = $("history");
    clear(history);
    for (const h of contact.history) {
      const link = el("button", { type: "button", className: "secondary small" }, h.reference);
      link.addEventListener("click", () => openContact(h.reference));
      history.append(el("li", {}, channelBadge(h.channel), " ", link, " ", when(h.received_at), " · ",
        h.subject || h.topic || "(geen onderwerp)", " · ", STATUS_LABELS[h.status] || h.status,
        h.outcome ? " (" + h.outcome + ")" : ""));
    }
    $("history-empty").hidden = contact.history.length > 0;

    showWindow(contact);
    $("reply").value = "";
    $("reply-article").value = "";
    message($("reply-message"), "");
    message($("action-message"), "");
    for (const node of document.querySelectorAll(".item")) {
      node.setAttribute("aria-current", node.getAttribute("data-reference") === contact.reference ? "true" : "false");
    }
    loadSuggestions(contact);
    $("contact-title").focus();
  }

  function showWindow(contact) {
    const node = $("window");
    node.className = "window";
    if (contact.channel !== "whatsapp") {
      node.textContent = "Uw antwoord gaat via het kanaal van het contact (" + channelLabel(contact.channel) + ").";
      return;
    }
    const hours = cfg.whatsapp_window_hours || 24;
    if (!contact.last_inbound_at) { node.textContent = "WhatsApp-venster: onbekend."; return; }
    const closes = Date.parse(contact.last_inbound_at) + hours * 3600 * 1000;
    const left = (closes - Date.now()) / 1000;
    if (left > 0) {
      node.classList.add("open");
      node.textContent = "WhatsApp-venster open: nog " + duration(left) + " (tot " + when(new Date(closes).toISOString()) + ").";
    } else {
      node.classList.add("closed");
      node.textContent = "WhatsApp-venster gesloten (meer dan " + hours + " uur geen bericht van de inwoner): alleen een goedgekeurd sjabloonbericht gaat nog uit.";
    }
  }

  // --- kennisbank --------------------------------------------------------------------------

  function kbUnavailable() {
    kennisbankAvailable = false;
    const results = $("kb-results");
    clear(results);
    results.append(el("li", { className: "unavailable" }, "De kennisbank is (nog) niet beschikbaar. U kunt uw antwoord zelf schrijven."));
    message($("kb-message"), "");
  }

  function renderArticles(articles, origin) {
    const results = $("kb-results");
    clear(results);
    if (!articles.length) {
      message($("kb-message"), origin === "search" ? "Geen antwoorden gevonden." : "Geen suggesties voor dit contact.");
      return;
    }
    message($("kb-message"), articles.length + (origin === "search" ? " antwoorden gevonden." : " suggesties voor dit contact."));
    for (const article of articles) {
      const insert = el("button", { type: "button", className: "secondary small" }, "Invoegen");
      insert.setAttribute("aria-label", "Invoegen: " + article.title);
      insert.addEventListener("click", () => insertArticle(article));
      results.append(el("li", {},
        el("div", { className: "kb-title" }, article.title),
        // Focusable: a long answer scrolls, and keyboard users must be able to scroll it too.
        el("p", { className: "kb-text", tabindex: "0", role: "region", "aria-label": "Tekst: " + article.title }, article.text),
        el("div", { className: "buttons" }, insert,
          article.link ? el("a", { href: article.link, target: "_blank", rel: "noopener" }, "Bron") : null)));
    }
  }

  async function loadSuggestions(contact) {
    if (!kennisbankAvailable) { kbUnavailable(); return; }
    const result = await api("GET", "/api/contacts/" + encodeURIComponent(contact.reference) + "/suggestions");
    if (result.status === 404 || result.status === 405) {
      // No kennisbank endpoint yet: try search once before declaring it missing.
      const probe = await api("GET", "/api/kennisbank/search?q=" + encodeURIComponent(contact.subject || contact.topic || "vraag") + "&channel=" + contact.channel + "&language=" + contact.language + "&limit=5");
      if (probe.status === 404 || probe.status === 405) { kbUnavailable(); return; }
      if (probe.ok) renderArticles(probe.data.results || [], "search");
      return;
    }
    if (!result.ok) { message($("kb-message"), errorText(result), true); return; }
    renderArticles(result.data.suggestions || [], "suggestions");
  }

  async function searchKennisbank(event) {
    event.preventDefault();
    const q = $("kb-query").value.trim();
    if (!q) return;
    const channel = current ? current.channel : "";
    const language = current ? current.language : "nl";
    const result = await api("GET", "/api/kennisbank/search?q=" + encodeURIComponent(q) + "&channel=" + encodeURIComponent(channel) + "&language=" + encodeURIComponent(language) + "&limit=5");
    if (result.status === 404 || result.status === 405) { kbUnavailable(); return; }
    if (!result.ok) { message($("kb-message"), errorText(result), true); return; }
    renderArticles(result.data.results || [], "search");
  }

  function insertArticle(article) {
    const box = $("reply");
    box.value = box.value.trim() ? box.value.replace(/\s+$/, "") + "\n\n" + article.text : article.text;
    $("reply-article").value = JSON.stringify({ slug: article.slug, version: article.version });
    message($("reply-message"), "Antwoord uit de kennisbank ingevoegd; pas het gerust aan.");
    box.focus();
  }

  // --- actions -----------------------------------------------------------------------------

  function path(action) { return "/api/contacts/" + encodeURIComponent(current.reference) + "/" + action; }

  async function sendReply(text) {
    const body = { text: text };
    const article = $("reply-article").value;
    if (article) body.article = JSON.parse(article);
    let result = await api("POST", path("reply"), body);
    const refusedArticle = result.status === 422 && body.article && result.data && Array.isArray(result.data.details) &&
      result.data.details.some((d) => String(d.field).startsWith("article"));
    if (refusedArticle) {
      // A service without the kennisbank does not know "article": send the text alone. (Only
      // then: a 422 for a refused delivery must not send the message twice.)
      result = await api("POST", path("reply"), { text: text });
    }
    return result;
  }

  async function reply() {
    if (!current) return;
    const text = $("reply").value.trim();
    if (!text) { message($("reply-message"), "Schrijf eerst een antwoord.", true); $("reply").focus(); return; }
    $("send").disabled = true;
    const result = await sendReply(text);
    $("send").disabled = false;
    if (!result.ok) {
      if (result.data && result.data.message) await openContact(current.reference);  // the refused message shows
      message($("reply-message"), errorText(result), true);
      return;
    }
    const delivery = result.data.message ? result.data.message.delivery_status : "";
    await openContact(current.reference);
    message($("reply-message"), "Antwoord verstuurd (" + delivery + ").");
    loadList();
  }

  async function done(text) {
    message($("list-message"), text);
    announce(text);
    current = null;
    $("contact").hidden = true;
    await loadList();
    $("next").focus();
  }

  async function act(action, body, doneText, ends) {
    if (!current) return;
    const result = await api("POST", path(action), body);
    if (result.status === 404 && ["extension"].includes(action)) {
      message($("action-message"), "Verdaging is (nog) niet beschikbaar in deze installatie.", true);
      return;
    }
    if (!result.ok) { message($("action-message"), errorText(result), true); return; }
    if (ends) { await done(doneText); return; }
    await openContact(current.reference);
    message($("action-message"), doneText);
    loadList();
  }

  async function ask() {
    const text = $("ask-text").value.trim();
    if (!current || !text) { message($("action-message"), "Schrijf eerst de vraag.", true); return; }
    const sent = await api("POST", path("reply"), { text: text });
    if (!sent.ok) { message($("action-message"), errorText(sent), true); return; }
    await act("wait", { reason: "vraag aan inwoner" }, "Vraag verstuurd; " + current.reference + " wacht op de inwoner.", true);
  }

  function transfer() {
    const queue = $("transfer-queue").value, skill = $("transfer-skill").value;
    if (!queue && !skill) { message($("action-message"), "Kies een wachtrij of een vaardigheid.", true); return; }
    const body = { note: $("transfer-note").value.trim() || null };
    if (queue) body.queue = queue; else body.skill = skill;
    act("transfer", body, current.reference + " is doorgezet.", true);
  }

  function callback() {
    const due = $("callback-due").value;
    const note = $("callback-note").value.trim();
    if (!due || !note) { message($("action-message"), "Vul het tijdstip en het onderwerp van het terugbelverzoek in.", true); return; }
    const body = { due: new Date(due).toISOString(), note: note };
    if ($("callback-phone").value.trim()) body.phone = $("callback-phone").value.trim();
    act("callback", body, "Terugbelverzoek gemaakt, te bellen vóór " + when(body.due) + ".", false);
  }

  function extension() {
    const due = $("extension-due").value, reason = $("extension-reason").value.trim();
    if (!due || !reason) { message($("action-message"), "Vul de nieuwe termijn en de reden in.", true); return; }
    act("extension", { reason: reason, new_due: due }, "Verdaging verstuurd.", false);
  }

  function referral() {
    const note = $("referral-note").value.trim();
    if (!note) { message($("action-message"), "Schrijf een overdrachtsnotitie voor de partner.", true); return; }
    act("referral", { partner: $("referral-partner").value, note: note, close: true }, current.reference + " is doorverwezen en afgesloten.", true);
  }

  function close() {
    act("close", { outcome: $("close-outcome").value, note: $("close-note").value.trim() || null }, current.reference + " is afgesloten.", true);
  }

  // --- presence ----------------------------------------------------------------------------

  let mySkills = {};
  async function loadQueues() {
    const result = await api("GET", "/api/queues", undefined, true);
    if (!result.ok) return;
    const body = $("my-queues").tBodies[0];
    clear(body);
    for (const q of result.data.queues) {
      if (!q.skills.every((skill) => (mySkills[skill] || 0) > 0)) continue;
      body.append(el("tr", {}, el("th", { scope: "row" }, q.queue), el("td", { className: "num" }, q.waiting),
        el("td", { className: "num" }, q.waiting ? duration(q.oldest_wait_seconds) : "—")));
    }
  }

  async function loadMe() {
    const result = await api("GET", "/api/agents/me");
    if (!result.ok) return;
    mySkills = result.data.skills || {};
    loadQueues();
    $("status").value = result.data.status;
    const fields = $("capacity-fields");
    clear(fields);
    for (const kind of cfg.channel_kinds || []) {
      const id = "capacity-" + kind;
      const load = (result.data.load || {})[kind] || 0;
      fields.append(el("div", {},
        el("label", { for: id }, { phone: "Telefoon", chat: "Chat", written: "Schriftelijk", counter: "Balie" }[kind] || kind),
        el("input", { id: id, type: "number", min: "0", max: "20", value: (result.data.capacity || {})[kind] || 0, "data-kind": kind, "aria-describedby": id + "-load" }),
        el("span", { id: id + "-load", className: "meta" }, "nu " + load)));
    }
  }

  async function refreshLoad() {
    const result = await api("GET", "/api/agents/me", undefined, true);
    if (!result.ok) return;
    for (const kind of cfg.channel_kinds || []) {
      const span = $("capacity-" + kind + "-load");
      if (span) span.textContent = "nu " + ((result.data.load || {})[kind] || 0);
    }
  }

  async function setStatus() {
    const result = await api("POST", "/api/agents/me/status", { status: $("status").value });
    if (!result.ok) { message($("presence-message"), errorText(result), true); return; }
    message($("presence-message"), "Status: " + $("status").selectedOptions[0].textContent + ".");
    loadList();
  }

  async function saveCapacity() {
    const capacity = {};
    for (const input of document.querySelectorAll("#capacity-fields input")) {
      capacity[input.getAttribute("data-kind")] = Number(input.value);
    }
    const result = await api("POST", "/api/agents/me/capacity", { capacity: capacity });
    message($("presence-message"), result.ok ? "Capaciteit opgeslagen." : errorText(result), !result.ok);
  }

  function fillSelect(select, options) {
    for (const [value, label] of options) select.append(el("option", { value: value }, label));
  }

  function init() {
    fillSelect($("transfer-queue"), (cfg.queues || []).map((q) => [q, q]));
    fillSelect($("transfer-skill"), (cfg.skills || []).map((s) => [s, s]));
    fillSelect($("close-outcome"), Object.entries(cfg.outcomes || {}).map(([code, label]) => [code, label]));
    if ((cfg.outcomes || {}).beantwoord) $("close-outcome").value = "beantwoord";
    fillSelect($("referral-partner"), (cfg.partners || []).map((p) => [p.slug, p.name]));
    $("next").addEventListener("click", next);
    $("send").addEventListener("click", reply);
    $("ask").addEventListener("click", ask);
    $("transfer").addEventListener("click", transfer);
    $("callback").addEventListener("click", callback);
    $("extension").addEventListener("click", extension);
    $("referral").addEventListener("click", referral);
    $("close").addEventListener("click", close);
    $("kb-form").addEventListener("submit", searchKennisbank);
    $("open-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const reference = $("open-reference").value.trim().toUpperCase();
      if (reference) openContact(reference);
    });
    $("status").addEventListener("change", setStatus);
    $("save-capacity").addEventListener("click", saveCapacity);
    document.addEventListener("keydown", (event) => {
      if (event.altKey && (event.key === "n" || event.key === "N")) { event.preventDefault(); next(); }
    });
    loadMe();
    loadList();
    listen();
    setInterval(tickTimes, 1000);
    setInterval(loadQueues, 5000);
    setInterval(refreshLoad, 5000);
    setInterval(() => { if (current) showWindow(current); }, 30000);
  }

  init();
})();
