// The webhook log: messages newest first (filters by status and event type, kept in the
// address), each with its deliveries' status, attempt count, next attempt and last status
// code, opening the message's page; and the endpoints, which writers add, disable or enable
// and give a new secret (a secret is shown once, with a copy button). Read again every 15 s;
// the messages only on their first page (a later page would shift under the reader's eyes).
"use strict";
(() => {
  const { t, fmt, el, api } = TH;
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 15000, PAGE_SIZE = 20;
  const filters = $("message-filters");
  const messages = { page: 1, asked: 0 };
  const events = new Set();
  let endpoints = [];

  const statusBadge = (status) => TH.badge(t(`webhooks.status.${status}`), status === "pending" ? "warn" : status);
  const failed = (error) => TH.toast(t("state.error", { message: error.message }), "error");
  // host + path of a URL (the full address in its title).
  function shortUrl(url) {
    try { const u = new URL(url); return u.host + (u.pathname === "/" ? "" : u.pathname); } catch (error) { return url; }
  }
  function pager(node, body, go) {
    const pages = Math.max(1, Math.ceil(body.total / body.page_size));
    node.replaceChildren(
      el("span", { class: "muted", text: t("pager.page", { page: fmt.int(body.page), pages: fmt.int(pages), total: fmt.int(body.total) }) }),
      el("button", { type: "button", text: t("action.previous"), disabled: body.page <= 1, onclick: () => go(body.page - 1) }),
      el("button", { type: "button", text: t("action.next"), disabled: body.page >= pages, onclick: () => go(body.page + 1) }));
  }

  // ---------------------------------------------------------------- messages
  // One line per delivery (a message goes to each endpoint of its sender).
  const perDelivery = (render) => (m) => (m.deliveries.length
    ? el("span", { class: "stack" }, m.deliveries.map((d) => el("span", { class: "line" }, render(d))))
    : "–");
  const MESSAGE_COLUMNS = [
    { label: t("webhooks.col.message"), key: "message", value: (m) => el("span", { class: "message-name" },
      el("a", { href: `/webhooks/messages/${m.id}`, text: m.id }), el("br"),
      el("small", { class: "muted", title: fmt.when(m.created_at), text: fmt.whenShort(m.created_at) })) },
    { label: t("webhooks.col.event"), key: "event", value: (m) => el("code", { text: m.event_type }) },
    { label: t("webhooks.col.status"), key: "status", value: (m) => statusBadge(m.status) },
    { label: t("webhooks.col.endpoint"), key: "endpoint", value: perDelivery((d) => [el("span", { title: d.url, text: shortUrl(d.url) }), " ", el("span", { dataset: { f: "delivery_status" } }, statusBadge(d.status))]) },
    { label: t("webhooks.col.attempts"), key: "attempts", num: true, value: perDelivery((d) => fmt.int(d.attempt_count)) },
    { label: t("webhooks.col.next_attempt"), key: "next_attempt", value: perDelivery((d) => (d.next_attempt_at ? el("span", { title: fmt.when(d.next_attempt_at), text: fmt.whenShort(d.next_attempt_at) }) : "–")) },
    { label: t("webhooks.col.last_code"), key: "last_code", value: perDelivery((d) => el("span", { title: d.last_error || "", class: d.last_status_code && d.last_status_code >= 300 ? "down" : "", text: d.last_status_code ?? (d.last_error ? t("webhooks.no_answer") : "–") })) },
  ];
  function messageQuery(page) {
    const query = new URLSearchParams({ page, page_size: PAGE_SIZE });
    for (const [name, value] of new FormData(filters)) if (String(value).trim()) query.set(name, String(value).trim());
    return query;
  }
  async function loadMessages(page = messages.page) {
    const box = $("messages"), pagerBox = $("messages-pager"), asked = ++messages.asked;
    try {
      const body = await api(`/api/webhooks/messages?${messageQuery(page)}`);
      if (asked !== messages.asked) return;  // a later filter's answer is (or will be) shown
      messages.page = body.page;
      if (!body.items.length && page > 1) return loadMessages(1);
      if (!body.items.length) TH.state.empty(box, t("webhooks.no_messages"));
      else box.replaceChildren(TH.table(MESSAGE_COLUMNS, body.items, { rowId: (m) => `webhook-message-${m.id}` }));
      pager(pagerBox, body, loadMessages);
      knownEvents(body.items);
    } catch (error) { TH.state.error(box, error); pagerBox.replaceChildren(); }
  }
  function knownEvents(items) {
    const before = events.size;
    items.forEach((m) => events.add(m.event_type));
    if (events.size !== before) $("known-events").replaceChildren(...[...events].sort().map((e) => el("option", { value: e })));
  }
  function wireFilters() {
    const asked = new URL(location.href).searchParams;
    for (const name of ["status", "event"]) if (asked.get(name)) filters.elements[name].value = asked.get(name);
    const changed = () => {
      const url = new URL(location.href);
      for (const name of ["status", "event"]) {
        const value = filters.elements[name].value.trim();
        if (value) url.searchParams.set(name, value); else url.searchParams.delete(name);
      }
      history.replaceState(null, "", url);
      loadMessages(1);
    };
    filters.addEventListener("change", changed);
    filters.addEventListener("submit", (event) => { event.preventDefault(); changed(); });
  }

  // ---------------------------------------------------------------- endpoints
  function stateCell(e) {
    const parts = [TH.badge(e.enabled ? t("webhooks.endpoint.enabled") : t("webhooks.endpoint.disabled"), e.enabled ? "good" : "disabled")];
    if (e.disabled_reason) parts.push(el("br"), el("small", { class: "reason muted", text: e.disabled_reason }));
    return el("span", {}, parts);
  }
  function endpointActions(e) {
    const name = shortUrl(e.url);
    return el("span", { class: "row-actions" },
      e.enabled
        ? el("button", { type: "button", class: "danger", text: t("webhooks.endpoint.disable"), "aria-label": t("webhooks.endpoint.disable_named", { name }), onclick: () => disable(e) })
        : el("button", { type: "button", text: t("webhooks.endpoint.enable"), "aria-label": t("webhooks.endpoint.enable_named", { name }), onclick: () => enable(e) }),
      el("button", { type: "button", text: t("webhooks.endpoint.rotate"), "aria-label": t("webhooks.endpoint.rotate_named", { name }), onclick: () => rotate(e) }));
  }
  const ENDPOINT_COLUMNS = [
    { label: t("webhooks.endpoint.url"), key: "url", value: (e) => el("span", { class: "endpoint-name" },
      el("span", { class: "wrap-url", text: e.url }), e.description ? el("br") : null, e.description ? el("small", { class: "muted", text: e.description }) : null) },
    { label: t("webhooks.col.status"), key: "state", value: stateCell },
    { label: t("webhooks.endpoint.created"), key: "created", value: (e) => el("span", { title: fmt.when(e.created_at), text: fmt.whenShort(e.created_at) }) },
  ];
  if (TH.canWrite) ENDPOINT_COLUMNS.push({ label: t("webhooks.col.actions"), key: "actions", value: endpointActions });
  async function loadEndpoints() {
    const box = $("endpoints");
    try {
      endpoints = await TH.all("/api/webhooks/endpoints");
      if (!endpoints.length) TH.state.empty(box, t("webhooks.no_endpoints"));
      else box.replaceChildren(TH.table(ENDPOINT_COLUMNS, endpoints, { rowId: (e) => `webhook-endpoint-${e.id}` }));
    } catch (error) { TH.state.error(box, error); }
  }

  // ---------------------------------------------------------------- writers' actions
  function ask(title, text, yes) {
    const box = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    $("confirm-yes").textContent = yes;
    box.returnValue = "";
    box.showModal();
    return new Promise((resolve) => box.addEventListener("close", () => resolve(box.returnValue === "confirm"), { once: true }));
  }
  function showSecret(endpoint) {
    $("secret-for").textContent = t("webhooks.secret.for", { url: endpoint.url });
    $("secret-value").textContent = endpoint.secret;
    const copy = $("secret-copy");
    copy.textContent = t("action.copy");
    copy.onclick = () => TH.copy(endpoint.secret, copy);
    $("secret-dialog").showModal();
  }
  async function change(e, body, done) {
    try { await api(`/api/webhooks/endpoints/${e.id}`, { method: "PATCH", json: body }); TH.toast(done); }
    catch (error) { failed(error); }
    await loadEndpoints();
  }
  async function disable(e) {
    const name = shortUrl(e.url);
    if (!(await ask(t("webhooks.endpoint.disable_title", { name }), t("webhooks.endpoint.disable_text"), t("webhooks.endpoint.disable")))) return;
    await change(e, { enabled: false }, t("webhooks.endpoint.disabled_done", { name }));
  }
  const enable = (e) => change(e, { enabled: true }, t("webhooks.endpoint.enabled_done", { name: shortUrl(e.url) }));
  async function rotate(e) {
    const name = shortUrl(e.url);
    if (!(await ask(t("webhooks.endpoint.rotate_title", { name }), t("webhooks.endpoint.rotate_text"), t("webhooks.endpoint.rotate")))) return;
    try { showSecret(await api(`/api/webhooks/endpoints/${e.id}/secret`, { method: "POST" })); }
    catch (error) { failed(error); }
    await loadEndpoints();
  }
  function writerControls() {
    const add = $("endpoint-add");
    if (!add) return;
    const dialog = $("endpoint-dialog"), form = $("endpoint-form");
    add.addEventListener("click", () => { form.reset(); form.querySelector(".form-error").textContent = ""; dialog.showModal(); });
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
    $("secret-dialog").querySelector("[data-close]").addEventListener("click", () => $("secret-dialog").close());
    $("secret-dialog").addEventListener("close", () => { $("secret-value").textContent = ""; });  // shown once
    TH.form(form, async (data) => {
      const created = await api("/api/webhooks/endpoints", { method: "POST", json: { url: data.url.trim(), description: data.description.trim() } });
      dialog.close();
      TH.toast(t("webhooks.endpoint.created_done", { name: shortUrl(created.url) }));
      showSecret(created);
      await loadEndpoints();
    });
  }

  // ---------------------------------------------------------------- start and refresh
  async function refresh(all = false) {
    await Promise.all([all || messages.page === 1 ? loadMessages() : null, loadEndpoints()]);
    $("updated").textContent = t("webhooks.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  wireFilters();
  writerControls();
  ["messages", "endpoints"].forEach((id) => TH.state.loading($(id)));
  refresh(true);
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
})();
