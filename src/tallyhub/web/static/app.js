// The dashboard's shared kit (window.TH): the page's context, messages and number/date
// formats of the chosen language, the API call every page makes, loading / empty / error
// states, tables, forms, charts, the date-range picker and the live socket.
"use strict";
window.TH = (() => {
  const ctx = JSON.parse(document.getElementById("th-context").textContent);
  const lang = ctx.lang;

  // ------------------------------------------------------------ messages and formats
  function t(key, values) {
    let text = ctx.messages[key];
    if (text === undefined) { console.warn("missing message", key); text = key; }
    for (const [name, value] of Object.entries(values || {})) text = text.split(`{${name}}`).join(value);
    return text;
  }
  const has = (key) => Object.hasOwn(ctx.messages, key);
  const integer = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
  const percent = new Intl.NumberFormat(lang, { style: "percent", minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const yuan = new Intl.NumberFormat(lang, { style: "currency", currency: "CNY", currencyDisplay: "narrowSymbol", minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const stamp = new Intl.DateTimeFormat(lang, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short" });
  const shortStamp = new Intl.DateTimeFormat(lang, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const day = new Intl.DateTimeFormat(lang, { dateStyle: "medium", timeZone: "UTC" });
  // A time with its zone at the end, in every language ("2026年12月7日 09:20:53 GMT+8",
  // not the zone between date and time as zh-CN's own order has it).
  function zoneLast(parts) {
    const at = parts.findIndex((p) => p.type === "timeZoneName");
    if (at < 0) return parts.map((p) => p.value).join("");
    const blank = (i) => parts[i] && parts[i].type === "literal" && !parts[i].value.trim();
    const drop = new Set([at, blank(at + 1) ? at + 1 : blank(at - 1) ? at - 1 : at]);
    return `${parts.filter((_, i) => !drop.has(i)).map((p) => p.value).join("")} ${parts[at].value}`;
  }
  const fmt = {
    int: (n) => (n === null || n === undefined ? "–" : integer.format(n)),
    pct: (x) => (x === null || x === undefined || Number.isNaN(x) ? "–" : percent.format(x)),
    ratio: (part, whole) => (whole ? percent.format(part / whole) : "–"),
    money: (s) => (s === null || s === undefined ? "–" : yuan.format(Number(s))),
    when: (iso) => (iso ? zoneLast(stamp.formatToParts(new Date(iso))) : "–"),
    whenShort: (iso) => (iso ? shortStamp.format(new Date(iso)) : "–"),
    day: (ymd) => (ymd ? day.format(new Date(ymd + "T00:00:00Z")) : "–"),
    duration: (ms) => {
      if (ms === null || ms === undefined) return "–";
      if (ms < 1000) return t("unit.ms", { n: integer.format(ms) });
      if (ms < 60000) return t("unit.s", { n: (ms / 1000).toLocaleString(lang, { maximumFractionDigits: 1 }) });
      return t("unit.min", { n: (ms / 60000).toLocaleString(lang, { maximumFractionDigits: 1 }) });
    },
    zone: () => Intl.DateTimeFormat().resolvedOptions().timeZone,
  };

  // ------------------------------------------------------------ the API
  class ApiError extends Error {
    constructor(status, code, message) { super(message); this.status = status; this.code = code; }
  }
  // fetch() with the session cookie; changes carry the page's X-CSRF-Token. An error
  // answer throws ApiError with the API's own error.message; a 401 goes to /login.
  async function api(path, options = {}) {
    const init = { method: options.method || "GET", credentials: "same-origin", headers: {} };
    if (init.method !== "GET") init.headers["X-CSRF-Token"] = ctx.csrf;
    if (options.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    } else if (options.form !== undefined) {
      init.body = new URLSearchParams(options.form);
    }
    let response;
    try { response = await fetch(path, init); } catch (error) { throw new ApiError(0, "network", t("error.network")); }
    if (response.status === 401 && !options.signedOut) {
      location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
      throw new ApiError(401, "signed_out", t("error.signed_out"));
    }
    if (response.status === 204) return null;
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      // {"error": {"code", "message"}}, or the call-center seed's {"success": false, "error": "…"}.
      const found = (body && body.error) || {};
      const error = typeof found === "string" ? { message: found } : found;
      throw new ApiError(response.status, error.code || "http_" + response.status, error.message || t("error.http", { status: response.status }));
    }
    return body;
  }
  // Every item of a paginated list (the page envelope), page after page.
  async function all(path) {
    const items = [];
    for (let page = 1; ; page++) {
      const sep = path.includes("?") ? "&" : "?";
      const body = await api(`${path}${sep}page=${page}&page_size=200`);
      items.push(...body.items);
      if (items.length >= body.total || body.items.length === 0) return items;
    }
  }

  // ------------------------------------------------------------ DOM
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  function badge(text, kind) { return el("span", { class: `badge ${kind || ""}`, text }); }
  // A box's loading, empty and error states, in words.
  const state = {
    loading: (box) => box.replaceChildren(el("p", { class: "state loading", text: t("state.loading") })),
    empty: (box, text) => box.replaceChildren(el("p", { class: "state empty", text: text || t("state.empty") })),
    error: (box, error) => box.replaceChildren(el("p", { class: "state error", role: "alert", text: t("state.error", { message: error.message }) })),
  };
  // A table in its own scrolling box. columns: [{label, value(row) -> text | Node, num}]
  function table(columns, rows, options = {}) {
    const head = el("tr", {}, columns.map((c) => el("th", { scope: "col", class: c.num ? "num" : "", text: c.label })));
    const body = el("tbody", {}, rows.map((row) => tableRow(columns, row, options)));
    return el("div", { class: "table-box" }, el("table", { class: options.class || "" }, el("thead", {}, head), body));
  }
  function tableRow(columns, row, options = {}) {
    const cells = columns.map((c) => {
      const value = c.value(row);
      const td = el("td", { class: c.num ? "num" : "", dataset: c.key ? { f: c.key } : undefined });
      td.append(value instanceof Node ? value : String(value ?? "–"));
      return td;
    });
    return el("tr", { id: options.rowId ? options.rowId(row) : null }, cells);
  }
  function flash(node) { node.classList.remove("flash"); void node.offsetWidth; node.classList.add("flash"); }
  function toast(text, kind) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.replaceChildren(el("p", { class: `toast ${kind || ""}`, text }));
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => box.replaceChildren(), 5000);
  }
  async function copy(text, button) {
    await navigator.clipboard.writeText(text).catch(() => null);
    if (button) { const was = button.textContent; button.textContent = t("action.copied"); setTimeout(() => { button.textContent = was; }, 1500); }
  }

  // ------------------------------------------------------------ forms
  // Submits through `submit(data)`; the API's error message shows in the form's
  // .form-error, in words; the button is disabled while the request runs.
  function form(node, submit) {
    node.addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = node.querySelector(".form-error");
      const button = node.querySelector("button[type=submit]");
      if (error) error.textContent = "";
      if (button) button.disabled = true;
      try { await submit(Object.fromEntries(new FormData(node).entries()), node); }
      catch (failure) { if (error) error.textContent = failure.message; else toast(failure.message, "error"); }
      finally { if (button) button.disabled = false; }
    });
  }
  function dialog(id) {
    const node = document.getElementById(id);
    return { node, open: () => node.showModal(), close: () => node.close() };
  }

  // ------------------------------------------------------------ dates and ranges
  function isoDay(date) { return date.toISOString().slice(0, 10); }
  function daysAgo(ymd, n) { const d = new Date(ymd + "T00:00:00Z"); d.setUTCDate(d.getUTCDate() - n); return isoDay(d); }
  // The range picker in `box` (7 / 14 / 30 / 90 days or custom); calls onChange({start, end}).
  function rangePicker(box, end, onChange, initial = 14) {
    const start = el("input", { type: "date", "aria-label": t("range.start") });
    const stop = el("input", { type: "date", "aria-label": t("range.end") });
    const custom = el("span", { class: "custom", hidden: true }, start, " – ", stop);
    const buttons = [7, 14, 30, 90].map((n) => el("button", { type: "button", class: "chip", dataset: { days: n }, text: t("range.days", { n }) }));
    const other = el("button", { type: "button", class: "chip", text: t("range.custom") });
    const pick = (n) => {
      for (const b of [...buttons, other]) b.setAttribute("aria-pressed", String(b.dataset.days === String(n)));
      custom.hidden = true;
      onChange({ start: daysAgo(end, n - 1), end });
    };
    buttons.forEach((b) => b.addEventListener("click", () => pick(Number(b.dataset.days))));
    other.addEventListener("click", () => {
      for (const b of [...buttons, other]) b.setAttribute("aria-pressed", String(b === other));
      start.value = start.value || daysAgo(end, initial - 1); stop.value = stop.value || end; custom.hidden = false;
    });
    const changed = () => { if (start.value && stop.value && start.value <= stop.value) onChange({ start: start.value, end: stop.value }); };
    start.addEventListener("change", changed); stop.addEventListener("change", changed);
    box.replaceChildren(el("div", { class: "range", role: "group", "aria-label": t("range.label") }, buttons, other, custom));
    pick(initial);
  }

  // ------------------------------------------------------------ charts (plotly.min.js)
  // series: [{name, x: ["YYYY-MM-DD"...], y: [n...], kind: "bar"|"line"}]
  function chart(box, series, options = {}) {
    if (!series.length || !series[0].x.length) { state.empty(box, options.empty); return; }
    box.replaceChildren();
    const traces = series.map((s) => ({
      type: s.kind === "line" ? "scatter" : "bar", mode: s.kind === "line" ? "lines+markers" : undefined,
      name: s.name, x: s.x, y: s.y, marker: { color: s.color },
      customdata: s.x.map((x, i) => [fmt.day(x), fmt.int(s.y[i])]),
      hovertemplate: "%{customdata[0]}<br>" + s.name + ": %{customdata[1]}<extra></extra>",
    }));
    const layout = {
      barmode: options.stacked ? "stack" : "group", margin: { l: 48, r: 12, t: 12, b: 40 }, height: options.height || 280,
      xaxis: { type: "date", tickformat: "%m-%d", fixedrange: true },
      yaxis: { rangemode: "tozero", fixedrange: true, separatethousands: true, tickformat: ",d", automargin: true },
      legend: { orientation: "h", y: -0.2 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 12 },
    };
    window.Plotly.newPlot(box, traces, layout, { displayModeBar: false, responsive: true });
  }

  // ------------------------------------------------------------ live updates
  // A socket on `path` that reconnects; onMessage(JSON); onState(true|false) for the badge.
  function live(path, onMessage, onState) {
    let socket = null, wait = 1000;
    const open = () => {
      socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + path);
      socket.onopen = () => { wait = 1000; onState && onState(true); };
      socket.onmessage = (event) => onMessage(JSON.parse(event.data));
      socket.onclose = () => { onState && onState(false); setTimeout(open, wait); wait = Math.min(wait * 2, 30000); };
    };
    open();
    return () => { socket.onclose = null; socket.close(); };
  }

  // ------------------------------------------------------------ the frame
  function setLanguage(code) {
    document.cookie = `tallyhub_lang=${code}; path=/; max-age=31536000; samesite=strict`;
    location.reload();
  }
  document.addEventListener("DOMContentLoaded", () => {
    const switcher = document.getElementById("lang-switch");
    if (switcher) switcher.addEventListener("change", () => setLanguage(switcher.value));
    // On a narrow screen the navigation scrolls sideways: bring this page's link into it.
    const nav = document.querySelector(".nav"), here = nav && nav.querySelector('a[aria-current="page"]');
    if (here && nav.scrollWidth > nav.clientWidth) nav.scrollLeft = here.offsetLeft - nav.offsetLeft - (nav.clientWidth - here.offsetWidth) / 2;
    const signOut = document.getElementById("sign-out");
    if (signOut) signOut.addEventListener("click", async () => {
      await api("/api/auth/session", { method: "DELETE", signedOut: true }).catch(() => null);
      location.assign("/login");
    });
  });

  const user = ctx.user || {};
  return {
    ctx, lang, t, has, fmt, api, all, ApiError, el, badge, state, table, tableRow, flash, toast, copy,
    form, dialog, isoDay, daysAgo, rangePicker, chart, live, setLanguage,
    page: ctx.page || {},
    user,
    canWrite: user.role === "admin" || user.role === "operator",
    isAdmin: user.role === "admin",
  };
})();
