/* Shared helpers for the desk and the dashboard. Resident text only ever enters the page as
   text nodes (textContent), never as HTML. */
(function () {
  "use strict";
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.getAttribute("content") : "";

  /* `background`: a periodic refresh, not the person at work (it does not extend the session). */
  async function api(method, path, body, background) {
    const options = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (background) options.headers["X-KCC-Background"] = "1";
    if (method !== "GET") options.headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      return { status: 0, ok: false, data: { error: "geen verbinding met de server" } };
    }
    if (response.status === 401) {
      window.location.assign("/signin?next=" + encodeURIComponent(window.location.pathname));
    }
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (error) { data = null; }
    }
    return { status: response.status, ok: response.ok, data: data };
  }

  /* An element with attributes and children; strings become text nodes. */
  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "className") node.className = value;
      else if (name === "hidden") node.hidden = Boolean(value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) return seconds + " s";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return hours + " u " + (minutes % 60) + " min";
    return Math.floor(hours / 24) + " dagen";
  }

  const dateTime = new Intl.DateTimeFormat("nl-NL", { dateStyle: "short", timeStyle: "short" });
  const timeOnly = new Intl.DateTimeFormat("nl-NL", { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  function when(iso) { return iso ? dateTime.format(new Date(iso)) : "—"; }
  function clock(iso) { return iso ? timeOnly.format(new Date(iso)) : "—"; }

  function message(node, text, isError) {
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(isError));
  }

  function errorText(result) {
    if (result.data && result.data.error) return result.data.error;
    return "mislukt (" + result.status + ")";
  }

  function config() {
    const node = document.getElementById("page-config");
    return node ? JSON.parse(node.textContent) : {};
  }

  window.KCC = { api, el, clear, duration, when, clock, message, errorText, config, csrf };
})();
