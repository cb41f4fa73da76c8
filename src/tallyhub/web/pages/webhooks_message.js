// One webhook message: its status, each delivery (endpoint, status, attempts, next attempt,
// last status code) with every attempt (when, status code, duration, the receiver's answer,
// the error), and the payload as sent (pretty JSON). Writers send it again: its deliveries
// start their schedule afresh. Read again every 3 s while it is pending, else every 30 s.
"use strict";
(() => {
  const { t, fmt, el, api } = TH;
  const $ = (id) => document.getElementById(id);
  const id = TH.page.message_id;
  const PENDING_MS = 3000, SETTLED_MS = 30000;
  let message = null, timer = null;

  const statusBadge = (status) => TH.badge(t(`webhooks.status.${status}`), status === "pending" ? "warn" : status);
  const failed = (error) => TH.toast(t("state.error", { message: error.message }), "error");

  const ATTEMPT_COLUMNS = [
    { label: t("webhooks.attempt.n"), key: "n", num: true, value: (a) => fmt.int(a.n) },
    { label: t("webhooks.attempt.at"), key: "attempted_at", value: (a) => fmt.when(a.attempted_at) },
    { label: t("webhooks.attempt.status_code"), key: "status_code", num: true, value: (a) => (a.status_code === null ? "–" : String(a.status_code)) },
    { label: t("webhooks.attempt.duration"), key: "duration_ms", num: true, value: (a) => fmt.duration(a.duration_ms) },
    { label: t("webhooks.attempt.response"), key: "response_body", value: (a) => (a.response_body ? el("code", { class: "answer", text: a.response_body }) : el("span", { class: "muted", text: t("webhooks.attempt.empty") })) },
    { label: t("webhooks.attempt.error"), key: "error", value: (a) => (a.error ? el("span", { class: "error-line", text: a.error }) : "–") },
  ];
  function facts(d) {
    const pairs = [
      [t("webhooks.col.delivery"), statusBadge(d.status), "status"],
      [t("webhooks.col.attempts"), fmt.int(d.attempt_count), "attempt_count"],
      [t("webhooks.col.next_attempt"), d.next_attempt_at ? fmt.when(d.next_attempt_at) : "–", "next_attempt_at"],
      [t("webhooks.col.last_code"), d.last_status_code === null ? "–" : String(d.last_status_code), "last_status_code"],
      [t("webhooks.delivery.finished"), d.finished_at ? fmt.when(d.finished_at) : "–", "finished_at"],
    ];
    if (d.last_error) pairs.push([t("webhooks.attempt.error"), d.last_error, "last_error"]);
    return el("dl", { class: "facts" }, pairs.flatMap(([term, value, key]) => [el("dt", { text: term }), el("dd", { dataset: { f: key } }, value)]));
  }
  function delivery(d) {
    const attempts = (d.attempts || []).map((a, i) => ({ ...a, n: i + 1 }));
    return el("div", { class: "delivery", id: `delivery-${d.endpoint_id}` },
      el("h3", { class: "wrap-url", text: d.url }),
      facts(d),
      attempts.length
        ? TH.table(ATTEMPT_COLUMNS, [...attempts].reverse(), { rowId: (a) => `delivery-${d.endpoint_id}-attempt-${a.n}` })
        : el("p", { class: "state empty", text: t("webhooks.no_attempts") }));
  }
  function draw() {
    document.title = `${message.id} · TallyHub`;
    $("message-id").textContent = message.id;
    $("message-status").replaceChildren(statusBadge(message.status));
    $("message-line").textContent = t("webhooks.message.line", { event: message.event_type, created: fmt.when(message.created_at) });
    const box = $("deliveries");
    if (!message.deliveries.length) TH.state.empty(box, t("webhooks.no_deliveries"));
    else box.replaceChildren(...message.deliveries.map(delivery));
    $("payload").textContent = JSON.stringify(message.payload, null, 2);
    $("updated").textContent = t("webhooks.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  function later() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!document.hidden) {
        try { message = await api(`/api/webhooks/messages/${id}`); draw(); } catch (error) { failed(error); }
      }
      later();
    }, message.status === "pending" ? PENDING_MS : SETTLED_MS);
  }
  function writerControls() {
    const button = $("resend");
    if (!button) return;
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        message = await api(`/api/webhooks/messages/${id}/resend`, { method: "POST" });
        draw();
        TH.toast(t("webhooks.resent"));
        later();
      } catch (error) { failed(error); }
      finally { button.disabled = false; }
    });
  }
  async function start() {
    const stateBox = $("message-state");
    TH.state.loading(stateBox);
    try { message = await api(`/api/webhooks/messages/${id}`); } catch (error) { TH.state.error(stateBox, error); return; }
    stateBox.replaceChildren();
    $("message-body").hidden = false;
    draw();
    const copy = $("payload-copy");
    copy.addEventListener("click", () => TH.copy(JSON.stringify(message.payload, null, 2), copy));
    writerControls();
    later();
  }
  start();
})();
