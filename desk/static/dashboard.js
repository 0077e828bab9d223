/* The team lead's dashboard: live numbers over server-sent events, today's norms, and a chart
   of waiting and service level drawn as SVG by this script (nothing from elsewhere). */
(function () {
  "use strict";
  const { api, el, clear, duration, when, clock, message, errorText, config } = window.KCC;
  const cfg = config();
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const STATUS = { available: "beschikbaar", busy: "bezet", away: "afwezig", offline: "afgemeld" };
  const STATE = { at_risk: "Dreigt te verlopen", breached: "Termijn verstreken" };
  const NORM = { ack: "ontvangstbevestiging", answer: "antwoord" };
  let slaAtRisk = null;  // the SLA engine's list when it is there, else the snapshot's own

  function label(channel) { return (cfg.channel_labels || {})[channel] || channel; }

  function row(cells) {
    return el("tr", {}, cells.map((cell, index) =>
      index === 0 ? el("th", { scope: "row" }, cell) : el("td", { className: typeof cell === "number" ? "num" : null }, cell)));
  }

  function render(snapshot) {
    $("updated").textContent = clock(snapshot.at);
    $("t-waiting").textContent = snapshot.totals.waiting;
    $("t-arrivals").textContent = snapshot.totals.arrivals_last_hour;
    $("t-handled").textContent = snapshot.totals.handled_last_hour;
    const risks = slaAtRisk || snapshot.at_risk;
    $("t-risk").textContent = risks.filter((r) => r.state === "at_risk").length;
    $("t-breached").textContent = risks.filter((r) => r.state === "breached").length;
    const s = snapshot.agents_by_status;
    $("t-agents").textContent = (s.available || 0) + " / " + (s.busy || 0) + " / " + (s.away || 0);

    const queues = $("queues").tBodies[0];
    clear(queues);
    for (const q of snapshot.queues) {
      queues.append(row([q.queue, q.waiting, q.waiting ? duration(q.oldest_wait_seconds) : "—",
        q.arrivals_last_hour, q.handled_last_hour, q.agents_available]));
    }
    const agents = $("agents").tBodies[0];
    clear(agents);
    for (const a of snapshot.agents) {
      const on = a.on.length ? a.on.map((c) => c.reference + " (" + label(c.channel) + (c.status === "offered" ? ", aangeboden" : "") + ")").join(", ") : "—";
      agents.append(el("tr", {}, el("th", { scope: "row" }, a.name),
        el("td", {}, el("span", { className: "status-pill " + a.status }, STATUS[a.status] || a.status)), el("td", {}, on)));
    }
    if (!snapshot.agents.length) agents.append(el("tr", {}, el("td", { colspan: "3", className: "empty" }, "Geen medewerkers aangemeld.")));
    renderRisks(risks);
  }

  function renderRisks(risks) {
    const body = $("risks").tBodies[0];
    clear(body);
    for (const r of risks.slice(0, 50)) {
      body.append(row([r.reference, label(r.channel), r.queue || "—", NORM[r.norm] || r.norm || "—", when(r.due),
        el("span", { className: "risk " + r.state }, STATE[r.state] || r.state)]));
    }
    $("risks-empty").hidden = risks.length > 0;
  }

  function listen() {
    const source = new EventSource("/dashboard/events");
    source.addEventListener("open", () => { $("live-state").textContent = "live"; $("live-state").className = "live-state on"; });
    source.addEventListener("error", () => { $("live-state").textContent = "verbinding verbroken, opnieuw verbinden…"; $("live-state").className = "live-state off"; });
    source.addEventListener("snapshot", (event) => render(JSON.parse(event.data)));
    source.addEventListener("signed_out", () => window.location.assign("/signin?next=/dashboard"));
  }

  let slaPresent = true;
  async function loadSlaAtRisk() {
    if (!slaPresent) return;
    const result = await api("GET", "/api/sla/at-risk", undefined, true);
    if (result.ok && result.data && Array.isArray(result.data.contacts)) slaAtRisk = result.data.contacts;
    else slaAtRisk = null;  // not there: the deadlines on the contacts themselves are used
    if (result.status === 404) slaPresent = false;
  }

  async function reassign(event) {
    event.preventDefault();
    const reference = $("reassign-reference").value.trim().toUpperCase();
    const queue = $("reassign-queue").value, skill = $("reassign-skill").value;
    if (!reference || (!queue && !skill)) {
      message($("reassign-message"), "Vul de referentie in en kies een wachtrij of vaardigheid.", true);
      return;
    }
    const body = { note: $("reassign-note").value.trim() || null };
    if (queue) body.queue = queue; else body.skill = skill;
    const result = await api("POST", "/api/contacts/" + encodeURIComponent(reference) + "/transfer", body);
    if (!result.ok) { message($("reassign-message"), errorText(result), true); return; }
    message($("reassign-message"), reference + " staat nu in de wachtrij " + result.data.queue + ".");
  }

  for (const q of cfg.queues || []) $("reassign-queue").append(el("option", { value: q }, q));
  for (const s of cfg.skills || []) $("reassign-skill").append(el("option", { value: s }, s));
  $("reassign-form").addEventListener("submit", reassign);

  function percent(value) { return value === null || value === undefined ? "—" : Math.round(value * 1000) / 10 + "%"; }

  async function loadNorms() {
    const today = cfg.today || new Date().toISOString().slice(0, 10);
    const result = await api("GET", "/api/reports/norms?from=" + today + "&to=" + today, undefined, true);
    const body = $("norms").tBodies[0];
    clear(body);
    if (result.ok && result.data && Array.isArray(result.data.norms)) {
      // The SLA report gives target and realisation in percent.
      for (const n of result.data.norms) {
        const realised = n.measured === false ? "extern gemeten"
          : n.percentage === null || n.percentage === undefined ? "—" : n.percentage.toFixed(1) + "%";
        body.append(row([n.label || n.norm, n.channel === "*" ? "alle" : label(n.channel), n.target + "%", realised,
          n.within + " / " + n.total + (n.open_overdue ? " (" + n.open_overdue + " open over tijd)" : "")]));
      }
      message($("norms-message"), "");
      return;
    }
    for (const n of cfg.norms || []) body.append(row([n.label, label(n.channel), percent(n.target), "niet beschikbaar", "—"]));
    message($("norms-message"), result.status === 404 ? "Realisatie niet beschikbaar: de SLA-rapportage is in deze installatie (nog) niet aanwezig." : errorText(result), result.status !== 404);
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function loadChart() {
    const result = await api("GET", "/api/dashboard/series", undefined, true);
    const box = $("chart");
    clear(box);
    if (!result.ok) { box.append(el("p", { className: "status-line error" }, errorText(result))); return; }
    const samples = result.data.samples;
    const width = 900, height = 260, left = 50, right = 50, top = 15, bottom = 30;
    const day = Date.parse(result.data.day_start);
    const x = (iso) => left + ((Date.parse(iso) - day) / 86400000) * (width - left - right);
    const maxWaiting = Math.max(5, ...samples.map((s) => s.waiting));
    const yWaiting = (v) => top + (1 - v / maxWaiting) * (height - top - bottom);
    const yService = (v) => top + (1 - v) * (height - top - bottom);
    const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, role: "img", "aria-labelledby": "chart-title chart-summary" });
    const last = samples[samples.length - 1];
    chart.append(svg("desc", { id: "chart-summary" }, samples.length
      ? samples.length + " metingen vandaag; laatste: " + last.waiting + " wachtend, serviceniveau " + percent(last.service_level) + "."
      : "Nog geen metingen vandaag."));
    for (let hour = 0; hour <= 24; hour += 3) {
      const gx = left + (hour / 24) * (width - left - right);
      chart.append(svg("line", { x1: gx, x2: gx, y1: top, y2: height - bottom, class: "grid" }));
      chart.append(svg("text", { x: gx, y: height - 10, "text-anchor": "middle" }, hour + ":00"));
    }
    chart.append(svg("line", { x1: left, x2: left, y1: top, y2: height - bottom, class: "axis" }));
    chart.append(svg("line", { x1: left, x2: width - right, y1: height - bottom, y2: height - bottom, class: "axis" }));
    chart.append(svg("text", { x: left - 6, y: top + 10, "text-anchor": "end" }, String(maxWaiting)));
    chart.append(svg("text", { x: left - 6, y: height - bottom, "text-anchor": "end" }, "0"));
    chart.append(svg("text", { x: width - right + 6, y: top + 10 }, "100%"));
    chart.append(svg("text", { x: width - right + 6, y: height - bottom }, "0%"));
    if (samples.length) {
      chart.append(svg("polyline", { class: "waiting", points: samples.map((s) => x(s.at).toFixed(1) + "," + yWaiting(s.waiting).toFixed(1)).join(" ") }));
      const service = samples.filter((s) => s.service_level !== null);
      if (service.length) chart.append(svg("polyline", { class: "service", points: service.map((s) => x(s.at).toFixed(1) + "," + yService(s.service_level).toFixed(1)).join(" ") }));
      // Points too, so a day that has just begun shows its first samples.
      for (const s of samples.slice(-120)) {
        chart.append(svg("circle", { cx: x(s.at).toFixed(1), cy: yWaiting(s.waiting).toFixed(1), r: 3, class: "waiting-point" }));
        if (s.service_level !== null) chart.append(svg("circle", { cx: x(s.at).toFixed(1), cy: yService(s.service_level).toFixed(1), r: 3, class: "service-point" }));
      }
    }
    box.append(chart);
  }

  listen();
  loadSlaAtRisk();
  loadNorms();
  loadChart();
  setInterval(loadSlaAtRisk, 5000);
  setInterval(loadNorms, 30000);
  setInterval(loadChart, Math.max(10, cfg.sample_seconds || 60) * 1000);
})();
