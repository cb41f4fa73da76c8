// What the DOU+ pages share (window.Douplus): order statuses in words, money kept exact in
// fen, times said relative to now (the exact time in the title), the order columns of the
// lists, a pager, and the chart of cost and plays per 5-minute window. The API's window
// figures are cumulative; a window's growth is its difference to the window before.
"use strict";
window.Douplus = (() => {
  const { t, fmt, el, lang } = TH;
  const WINDOW_MS = 5 * 60 * 1000;
  const COST_COLOR = "#2459d6", PLAYS_COLOR = "#d97706";

  // ---------------------------------------------------------------- order statuses
  // In the order the upstream moves through them.
  const STATUS = {
    UNPAID: t("douplus.status.unpaid"), AUDITING: t("douplus.status.auditing"),
    OFFLINE_AUDIT: t("douplus.status.offline_audit"), TIME_NO_REACH: t("douplus.status.time_no_reach"),
    WAIT_TO_START: t("douplus.status.wait_to_start"), DELIVERING: t("douplus.status.delivering"),
    AUDIT_PAUSE: t("douplus.status.audit_pause"), UNDELIVERIED: t("douplus.status.undelivered"),
    DELIVERIED: t("douplus.status.delivered"),
  };
  const STATUS_KIND = { DELIVERING: "good", AUDIT_PAUSE: "warn", OFFLINE_AUDIT: "bad", UNDELIVERIED: "bad", DELIVERIED: "off" };
  const statusBadge = (status) => TH.badge(STATUS[status] || status, STATUS_KIND[status] || "");

  // ---------------------------------------------------------------- money, exactly
  // "123.45" (yuan) → 12345 (fen): money is subtracted in whole fen, never as a float.
  function fen(text) {
    const [whole, part = ""] = String(text).split(".");
    const value = Math.abs(Number(whole)) * 100 + Number((part + "00").slice(0, 2));
    return whole.trim().startsWith("-") ? -value : value;
  }
  // 12345 (fen) → "123.45" (yuan), the API's own form, for TH.fmt.money.
  function yuan(cents) {
    const size = Math.abs(cents);
    return `${cents < 0 ? "-" : ""}${Math.floor(size / 100)}.${String(size % 100).padStart(2, "0")}`;
  }

  // ---------------------------------------------------------------- words for ids and times
  const shortId = (id) => (id.length > 16 ? `${id.slice(0, 6)}…${id.slice(-6)}` : id);
  const relative = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  function ago(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    const past = (n, unit) => relative.format(-Math.round(n) || 0, unit);
    if (seconds < 45) return past(seconds, "second");
    if (seconds < 45 * 60) return past(seconds / 60, "minute");
    if (seconds < 22 * 3600) return past(seconds / 3600, "hour");
    return past(seconds / 86400, "day");
  }
  // "3 minutes ago", with the exact time (and zone) in its title.
  function when(iso) {
    if (!iso) return el("span", { class: "muted", text: t("douplus.never") });
    return el("time", { datetime: iso, title: fmt.when(iso), text: ago(iso) });
  }
  const ratePct = (text) => fmt.pct(Number(text));

  // ---------------------------------------------------------------- the order lists
  const orderHref = (id) => `/douplus/orders/${encodeURIComponent(id)}`;
  const videoHref = (id) => `/douplus/videos/${encodeURIComponent(id)}`;
  // An order's OWN figures (never its video's), for the list page and a video's page;
  // `accountName(id)` adds the account column, `video` the video column.
  function orderColumns({ accountName, video = true } = {}) {
    return [
      { label: t("douplus.col.order"), value: (o) => el("span", { class: "order-name" },
        el("a", { href: orderHref(o.order_id), text: o.title || o.order_id }), el("br"),
        el("small", { class: "muted", text: o.order_id })) },
      accountName ? { label: t("douplus.col.account"), value: (o) => accountName(o.account_id) } : null,
      video ? { label: t("douplus.col.video"), value: (o) => el("a", { href: videoHref(o.item_id), title: t("douplus.video.open"), text: o.item_id }) } : null,
      { label: t("douplus.col.status"), key: "status", value: (o) => statusBadge(o.status) },
      { label: t("douplus.col.created"), value: (o) => fmt.whenShort(o.order_create_time) },
      { label: t("douplus.col.budget"), num: true, value: (o) => fmt.money(o.budget) },
      { label: t("douplus.col.cost"), key: "cost", num: true, value: (o) => fmt.money(o.stat_cost) },
      { label: t("douplus.col.plays"), key: "plays", num: true, value: (o) => fmt.int(o.total_play) },
      { label: t("douplus.col.likes"), key: "likes", num: true, value: (o) => fmt.int(o.custom_like) },
      { label: t("douplus.col.shares"), key: "shares", num: true, value: (o) => fmt.int(o.dy_share) },
      { label: t("douplus.col.conversions"), key: "conversions", num: true, value: (o) => fmt.int(o.dp_target_convert_cnt) },
      { label: t("douplus.col.convert_cost"), key: "convert_cost", num: true, value: (o) => (o.dp_target_convert_cnt ? fmt.money(o.custom_convert_cost) : "–") },
      { label: t("douplus.col.rate_5s"), key: "rate_5s", num: true, value: (o) => (o.total_play ? ratePct(o.play_duration_5s_rank) : "–") },
    ].filter(Boolean);
  }
  // "Page 1 of 3 · 52 in all", previous, next; `go(page)` loads a page.
  function pager(node, body, go) {
    const pages = Math.max(1, Math.ceil(body.total / body.page_size));
    node.replaceChildren(
      el("span", { class: "muted", text: t("pager.page", { page: fmt.int(body.page), pages: fmt.int(pages), total: fmt.int(body.total) }) }),
      el("button", { type: "button", text: t("action.previous"), disabled: body.page <= 1, onclick: () => go(body.page - 1) }),
      el("button", { type: "button", text: t("action.next"), disabled: body.page >= pages, onclick: () => go(body.page + 1) }));
  }

  // ---------------------------------------------------------------- windows and their chart
  // The API's windows as {stat_time, cost (fen), plays}, oldest first.
  const windowsOf = (rows, cost, plays) => rows.map((r) => ({ ...r, stat_time: r.stat_time, cost: fen(r[cost]), plays: r[plays] }));
  // Each window's growth: its figures minus the window before's. The first window's growth
  // is known only when the order (or video) started within a window of it (it grew from
  // zero); otherwise it is null: what came before the first synced window is not split up.
  function growth(windows, startedAt) {
    return windows.map((w, i) => {
      if (i > 0) return { stat_time: w.stat_time, cost: w.cost - windows[i - 1].cost, plays: w.plays - windows[i - 1].plays };
      const fromZero = Boolean(startedAt) && Date.parse(startedAt) >= Date.parse(w.stat_time) - WINDOW_MS;
      return { stat_time: w.stat_time, cost: fromZero ? w.cost : null, plays: fromZero ? w.plays : null };
    });
  }
  // Plotly reads a date string as it is written: give it the viewer's own clock time, as
  // the tables and hover labels say it.
  const pad = (n) => String(n).padStart(2, "0");
  const TIME_TICKS = [
    { dtickrange: [null, 60000], value: "%H:%M:%S" },
    { dtickrange: [60000, 3600000], value: "%H:%M" },
    { dtickrange: [3600000, 86400000], value: "%m-%d %H:%M" },
    { dtickrange: [86400000, null], value: "%m-%d" },
  ];
  function local(instant) {
    const d = new Date(instant);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }
  // Text in lines of at most `width` columns (a Chinese character takes two), for a plot's
  // annotation, which does not wrap by itself.
  function wrap(text, width) {
    const cjk = /[\u3000-\u9fff]/.test(text);
    const pieces = cjk ? [...text] : text.split(" ");
    const lines = [""];
    for (const piece of pieces) {
      const line = lines[lines.length - 1], joined = line && !cjk ? `${line} ${piece}` : line + piece;
      if (line && joined.length * (cjk ? 2 : 1) > width) lines.push(piece); else lines[lines.length - 1] = joined;
    }
    return lines.join("<br>");
  }
  // Growth per window (cost as bars on the ¥ axis, plays as a line on the right-hand axis)
  // or the cumulative figures (two lines): `mode` is "growth" or "total".
  function chart(box, windows, mode, startedAt) {
    if (!windows.length) { TH.state.empty(box, t("douplus.chart.empty")); return; }
    const rows = mode === "growth" ? growth(windows, startedAt) : windows;
    const x = rows.map((r) => local(r.stat_time));
    // Half a window either side, so that one window is a point in a readable span of time.
    const span = [local(Date.parse(rows[0].stat_time) - WINDOW_MS / 2), local(Date.parse(rows[rows.length - 1].stat_time) + WINDOW_MS / 2)];
    const costName = t("douplus.series.cost"), playsName = t("douplus.series.plays");
    const hover = (name) => "%{customdata[0]}<br>" + name + ": %{customdata[1]}<extra></extra>";
    const cost = {
      name: costName, x, y: rows.map((r) => (r.cost === null ? null : r.cost / 100)), yaxis: "y",
      marker: { color: COST_COLOR }, line: { color: COST_COLOR },
      customdata: rows.map((r) => [fmt.when(r.stat_time), r.cost === null ? "–" : fmt.money(yuan(r.cost))]),
      hovertemplate: hover(costName),
      ...(mode === "growth" ? { type: "bar", width: WINDOW_MS * 0.8 } : { type: "scatter", mode: "lines+markers" }),
    };
    const plays = {
      type: "scatter", mode: "lines+markers", name: playsName, x, y: rows.map((r) => r.plays), yaxis: "y2",
      marker: { color: PLAYS_COLOR }, line: { color: PLAYS_COLOR },
      customdata: rows.map((r) => [fmt.when(r.stat_time), r.plays === null ? "–" : fmt.int(r.plays)]),
      hovertemplate: hover(playsName),
    };
    const layout = {
      margin: { l: 64, r: 64, t: 12, b: 40 }, height: 300, showlegend: true,
      // Numbers, not month names (Plotly's are English only), finer as the span narrows.
      xaxis: { type: "date", fixedrange: true, range: span, tickformatstops: TIME_TICKS },
      yaxis: { rangemode: "tozero", fixedrange: true, tickprefix: "¥", separatethousands: true, title: { text: costName } },
      yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", fixedrange: true, separatethousands: true, tickformat: ",d", showgrid: false, title: { text: playsName } },
      legend: { orientation: "h", y: -0.2 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: { family: "system-ui, sans-serif", size: 12 },
      // One window whose growth is not known (the order started before it): say why the
      // plot is empty rather than leave bare axes.
      annotations: rows.every((r) => r.cost === null && r.plays === null)
        ? [{ text: wrap(t("douplus.chart.one_window"), 26), xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false, font: { color: "#5b6473" } }]
        : [],
    };
    box.replaceChildren();
    window.Plotly.newPlot(box, [cost, plays], layout, { displayModeBar: false, responsive: true });
  }
  // The chips that switch the chart between growth per window and the cumulative figures.
  function modeSwitch(box, initial, onChange) {
    const chips = [["growth", t("douplus.chart.growth")], ["total", t("douplus.chart.total")]].map(([mode, text]) =>
      el("button", { type: "button", class: "chip", dataset: { mode }, text, "aria-pressed": String(mode === initial) }));
    for (const chip of chips) {
      chip.addEventListener("click", () => {
        chips.forEach((other) => other.setAttribute("aria-pressed", String(other === chip)));
        onChange(chip.dataset.mode);
      });
    }
    box.replaceChildren(el("div", { class: "range", role: "group", "aria-label": t("douplus.chart.mode") }, chips));
  }
  // The windows as a table, newest first: each window's cumulative figures and its growth.
  function windowColumns(startedAt, windows, extra = []) {
    const grown = new Map(growth(windows, startedAt).map((g) => [g.stat_time, g]));
    const plus = (n, format) => (n === null || n === undefined ? "–" : (n > 0 ? "+" : "") + format(n));
    return [
      { label: t("douplus.col.window"), value: (w) => fmt.when(w.stat_time) },
      { label: t("douplus.col.cost_total"), num: true, value: (w) => fmt.money(yuan(w.cost)) },
      { label: t("douplus.col.cost_growth"), key: "cost_growth", num: true, value: (w) => plus(grown.get(w.stat_time).cost, (c) => fmt.money(yuan(c))) },
      { label: t("douplus.col.plays_total"), num: true, value: (w) => fmt.int(w.plays) },
      { label: t("douplus.col.plays_growth"), key: "plays_growth", num: true, value: (w) => plus(grown.get(w.stat_time).plays, fmt.int) },
      ...extra,
    ];
  }
  // A client-side pager over `rows` (the windows come whole from the API).
  function pagedTable(box, pagerBox, columns, rows, size = 20) {
    const show = (page) => {
      box.replaceChildren(TH.table(columns, rows.slice((page - 1) * size, page * size)));
      pager(pagerBox, { page, page_size: size, total: rows.length }, show);
    };
    show(1);
  }

  return { STATUS, statusBadge, fen, yuan, shortId, when, ratePct, orderHref, videoHref, orderColumns, pager,
    windowsOf, growth, chart, modeSwitch, windowColumns, pagedTable };
})();
